"""Fault injection as an HTTP client sees it, the request log, and server lifecycle."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from .conftest import GitClient
from .faults import FaultInjector, FaultRule
from .github import GitHubServer
from .gitlab import GitLabServer


def test_rules_fire_in_order_for_matching_requests_only() -> None:
    faults = FaultInjector()
    rule = faults.fail_next(2, method="POST", path=r"/merge_requests$", status=503)
    faults.drop_next(1, path="/user")

    assert faults.pick("GET", "/api/v4/projects/1/merge_requests", "", is_git=False) is None
    assert faults.pick("POST", "/api/v4/projects/1/merge_requests", "", is_git=False) is rule
    assert faults.pick("post", "/api/v4/projects/1/merge_requests", "", is_git=False) is rule
    assert faults.pick("POST", "/api/v4/projects/1/merge_requests", "", is_git=False) is None
    assert rule.exhausted and rule.fired == 2
    dropped = faults.pick("GET", "/api/v4/user", "/api/v4/user", is_git=False)
    assert dropped is not None and dropped.kind == "drop"
    assert faults.rules == []
    assert faults.injected == {"status": 2, "drop": 1}


def test_path_rules_match_decoded_paths_too() -> None:
    faults = FaultInjector()
    rule = faults.add(FaultRule(path="platform/api", times=None))
    assert faults.pick("GET", "/projects/platform%2Fapi", "/projects/platform/api", is_git=False)
    assert rule.fired == 1 and not rule.exhausted


def test_random_faults_are_reproducible_from_the_seed() -> None:
    def kinds(seed: int) -> list[str | None]:
        faults = FaultInjector(seed=seed, rate_429=0.2, rate_5xx=0.2, drop_connection_rate=0.1)
        picks = [
            faults.pick("GET", "/api/v4/user", "/api/v4/user", is_git=False) for _ in range(50)
        ]
        return [p.kind if p else None for p in picks]

    assert kinds(3) == kinds(3)
    assert kinds(3) != kinds(4)
    assert {"rate_limit", "status", "drop", None} <= set(kinds(3))
    with pytest.raises(TypeError):
        FaultInjector().configure(rate_42=1.0)


def test_gitlab_429_carries_retry_after_and_ratelimit_headers(
    gitlab_server: GitLabServer,
) -> None:
    gitlab_server.faults.rate_limit_next(1, path="/user")
    resp = httpx.get(f"{gitlab_server.api_url}/user", headers={"PRIVATE-TOKEN": "x"})
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "0"
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert abs(int(resp.headers["RateLimit-Reset"]) - time.time()) < 5
    assert resp.text == "Retry later\n"

    gitlab_server.faults.rate_limit_next(1, retry_after=None)
    no_retry_after = httpx.get(f"{gitlab_server.api_url}/user")
    assert "Retry-After" not in no_retry_after.headers
    assert "RateLimit-Reset" in no_retry_after.headers


def test_gitlab_gateway_errors_are_not_json(gitlab_server: GitLabServer) -> None:
    gitlab_server.faults.fail_next(1, status=502)
    gitlab_server.faults.fail_next(1, status=500)
    bad_gateway = httpx.get(f"{gitlab_server.api_url}/user")
    assert bad_gateway.status_code == 502
    assert bad_gateway.headers["Content-Type"].startswith("text/html")
    internal = httpx.get(f"{gitlab_server.api_url}/user")
    assert internal.json() == {"message": "500 Internal Server Error"}


def test_github_rate_limit_variants(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.faults.rate_limit_next(1, status=429, retry_after=1)
    primary = gh.get("/user")
    assert primary.status_code == 429
    assert primary.headers["retry-after"] == "1"
    assert primary.headers["x-ratelimit-remaining"] == "0"
    assert int(primary.headers["x-ratelimit-reset"]) >= int(time.time())
    assert primary.json()["message"].startswith("API rate limit exceeded")

    github_server.faults.rate_limit_next(1, retry_after=None)
    reset_only = gh.get("/user")
    assert reset_only.status_code == 403 and "retry-after" not in reset_only.headers

    github_server.faults.secondary_rate_limit_next(1)
    secondary = gh.get("/user")
    assert secondary.status_code == 403
    assert secondary.headers["retry-after"] == "0"
    assert secondary.headers["x-ratelimit-remaining"] != "0"  # not the primary limit
    body = secondary.json()
    assert body["message"].startswith("You have exceeded a secondary rate limit")
    assert body["documentation_url"].endswith("#about-secondary-rate-limits")
    assert gh.get("/user").status_code == 200


def test_dropped_and_reset_connections(gitlab_server: GitLabServer) -> None:
    headers = {"PRIVATE-TOKEN": gitlab_server.token}
    gitlab_server.faults.drop_next(1, path="/user")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{gitlab_server.api_url}/user", headers=headers)
    gitlab_server.faults.drop_next(1, path="/user", reset=True)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{gitlab_server.api_url}/user", headers=headers)
    assert httpx.get(f"{gitlab_server.api_url}/user", headers=headers).status_code == 200

    statuses = [(e.status, e.fault) for e in gitlab_server.log.find("GET", "/user")]
    assert statuses == [(None, "drop"), (None, "reset"), (200, None)]
    assert gitlab_server.log.by_fault == {"drop": 1, "reset": 1}


def test_random_faults_seen_by_a_client(gitlab_server: GitLabServer) -> None:
    gitlab_server.faults.configure(seed=11, rate_5xx=0.3, rate_429=0.2)
    with httpx.Client(headers={"PRIVATE-TOKEN": gitlab_server.token}) as client:
        statuses = [client.get(f"{gitlab_server.api_url}/user").status_code for _ in range(40)]
    assert 200 in statuses and 429 in statuses
    assert {s for s in statuses if s >= 500} <= {500, 502, 503}
    assert any(s >= 500 for s in statuses)
    assert gitlab_server.log.by_status[429] == statuses.count(429)


def test_random_faults_spare_git_by_default(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    gitlab_server.add_project("platform/api")
    gitlab_server.faults.configure(rate_5xx=1.0)
    url, creds = f"{gitlab_server.url}/platform/api.git", ("oauth2", gitlab_server.token)
    git_client("clone", url, str(tmp_path / "w"), auth=creds)
    assert httpx.get(f"{gitlab_server.api_url}/version").status_code >= 500
    gitlab_server.faults.clear()
    gitlab_server.faults.fail_next(1, path=r"\.git/info/refs", status=503)
    failed = git_client("ls-remote", url, auth=creds, check=False)
    assert failed.returncode != 0


def test_log_records_requests_without_secrets(gitlab_server: GitLabServer) -> None:
    httpx.post(
        f"{gitlab_server.api_url}/projects/1/merge_requests?x=1",
        json={"title": "t"},
        headers={"PRIVATE-TOKEN": gitlab_server.token, "Authorization": "Bearer secret"},
    )
    entry = gitlab_server.log.last("POST", "/merge_requests")
    assert entry.status == 404 and entry.query == {"x": ["1"]}
    assert entry.body == b'{"title":"t"}'
    assert "private-token" not in entry.headers and "authorization" not in entry.headers
    assert entry.header("Content-Type") == "application/json"
    assert "secret" not in repr(entry) and gitlab_server.token not in repr(entry)


def test_slow_answer_times_out_client_and_stop_does_not_wait(tmp_path: Path) -> None:
    started = time.monotonic()
    server = GitLabServer(tmp_path / "gl").start()
    assert time.monotonic() - started < 1
    server.faults.slow_next(1, seconds=30, path="/version")
    client = httpx.Client(headers={"PRIVATE-TOKEN": server.token})
    try:
        assert client.get(f"{server.api_url}/user").status_code == 200  # keep-alive open
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{server.api_url}/version", timeout=0.2)
        stopping = time.monotonic()
        server.stop()
        assert time.monotonic() - stopping < 2
    finally:
        client.close()
        server.stop()
    server.assert_no_errors()


def test_owned_root_is_removed_on_stop() -> None:
    with GitLabServer() as server:
        server.add_project("platform/api")
        root = server.root
        assert (root / "platform" / "api.git" / "HEAD").exists()
    assert not root.exists()
