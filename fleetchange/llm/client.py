"""A small client for OpenAI-compatible ``/chat/completions`` endpoints.

Works with OpenAI, hosted gateways, vLLM and Ollama (``http://127.0.0.1:11434/v1``).
One :class:`ChatClient` holds one long-lived :class:`httpx.Client` (connections
are pooled; it is safe to share between threads).  The API key is never stored:
only the *name* of the environment variable is, and the variable is read at call
time and registered with :func:`fleetchange.gitops.register_secret` so it never
reaches an error message or a log.

Transient trouble (429, 5xx, timeouts, dropped connections, a garbled body) is
retried a bounded number of times, honouring ``Retry-After`` (seconds or an HTTP
date) and otherwise backing off exponentially with jitter.  A 401/403 is not
retried: it raises :class:`LLMAuthError` naming the variable the key came from.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .. import __version__
from ..gitops import redact, register_secret

#: ``{"role": "system" | "user" | "assistant", "content": "..."}``
Message = dict[str, str]

RETRY_STATUSES = frozenset({408, 409, 425, 429})


class LLMError(Exception):
    """The endpoint could not give an answer (after retries, when retrying made sense)."""


class LLMAuthError(LLMError):
    """The endpoint rejected the credentials (or the key's variable is not set)."""


@dataclass(frozen=True)
class Completion:
    """One answer of the model, with what it cost."""

    content: str
    finish_reason: str  # "stop", "length", "content_filter", ...
    prompt_tokens: int
    completion_tokens: int
    model: str = ""
    refusal: str | None = None  # OpenAI's ``message.refusal``, when the model declined

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model": self.model,
            "refusal": self.refusal,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        refusal = data.get("refusal")
        return cls(
            content=str(data["content"]),
            finish_reason=str(data["finish_reason"]),
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            model=str(data.get("model", "")),
            refusal=None if refusal is None else str(refusal),
        )


class _Retry(Exception):
    """A transient failure: try again after ``delay`` seconds (None: back off)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return response.text.strip()[:300]


def _content_text(content: Any) -> str:
    """``message.content``: a string, null, or (some gateways) a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    raise ValueError(f"unexpected message content of type {type(content).__name__}")


def parse_completion(data: Any) -> Completion:
    """A :class:`Completion` from a chat-completions response body (raises ValueError)."""
    if not isinstance(data, dict):
        raise ValueError("response is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("response choice has no message")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    refusal = message.get("refusal")
    return Completion(
        content=_content_text(message.get("content")),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        model=str(data.get("model") or ""),
        refusal=refusal if isinstance(refusal, str) and refusal.strip() else None,
    )


class ChatClient:
    """POST ``{endpoint}/chat/completions`` for one model, with retries and timeouts.

    ``sleep`` and ``rng`` are injectable so tests never wait.  ``attempts`` counts
    HTTP requests sent over the client's life (retries included).
    """

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = f"{self.endpoint}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.rng = rng
        self.attempts = 0
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            transport=transport,
            follow_redirects=False,
            headers={
                "Accept": "application/json",
                "User-Agent": f"fleetchange/{__version__}",
            },
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise LLMAuthError(
                f"environment variable {self.api_key_env} (api_key_env) is not set: "
                f"it must hold the API key for {self.endpoint}"
            )
        register_secret(key)
        return {"Authorization": f"Bearer {key}"}

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> Completion:
        """The model's answer to ``messages``; raises :class:`LLMError` when there is none."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": temperature,
            "stream": False,
        }
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        headers = self._headers()
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(payload, headers)
            except _Retry as retry:
                last = retry.reason
                if attempt == self.max_retries:
                    break
                self.sleep(self._delay(attempt, retry.delay))
        raise LLMError(
            redact(f"POST {self.url} failed after {self.max_retries + 1} attempts: {last}")
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return float(ceiling * (0.5 + 0.5 * self.rng()))  # jitter: between half and all of it

    def _once(self, payload: dict[str, Any], headers: dict[str, str]) -> Completion:
        self.attempts += 1
        try:
            response = self._http.post(self.url, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status in (401, 403):
            where = f"the key in ${self.api_key_env}" if self.api_key_env else "no API key"
            hint = "" if self.api_key_env else " (set api_key_env to the variable holding the key)"
            raise LLMAuthError(
                redact(
                    f"{self.url} rejected {where} with HTTP {status}: "
                    f"{_error_message(response)}{hint}"
                )
            )
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(
                f"HTTP {status}: {_error_message(response)}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise LLMError(redact(f"POST {self.url}: HTTP {status}: {_error_message(response)}"))
        try:
            return parse_completion(response.json())
        except (ValueError, TypeError) as exc:
            raise _Retry(f"unreadable response: {exc}") from None
