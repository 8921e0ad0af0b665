"""ChatClient against the scripted server: answers, retries, timeouts, credentials."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from fleetchange.gitops import redact
from fleetchange.llm.client import ChatClient, LLMAuthError, LLMError, parse_retry_after
from tests.servers.openai import OpenAIServer, Reply

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def client(server: OpenAIServer, sleeps: Sleeps, **kwargs: object) -> ChatClient:
    return ChatClient(server.url, "test-model", sleep=sleeps, rng=lambda: 1.0, **kwargs)  # type: ignore[arg-type]


def test_answer_usage_and_request_shape() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps) as chat:
        server.script(Reply("hi there", prompt_tokens=11, completion_tokens=3))
        answer = chat.complete(MESSAGES, temperature=0.2)
    assert (answer.content, answer.finish_reason) == ("hi there", "stop")
    assert (answer.prompt_tokens, answer.completion_tokens) == (11, 3)
    assert answer.model == "test-model"
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.messages == MESSAGES
    assert request.body["temperature"] == 0.2
    assert request.body["stream"] is False
    assert request.authorization is None  # no api_key_env: no header
    assert sleeps.seconds == []


def test_429_with_retry_after_then_success() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps) as chat:
        server.script(
            Reply(status=429, headers={"Retry-After": "0"}),
            Reply(status=429, headers={"Retry-After": "7"}),
            Reply("done"),
        )
        answer = chat.complete(MESSAGES)
    assert answer.content == "done"
    assert server.calls == 3 and chat.attempts == 3
    assert sleeps.seconds == [0.0, 7.0]  # Retry-After honoured, not the back-off


def test_5xx_backs_off_exponentially_then_succeeds() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps, backoff=0.5) as chat:
        server.script(Reply(status=500), Reply(status=502), Reply(status=503), Reply("ok"))
        assert chat.complete(MESSAGES).content == "ok"
    assert sleeps.seconds == [0.5, 1.0, 2.0]  # rng() = 1.0: the full ceiling each time


def test_backoff_is_jittered_and_capped() -> None:
    chat = ChatClient("http://127.0.0.1:9/v1", "m", rng=lambda: 0.0, backoff=1, max_backoff=5)
    with chat:
        assert [chat._delay(n, None) for n in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
        assert chat._delay(0, 1000.0) == 300.0  # an absurd Retry-After is capped


def test_retries_are_bounded() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps, max_retries=2) as chat:
        server.script(*[Reply(status=503, headers={"Retry-After": "0"})] * 5)
        with pytest.raises(LLMError, match=r"after 3 attempts: HTTP 503"):
            chat.complete(MESSAGES)
    assert server.calls == 3


def test_timeout_is_retried() -> None:
    sleeps = Sleeps()
    release = threading.Event()
    with OpenAIServer() as server, client(server, sleeps, timeout=0.2) as chat:
        server.script(Reply("too late", hold=release), Reply("in time"))
        try:
            assert chat.complete(MESSAGES).content == "in time"
        finally:
            release.set()
    assert server.calls == 2 and len(sleeps.seconds) == 1


def test_dropped_connection_and_garbage_are_retried() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps) as chat:
        server.script(Reply(drop=True), Reply(raw=b"<html>gateway</html>"), Reply("fine"))
        assert chat.complete(MESSAGES).content == "fine"
    assert server.calls == 3


def test_connection_refused_is_an_error_after_retries() -> None:
    with OpenAIServer() as server:
        url = server.url
    sleeps = Sleeps()
    with (
        ChatClient(url, "m", sleep=sleeps, max_retries=1) as chat,
        pytest.raises(LLMError, match="connection failed"),
    ):
        chat.complete(MESSAGES)
    assert len(sleeps.seconds) == 1


def test_bearer_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-secret-123")
    sleeps = Sleeps()
    with (
        OpenAIServer(api_key="sk-test-secret-123") as server,
        client(server, sleeps, api_key_env="TEST_LLM_KEY") as chat,
    ):
        server.script("ok")
        assert chat.complete(MESSAGES).content == "ok"
        # read at call time: a rotated key is used without a new client
        monkeypatch.setenv("TEST_LLM_KEY", "sk-rotated-key-456")
        with pytest.raises(LLMAuthError) as caught:
            chat.complete(MESSAGES)
    assert server.requests[0].authorization == "Bearer sk-test-secret-123"
    assert server.calls == 2  # a 401 is not retried
    message = str(caught.value)
    assert "TEST_LLM_KEY" in message and "401" in message
    assert "sk-rotated-key-456" not in message
    assert redact("key sk-rotated-key-456") == "key ***"  # registered as a secret


def test_401_without_a_key_says_how_to_give_one() -> None:
    with (
        OpenAIServer(api_key="expected") as server,
        client(server, Sleeps()) as chat,
        pytest.raises(LLMAuthError, match="api_key_env"),
    ):
        chat.complete(MESSAGES)


def test_missing_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_LLM_UNSET", raising=False)
    with OpenAIServer() as server, client(server, Sleeps(), api_key_env="TEST_LLM_UNSET") as chat:
        with pytest.raises(LLMAuthError, match=r"TEST_LLM_UNSET.*not set"):
            chat.complete(MESSAGES)
        assert server.calls == 0


def test_400_is_not_retried() -> None:
    sleeps = Sleeps()
    with OpenAIServer() as server, client(server, sleeps) as chat:
        server.script(
            Reply(status=400, body={"error": {"message": "model 'x' not found"}}),
            Reply("never"),
        )
        with pytest.raises(LLMError, match="HTTP 400: model 'x' not found"):
            chat.complete(MESSAGES)
    assert server.calls == 1 and sleeps.seconds == []


def test_refusal_field_and_null_content() -> None:
    with OpenAIServer() as server, client(server, Sleeps()) as chat:
        server.script(Reply(None, refusal="I can't help with that."))
        answer = chat.complete(MESSAGES)
    assert answer.content == "" and answer.refusal == "I can't help with that."


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
