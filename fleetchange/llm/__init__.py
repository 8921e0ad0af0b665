"""Model calls for ``kind = "llm"`` changes: an OpenAI-compatible client, a response
cache and libcst targets (the functions or classes a model edits).

Nothing here knows about campaigns or repositories; :mod:`fleetchange.changes.llm`
puts the pieces together.
"""

from __future__ import annotations

from .cache import ResponseCache, cache_key
from .client import ChatClient, Completion, LLMAuthError, LLMError, Message
from .targets import Target, TargetError, TargetSpec, find_targets, splice

__all__ = [
    "ChatClient",
    "Completion",
    "LLMAuthError",
    "LLMError",
    "Message",
    "ResponseCache",
    "Target",
    "TargetError",
    "TargetSpec",
    "cache_key",
    "find_targets",
    "splice",
]
