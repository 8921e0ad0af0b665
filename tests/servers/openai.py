"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted by tests.

``POST /v1/chat/completions`` answers in the shape of the OpenAI API (``id``,
``object = "chat.completion"``, ``created``, ``model``, ``choices[{index, message
{role, content}, finish_reason}]``, ``usage``).  What it answers comes from, in
order: the queue filled by :meth:`OpenAIServer.script`, else the ``responder``
callable, else an HTTP 500 saying nothing was scripted (a test that makes more
calls than it planned fails loudly).

A :class:`Reply` can also be an error (``status``, ``headers`` such as
``Retry-After: 0``), can hold its answer until a :class:`threading.Event` is set
(to make a client time out without sleeping), or drop the connection.  Every
request is recorded (:attr:`OpenAIServer.requests`) with its messages; tokens
served are counted.  With ``api_key`` set, a request without ``Authorization:
Bearer <key>`` gets a 401 shaped like OpenAI's.

    with OpenAIServer() as server:
        server.script(Reply("```python\\nx = 1\\n```"))
        ... ChatClient(server.url, "test-model") ...
        assert server.calls == 1
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = ""
    finish_reason: str = "stop"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None  # default: about a quarter of the prompt's characters
    completion_tokens: int | None = None  # default: about a quarter of the content's
    body: Any = None  # a JSON body to send as it is (error shapes, garbage)
    raw: bytes | None = None  # bytes to send as the body, not even JSON
    hold: threading.Event | None = None  # answer only once this is set (at most 10 s)
    drop: bool = False  # close the connection without answering
    refusal: str | None = None  # OpenAI's message.refusal


@dataclass
class Request:
    path: str
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    authorization: str | None

    @property
    def prompt(self) -> str:
        """The last user message (what was asked this time)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return str(users[-1]["content"]) if users else ""


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def fenced(code: str, language: str = "python") -> str:
    """An answer holding ``code`` in one fenced block, with a line of chat around it."""
    body = code if code.endswith("\n") else code + "\n"
    return f"Here is the updated code:\n\n```{language}\n{body}```\n"


Responder = Callable[[Request], Reply]


class OpenAIServer:
    def __init__(self, *, api_key: str | None = None, responder: Responder | None = None) -> None:
        self.api_key = api_key
        self.responder = responder
        self.requests: list[Request] = []
        self.replies: deque[Reply] = deque()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.errors = 0  # non-200 answers sent
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -----------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        """Queue replies (a plain string is a successful answer with that content)."""
        with self._lock:
            for reply in replies:
                self.replies.append(Reply(reply) if isinstance(reply, str) else reply)

    @property
    def calls(self) -> int:
        """Requests received (errors and retries included)."""
        with self._lock:
            return len(self.requests)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.replies)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- serving -------------------------------------------------------------------------

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.replies:
                return self.replies.popleft()
        if self.responder is not None:
            return self.responder(request)
        return Reply(
            status=500,
            body={"error": {"message": "no scripted reply left", "type": "server_error"}},
        )

    def _count(self, prompt: int, completion: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self.prompt_tokens += prompt
                self.completion_tokens += completion
            else:
                self.errors += 1


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _error(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self.owner._count(0, 0, ok=False)
        self._send(status, json.dumps(body).encode())

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/v1/models"):
            self._send(200, json.dumps({"object": "list", "data": []}).encode())
            return
        self._error(404, f"no route for GET {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/v1/chat/completions"):
            self._error(404, f"no route for POST {self.path}", "invalid_request_error")
            return
        try:
            body = json.loads(raw)
            messages = body["messages"]
            model = body["model"]
            assert isinstance(messages, list) and isinstance(model, str)
        except (ValueError, KeyError, TypeError, AssertionError):
            self._error(400, "invalid JSON body: need model and messages", "invalid_request_error")
            return
        owner = self.owner
        authorization = self.headers.get("Authorization")
        request = Request(self.path, model, messages, body, authorization)
        if owner.api_key is not None and authorization != f"Bearer {owner.api_key}":
            with owner._lock:
                owner.requests.append(request)
            self._error(
                401,
                "Incorrect API key provided. You can find your API key at your provider.",
                "invalid_request_error",
                "invalid_api_key",
            )
            return
        reply = owner._next(request)
        if reply.hold is not None:
            reply.hold.wait(timeout=10)
        if reply.drop:
            self.close_connection = True
            return
        if reply.raw is not None or reply.body is not None:
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            owner._count(0, 0, ok=reply.status == 200)
            self._send(reply.status, payload, reply.headers)
            return
        if reply.status != 200:
            owner._count(0, 0, ok=False)
            body_text = {
                429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
            }.get(
                reply.status,
                ("The server had an error processing your request", "server_error", None),
            )
            error = {
                "error": {
                    "message": body_text[0],
                    "type": body_text[1],
                    "param": None,
                    "code": body_text[2],
                }
            }
            self._send(reply.status, json.dumps(error).encode(), reply.headers)
            return
        prompt_text = "".join(str(m.get("content", "")) for m in messages)
        prompt_tokens = (
            reply.prompt_tokens if reply.prompt_tokens is not None else tokens(prompt_text)
        )
        completion_tokens = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else tokens(reply.content or "")
        )
        owner._count(prompt_tokens, completion_tokens, ok=True)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.refusal is not None:
            message["refusal"] = reply.refusal
        answer = {
            "id": f"chatcmpl-{len(owner.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self._send(200, json.dumps(answer).encode(), reply.headers)
