"""The on-disk answer cache."""

from __future__ import annotations

import json
from pathlib import Path

from fleetchange.llm.cache import ResponseCache, cache_key
from fleetchange.llm.client import Completion

MESSAGES = [{"role": "user", "content": "edit this"}]


def test_round_trip_and_layout(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "llm-cache")
    key = cache_key("http://h/v1", "m", MESSAGES, "abc")
    assert cache.get(key) is None
    completion = Completion("```\nx\n```", "stop", 10, 2, model="m")
    cache.put(key, completion)
    assert cache.get(key) == completion
    path = tmp_path / "llm-cache" / key[:2] / f"{key}.json"
    assert path.is_file() and len(key) == 64
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_key_depends_on_everything_that_shapes_the_answer() -> None:
    base = cache_key("http://h/v1", "m", MESSAGES, "abc")
    assert base == cache_key("http://h/v1/", "m", [dict(m) for m in MESSAGES], "abc")
    others = {
        cache_key("http://other/v1", "m", MESSAGES, "abc"),
        cache_key("http://h/v1", "m2", MESSAGES, "abc"),
        cache_key("http://h/v1", "m", [*MESSAGES, {"role": "user", "content": "more"}], "abc"),
        cache_key("http://h/v1", "m", MESSAGES, "abd"),
        cache_key("http://h/v1", "m", MESSAGES, "abc", temperature=0.7),
    }
    assert base not in others and len(others) == 5


def test_unreadable_entries_are_misses(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = cache_key("http://h/v1", "m", MESSAGES, "abc")
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text("{not json")
    assert cache.get(key) is None
    cache.path(key).write_text(json.dumps({"format": 1, "key": "other", "completion": {}}))
    assert cache.get(key) is None
    cache.put(key, Completion("a", "stop", 1, 1))  # overwrites the broken entry
    assert cache.get(key) == Completion("a", "stop", 1, 1)
