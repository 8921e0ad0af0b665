"""Fault injection and request recording shared by the in-process forge servers.

A :class:`FaultInjector` decides, for each request, whether the server answers
normally or misbehaves.  Deterministic rules ("the next 2 POSTs matching
``/merge_requests$`` get a 503") are checked first, in the order they were added;
then seeded random faults (``rate_429=0.2`` ...) apply to API requests (not to git
smart HTTP unless ``random_includes_git``).  The injector only picks *what* goes
wrong; each server renders the pick in its forge's own shape (GitLab's 429 with
``RateLimit-*`` headers, GitHub's 403 secondary rate limit, ...).

Every request a server sees is appended to :class:`RequestLog` (``faults.log``, also
``server.log``) with secrets stripped from the headers, so tests can assert on what
a client actually sent and how many retries it made.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "rate_limit", "secondary_rate_limit", "drop", "reset", "slow"]

#: request headers never written to the log (lower case)
SECRET_HEADERS = frozenset({"authorization", "private-token", "job-token", "cookie"})


@dataclass
class FaultRule:
    """One way to misbehave, for the requests it matches, ``times`` times.

    ``kind``:
      * ``"status"``: answer ``status`` (default 500) with ``headers``/``body`` (the forge's
        usual error body when ``body`` is None);
      * ``"rate_limit"``: the forge's primary rate-limit answer (GitLab: 429 with
        ``Retry-After`` and ``RateLimit-*``; GitHub: 403, or ``status=429``, with
        ``x-ratelimit-remaining: 0`` and an epoch ``x-ratelimit-reset``);
      * ``"secondary_rate_limit"``: GitHub's 403 "You have exceeded a secondary rate limit"
        (GitLab renders it like ``rate_limit``);
      * ``"drop"``: close the connection without answering; ``"reset"``: abort it (TCP RST);
      * ``"slow"``: wait ``delay`` seconds, then answer normally.

    ``method`` is a regular expression matched against the whole HTTP method
    (case-insensitive), ``path`` one searched in the raw (percent-encoded) path *or* the
    decoded one; ``None`` matches anything.  ``retry_after=None`` leaves ``Retry-After``
    out.  ``times=None`` never runs out.
    """

    kind: FaultKind = "status"
    method: str | None = None
    path: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    retry_after: int | None = 0
    delay: float = 0.0
    times: int | None = 1
    fired: int = 0

    def matches(self, method: str, raw_path: str, path: str) -> bool:
        if self.method is not None and not re.fullmatch(self.method, method, re.IGNORECASE):
            return False
        if self.path is None:
            return True
        return bool(re.search(self.path, raw_path) or re.search(self.path, path))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass(frozen=True)
class RecordedRequest:
    """What the server saw and answered; ``status`` is None for a dropped connection."""

    method: str
    path: str  # decoded
    raw_path: str  # as sent, e.g. /api/v4/projects/platform%2Fapi
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names, secrets removed
    status: int | None
    fault: str | None  # the FaultRule kind that fired, if any
    git: bool  # a git smart HTTP request
    body: bytes  # request body (decoded from gzip); empty for git requests
    at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RequestLog:
    """Thread-safe list of :class:`RecordedRequest` with running counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []
        self.by_status: Counter[int | None] = Counter()
        self.by_fault: Counter[str] = Counter()

    def record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self.by_status[entry.status] += 1
            if entry.fault:
                self.by_fault[entry.fault] += 1

    @property
    def entries(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.entries)

    def find(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        fault: str | None = None,
        git: bool | None = None,
    ) -> list[RecordedRequest]:
        """Entries matching every given filter; ``path`` is a regex searched like FaultRule's."""
        out = []
        for e in self.entries:
            if method is not None and e.method != method.upper():
                continue
            if path is not None and not (re.search(path, e.raw_path) or re.search(path, e.path)):
                continue
            if status is not None and e.status != status:
                continue
            if fault is not None and e.fault != fault:
                continue
            if git is not None and e.git != git:
                continue
            out.append(e)
        return out

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        fault: str | None = None,
        git: bool | None = None,
    ) -> int:
        return len(self.find(method, path, status=status, fault=fault, git=git))

    def last(self, method: str | None = None, path: str | None = None) -> RecordedRequest:
        found = self.find(method, path)
        if not found:
            raise AssertionError(f"no recorded request matches {method} {path}")
        return found[-1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.by_status.clear()
            self.by_fault.clear()


def strip_secrets(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Lower-cased header dict without credentials (repeated headers joined by ", ")."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name).lower()
        if key in SECRET_HEADERS:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else str(value)
    return out


class FaultInjector:
    """Decides per request whether to misbehave; configure it from tests.

    Random faults (probabilities 0..1, drawn from ``random.Random(seed)``):
    ``drop_connection_rate``, ``rate_429``, ``rate_5xx`` (status from ``statuses_5xx``),
    and ``slow_seconds`` of delay for a ``slow_rate`` share of requests (all by default).
    429s carry ``Retry-After: retry_after`` (0 by default, so well-behaved clients retry
    at once and no test sleeps).  Random faults only hit paths matching ``random_scope``
    (a regex; None = every API path) and spare git requests unless
    ``random_includes_git``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        rate_429: float = 0.0,
        rate_5xx: float = 0.0,
        drop_connection_rate: float = 0.0,
        slow_rate: float = 1.0,
        slow_seconds: float = 0.0,
        retry_after: int | None = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = seed
        self._rng = random.Random(seed)
        self.rate_429 = rate_429
        self.rate_5xx = rate_5xx
        self.drop_connection_rate = drop_connection_rate
        self.slow_rate = slow_rate
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.statuses_5xx: tuple[int, ...] = (500, 502, 503)
        self.random_scope: str | None = None
        self.random_includes_git = False
        self.log = RequestLog()
        self.injected: Counter[str] = Counter()

    # -- configuration ---------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        with self._lock:
            self._seed = value
            self._rng = random.Random(value)

    def configure(self, **settings: Any) -> None:
        """Set several random-fault attributes at once, e.g. ``configure(rate_5xx=0.3)``."""
        allowed = {
            "rate_429",
            "rate_5xx",
            "drop_connection_rate",
            "slow_rate",
            "slow_seconds",
            "retry_after",
            "statuses_5xx",
            "random_scope",
            "random_includes_git",
        }
        unknown = set(settings) - allowed - {"seed"}
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        if "seed" in settings:
            self.seed = settings.pop("seed")
        with self._lock:
            for name, value in settings.items():
                setattr(self, name, value)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail_next(
        self,
        n: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> FaultRule:
        """Answer the next ``n`` matching requests with ``status`` (and headers/body)."""
        rule = FaultRule("status", method, path, status, dict(headers or {}), body, times=n)
        return self.add(rule)

    def rate_limit_next(
        self,
        n: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = 0,
        status: int | None = None,
    ) -> FaultRule:
        """The forge's primary rate-limit answer for the next ``n`` matching requests."""
        rule = FaultRule("rate_limit", method, path, status, retry_after=retry_after, times=n)
        return self.add(rule)

    def secondary_rate_limit_next(
        self,
        n: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = 0,
    ) -> FaultRule:
        """GitHub's 403 secondary rate limit for the next ``n`` matching requests."""
        rule = FaultRule("secondary_rate_limit", method, path, retry_after=retry_after, times=n)
        return self.add(rule)

    def drop_next(
        self, n: int = 1, *, method: str | None = None, path: str | None = None, reset: bool = False
    ) -> FaultRule:
        """Close (or, with ``reset``, abort) the connection instead of answering."""
        return self.add(FaultRule("reset" if reset else "drop", method, path, times=n))

    def slow_next(
        self, n: int = 1, *, seconds: float, method: str | None = None, path: str | None = None
    ) -> FaultRule:
        """Stall ``seconds`` before answering normally (for client timeout tests)."""
        return self.add(FaultRule("slow", method, path, delay=seconds, times=n))

    def clear(self) -> None:
        """Forget every rule and switch random faults off (the log is kept)."""
        with self._lock:
            self._rules.clear()
            self.rate_429 = self.rate_5xx = self.drop_connection_rate = self.slow_seconds = 0.0

    @property
    def rules(self) -> list[FaultRule]:
        """Rules that can still fire."""
        with self._lock:
            return [r for r in self._rules if not r.exhausted]

    # -- decision ---------------------------------------------------------------------
    def pick(self, method: str, raw_path: str, path: str, *, is_git: bool) -> FaultRule | None:
        """The fault for this request, if any (counts it as fired)."""
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and rule.matches(method, raw_path, path):
                    rule.fired += 1
                    self.injected[rule.kind] += 1
                    return rule
            if is_git and not self.random_includes_git:
                return None
            if self.random_scope is not None and not (
                re.search(self.random_scope, raw_path) or re.search(self.random_scope, path)
            ):
                return None
            chosen = self._random_rule()
            if chosen is not None:
                chosen.fired = 1
                self.injected[chosen.kind] += 1
            return chosen

    def _random_rule(self) -> FaultRule | None:
        rng = self._rng
        if self.drop_connection_rate and rng.random() < self.drop_connection_rate:
            return FaultRule("drop")
        if self.rate_429 and rng.random() < self.rate_429:
            return FaultRule("rate_limit", status=429, retry_after=self.retry_after)
        if self.rate_5xx and rng.random() < self.rate_5xx:
            return FaultRule("status", status=rng.choice(self.statuses_5xx))
        if self.slow_rate and self.slow_seconds and rng.random() < self.slow_rate:
            return FaultRule("slow", delay=self.slow_seconds)
        return None
