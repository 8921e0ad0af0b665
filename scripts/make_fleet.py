#!/usr/bin/env python3
"""Build a benchmark fleet: N bare repositories of real Python code on a local forge folder.

Each repository ``<root>/<group>/<name>.git`` holds a handful of modules copied from
this interpreter's standard library (a different, seeded pick per repo), a README,
a ``pyproject.toml`` and a tiny unittest.  One third of the repos (a seeded choice)
get a ``logging.warn(`` call appended to one of their modules; the pool of stdlib
files is chosen so that no other file matches that pattern, so exactly those repos
need the change.

The repos are written with ``git init --bare`` + ``git fast-import`` (one pack per
repo, like a real forge's), many at a time.  Used by ``scripts/bench.py``; also
runs on its own::

    python scripts/make_fleet.py /tmp/fleet --repos 1000
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

PATTERN = r"logging\.warn\("  # git grep -E / Python re
INJECTED = (
    "\n\nimport logging  # added by the fleetchange benchmark\n\n\n"
    "def _fleet_bench_legacy_warning(message):\n"
    '    logging.warn("legacy code path in {name}: %s", message)\n'
)  # the repo's name makes every changed file unique: no tool can reuse another repo's result
SMOKE_TEST = (
    "import unittest\n\n\n"
    "class SmokeTest(unittest.TestCase):\n"
    "    def test_truth(self):\n"
    "        self.assertTrue(True)\n\n\n"
    'if __name__ == "__main__":\n'
    "    unittest.main()\n"
)
# Files with other `.warn(` calls are left out: the codemod also rewrites `log.warn(` and
# the like, which a textual sed of `logging.warn(` does not, and the two tools' changes
# must be the same for the comparison (bench.py checks the pushed trees are identical).
OTHER_WARN = re.compile(r"(?<!warnings)\.warn\(")
# libcst does not give `except X :` back byte for byte (it drops the space before the
# colon: LibCST issue #1457), so a codemod would touch that line and a sed would not.
LIBCST_1457 = re.compile(r"^\s*except\b[^:\n]*?\S\s+:", re.MULTILINE)
SKIP_DIRS = {"site-packages", "test", "tests", "idle_test", "lib2to3", "ensurepip", "__pycache__"}
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
}
EPOCH = 1767225600  # 2026-01-01T00:00:00Z: identical input gives identical repos


@dataclass(frozen=True)
class Fleet:
    root: Path
    names: list[str]  # "group/name", sorted
    pattern_repos: frozenset[str]  # the repos carrying the pattern
    source_bytes: int  # uncompressed bytes of all files of all repos
    files: int
    seconds: float  # time it took to build

    def url(self, name: str) -> str:
        return (self.root / f"{name}.git").as_uri()


def stdlib_pool(min_size: int = 8_000, max_size: int = 120_000) -> list[tuple[str, bytes]]:
    """Standard-library modules that parse, are UTF-8, hold no ``.warn(`` call other than
    ``warnings.warn(`` and no ``except X :`` (see above): modules where a libcst codemod and a
    textual edit of ``logging.warn(`` make exactly the same change."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pool: list[tuple[str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            path = Path(dirpath) / filename
            size = path.stat().st_size
            if not min_size <= size <= max_size:
                continue
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
                ast.parse(text)
            except (UnicodeDecodeError, SyntaxError, ValueError):
                continue
            if OTHER_WARN.search(text) or LIBCST_1457.search(text):
                continue
            if "@generated" in text or "\r" in text:
                continue
            pool.append((path.relative_to(stdlib).as_posix(), data))
    if len(pool) < 20:
        raise SystemExit(f"only {len(pool)} usable standard library modules under {stdlib}")
    return pool


def repo_names(count: int, groups: int) -> list[str]:
    return sorted(f"g{i % groups:02d}/repo-{i:05d}" for i in range(count))


def repo_files(
    name: str, pool: list[tuple[str, bytes]], rng: random.Random, inject: bool
) -> dict[str, bytes]:
    package = name.rsplit("/", 1)[1].replace("-", "_")
    picked = rng.sample(pool, rng.randint(6, 16))
    files = {f"src/{package}/{relative}": data for relative, data in picked}
    if inject:
        target = rng.choice(sorted(files))
        body = files[target]
        if not body.endswith(b"\n"):
            body += b"\n"
        files[target] = body + INJECTED.format(name=name).encode()
    files["README.md"] = f"# {name}\n\nA benchmark repository of standard-library code.\n".encode()
    files["pyproject.toml"] = (
        f'[project]\nname = "{package}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
    ).encode()
    files["tests/__init__.py"] = b""
    files["tests/test_smoke.py"] = SMOKE_TEST.encode()
    return files


def fast_import_stream(files: dict[str, bytes], message: str) -> bytes:
    chunks: list[bytes] = []
    paths = sorted(files)
    for mark, path in enumerate(paths, start=1):
        data = files[path]
        chunks.append(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
        chunks.append(data)
        chunks.append(b"\n")
    who = f"Fleet Bench <fleet-bench@localhost> {EPOCH} +0000"
    msg = message.encode()
    chunks.append(
        f"commit refs/heads/main\nauthor {who}\ncommitter {who}\n".encode()
        + b"data %d\n" % len(msg)
        + msg
        + b"\n"
    )
    for mark, path in enumerate(paths, start=1):
        chunks.append(f"M 100644 :{mark} {path}\n".encode())
    chunks.append(b"\ndone\n")
    return b"".join(chunks)


def _git(*args: str, cwd: Path, stdin: bytes | None = None) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
    )


def make_repo(bare: Path, files: dict[str, bytes], message: str) -> None:
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "-q", "--bare", "-b", "main", "--template=", str(bare), cwd=bare.parent)
    _git(
        "-c",
        "fastimport.unpackLimit=1",
        "fast-import",
        "--quiet",
        "--done",
        cwd=bare,
        stdin=fast_import_stream(files, message),
    )


def build(
    root: Path, count: int, *, seed: int = 4, groups: int = 20, jobs: int | None = None
) -> Fleet:
    """Create the fleet under ``root`` (which must not hold one already)."""
    started = time.perf_counter()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    pool = stdlib_pool()
    names = repo_names(count, groups)
    pattern = frozenset(random.Random(seed).sample(names, count // 3))
    work: list[tuple[Path, dict[str, bytes], str]] = []
    total = 0
    nfiles = 0
    for index, name in enumerate(names):
        rng = random.Random(f"{seed}:{index}:{name}")
        files = repo_files(name, pool, rng, inject=name in pattern)
        total += sum(len(d) for d in files.values())
        nfiles += len(files)
        work.append((root / f"{name}.git", files, f"Initial import of {name}\n"))
    with cf.ThreadPoolExecutor(jobs or 2 * (os.cpu_count() or 1)) as pool_exec:
        for future in [pool_exec.submit(make_repo, *item) for item in work]:
            future.result()
    return Fleet(
        root=root,
        names=names,
        pattern_repos=pattern,
        source_bytes=total,
        files=nfiles,
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the forge folder to create")
    parser.add_argument("--repos", type=int, default=1000, help="how many repos (default 1000)")
    parser.add_argument("--groups", type=int, default=20, help="how many groups (default 20)")
    parser.add_argument("--seed", type=int, default=4, help="random seed (default 4)")
    args = parser.parse_args(argv)
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} exists and is not empty")
    fleet = build(args.root, args.repos, seed=args.seed, groups=args.groups)
    print(
        f"{len(fleet.names)} repos ({len(fleet.pattern_repos)} with {PATTERN}), "
        f"{fleet.files} files, {fleet.source_bytes / 1e6:.1f} MB of source, "
        f"built in {fleet.seconds:.1f}s under {fleet.root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
