"""What fleetchange needs from a forge, and the plain data it exchanges with one.

A forge is a module-level implementation of :class:`Forge`; ``forges/__init__.py``
maps ``targets.forge`` names to factories so mypy checks every module against the
Protocol.  Everything here is a frozen dataclass so it pickles to any executor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

MRState = Literal["open", "merged", "closed"]
# "success" | "failed" | "running" | "pending" | "canceled" | None (no pipeline)
PipelineStatus = str | None


@dataclass(frozen=True)
class RepoRef:
    """One repository as the forge lists it."""

    name: str  # full path, "group/sub/name"
    clone_url: str  # what git fetches from and pushes to (never carries a token)
    default_branch: str | None  # None for an empty repository
    web_url: str = ""
    archived: bool = False
    empty: bool = False
    fork: bool = False
    topics: tuple[str, ...] = ()
    forge_id: str = ""  # the forge's own id (GitLab project id, GitHub node id); may be ""


@dataclass(frozen=True)
class MRSpec:
    """What fleetchange wants a merge request to look like."""

    source_branch: str
    target_branch: str
    title: str
    body: str
    labels: tuple[str, ...] = ()
    draft: bool = False
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeRequest:
    """A merge request (GitLab) or pull request (GitHub) as the forge reports it."""

    number: int  # GitLab iid / GitHub number / local id, unique per repo
    url: str
    state: MRState
    source_branch: str
    target_branch: str
    title: str = ""
    body: str = ""
    head_sha: str | None = None
    draft: bool = False
    labels: tuple[str, ...] = ()
    pipeline: PipelineStatus = None
    approved: bool | None = None
    approvals_left: int | None = None
    mergeable: bool | None = None  # None: the forge has not decided yet
    merge_status: str | None = None  # forge's own word (detailed_merge_status, mergeable_state)
    has_conflicts: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


class ForgeError(Exception):
    """A forge refused or failed an operation for one repository; recorded per repo."""


class ForgeAuthError(ForgeError):
    """The forge rejected the credentials: fatal for the whole run (exit 2)."""


class Forge(Protocol):
    """The operations a campaign needs.  Implementations must be thread-safe."""

    #: a stable key for this forge (kind + location) naming its mirror cache folder
    key: str

    def list_repos(self) -> Iterator[RepoRef]:
        """Every repository the campaign's selector could target (filters are applied later)."""
        ...

    def git_env(self) -> dict[str, str]:
        """Extra environment for git commands talking to this forge (credentials via askpass)."""
        ...

    def find_mr(self, repo: RepoRef, source_branch: str) -> MergeRequest | None:
        """The newest MR whose source branch is ``source_branch``: open first, else latest."""
        ...

    def create_mr(self, repo: RepoRef, spec: MRSpec) -> MergeRequest:
        """Open an MR; if one is already open for the source branch, return that one."""
        ...

    def update_mr(self, repo: RepoRef, mr: MergeRequest, spec: MRSpec) -> MergeRequest: ...

    def get_mr(self, repo: RepoRef, number: int) -> MergeRequest:
        """Fresh state of one MR, including pipeline and approvals."""
        ...

    def close_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> MergeRequest: ...

    def comment_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> None: ...

    def merge_mr(
        self, repo: RepoRef, mr: MergeRequest, *, sha: str, auto: bool = False
    ) -> MergeRequest:
        """Merge if the head is still ``sha``; ``auto`` asks to merge once the pipeline passes."""
        ...

    def delete_branch(self, repo: RepoRef, branch: str) -> None: ...
