"""Fixtures for the forge client tests: real in-process servers, clients that never sleep."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetchange.forges.github import GitHubForge
from fleetchange.forges.gitlab import GitLabForge
from fleetchange.forges.http import RetryPolicy
from tests.servers.github import GitHubServer
from tests.servers.gitlab import GitLabServer
from tests.servers.httpbase import ForgeServer, Request, Response

#: fast back-off: injected sleeps are recorded, never slept
FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05)


class Sleeps:
    """An injectable ``sleep`` that records what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)

    @property
    def waits(self) -> list[float]:
        """Non-zero waits (``Retry-After: 0`` asks for none)."""
        return [s for s in self.calls if s > 0]


def add_users_route(server: GitLabServer) -> None:
    """``GET /users?username=``: the test server does not have it; GitLab does."""

    def users(req: Request, m: dict[str, str]) -> Response:
        name = (req.arg("username") or "").lower()
        found = [u for u in server.users.values() if u.username.lower() == name]
        return Response.json(200, [server._user_json(u) for u in found])

    server.router.add("GET", r"/users", users)


def lose_answers(
    server: ForgeServer, method: str, path: str, times: int = 1, *, stall: float | None = None
) -> list[int]:
    """The next ``times`` matching API requests are carried out, then their answer is lost:
    the connection is reset, or (``stall``) the answer comes ``stall`` seconds late.
    Returns a list that counts the answers lost."""
    original: Callable[[Request], Response] = server.handle_api
    lost: list[int] = []

    def handle(req: Request) -> Response:
        response = original(req)
        if req.method == method and re.search(path, req.path) and len(lost) < times:
            lost.append(response.status)
            if stall is None:
                return Response(0, drop="reset")
            time.sleep(stall)
        return response

    server.handle_api = handle  # type: ignore[method-assign]
    return lost


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (the server records a request only once it has answered)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gitlab_server(tmp_path: Path) -> Iterator[GitLabServer]:
    with GitLabServer(tmp_path / "gitlab") as server:
        add_users_route(server)
        yield server
        server.assert_no_errors()


@pytest.fixture
def github_server(tmp_path: Path) -> Iterator[GitHubServer]:
    with GitHubServer(tmp_path / "github") as server:
        yield server
        server.assert_no_errors()


@pytest.fixture
def gitlab(gitlab_server: GitLabServer, sleeps: Sleeps) -> GitLabForge:
    return GitLabForge(
        gitlab_server.url,
        groups=["platform"],
        token=gitlab_server.token,
        sleep=sleeps,
        retry=FAST,
        per_page=2,
    )


@pytest.fixture
def github(github_server: GitHubServer, sleeps: Sleeps) -> GitHubForge:
    return GitHubForge(
        github_server.url,
        groups=["acme"],
        token=github_server.token,
        sleep=sleeps,
        retry=FAST,
        per_page=2,
        write_interval=0,
    )
