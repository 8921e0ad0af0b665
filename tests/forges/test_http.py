"""ApiClient request shaping, retries, rate limits and pagination (httpx.MockTransport only)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator

import httpx
import pytest

from fleetchange.forges import http
from fleetchange.forges.base import ForgeAuthError, ForgeError
from fleetchange.forges.http import ApiClient, ApiError, RetryPolicy, TransientError, error_message

from .conftest import Sleeps

TOKEN = "glpat-unit-test-secret-0001"
NOW = 1_800_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering ``answers`` in order (the last one repeats); records requests."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def client(
    handler: Handler,
    sleeps: Sleeps,
    *,
    forge: str = "GitLab",
    retry: RetryPolicy | None = None,
    write_interval: float = 0.0,
    clock: Callable[[], float] | None = None,
) -> ApiClient:
    from fleetchange.gitops import register_secret

    register_secret(TOKEN)
    return ApiClient(
        "https://forge.example/api/v4",
        forge=forge,
        headers={"Authorization": f"Bearer {TOKEN}"},
        transport=httpx.MockTransport(handler),
        retry=retry or RetryPolicy(),
        write_interval=write_interval,
        sleep=sleeps,
        now=lambda: NOW,
        clock=clock or (lambda: 0.0),
        rng=lambda: 1.0,  # jitter at its maximum: waits are exactly base * 2^n
    )


def ok(payload: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=payload if payload is not None else {}, headers=headers)


def test_429_waits_for_retry_after(sleeps: Sleeps) -> None:
    handler, seen = scripted(
        httpx.Response(429, text="Retry later\n", headers={"Retry-After": "7"}), ok({"a": 1})
    )
    assert client(handler, sleeps).get("/user") == {"a": 1}
    assert sleeps.calls == [7.0]
    assert len(seen) == 2
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url == "https://forge.example/api/v4/user"


def test_429_without_retry_after_waits_until_ratelimit_reset(sleeps: Sleeps) -> None:
    limited = httpx.Response(
        429, headers={"RateLimit-Reset": str(int(NOW) + 42), "RateLimit-Remaining": "0"}
    )
    handler, _ = scripted(limited, ok())
    client(handler, sleeps).get("/projects")
    assert sleeps.calls == [42.0]


def test_retry_after_as_http_date(sleeps: Sleeps) -> None:
    handler, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "Fri, 15 Jan 2027 08:00:05 GMT"}), ok()
    )
    api = client(handler, sleeps)
    api.now = lambda: 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    api.get("/x")
    assert sleeps.calls == [5.0]


def test_github_primary_limit_403_waits_for_x_ratelimit_reset(sleeps: Sleeps) -> None:
    exhausted = httpx.Response(
        403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)},
    )
    handler, _ = scripted(exhausted, ok())
    client(handler, sleeps, forge="GitHub").get("/repos/a/b")
    assert sleeps.calls == [30.0]


def test_github_secondary_limit_waits_a_minute_then_longer(sleeps: Sleeps) -> None:
    secondary = httpx.Response(
        403,
        json={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
        headers={"x-ratelimit-remaining": "4000", "x-ratelimit-reset": str(int(NOW) + 3000)},
    )
    handler, seen = scripted(secondary, secondary, ok())
    client(handler, sleeps, forge="GitHub").request("POST", "/repos/a/b/pulls", json={})
    assert sleeps.calls == [60.0, 120.0]  # not the far-away primary reset
    assert len(seen) == 3


def test_secondary_limit_honours_retry_after(sleeps: Sleeps) -> None:
    secondary = httpx.Response(
        429,
        json={"message": "You have exceeded a secondary rate limit."},
        headers={"Retry-After": "3"},
    )
    handler, _ = scripted(secondary, ok())
    client(handler, sleeps, forge="GitHub").get("/x")
    assert sleeps.calls == [3.0]


def test_plain_403_is_not_a_rate_limit(sleeps: Sleeps) -> None:
    handler, seen = scripted(
        httpx.Response(
            403, json={"message": "Resource not accessible"}, headers={"x-ratelimit-remaining": "9"}
        )
    )
    with pytest.raises(ApiError) as err:
        client(handler, sleeps, forge="GitHub").get("/repos/a/b")
    assert err.value.status == 403 and len(seen) == 1 and sleeps.calls == []


def test_5xx_retried_with_exponential_backoff_then_given_up(sleeps: Sleeps) -> None:
    handler, seen = scripted(httpx.Response(503, text="<html><h1>503</h1> down</html>"))
    with pytest.raises(TransientError) as err:
        client(handler, sleeps).get("/projects/1")
    assert len(seen) == 6
    assert sleeps.calls == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert "503" in str(err.value) and "gave up after 6 attempts" in str(err.value)
    assert err.value.status == 503


def test_jitter_stays_between_half_and_full(sleeps: Sleeps) -> None:
    handler, _ = scripted(httpx.Response(500), httpx.Response(502), ok())
    api = client(handler, sleeps)
    api.rng = lambda: 0.0
    api.get("/x")
    assert sleeps.calls == [0.5, 1.0]


def test_timeouts_and_dropped_connections_are_retried(sleeps: Sleeps) -> None:
    handler, seen = scripted(
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ConnectError("connection reset"),
        ok([1]),
    )
    assert client(handler, sleeps).get("/x") == [1]
    assert len(seen) == 4 and len(sleeps.calls) == 3


def test_transient_raise_reports_at_once_but_still_waits_out_rate_limits(sleeps: Sleeps) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(502))
    with pytest.raises(TransientError):
        client(handler, sleeps).request("POST", "/projects/1/merge_requests", transient="raise")
    assert len(seen) == 2


def test_total_wait_is_bounded(sleeps: Sleeps) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(TransientError, match="would have to wait"):
        client(handler, sleeps, retry=RetryPolicy(max_total_wait=600)).get("/x")
    assert sleeps.calls == [] and len(seen) == 1


def test_rate_limit_attempts_are_bounded(sleeps: Sleeps) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "0"}))
    with pytest.raises(TransientError, match="still rate limited"):
        client(handler, sleeps, retry=RetryPolicy(rate_limit_attempts=3)).get("/x")
    assert len(seen) == 4


def test_401_is_fatal_and_one_line_without_the_token(sleeps: Sleeps) -> None:
    handler, seen = scripted(httpx.Response(401, json={"message": f"401 Unauthorized {TOKEN}"}))
    with pytest.raises(ForgeAuthError) as err:
        client(handler, sleeps).get("/user")
    message = str(err.value)
    assert message.startswith("GitLab rejected the token (401) for https://forge.example/api/v4")
    assert "\n" not in message and TOKEN not in message
    assert len(seen) == 1


def test_error_messages_of_both_forges_on_one_line() -> None:
    gitlab_409 = httpx.Response(
        409,
        json={"message": ["Another open merge request already exists for this source branch: !3"]},
    )
    assert error_message(gitlab_409) == (
        "Another open merge request already exists for this source branch: !3"
    )
    validation = httpx.Response(400, json={"message": {"source_branch": ["does not exist"]}})
    assert error_message(validation) == "source_branch does not exist"
    github_422 = httpx.Response(
        422,
        json={
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": "A pull request already exists for acme:x.",
                }
            ],
        },
    )
    assert (
        error_message(github_422) == "Validation Failed: A pull request already exists for acme:x."
    )
    html = httpx.Response(502, text="<html>\n<body><h1>502</h1>\nBad   gateway</body></html>")
    assert error_message(html) == "502 Bad gateway"


def test_pagination_follows_link_on_our_own_origin(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        if page == 1:
            assert request.url.params["per_page"] == "100"
            assert request.url.params["include_subgroups"] == "true"
            # a proxy that names another host must not get our token
            link = '<http://internal:8080/api/v4/groups/7/projects?page=2&per_page=100>; rel="next"'
            return ok([1, 2], {"Link": link})
        assert request.url.host == "forge.example"
        return ok(
            [3], {"Link": '<https://forge.example/api/v4/groups/7/projects?page=1>; rel="first"'}
        )

    api = client(handle, sleeps)
    assert list(api.paginate("/groups/7/projects", {"include_subgroups": "true"})) == [1, 2, 3]


def test_pagination_by_x_next_page(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        assert request.url.params["state"] == "all"
        following = str(page + 1) if page < 3 else ""
        return ok([page], {"X-Next-Page": following})

    assert list(client(handle, sleeps).paginate("/mrs", {"state": "all"})) == [1, 2, 3]


def test_pagination_of_wrapped_lists(sleeps: Sleeps) -> None:
    handler, _ = scripted(ok({"total_count": 2, "check_runs": [{"id": 1}, {"id": 2}]}))
    assert [r["id"] for r in client(handler, sleeps).paginate("/c", items="check_runs")] == [1, 2]


def test_writes_are_spaced_and_serialised_reads_are_not(sleeps: Sleeps) -> None:
    ticks = iter([0.0, 0.0, 0.25, 0.25, 5.0, 5.0])

    handler, seen = scripted(ok())
    api = client(handler, sleeps, write_interval=1.0, clock=lambda: next(ticks))
    api.request("POST", "/a")  # clock: check 0.0, done 0.0
    api.get("/b")  # reads never wait
    api.request("PUT", "/c")  # clock: check 0.25 -> wait 0.75, done 0.25
    api.request("DELETE", "/d")  # clock: check 5.0 -> no wait
    assert sleeps.calls == [0.75]
    assert [r.method for r in seen] == ["POST", "GET", "PUT", "DELETE"]


def test_a_forked_child_builds_its_own_connection_pool(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, _ = scripted(ok())
    api = client(handler, sleeps)
    api.get("/x")
    parent = api._http
    monkeypatch.setattr(os, "getpid", lambda: -1)
    api.get("/x")
    assert api._http is not None and api._http is not parent


def test_client_pickles_without_its_connections(sleeps: Sleeps) -> None:
    api = ApiClient("https://forge.example/api/v4", forge="GitLab", headers={})
    api._client()
    clone = pickle.loads(pickle.dumps(api))
    assert clone._http is None and clone.base_url == api.base_url


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    assert http.DEFAULT_RETRY.attempts == 6
    yield


def test_forge_errors_are_per_repo_errors() -> None:
    assert issubclass(ApiError, ForgeError) and issubclass(TransientError, ForgeError)
    assert not issubclass(ApiError, ForgeAuthError)
