"""The demo fleet: about two dozen small Python repositories on the local forge.

Each repo is a tiny package with unittest tests.  About half carry the deprecated
calls the demo campaign replaces; the rest are clean.  A few are odd on purpose —
an archived repo, an empty one, a module that does not parse — so the demo shows
how fleetchange records them instead of failing.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path

from .gitops import git

GROUPS = {
    "platform": ["auth", "billing", "config", "gateway", "jobs", "metrics", "search", "users"],
    "edge": ["cdn-purge", "dns", "geo", "ratelimit", "router", "tls"],
    "data": ["etl", "exports", "ingest", "lake", "reports", "warehouse"],
    "mobile": ["api-client", "push"],
    "platform/legacy": [],  # keeps the glob in the campaign honest
}
EXTRA = ["platform/legacy-ftp", "platform/legacy-soap"]  # excluded by the demo campaign
ARCHIVED = "data/warehouse"
EMPTY = "edge/tls"
BROKEN = "platform/search"  # has a module that does not parse


def demo_campaign_text() -> str:
    return resources.files("fleetchange").joinpath("data/demo.toml").read_text(encoding="utf-8")


def _module(name: str, index: int) -> str:
    pkg = name.replace("-", "_")
    warn = index % 3 != 1
    lines = [
        f'"""{name}: a small service module of the demo fleet."""',
        "",
        "import logging",
        "",
        "log = logging.getLogger(__name__)",
        "",
        "",
        f"def handle_{pkg}(value: int) -> int:",
        '    """Double a value; complain about negatives."""',
        "    if value < 0:",
    ]
    if warn:
        lines += [f'        logging.warn("negative value %s in {name}", value)  # deprecated']
    else:
        lines += [f'        logging.warning("negative value %s in {name}", value)']
    lines += ["    return value * 2", "", ""]
    lines += ["def check(flag: bool) -> bool:", "    if not flag:"]
    lines += [
        '        log.warn("flag is off")'
        if index % 2 == 0
        else '        log.warning("flag is off")'
    ]
    lines += ["    return flag", ""]
    return "\n".join(lines)


def _tests(name: str, index: int) -> str:
    pkg = name.replace("-", "_")
    equal = "assertEquals" if index % 4 in (0, 3) else "assertEqual"
    return "\n".join(
        [
            "import unittest",
            "",
            f"from {pkg}.core import check, handle_{pkg}",
            "",
            "",
            "class CoreTest(unittest.TestCase):",
            "    def test_double(self):",
            f"        self.{equal}(handle_{pkg}(21), 42)",
            "",
            "    def test_check(self):",
            "        self.assertTrue(check(True))",
            "",
            "",
            'if __name__ == "__main__":',
            "    unittest.main()",
            "",
        ]
    )


def _files(full_name: str, index: int) -> dict[str, str]:
    name = full_name.rsplit("/", 1)[1]
    pkg = name.replace("-", "_")
    files = {
        "README.md": f"# {full_name}\n\nA demo service. Run the tests with `python3 -m unittest`.\n",
        "pyproject.toml": f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["requests>=2.0"]\n',
        f"{pkg}/__init__.py": "",
        f"{pkg}/core.py": _module(name, index),
        "tests/__init__.py": "",
        "tests/test_core.py": _tests(name, index),
    }
    if full_name == BROKEN:
        files[f"{pkg}/broken_template.py"] = "def oops(:\n    logging.warn('never parsed')\n"
    return files


def repo_names() -> list[str]:
    names = [f"{group}/{name}" for group, members in GROUPS.items() for name in members]
    return sorted(names + EXTRA)


def build_fleet(root: Path) -> list[str]:
    """Create the demo fleet under ``root`` unless it is already there; return repo names."""
    names = repo_names()
    marker = root / ".demo-complete"
    if marker.exists():
        return names
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    with tempfile.TemporaryDirectory(prefix="fleetchange-demo-") as scratch:
        for index, name in enumerate(names):
            bare = root / f"{name}.git"
            bare.parent.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
            if name == ARCHIVED:
                git("config", "fleetchange.archived", "true", cwd=bare)
            if name == EMPTY:
                continue
            work = Path(scratch) / name
            work.mkdir(parents=True)
            for relative, text in _files(name, index).items():
                target = work / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            git("init", "-q", "-b", "main", cwd=work)
            git("add", "-A", cwd=work)
            git("commit", "-q", "-m", f"Initial commit of {name}", cwd=work, env=env)
            git("push", "-q", bare.as_uri(), "main", cwd=work)
    marker.write_text("built by fleetchange demo\n")
    return names
