"""Fixtures for the forge-server tests: started servers and a sandboxed git client."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .github import GitHubServer
from .gitlab import GitLabServer
from .gitrepo import GIT, git_env

ASKPASS = """#!/bin/sh
# git asks "Username for 'http://...': " then "Password for 'http://user@...': "
case "$1" in
    Username*) printf '%s\\n' "$FLEET_TEST_GIT_USERNAME" ;;
    *) printf '%s\\n' "$FLEET_TEST_GIT_PASSWORD" ;;
esac
"""


class GitClient:
    """Runs the git CLI like a user would: its own ``HOME``, no system/global config,
    credentials only through ``GIT_ASKPASS`` (never in a URL)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.askpass = home / "askpass.sh"
        home.mkdir(parents=True, exist_ok=True)
        self.askpass.write_text(ASKPASS)
        self.askpass.chmod(0o755)

    def env(self, username: str | None = None, password: str | None = None) -> dict[str, str]:
        extra = {"GIT_ASKPASS": str(self.askpass)}
        if username is not None:
            extra["FLEET_TEST_GIT_USERNAME"] = username
        if password is not None:
            extra["FLEET_TEST_GIT_PASSWORD"] = password
        return git_env(self.home, extra)

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        auth: tuple[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run git; ``auth`` = (username, password) answered to git's prompts via askpass."""
        proc = subprocess.run(
            [GIT, "-c", "credential.helper=", *args],
            input=input,
            cwd=cwd,
            env=self.env(*auth) if auth else self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stderr}")
        return proc


@pytest.fixture
def git_client(tmp_path: Path) -> GitClient:
    return GitClient(tmp_path / "client-home")


@pytest.fixture
def gitlab_server(tmp_path: Path) -> Iterator[GitLabServer]:
    with GitLabServer(tmp_path / "gitlab") as server:
        yield server
        server.assert_no_errors()


@pytest.fixture
def github_server(tmp_path: Path) -> Iterator[GitHubServer]:
    with GitHubServer(tmp_path / "github") as server:
        yield server
        server.assert_no_errors()


@pytest.fixture
def gh(github_server: GitHubServer) -> Iterator[httpx.Client]:
    """An httpx client authenticated against ``github_server``."""
    headers = {
        "Authorization": f"Bearer {github_server.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    with httpx.Client(base_url=github_server.url, headers=headers, timeout=10) as client:
        yield client
