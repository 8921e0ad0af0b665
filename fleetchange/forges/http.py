"""HTTP plumbing shared by the GitLab and GitHub clients.

:class:`ApiClient` wraps one long-lived :class:`httpx.Client` and owns everything a
forge API makes us care about besides the payloads:

* rate limits: ``Retry-After`` (seconds or a date) and ``RateLimit-Reset`` /
  ``x-ratelimit-reset`` (epoch) on 429, GitHub's 403 with ``x-ratelimit-remaining: 0``,
  and GitHub's *secondary* limit (403/429 whose message says so: at least 60 s, growing,
  unless a header says otherwise);
* faults: 5xx answers, timeouts and dropped or reset connections are retried with
  jittered exponential back-off, a bounded number of attempts and a bounded total wait;
  callers that must not blindly repeat a request (creating a merge request) ask for
  :class:`TransientError` instead and decide themselves;
* spacing of mutating requests (POST/PUT/PATCH/DELETE): one at a time and at least
  ``write_interval`` seconds apart when that is > 0 (GitHub asks for 1 s);
* pagination by ``Link: <...>; rel="next"`` or ``X-Next-Page``;
* errors: 401 is :class:`~fleetchange.forges.base.ForgeAuthError` (fatal), anything else
  an :class:`ApiError` carrying the status and the forge's one-line message.

``sleep``, ``clock`` (monotonic), ``now`` (epoch) and ``rng`` are injectable so tests
never wait; ``transport`` is injectable for request-shaping tests.  The client is
thread-safe and survives ``fork``: a child process builds its own connection pool and
locks on first use instead of sharing the parent's sockets.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from .. import __version__
from ..gitops import redact
from .base import ForgeAuthError, ForgeError

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_TIMEOUT = httpx.Timeout(30, connect=10)
USER_AGENT = f"fleetchange/{__version__}"
#: what a dropped, reset or stalled connection looks like to httpx
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
MAX_PAGES = 100_000
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")

Params = Mapping[str, str | int | bool]
SECONDARY_LIMIT = re.compile(r"secondary rate limit|abuse detection", re.I)
Transient = Literal["retry", "raise"]


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to insist.  Waits are seconds."""

    attempts: int = 6  # tries per request for 5xx / timeouts / dropped connections
    rate_limit_attempts: int = 12  # rate-limit answers tolerated per request
    backoff_base: float = 1.0  # first back-off (before jitter), doubled each time
    backoff_cap: float = 60.0
    max_total_wait: float = 900.0  # per request, rate-limit waits included
    secondary_min_wait: float = 60.0  # GitHub's secondary limit without a header


#: the policy a client gets when none is passed (tests may monkeypatch this)
DEFAULT_RETRY = RetryPolicy()


class ApiError(ForgeError):
    """The forge answered with an error status (not 401, not a retried fault)."""

    def __init__(self, forge: str, method: str, path: str, status: int, message: str) -> None:
        self.forge, self.method, self.path = forge, method, path
        self.status, self.message = status, message
        super().__init__(redact(f"{forge} answered {status} to {method} {path}: {message}"))


class TransientError(ForgeError):
    """A 5xx, timeout or dropped connection: retries exhausted, or the caller asked to decide.

    ``status`` is None when no answer came back at all.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(redact(message))


def error_message(response: httpx.Response) -> str:
    """The forge's own words for an error answer, on one line (at most 300 characters)."""
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    parts: list[str] = []
    if isinstance(data, dict):
        for key in ("message", "error", "error_description"):
            if data.get(key):
                parts.append(_flatten_message(data[key]))
                break
        for item in data.get("errors") or []:  # GitHub: Validation Failed details
            if isinstance(item, dict):
                detail = item.get("message") or " ".join(
                    str(item[k]) for k in ("resource", "field", "code") if item.get(k)
                )
                parts.append(str(detail))
            else:
                parts.append(str(item))
    elif isinstance(data, list | str):
        parts.append(_flatten_message(data))
    if not parts:
        text = _TAGS.sub(" ", response.text)
        parts.append(text or response.reason_phrase or f"HTTP {response.status_code}")
    line = _SPACE.sub(" ", ": ".join(p for p in parts if p)).strip()
    return redact(line[:300])


def _flatten_message(value: Any) -> str:
    """GitLab's ``message`` is a string, a list of strings or ``{field: [problems]}``."""
    if isinstance(value, list):
        return "; ".join(_flatten_message(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_flatten_message(v)}" for k, v in value.items())
    return str(value)


def _header_number(response: httpx.Response, *names: str) -> float | None:
    for name in names:
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            return float(value.strip())
        except ValueError:
            continue
    return None


class ApiClient:
    """One forge API at ``base_url`` (e.g. ``https://gitlab.com/api/v4``)."""

    def __init__(
        self,
        base_url: str,
        *,
        forge: str,
        headers: Mapping[str, str],
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        write_interval: float = 0.0,
        retry: RetryPolicy | None = None,
        per_page: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.forge = forge
        self.headers = {"User-Agent": USER_AGENT, **headers}
        self.transport = transport
        self.timeout = timeout
        self.write_interval = write_interval
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.per_page = per_page
        self.sleep, self.clock, self.now = sleep, clock, now
        self.rng = rng if rng is not None else random.Random().random
        origin = httpx.URL(self.base_url)
        self._origin = f"{origin.scheme}://{origin.netloc.decode('ascii')}"
        self._setup_runtime()
        _CLIENTS.add(self)

    # -- per-process runtime state ---------------------------------------------------

    def _setup_runtime(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_write = float("-inf")
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._pid != os.getpid():  # forked: never touch the parent's sockets or locks
            self._setup_runtime()
        client = self._http
        if client is None:
            with self._lock:
                if self._http is None:
                    self._http = httpx.Client(
                        base_url=self.base_url,
                        headers=self.headers,
                        timeout=self.timeout,
                        transport=self.transport,
                        follow_redirects=False,
                    )
                client = self._http
        return client

    def close(self) -> None:
        if self._http is not None and self._pid == os.getpid():
            self._http.close()
        self._http = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_write_lock", "_http", "_pid", "_last_write"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_runtime()
        _CLIENTS.add(self)

    # -- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        transient: Transient = "retry",
        ok: Collection[int] = (),
        auth_errors: bool = True,
    ) -> httpx.Response:
        """Send a request, waiting out rate limits and retrying faults; 2xx (or ``ok``) only.

        ``transient="raise"`` raises :class:`TransientError` on the first 5xx, timeout or
        dropped connection (rate-limit answers are still waited out: the forge did not act
        on them).  ``auth_errors=False`` reports a 401 as an :class:`ApiError` (GitLab answers
        401 when the token may not merge).
        """
        method = method.upper()
        policy = self.retry
        failures = limited = secondaries = 0
        waited = 0.0
        shown = self._show(url)
        while True:
            try:
                response = self._send(method, url, params, json)
            except TRANSPORT_ERRORS as exc:
                failures += 1
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                what = f"{self.forge}: {method} {shown} failed ({problem})"
                if transient == "raise" or failures >= policy.attempts:
                    raise TransientError(self._gave_up(what, failures)) from None
                delay = self._backoff(failures)
            else:
                status = response.status_code
                if 200 <= status < 300 or status in ok:
                    return response
                if status == 401 and auth_errors:
                    raise ForgeAuthError(
                        f"{self.forge} rejected the token (401) for {self.base_url}: "
                        f"{error_message(response)}"
                    )
                limit = self._rate_limit_wait(response, limited, secondaries)
                if limit is not None:
                    wait, secondary = limit
                    limited += 1
                    secondaries += secondary
                    if limited > policy.rate_limit_attempts:
                        raise TransientError(
                            f"{self.forge}: still rate limited after {limited - 1} waits "
                            f"({method} {shown})",
                            status,
                        )
                    delay = wait
                elif status >= 500:
                    failures += 1
                    what = f"{self.forge} answered {status} to {method} {shown}: {error_message(response)}"
                    if transient == "raise" or failures >= policy.attempts:
                        raise TransientError(self._gave_up(what, failures), status)
                    delay = self._backoff(failures)
                else:
                    raise ApiError(self.forge, method, shown, status, error_message(response))
            if waited + delay > policy.max_total_wait:
                raise TransientError(
                    f"{self.forge}: {method} {shown} would have to wait {delay:.0f}s more "
                    f"(already waited {waited:.0f}s, at most {policy.max_total_wait:.0f}s)"
                )
            self.sleep(delay)  # even 0: the server asked us to come back, tests count it
            waited += delay

    def _gave_up(self, what: str, failures: int) -> str:
        return what if failures <= 1 else f"{what}; gave up after {failures} attempts"

    def _send(self, method: str, url: str, params: Params | None, json: Any) -> httpx.Response:
        client = self._client()
        if method not in MUTATING or self.write_interval <= 0:
            return client.request(method, url, params=params, json=json)
        with self._write_lock:  # one mutation at a time, write_interval apart
            gap = self._last_write + self.write_interval - self.clock()
            if gap > 0:
                self.sleep(gap)
            try:
                return client.request(method, url, params=params, json=json)
            finally:
                self._last_write = self.clock()

    def _show(self, url: str) -> str:
        """``url`` without scheme and host, for messages."""
        if url.startswith(self._origin):
            url = url[len(self._origin) :]
        return redact(url.split("?")[0])

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with jitter: base * 2^(n-1), capped, times 0.5..1."""
        policy = self.retry
        ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0 ** (failures - 1))
        return ceiling * (0.5 + 0.5 * self.rng())

    def _header_wait(self, response: httpx.Response, *, reset: bool) -> float | None:
        """Seconds the headers ask us to wait: ``Retry-After``, then (if ``reset``) the reset."""
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            value = retry_after.strip()
            if value.isdigit():
                return float(value)
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - self.now())
        if reset:
            stamp = _header_number(response, "RateLimit-Reset", "x-ratelimit-reset")
            if stamp is not None:
                # GitLab and GitHub send an epoch; the IETF draft a number of seconds
                return max(0.0, stamp - self.now()) if stamp > 1e9 else max(0.0, stamp)
        return None

    def _rate_limit_wait(
        self, response: httpx.Response, hits: int, secondary_hits: int
    ) -> tuple[float, bool] | None:
        """``(seconds to wait, secondary limit?)`` for a rate-limited answer, else None."""
        status = response.status_code
        if status not in (403, 429):
            return None
        remaining = _header_number(response, "x-ratelimit-remaining", "RateLimit-Remaining")
        exhausted = remaining is not None and remaining <= 0
        secondary = bool(SECONDARY_LIMIT.search(error_message(response)))
        if status == 403 and not secondary and not exhausted:
            return None  # a real permission problem
        if secondary:
            wait = self._header_wait(response, reset=exhausted)
            if wait is None:  # at least a minute, growing while it lasts
                policy = self.retry
                wait = min(policy.max_total_wait, policy.secondary_min_wait * 2.0**secondary_hits)
            return wait, True
        wait = self._header_wait(response, reset=True)
        return (wait if wait is not None else self._backoff(hits + 1)), False

    def attempts(self) -> Iterator[int]:
        """1, 2, ... up to ``retry.attempts``, backing off between them: for callers that
        handle :class:`TransientError` themselves (see ``create_mr``)."""
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self.sleep(self._backoff(attempt - 1))
            yield attempt

    # -- conveniences ------------------------------------------------------------------

    def json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                self.forge,
                response.request.method,
                self._show(str(response.request.url)),
                response.status_code,
                "the answer is not JSON",
            ) from None

    def get(self, url: str, params: Params | None = None) -> Any:
        return self.json(self.request("GET", url, params=params))

    def paginate(
        self, url: str, params: Params | None = None, *, items: str | None = None
    ) -> Iterator[Any]:
        """Every item of a paginated list, following ``Link: rel="next"`` or ``X-Next-Page``.

        ``items`` names the key holding the list when the page is an object (GitHub's
        check runs).  Next-page links are followed on this client's own origin only, so
        the token never goes to a host a proxy happened to name.
        """
        query: dict[str, str | int | bool] = {**(params or {}), "per_page": self.per_page}
        response = self.request("GET", url, params=query)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            data = self.json(response)
            page = data.get(items) if items is not None and isinstance(data, dict) else data
            if not isinstance(page, list):
                raise ApiError(
                    self.forge, "GET", self._show(url), response.status_code, "expected a list"
                )
            yield from page
            following = self._next_page(response, url, query)
            if following is None or following in seen or not page:
                return
            seen.add(following)
            response = self.request("GET", following)

    def _next_page(
        self, response: httpx.Response, url: str, query: Mapping[str, str | int | bool]
    ) -> str | None:
        link = response.links.get("next", {}).get("url")
        if link:
            target = httpx.URL(link)
            path = target.raw_path.decode("ascii")
            return f"{self._origin}{path}"
        following = (response.headers.get("X-Next-Page") or "").strip()
        if following:
            request = self._client().build_request("GET", url, params={**query, "page": following})
            return str(request.url)
        return None


_CLIENTS: weakref.WeakSet[ApiClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child starts with fresh pools and locks (a parent thread may hold one)."""
    for client in list(_CLIENTS):
        client._setup_runtime()


os.register_at_fork(after_in_child=_after_fork_in_child)


def repo_error(exc: ApiError, repo: str, *, number: int | None = None) -> ForgeError:
    """``exc`` reworded for one repository (a per-repo failure, never fatal)."""
    where = repo if number is None else f"{repo}!{number}"
    if exc.status == 403:
        return ForgeError(
            f"{where}: missing permission (403) for {exc.method} {exc.path}: {exc.message}"
        )
    if exc.status == 404:
        if number is not None and re.search(r"merge request|pull", exc.message, re.I):
            return ForgeError(f"{where}: not found on {exc.forge} (404 {exc.message})")
        return ForgeError(
            f"{where}: no longer exists on {exc.forge} (or the token cannot see it): "
            f"404 for {exc.method} {exc.path}"
        )
    return ForgeError(f"{where}: {exc}")
