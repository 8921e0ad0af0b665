"""Forges: one module each; :func:`make_forge` builds the one a campaign names."""

from __future__ import annotations

from ..campaign import Targets
from .base import Forge


def make_forge(targets: Targets) -> Forge:
    if targets.forge == "local":
        from .local import LocalForge

        assert targets.root is not None
        return LocalForge(targets.root)
    raise NotImplementedError(f"forge {targets.forge!r} is not available in this build")
