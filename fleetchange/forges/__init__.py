"""Forges: one module each; :func:`make_forge` builds the one a campaign names."""

from __future__ import annotations

from ..campaign import Targets
from .base import Forge


def make_forge(targets: Targets) -> Forge:
    """The forge client for ``targets`` (modules are imported only when used)."""
    if targets.forge == "local":
        from .local import LocalForge

        assert targets.root is not None
        return LocalForge(targets.root)
    if targets.forge == "gitlab":
        from .gitlab import GitLabForge

        return GitLabForge(targets.url, groups=targets.groups, token_env=targets.token_env)
    if targets.forge == "github":
        from .github import GitHubForge

        return GitHubForge(targets.url, groups=targets.groups, token_env=targets.token_env)
    raise NotImplementedError(f"forge {targets.forge!r} is not available in this build")
