"""Real git over smart HTTP against the test forges: clone, push, auth, hooks, gzip."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx

from .conftest import GitClient
from .github import GitHubServer
from .gitlab import GitLabServer


def test_clone_commit_push_with_askpass(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    gitlab_server.add_project("platform/api", files={"app.py": "print('hi')\n"})
    url = f"{gitlab_server.url}/platform/api.git"
    work = tmp_path / "work"
    creds = ("oauth2", gitlab_server.token)

    git_client("clone", url, str(work), auth=creds)
    assert (work / "app.py").read_text() == "print('hi')\n"
    (work / "new.py").write_text("x = 1\n")
    git_client("add", "new.py", cwd=work)
    git_client("commit", "-m", "Add new.py", cwd=work)
    git_client("push", "origin", "HEAD:refs/heads/fleet/change", cwd=work, auth=creds)

    head = git_client("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert gitlab_server.branch_sha("platform/api", "fleet/change") == head
    remote = git_client("ls-remote", url, auth=creds).stdout
    assert f"{head}\trefs/heads/fleet/change" in remote
    # git was challenged first, then answered through GIT_ASKPASS
    git_requests = gitlab_server.log.find(git=True)
    assert git_requests[0].status == 401
    assert {e.status for e in git_requests} == {200, 401}
    assert all("authorization" not in e.headers for e in git_requests)


def test_wrong_token_is_refused(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    gitlab_server.add_project("platform/api")
    url = f"{gitlab_server.url}/platform/api.git"

    proc = git_client("ls-remote", url, auth=("oauth2", "glpat-wrong"), check=False)

    assert proc.returncode != 0
    assert "Authentication failed" in proc.stderr
    assert gitlab_server.log.count(git=True, status=200) == 0


def test_missing_credentials_get_a_basic_challenge(gitlab_server: GitLabServer) -> None:
    gitlab_server.add_project("platform/api")
    resp = httpx.get(f"{gitlab_server.url}/platform/api.git/info/refs?service=git-upload-pack")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="GitLab"'


def test_github_requires_x_access_token_user_for_installation_tokens(
    github_server: GitHubServer, git_client: GitClient
) -> None:
    github_server.add_repo("acme/api")
    url = f"{github_server.url}/acme/api.git"
    token = github_server.token

    ok = git_client("ls-remote", url, auth=("x-access-token", token))
    assert "refs/heads/main" in ok.stdout
    wrong_user = git_client("ls-remote", url, auth=("someone", token), check=False)
    assert wrong_user.returncode != 0


def test_push_to_protected_branch_is_rejected(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    project = gitlab_server.add_project("platform/api")
    gitlab_server.protect_branch(project, "main")
    before = gitlab_server.branch_sha(project, "main")
    work = tmp_path / "work"
    creds = ("oauth2", gitlab_server.token)
    git_client("clone", f"{gitlab_server.url}/platform/api.git", str(work), auth=creds)
    git_client("commit", "--allow-empty", "-m", "direct push", cwd=work)

    proc = git_client("push", "origin", "HEAD:main", cwd=work, check=False, auth=creds)

    assert proc.returncode != 0
    assert "You are not allowed to push code to protected branches" in proc.stderr
    assert gitlab_server.branch_sha(project, "main") == before


def test_push_to_archived_project_is_forbidden(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    gitlab_server.add_project("platform/old", archived=True)
    work = tmp_path / "work"
    creds = ("oauth2", gitlab_server.token)
    git_client("clone", f"{gitlab_server.url}/platform/old.git", str(work), auth=creds)
    git_client("commit", "--allow-empty", "-m", "change", cwd=work)

    proc = git_client("push", "origin", "HEAD:refs/heads/x", cwd=work, check=False, auth=creds)

    assert proc.returncode != 0
    assert gitlab_server.branch_sha("platform/old", "x") is None


def test_gzip_request_body_is_decoded(gitlab_server: GitLabServer) -> None:
    gitlab_server.add_project("platform/api")
    # a protocol v2 ls-refs command, gzipped the way git sends large negotiations
    body = b"0014command=ls-refs\n0001" + b"0000"
    resp = httpx.post(
        f"{gitlab_server.url}/platform/api.git/git-upload-pack",
        content=gzip.compress(body),
        headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
            "Git-Protocol": "version=2",
        },
        auth=("oauth2", gitlab_server.token),
    )
    assert resp.status_code == 200
    assert b"refs/heads/main" in resp.content


def test_clone_with_many_wants_sends_gzip(
    gitlab_server: GitLabServer, git_client: GitClient, tmp_path: Path
) -> None:
    gitlab_server.add_project("platform/api")
    work, again = tmp_path / "work", tmp_path / "again"
    creds = ("oauth2", gitlab_server.token)
    git_client("clone", f"{gitlab_server.url}/platform/api.git", str(work), auth=creds)
    # 30 distinct branch tips = 30 "want" lines, over git's 1 KiB bar for gzipping a request
    stream = "".join(
        f"commit refs/heads/b{i}\ncommitter T <t@example.invalid> 1700000000 +0000\n"
        f"data 3\nb{i:02d}\nfrom refs/heads/main^0\n\n"
        for i in range(30)
    )
    git_client("fast-import", "--quiet", cwd=work, input=stream)
    git_client("push", "origin", "--all", cwd=work, auth=creds)
    gitlab_server.log.clear()

    git_client("clone", "--mirror", f"{gitlab_server.url}/platform/api.git", str(again), auth=creds)

    assert git_client("rev-parse", "b29", cwd=again).stdout.strip() == gitlab_server.branch_sha(
        "platform/api", "b29"
    )
    gzipped = [
        e
        for e in gitlab_server.log.find("POST", git=True)
        if e.header("content-encoding") == "gzip"
    ]
    assert gzipped and all(e.status == 200 for e in gzipped)


def test_first_push_into_empty_github_repo(
    github_server: GitHubServer, git_client: GitClient, tmp_path: Path
) -> None:
    github_server.add_repo("acme/empty", files={})
    url = f"{github_server.url}/acme/empty.git"
    creds = ("x-access-token", github_server.token)
    work = tmp_path / "work"
    git_client("clone", url, str(work), auth=creds)  # "cloned an empty repository"
    (work / "README.md").write_text("hi\n")
    git_client("add", "README.md", cwd=work)
    git_client("commit", "-m", "first", cwd=work)
    git_client("push", "origin", "HEAD:refs/heads/main", cwd=work, auth=creds)

    assert github_server.branch_sha("acme/empty", "main") == (
        git_client("rev-parse", "HEAD", cwd=work).stdout.strip()
    )
    headers = {"Authorization": f"token {github_server.token}"}
    repo = httpx.get(f"{github_server.url}/repos/acme/empty", headers=headers).json()
    assert repo["size"] > 0
