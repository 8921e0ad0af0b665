"""Git smart HTTP for the forge test servers, served by ``git http-backend`` as CGI.

One ``git http-backend`` subprocess per request, with ``GIT_PROJECT_ROOT`` at the
server's repository folder, ``GIT_HTTP_EXPORT_ALL`` and ``http.receivepack=true``,
so real ``git clone``/``fetch``/``ls-remote``/``push`` against
``http://127.0.0.1:PORT/<path>.git`` land in real bare repositories (protocol v0
and v2).  Request bodies reach it de-chunked and gunzipped by
:mod:`tests.servers.httpbase` (git gzips large fetch negotiations).

Authentication is HTTP Basic checked by a ``(username, password) -> bool`` callable;
a missing or wrong credential answers 401 with ``WWW-Authenticate: Basic`` so git
asks its credential helper or ``GIT_ASKPASS``.  Unlike GitLab/GitHub, *every* git
request needs credentials when a check is configured (public repositories are not
cloneable anonymously).
"""

from __future__ import annotations

import base64
import binascii
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from .gitrepo import GIT
from .httpbase import Request, Response

CredentialCheck = Callable[[str, str], bool]


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def is_push(req: Request) -> bool:
    """True for the two requests of a ``git push`` (ref advertisement and pack upload)."""
    return req.path.endswith("/git-receive-pack") or req.arg("service") == "git-receive-pack"


def parse_cgi(output: bytes) -> Response:
    """A Response from CGI output (``Status:`` header, other headers, blank line, body)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, sep, body = output.partition(separator)
        if sep:
            break
    else:
        return Response.text(502, "git http-backend sent no headers\n")
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers.append((name.strip(), value.strip()))
    return Response(status, body, headers)


class GitHttpBackend:
    """Runs ``git http-backend`` for repositories under ``root``.

    ``check`` validates Basic credentials (None: no authentication).  ``failures``
    collects the stderr of backend runs that exited non-zero, for debugging.
    """

    def __init__(
        self,
        root: Path,
        env: Mapping[str, str],
        *,
        realm: str,
        check: CredentialCheck | None = None,
    ) -> None:
        self.root = root
        self.env = dict(env)
        self.realm = realm
        self.check = check
        self.failures: list[str] = []

    def challenge(self, body: str = "HTTP Basic: Access denied\n") -> Response:
        resp = Response.text(401, body)
        resp.set_header("WWW-Authenticate", f'Basic realm="{self.realm}"')
        return resp

    def authenticate(self, req: Request) -> str | Response:
        """The authenticated user name ("" without a check), or the 401 to answer."""
        creds = basic_credentials(req.header("Authorization"))
        if self.check is None:
            return creds[0] if creds else ""
        if creds is not None and self.check(*creds):
            return creds[0]
        return self.challenge()

    def handle(self, req: Request, path_info: str, *, user: str = "") -> Response:
        """Serve ``req`` for ``path_info`` (``/<repo>.git/info/refs`` ...) under ``root``."""
        env = {
            **self.env,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": req.method,
            "PATH_INFO": path_info,
            "QUERY_STRING": req.query_string,
            "CONTENT_TYPE": req.header("Content-Type") or "",
            "CONTENT_LENGTH": str(len(req.body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        if user:
            env["REMOTE_USER"] = user
        protocol = req.header("Git-Protocol")
        if protocol:
            env["HTTP_GIT_PROTOCOL"] = env["GIT_PROTOCOL"] = protocol
        proc = subprocess.run(
            [GIT, "-c", "http.receivepack=true", "-c", "http.uploadpack=true", "http-backend"],
            input=req.body,
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            self.failures.append(proc.stderr.decode(errors="replace"))
            if not proc.stdout:
                return Response.text(500, proc.stderr or b"git http-backend failed\n")
        return parse_cgi(proc.stdout)
