"""Model answers cached on disk, so a re-run costs no tokens and makes the same edit.

One JSON file per answer under ``<home>/llm-cache/<2 hex>/<sha256>.json``, the
key being the sha256 of the endpoint, the model, the sampling temperature, the
full message list and the hash of the input file.  Files are written to a
temporary name and renamed into place, so concurrent workers (threads,
processes, machines sharing a home) never read half an answer; an unreadable
entry is treated as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .client import Completion, Message

CACHE_FORMAT = 1


def cache_key(
    endpoint: str,
    model: str,
    messages: Sequence[Message],
    input_hash: str,
    *,
    temperature: float = 0.0,
) -> str:
    """The hex sha256 naming one request's cache entry."""
    material = json.dumps(
        {
            "format": CACHE_FORMAT,
            "endpoint": endpoint.rstrip("/"),
            "model": model,
            "temperature": temperature,
            "messages": [dict(m) for m in messages],
            "input": input_hash,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
            if data.get("format") != CACHE_FORMAT or data.get("key") != key:
                return None
            return Completion.from_json(data["completion"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key: str, completion: Completion) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"format": CACHE_FORMAT, "key": key, "completion": completion.to_json()},
            ensure_ascii=False,
            indent=1,
        )
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:12]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
