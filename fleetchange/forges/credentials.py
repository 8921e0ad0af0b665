"""Tokens for the HTTP forges: where they come from and how git gets them.

The token is read from the environment (never from the campaign file) and
registered with :func:`fleetchange.gitops.register_secret` so it is redacted
from everything fleetchange prints or stores.

git receives it through a credential helper configured *in the environment*
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``, git >= 2.31)
whose shell snippet prints ``$FLEETCHANGE_GIT_USERNAME`` and
``$FLEETCHANGE_GIT_TOKEN``.  So the token is never part of a remote URL, a
command line (visible in ``ps``) or a file: neither ``.git/config`` nor a helper
script on disk.  The helper list is reset first, so no other helper (a user's
keychain) ever sees or stores the token.
"""

from __future__ import annotations

import os

from ..gitops import register_secret
from .base import ForgeAuthError

TOKEN_VAR = "FLEETCHANGE_GIT_TOKEN"
USERNAME_VAR = "FLEETCHANGE_GIT_USERNAME"
# git runs "!cmd" helpers through the shell with the action ("get", "store", "erase")
# appended; only "get" answers.
HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'printf \'username=%s\\npassword=%s\\n\' "${USERNAME_VAR}" "${TOKEN_VAR}"; }}; f'
)


def read_token(token_env: str | None, default_env: str, forge: str) -> tuple[str | None, str]:
    """``(token, variable name)``; the token is None when the variable is unset or empty."""
    name = token_env or default_env
    token = os.environ.get(name, "").strip()
    if not token:
        return None, name
    register_secret(token)
    return token, name


def missing_token_error(name: str, forge: str, url: str) -> ForgeAuthError:
    return ForgeAuthError(
        f"no {forge} token: set {name} to a token for {url}"
        " (or name another variable with token_env in [targets])"
    )


def git_credential_env(username: str, token: str) -> dict[str, str]:
    """Environment making git answer HTTP auth challenges with ``username`` and ``token``."""
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",  # forget helpers from any other config
        "GIT_CONFIG_KEY_1": "credential.helper",
        "GIT_CONFIG_VALUE_1": HELPER,
        USERNAME_VAR: username,
        TOKEN_VAR: token,
    }
