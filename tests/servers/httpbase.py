"""Shared HTTP plumbing for the in-process forge test servers.

:class:`ForgeServer` runs a :class:`~http.server.ThreadingHTTPServer` (HTTP/1.1,
keep-alive) on an ephemeral 127.0.0.1 port in a background thread and sends every
request through one pipeline: read the body (chunked and ``Content-Encoding: gzip``
bodies are decoded), let the :class:`~tests.servers.faults.FaultInjector`
misbehave, otherwise dispatch to git smart HTTP or to the forge's JSON API, then
record the exchange in the request log.  Subclasses supply routes, authentication
and the forge's own error shapes.  A handler that raises an unexpected exception
answers 500 and the traceback lands in ``server.errors`` so that server bugs do not
pass for forge behaviour (the fixtures assert it stays empty).

Also here: :class:`Router` (regex routes over the *raw* path, so ``platform%2Fapi``
stays one segment), :class:`Response` helpers and offset pagination
(:class:`PageWindow`, :func:`page_url`, :func:`format_links`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .faults import FaultInjector, FaultRule, RecordedRequest, strip_secrets
from .gitrepo import git_env

T = TypeVar("T")


class ApiError(Exception):
    """Raised by handlers to answer ``status`` with ``payload`` (bytes/str as is, else JSON)."""

    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {payload!r}")
        self.status = status
        self.payload = payload
        self.headers = dict(headers or {})


@dataclass
class Request:
    """One HTTP request as the handlers see it (body already de-chunked and gunzipped)."""

    method: str
    target: str  # the raw request target: path and query string
    headers: Message
    body: bytes = b""
    raw_path: str = field(init=False)
    path: str = field(init=False)
    query_string: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.raw_path = parts.path or "/"
        self.path = unquote(self.raw_path)
        self.query_string = parts.query
        self.query = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(key, []).append(value)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body parsed as JSON (None when empty); ValueError when malformed."""
        if not self.body.strip():
            return None
        return json.loads(self.body)

    def params(self) -> dict[str, Any]:
        """Query parameters merged with a JSON or form body, the way Grape sees them.

        ``key[]=a&key[]=b`` becomes ``{"key": ["a", "b"]}``; a repeated plain key keeps
        its last value.  ValueError for a malformed body.
        """
        params = _flatten(parse_qsl(self.query_string, keep_blank_values=True))
        if not self.body.strip():
            return params
        ctype = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            params.update(_flatten(parse_qsl(self.body.decode(), keep_blank_values=True)))
            return params
        data = self.json()
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        params.update(data)
        return params


def _flatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        else:
            out[key] = value
    return out


@dataclass
class Response:
    """An answer; ``drop`` = "close" or "reset" sends nothing and ends the connection."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: str | None = None

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        *,
        content_type: str = "application/json",
    ) -> Response:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        body = json.dumps(payload).encode()
        return cls(status, body, [("Content-Type", content_type), *items])

    @classmethod
    def text(
        cls, status: int, text: str | bytes, *, content_type: str = "text/plain; charset=utf-8"
    ) -> Response:
        body = text.encode() if isinstance(text, str) else text
        return cls(status, body, [("Content-Type", content_type)])

    @classmethod
    def payload(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None, **kw: str
    ) -> Response:
        """bytes/str bodies as text, anything else as JSON."""
        if isinstance(payload, bytes | str):
            resp = cls.text(status, payload)
            for name, value in (headers or {}).items():
                resp.set_header(name, value)
            return resp
        return cls.json(status, payload, headers, **kw)

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status)

    def get_header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))

    def default_header(self, name: str, value: str) -> None:
        if self.get_header(name) is None:
            self.headers.append((name, value))


RouteHandler = Callable[[Request, dict[str, str]], Response]


class Router:
    """Regex routes matched against the whole raw path; named groups are unquoted."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], RouteHandler]] = []

    def add(self, method: str, pattern: str, handler: RouteHandler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def resolve(self, method: str, raw_path: str) -> tuple[RouteHandler, dict[str, str]] | int:
        """The handler and its path parameters, or 404 / 405."""
        path_known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(raw_path)
            if match is None:
                continue
            if route_method != method.upper():
                path_known = True
                continue
            return handler, {k: unquote(v) for k, v in match.groupdict().items()}
        return 405 if path_known else 404


@dataclass(frozen=True)
class PageWindow:
    """Offset pagination arithmetic: 1-based ``page`` of ``per_page`` over ``total``."""

    page: int
    per_page: int
    total: int

    @property
    def total_pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page < self.total_pages else None

    @property
    def prev_page(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    def slice(self, items: Sequence[T]) -> list[T]:
        start = (self.page - 1) * self.per_page
        return list(items[start : start + self.per_page])


def page_url(base_url: str, req: Request, page: int, per_page: int) -> str:
    """``req``'s absolute URL with ``page``/``per_page`` replaced (other params kept)."""
    pairs = [(k, v) for k, vs in req.query.items() if k not in ("page", "per_page") for v in vs]
    pairs += [("page", str(page)), ("per_page", str(per_page))]
    return f"{base_url}{req.raw_path}?{urlencode(pairs)}"


def format_links(links: Iterable[tuple[str, str]]) -> str:
    """An RFC 8288 ``Link`` header from ``(rel, url)`` pairs."""
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links)


def parse_int(value: str | None) -> int | None:
    """``value`` as an int, or None when absent or not a number."""
    if value is None or not value.strip().lstrip("-").isdigit():
        return None
    return int(value)


def truthy(value: Any) -> bool:
    """Grape-style boolean coercion ("true", "1", "yes", True ...)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in {"true", "1", "yes", "t", "on"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    request_queue_size = 128

    def __init__(self, forge: ForgeServer) -> None:
        self.forge = forge
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away; not a server bug
        self.forge.errors.append(traceback.format_exc())

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self.connections_lock:
            sockets = list(self.connections)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # else header and body writes meet delayed ACKs (40 ms)
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server.forge.server_header

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the forge's request log records every exchange."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError, EOFError, zlib.error):
            self.close_connection = True
            self._write(Response.text(400, "Bad Request\n"))
            return
        response = self.server.forge.serve(Request(self.command, self.path, self.headers, body))
        if response.drop:
            self._drop(response.drop)
        else:
            self._write(response)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length > 0 else b""
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if encoding == "deflate":
            return zlib.decompress(data)
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()  # flushes the status line and headers
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _drop(self, mode: str) -> None:
        self.close_connection = True
        if mode == "reset":  # RST instead of FIN: the client sees "connection reset"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class ForgeServer:
    """Base for the forge servers: lifecycle, request pipeline, faults and logging.

    ``root`` holds the bare repositories (a temporary folder, removed on ``stop()``,
    when omitted); ``root/.git-home`` is ``HOME`` for the git subprocesses.  Use as a
    context manager or call :meth:`start`/:meth:`stop`.  ``lock`` guards the forge
    state; helper methods take it, so tests may call them while clients run.
    """

    server_header: ClassVar[str] = "fleetchange-test"

    def __init__(
        self, root: Path | str | None, *, token: str, faults: FaultInjector | None = None
    ) -> None:
        self._owned_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="forge-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.git_env = git_env(self.root / ".git-home")
        self.token = token
        self.faults = faults if faults is not None else FaultInjector()
        self.log = self.faults.log
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start()")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close client connections, join handler threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self._stopping.set()
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._owned_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def assert_no_errors(self) -> None:
        """Fail with the tracebacks of unexpected exceptions raised while serving."""
        if self.errors:
            raise AssertionError("server errors:\n" + "\n".join(self.errors))

    # -- pipeline -------------------------------------------------------------------
    def serve(self, req: Request) -> Response:
        git = self.route_git(req)
        rule = self.faults.pick(req.method, req.raw_path, req.path, is_git=git is not None)
        response: Response | None = None
        if rule is not None:
            if rule.delay > 0:
                self._stopping.wait(rule.delay)
            if rule.kind in ("drop", "reset"):
                response = Response(0, drop=rule.kind)
            elif rule.kind != "slow":
                response = self.render_fault(rule, req)
        if response is None:
            response = self._dispatch(req, git)
        if not response.drop:
            self.decorate(req, response, git=git is not None)
        self.log.record(
            RecordedRequest(
                method=req.method,
                path=req.path,
                raw_path=req.raw_path,
                query={k: list(v) for k, v in req.query.items()},
                headers=strip_secrets(req.headers),
                status=None if response.drop else response.status,
                fault=rule.kind if rule is not None else None,
                git=git is not None,
                body=b"" if git is not None else req.body,
                at=time.time(),
            )
        )
        return response

    def _dispatch(self, req: Request, git: tuple[str, str] | None) -> Response:
        try:
            if git is not None:
                return self.handle_git(req, *git)
            return self.handle_api(req)
        except ApiError as exc:
            return self.render_error(exc)
        except Exception:
            self.errors.append(traceback.format_exc())
            return self.internal_error()

    # -- subclass hooks -------------------------------------------------------------
    def route_git(self, req: Request) -> tuple[str, str] | None:
        """``(repository path, path tail)`` when ``req`` is git smart HTTP, else None."""
        return None

    def handle_git(self, req: Request, repo: str, tail: str) -> Response:
        raise NotImplementedError

    def handle_api(self, req: Request) -> Response:
        raise NotImplementedError

    def render_fault(self, rule: FaultRule, req: Request) -> Response:
        status = rule.status or (429 if rule.kind != "status" else 500)
        body = rule.body if rule.body is not None else {"message": f"{status} injected fault"}
        resp = Response.payload(status, body, rule.headers)
        if rule.retry_after is not None and rule.kind != "status":
            resp.default_header("Retry-After", str(rule.retry_after))
        return resp

    def render_error(self, exc: ApiError) -> Response:
        return Response.payload(exc.status, exc.payload, exc.headers)

    def internal_error(self) -> Response:
        return Response.json(500, {"message": "500 Internal Server Error"})

    def decorate(self, req: Request, response: Response, *, git: bool) -> None:
        """Add the headers every response of this forge carries."""
