#!/usr/bin/env python3
"""Benchmark fleetchange against all-repos and against the git floor, in one run.

Builds an N-repo fleet of real Python code (standard-library modules, a third of the
repos carrying ``logging.warn(``) on a local forge folder, reached only through git's
``file://`` transport, then times:

  (d) the floor: parallel ``git clone --bare`` + ``git grep`` of every repo;
  (a) ``fleetchange apply`` from empty mirrors;
  (b) ``fleetchange apply`` again, nothing changed;
  (c) all-repos: ``all-repos-clone`` + ``all-repos-grep`` + ``all-repos-sed`` (with a
      push of the branch) at each ``--allrepos-jobs``, the best one kept;
  status: ``fleetchange status`` on a synthetic campaign of ``--status-repos`` repos.

and prints seconds, repos per second, CPU seconds and peak memory per phase, the
ratios and the targets of the benchmark issue.  See docs/benchmarks.md.

    python scripts/bench.py --repos 1000
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fleet

CAMPAIGN_ID = "bench-logging-warn"
CAMPAIGN_BRANCH = f"fleetchange/{CAMPAIGN_ID}"
ALLREPOS_BRANCH = "bench"  # all-repos pushes all-repos_autofix_<this>
ALLREPOS_REF = f"refs/heads/all-repos_autofix_{ALLREPOS_BRANCH}"
SED = r"s/logging\.warn(/logging.warning(/g"
SAMPLE_INTERVAL = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1

CAMPAIGN_TOML = """\
# Written by scripts/bench.py
[campaign]
id = "{id}"
title = "Replace deprecated logging.warn()"
description = "`logging.warn()` is deprecated; `logging.warning()` does the same."

[targets]
forge = "local"
root = "{root}"
contains = '{pattern}'

[[change]]
kind = "libcst"
{codemod}
grep = '{pattern}'
"""

# The same textual change as all-repos-sed, by syntax (the like-for-like comparison), or the
# scope-aware ReplaceLoggingWarn, which also follows aliases and logger objects and costs
# scope + qualified-name analysis of every candidate module (several times the parse).
CODEMODS = {
    "syntactic": 'codemod = "codemods.rename_method.RenameMethodCall"\n'
    'args = {receiver = "logging", old = "warn", new = "warning"}',
    "semantic": 'codemod = "codemods.logging_warn.ReplaceLoggingWarn"',
}

# Runs the measured command as its only child, so RUSAGE_CHILDREN covers exactly it.  It is
# a child subreaper: descendants orphaned on the way (a multiprocessing forkserver outliving
# its parent, say) come back to it and are waited for, so their CPU and memory count too.
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
started = time.perf_counter()
rc = subprocess.call(sys.argv[2:], stdin=subprocess.DEVNULL)
seconds = time.perf_counter() - started
deadline = time.monotonic() + 120
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
lingered = time.perf_counter() - started - seconds
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "seconds": seconds, "maxrss_kb": usage.ru_maxrss, "lingered": lingered,
               "cpu": usage.ru_utime + usage.ru_stime}, f)
"""

PUSH_MODULE = '''\
"""all-repos push module for the benchmark: push the branch, open nothing."""
import collections

from all_repos import autofix_lib

Settings = collections.namedtuple("Settings", ())


def push(settings, branch_name):
    autofix_lib.run("git", "push", "--quiet", "origin", f"HEAD:refs/heads/{branch_name}")
'''

GIT_SHIM = """\
#!/bin/bash
# scripts/bench.py --trace-git: log every git call fleetchange makes, with its wall time
s=$EPOCHREALTIME
{git} "$@"
rc=$?
e=$EPOCHREALTIME
a="$*"
printf '%s %s %s\\n' "$s" "$e" "${{a//$'\\n'/ }}" >> {log}
exit $rc
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- measuring ----------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One timed command (or a sum of several)."""

    label: str
    seconds: float = 0.0
    cpu: float = 0.0  # user + sys of the whole process tree
    top_cpu: float = 0.0  # of which the command's own process (sampled, so a little low)
    other_cpu: float = 0.0  # busy CPU of the machine meanwhile, not ours: other people's load
    peak_tree_mb: float = 0.0  # max over samples of the summed RSS of the process tree
    peak_proc_mb: float = 0.0  # ru_maxrss of RUSAGE_CHILDREN: the largest single process
    rc: int = 0
    at_peak: str = ""  # the processes at the memory peak, by command name
    lingered: float = 0.0  # seconds descendants outlived the command (not in ``seconds``)
    # CPU s by command name of the processes the sampler saw (those living > 50 ms)
    cpu_by_name: dict[str, float] = dataclasses.field(default_factory=dict)
    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    note: str = ""

    def add(self, other: Run, part: str) -> None:
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.top_cpu += other.top_cpu
        self.other_cpu += other.other_cpu
        if other.peak_tree_mb > self.peak_tree_mb:
            self.peak_tree_mb, self.at_peak = other.peak_tree_mb, other.at_peak
        self.peak_proc_mb = max(self.peak_proc_mb, other.peak_proc_mb)
        self.rc = self.rc or other.rc
        self.lingered += other.lingered
        for name, cpu in other.cpu_by_name.items():
            self.cpu_by_name[name] = self.cpu_by_name.get(name, 0.0) + cpu
        self.parts[part] = other.seconds


class Proc(NamedTuple):
    name: str
    ppid: int
    rss: int  # bytes
    cpu: float  # user + system seconds so far


def _proc_table() -> dict[int, Proc]:
    """Every process we can see, from ``/proc/PID/stat`` (one read each)."""
    table: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # after "pid (comm) ": [0] state [1] ppid ... [11] utime [12] stime ... [21] rss
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(entry)] = Proc(
            stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace"),
            int(fields[1]),
            int(fields[21]) * PAGE,
            (int(fields[11]) + int(fields[12])) / TICK,
        )
    return table


def descendants(root: int, table: dict[int, Proc]) -> list[int]:
    """``root``'s descendants, less the children caught between fork and exec: those still
    share their parent's memory (vfork, or copy-on-write), so counting their RSS would count
    the parent's pages twice.  They are recognised by the parent's name and RSS."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, proc in table.items():
        children[proc.ppid].append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        proc, parent = table[pid], table.get(table[pid].ppid)
        if (
            parent is not None
            and proc.name == parent.name
            and abs(proc.rss - parent.rss) <= parent.rss // 50
        ):
            continue
        found.append(pid)
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait


class TreeSampler(threading.Thread):
    """Polls /proc every 50 ms: the largest summed RSS of ``root``'s descendants, and the
    CPU time of its direct child (the measured command's own process, e.g. fleetchange's
    coordinator, as opposed to the git processes it starts)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.at_peak: dict[str, list[int]] = {}  # command name -> [processes, RSS bytes]
        self.main_pid: int | None = None
        self.main_cpu = 0.0
        self.cpu_seen: dict[int, tuple[str, float]] = {}  # pid -> (name, CPU s when last seen)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):
                table = _proc_table()
                tree = descendants(self.root, table)
                rss = sum(table[pid].rss for pid in tree)
                if rss > self.peak:
                    self.peak = rss
                    self.at_peak = {}
                    for pid in tree:
                        entry = self.at_peak.setdefault(table[pid].name, [0, 0])
                        entry[0] += 1
                        entry[1] += table[pid].rss
                for pid in tree:
                    self.cpu_seen[pid] = (table[pid].name, table[pid].cpu)
                    if self.main_pid is None and table[pid].ppid == self.root:
                        self.main_pid = pid  # the command itself; orphans come later
                    if pid == self.main_pid:
                        self.main_cpu = table[pid].cpu
            self.stopping.wait(SAMPLE_INTERVAL)

    def stop(self) -> tuple[int, float, str, dict[str, float]]:
        self.stopping.set()
        self.join()
        composition = ", ".join(
            f"{name} {n}x {rss / 1e6:.0f} MB"
            for name, (n, rss) in sorted(self.at_peak.items(), key=lambda kv: -kv[1][1])
        )
        by_name: defaultdict[str, float] = defaultdict(float)
        for name, cpu in self.cpu_seen.values():
            by_name[name] += cpu
        return self.peak, self.main_cpu, composition, dict(by_name)


def measure(
    label: str, cmd: Sequence[str], *, env: dict[str, str], cwd: Path, logfile: Path
) -> Run:
    """Run ``cmd`` under the wrapper; stdout and stderr go to ``logfile``."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result, logfile.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        busy = machine_busy()
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, result.name, *cmd],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        proc.wait()
        busy = machine_busy() - busy
        peak, top_cpu, composition, cpu_by_name = sampler.stop()
        data = json.loads(Path(result.name).read_text() or "{}")
    if proc.returncode != 0 or not data:
        raise SystemExit(f"{label}: the measuring wrapper failed; see {logfile}")
    return Run(
        label=label,
        seconds=data["seconds"],
        cpu=data["cpu"],
        top_cpu=min(top_cpu, data["cpu"]),
        other_cpu=max(0.0, busy - data["cpu"]),
        peak_tree_mb=peak / 1e6,
        peak_proc_mb=data["maxrss_kb"] * 1024 / 1e6,
        rc=data["rc"],
        at_peak=composition,
        cpu_by_name=cpu_by_name,
        lingered=data["lingered"],
    )


def quick(cmd: Sequence[str], *, env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def git(*args: str, cwd: Path, env: dict[str, str], check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def parallel(fn: Any, items: Sequence[Any], jobs: int = 8) -> list[Any]:
    with cf.ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(fn, items))


# -- the phases ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        gitconfig = work / "gitconfig"
        gitconfig.write_text(
            "[user]\n\tname = Fleet Bench\n\temail = fleet-bench@localhost\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        )
        # the same plain git setup for every phase (fleetchange adds its own on top)
        self.env = {
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "COLUMNS": "120",
        }
        self.env.pop("FLEETCHANGE_HOME", None)
        self.fleet: make_fleet.Fleet | None = None
        self.results: dict[str, Any] = {}
        self.checks: list[tuple[str, bool]] = []

    @property
    def n(self) -> int:
        return len(self.fleet.names) if self.fleet else 0

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, ok))
        log(f"check {'ok' if ok else 'FAILED'}: {what}")

    # (setup) ------------------------------------------------------------------------

    def build_fleet(self) -> make_fleet.Fleet:
        log(f"building a fleet of {self.args.repos} repos (not timed)")
        fleet = make_fleet.build(
            self.work / "forge", self.args.repos, seed=self.args.seed, groups=self.args.groups
        )
        log(
            f"fleet: {len(fleet.names)} repos, {len(fleet.pattern_repos)} with the pattern, "
            f"{fleet.files} files, {fleet.source_bytes / 1e6:.0f} MB of source, "
            f"{du(fleet.root) / 1e6:.0f} MB on disk, built in {fleet.seconds:.0f}s"
        )
        self.fleet = fleet
        self.urls = self.work / "urls.json"
        self.urls.write_text(json.dumps([[name, fleet.url(name)] for name in fleet.names]))
        return fleet

    # (d) ------------------------------------------------------------------------------

    def floor(self) -> Run:
        assert self.fleet is not None
        best: Run | None = None
        tries: dict[str, float] = {}
        for jobs in self.args.floor_jobs:
            dest = self.work / "floor" / f"j{jobs}"
            result = self.work / "floor" / f"j{jobs}.json"
            dest.mkdir(parents=True)
            run = measure(
                f"(d) floor, --jobs {jobs}",
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--floor-worker",
                    str(self.urls),
                    str(dest),
                    str(jobs),
                    make_fleet.PATTERN,
                    str(result),
                ],
                env=self.env,
                cwd=self.work,
                logfile=self.logs / "floor.log",
            )
            matches = json.loads(result.read_text())["matches"]
            self.check(
                f"floor --jobs {jobs}: {matches} repos match == {len(self.fleet.pattern_repos)}",
                matches == len(self.fleet.pattern_repos) and run.rc == 0,
            )
            log(f"(d) floor --jobs {jobs}: {run.seconds:.1f}s")
            tries[str(jobs)] = run.seconds
            shutil.rmtree(dest)
            if best is None or run.seconds < best.seconds:
                best, run.note = run, f"--jobs {jobs}"
        assert best is not None
        best.label = "(d) floor: clone --bare + grep"
        self.results["floor_tries"] = tries
        return best

    # (a), (b) --------------------------------------------------------------------------

    def fleetchange_cmd(self) -> list[str]:
        exe = shutil.which("fleetchange", path=str(Path(sys.executable).parent))
        return [exe] if exe else [sys.executable, "-m", "fleetchange"]

    def fc_env(self) -> dict[str, str]:
        env = {**self.env, "FLEETCHANGE_HOME": str(self.work / "fc-home")}
        if self.args.trace_git:
            env["PATH"] = f"{self.shim_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def setup_fleetchange(self) -> Path:
        assert self.fleet is not None
        campaign = self.work / "campaign" / "bench.toml"
        campaign.parent.mkdir(parents=True, exist_ok=True)
        campaign.write_text(
            CAMPAIGN_TOML.format(
                id=CAMPAIGN_ID,
                root=self.fleet.root,
                pattern=make_fleet.PATTERN,
                codemod=CODEMODS[self.args.codemod],
            )
        )
        if self.args.trace_git:
            self.shim_dir = self.work / "git-shim"
            self.shim_dir.mkdir()
            shim = self.shim_dir / "git"
            shim.touch(mode=0o755)
        return campaign

    def fleetchange_apply(self, campaign: Path, label: str, phase: str) -> Run:
        cmd = [*self.fleetchange_cmd(), "apply", str(campaign)]
        note = (
            f"--jobs {self.args.jobs}"
            if self.args.jobs
            else f"--jobs {self.default_jobs()} (default)"
        )
        if self.args.jobs:
            cmd += ["--jobs", str(self.args.jobs)]
        if self.args.trace_git:
            (self.shim_dir / "git").write_text(
                GIT_SHIM.format(git=shutil.which("git"), log=self.work / f"git-trace-{phase}.log")
            )
        run = measure(
            label,
            cmd,
            env=self.fc_env(),
            cwd=self.work,
            logfile=self.logs / f"fleetchange-{phase}.log",
        )
        run.note = note
        if self.args.trace_git:
            self.results[f"git_trace_{phase}"] = git_trace_summary(
                self.work / f"git-trace-{phase}.log", self.n
            )
        return run

    def default_jobs(self) -> int:
        try:
            from fleetchange.commands.apply import default_jobs

            return default_jobs()
        except ImportError:  # not run from fleetchange's virtualenv
            return 0

    def fleetchange_status_json(self) -> dict[str, Any]:
        done = subprocess.run(
            [*self.fleetchange_cmd(), "status", CAMPAIGN_ID, "--json"],
            env={**self.fc_env(), "PATH": self.env.get("PATH", "")},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def forge_mrs(self) -> int:
        assert self.fleet is not None
        db = sqlite3.connect(self.fleet.root / ".forge.sqlite3")
        try:
            return int(db.execute("SELECT COUNT(*) FROM merge_requests").fetchone()[0])
        finally:
            db.close()

    def check_fleetchange(self, run: Run, phase: str, mrs_before: int) -> int:
        assert self.fleet is not None
        status = self.fleetchange_status_json()
        counts = status["counts"]
        want = len(self.fleet.pattern_repos)
        mrs = self.forge_mrs()
        self.check(f"fleetchange {phase}: exit status {run.rc} == 0", run.rc == 0)
        self.check(
            f"fleetchange {phase}: status counts {counts} == "
            f"{{mr-open: {want}, no-match: {self.n - want}}}",
            counts == {"mr-open": want, "no-match": self.n - want},
        )
        opened = sorted(r["repo"] for r in status["repos"] if r["state"] == "mr-open")
        self.check(
            f"fleetchange {phase}: the MRs are exactly on the pattern repos",
            opened == sorted(self.fleet.pattern_repos),
        )
        self.check(
            f"fleetchange {phase}: {mrs - mrs_before} new MR(s) on the forge, expected "
            f"{want if phase == 'first' else 0}",
            mrs - mrs_before == (want if phase == "first" else 0),
        )
        return mrs

    # (c) ------------------------------------------------------------------------------

    def allrepos_bin(self) -> Path:
        venv = Path(self.args.allrepos_venv or self.work / "allrepos-venv")
        if not (venv / "bin" / "all-repos-sed").exists():
            log(f"installing all-repos into {venv} (not timed)")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", "all-repos"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return venv / "bin"

    def reset_allrepos_branches(self) -> None:
        assert self.fleet is not None
        root = self.fleet.root

        def drop(name: str) -> None:
            git(
                "update-ref",
                "-d",
                ALLREPOS_REF,
                cwd=root / f"{name}.git",
                env=self.env,
                check=False,
            )

        parallel(drop, self.fleet.names)

    def allrepos_branches(self) -> set[str]:
        assert self.fleet is not None
        root = self.fleet.root

        def has(name: str) -> bool:
            out = git(
                "for-each-ref",
                "--format=%(refname)",
                ALLREPOS_REF,
                cwd=root / f"{name}.git",
                env=self.env,
            )
            return bool(out)

        return {
            n for n, ok in zip(self.fleet.names, parallel(has, self.fleet.names), strict=True) if ok
        }

    def allrepos(self) -> Run:
        assert self.fleet is not None
        bindir = self.allrepos_bin()
        version = subprocess.run(
            [
                str(bindir / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('all-repos'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        self.results["allrepos_version"] = version
        base = self.work / "allrepos"
        base.mkdir(exist_ok=True)
        (base / "fleet_bench_push.py").write_text(PUSH_MODULE)
        repos_json = base / "repos.json"
        repos_json.write_text(json.dumps({n: self.fleet.url(n) for n in self.fleet.names}))
        env = {**self.env, "PYTHONPATH": str(base)}
        best: Run | None = None
        tries: dict[str, float] = {}
        for jobs in self.args.allrepos_jobs:
            self.reset_allrepos_branches()
            tdir = base / f"j{jobs}"
            tdir.mkdir()
            config = tdir / "all-repos.json"
            config.write_text(
                json.dumps(
                    {
                        "output_dir": "output",
                        "source": "all_repos.source.json_file",
                        "source_settings": {"filename": str(repos_json)},
                        "push": "fleet_bench_push",
                        "push_settings": {},
                    }
                )
            )
            config.chmod(0o600)
            logfile = self.logs / f"allrepos-j{jobs}.log"
            total = Run(label=f"(c) all-repos, --jobs {jobs}", note=f"--jobs {jobs}")
            clone = measure(
                "all-repos-clone",
                [str(bindir / "all-repos-clone"), "-C", str(config), "--jobs", str(jobs)],
                env=env,
                cwd=tdir,
                logfile=logfile,
            )
            total.add(clone, "clone")
            grep_log = self.logs / f"allrepos-grep-j{jobs}.log"
            grep = measure(
                "all-repos-grep",
                [
                    str(bindir / "all-repos-grep"),
                    "-C",
                    str(config),
                    "--repos-with-matches",
                    "-E",
                    make_fleet.PATTERN,
                ],
                env=env,
                cwd=tdir,
                logfile=grep_log,
            )
            total.add(grep, "grep")
            output = (tdir / "output").resolve()
            matched = [
                line.strip()
                for line in grep_log.read_text().splitlines()
                if line.strip().startswith(str(output))
            ]
            sed = measure(
                "all-repos-sed",
                [
                    str(bindir / "all-repos-sed"),
                    "-C",
                    str(config),
                    "--jobs",
                    str(jobs),
                    "--branch-name",
                    ALLREPOS_BRANCH,
                    "--commit-msg",
                    "Replace deprecated logging.warn()",
                    SED,
                    "*.py",
                    "--repos",
                    *matched,
                ],
                env=env,
                cwd=tdir,
                logfile=logfile,
            )
            total.add(sed, "sed+push")
            pushed = self.allrepos_branches()
            self.check(
                f"all-repos --jobs {jobs}: exit statuses {clone.rc},{grep.rc},{sed.rc} == 0,0,0; "
                f"grep found {len(matched)}, pushed {len(pushed)} branches, expected "
                f"{len(self.fleet.pattern_repos)} on the pattern repos",
                (clone.rc, grep.rc, sed.rc) == (0, 0, 0)
                and pushed == set(self.fleet.pattern_repos),
            )
            same = self.same_trees(pushed)
            self.check(
                f"all-repos --jobs {jobs}: {same}/{len(pushed)} pushed trees identical to "
                "fleetchange's branches",
                same == len(pushed),
            )
            log(
                f"(c) all-repos --jobs {jobs}: {total.seconds:.1f}s "
                + ", ".join(f"{k} {v:.1f}s" for k, v in total.parts.items())
            )
            tries[str(jobs)] = total.seconds
            shutil.rmtree(tdir)
            if best is None or total.seconds < best.seconds:
                best = total
        assert best is not None
        best.label = "(c) all-repos: clone + grep + sed + push"
        self.results["allrepos_tries"] = tries
        return best

    def same_trees(self, names: set[str]) -> int:
        assert self.fleet is not None
        root = self.fleet.root

        def same(name: str) -> bool:
            bare = root / f"{name}.git"
            ours = git(
                "rev-parse",
                f"refs/heads/{CAMPAIGN_BRANCH}^{{tree}}",
                cwd=bare,
                env=self.env,
                check=False,
            )
            theirs = git(
                "rev-parse", f"{ALLREPOS_REF}^{{tree}}", cwd=bare, env=self.env, check=False
            )
            return bool(ours) and ours == theirs

        return sum(parallel(same, sorted(names)))

    # status ------------------------------------------------------------------------------

    def status(self) -> dict[str, float]:
        from fleetchange.state import RepoRecord, Store

        count = self.args.status_repos
        home = self.work / "status-home"
        home.mkdir()
        store = Store(home / "state.sqlite3")
        campaign_id = "bench-status"
        store.upsert_campaign(
            id=campaign_id,
            title="Synthetic campaign for the status benchmark",
            file=str(self.work / "campaign" / "status.toml"),
            version="0123456789abcdef",
            forge="local",
            branch=f"fleetchange/{campaign_id}",
        )
        columns = [f.name for f in dataclasses.fields(RepoRecord)]
        rows: list[list[Any]] = []
        events: list[tuple[str, str, float, str, str]] = []
        now = time.time()
        for i in range(count):
            name = f"g{i % 50:02d}/service-{i:05d}"
            record = RepoRecord(
                campaign=campaign_id,
                repo=name,
                state="no-match",
                reason="default branch does not contain the pattern",
                version="0123456789abcdef",
                base_sha=f"{i:040x}",
                default_branch="main",
                updated_at=now,
            )
            if i % 3 == 0:
                record.state, record.reason = "mr-open", ""
                record.head_sha = f"{i + 1:040x}"
                record.mr_number, record.mr_url, record.mr_state = 1, f"local:{name}!1", "open"
                record.files = [f"src/service_{i}/core.py", f"src/service_{i}/util.py"]
            elif i % 97 == 1:
                record.state = "error"
                record.reason = "git fetch exited 128: fatal: the remote end hung up unexpectedly"
            elif i % 53 == 2:
                record.state, record.reason = "test-failed", "`pytest -q` exited 1"
                record.test_log = "E   AssertionError\n" * 100
            values = dataclasses.asdict(record)
            values["files"] = json.dumps(values["files"])
            rows.append([values[c] for c in columns])
            events += [
                (campaign_id, name, now, "resolved", f"base {i:012x}"),
                (campaign_id, name, now, record.state, record.reason),
            ]
        store.db.execute("BEGIN")
        store.db.executemany(
            f"INSERT INTO repos ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            rows,
        )
        store.db.executemany(
            "INSERT INTO events (campaign, repo, at, state, detail) VALUES (?, ?, ?, ?, ?)", events
        )
        store.db.execute("COMMIT")
        store.close()
        env = {**self.env, "FLEETCHANGE_HOME": str(home)}
        exe = self.fleetchange_cmd()
        listed = json.loads(
            subprocess.run(
                [*exe, "status", campaign_id, "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        self.check(
            f"status --json lists {len(listed['repos'])} repos == {count}",
            len(listed["repos"]) == count,
        )
        timings: dict[str, float] = {}
        for label, argv in (
            ("fleetchange --version (start-up alone)", ["--version"]),
            (f"fleetchange status ({count:,} repos)", ["status", campaign_id]),
            (f"fleetchange status --json ({count:,} repos)", ["status", campaign_id, "--json"]),
        ):
            timings[label] = min(
                quick([*exe, *argv], env=env, cwd=self.work) for _ in range(self.args.status_tries)
            )
            log(f"{label}: best of {self.args.status_tries} {timings[label]:.3f}s")
        return timings


def du(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / filename).stat().st_size
    return total


def git_trace_summary(path: Path, repos: int) -> dict[str, Any]:
    """Per git subcommand: calls, calls per repo, summed wall seconds (from --trace-git)."""
    calls: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(" ")
        if len(parts) < 3:
            continue
        start, end, argv = float(parts[0]), float(parts[1]), parts[2:]
        while argv and argv[0] in ("-c", "-C", "--git-dir", "--work-tree"):
            argv = argv[2:]
        sub = argv[0] if argv else "?"
        calls[sub] += 1
        seconds[sub] += end - start
    return {
        sub: {
            "calls": calls[sub],
            "per_repo": round(calls[sub] / max(repos, 1), 2),
            "seconds": round(seconds[sub], 1),
        }
        for sub, _ in calls.most_common()
    }


def floor_worker(argv: list[str]) -> int:
    """``--floor-worker URLS DEST JOBS PATTERN RESULT``: the floor, as its own process."""
    urls_file, dest, jobs, pattern, result = argv
    items = json.loads(Path(urls_file).read_text())

    def one(item: tuple[int, tuple[str, str]]) -> bool:
        index, (_, url) = item
        bare = Path(dest) / f"{index}.git"
        subprocess.run(["git", "clone", "--bare", "--quiet", url, str(bare)], check=True)
        done = subprocess.run(["git", "grep", "-q", "-E", pattern, "HEAD"], cwd=bare, check=False)
        if done.returncode not in (0, 1):
            raise SystemExit(f"git grep failed in {bare}")
        return done.returncode == 0

    with cf.ThreadPoolExecutor(int(jobs)) as pool:
        matches = sum(pool.map(one, enumerate(items)))
    Path(result).write_text(json.dumps({"matches": matches}))
    return 0


# -- reporting ----------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    facts = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
        "kernel": platform.release(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        from fleetchange import __version__

        facts["fleetchange"] = __version__
    repo = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "fleetchange",
                "codemods",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if head:
            facts["commit"] = head + (" + uncommitted changes to fleetchange/" if dirty else "")
    facts["load average at start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return facts


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(bench: Bench, runs: list[Run], status: dict[str, float]) -> dict[str, Any]:
    n = bench.n
    by = {r.label[:3]: r for r in runs}
    rows = [
        [
            r.label,
            f"{r.seconds:.1f}",
            f"{n / r.seconds:.1f}" if r.seconds else "-",
            f"{r.cpu:.0f}",
            f"{r.top_cpu:.0f}",
            f"{r.other_cpu:.0f} ({r.other_cpu / (r.seconds * CORES) * 100 if r.seconds else 0:.0f}%)",
            f"{r.peak_tree_mb:.0f}",
            f"{r.peak_proc_mb:.0f}",
            r.note,
        ]
        for r in runs
    ]
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in bench.results["facts"].items()))
    fleet = bench.fleet
    assert fleet is not None
    print(
        f"fleet: {n} repos in {bench.args.groups} groups, {len(fleet.pattern_repos)} with "
        f"logging.warn(, {fleet.files} files, {fleet.source_bytes / 1e6:.0f} MB of source; "
        "reached through file:// URLs"
    )
    print(
        "no test command in either tool's run: all-repos-sed runs none, so the campaign has none."
    )
    print()
    table(
        [
            "phase",
            "seconds",
            "repos/s",
            "CPU s",
            "main CPU s",
            "others' CPU s",
            "peak tree MB",
            "peak proc MB",
            "setting",
        ],
        rows,
    )
    print(
        "  CPU s: user+sys of the whole process tree; main CPU s: of which the command's own\n"
        "  process (for fleetchange, the Python coordinator incl. codemods; the rest is git);\n"
        "  others' CPU s: the machine's busy CPU meanwhile that was not ours (other load),\n"
        "  and the share of the machine it took: times are only comparable when it is low.\n"
        "  peak tree MB: max over 50 ms samples of the summed RSS of all its processes\n"
        "  (children not yet exec'd, which share their parent's pages, left out);\n"
        "  peak proc MB: ru_maxrss over its processes, the largest single one."
    )
    for r in runs:
        if r.parts:
            print(f"  {r.label}: " + ", ".join(f"{k} {v:.1f}s" for k, v in r.parts.items()))
    for r in runs:
        print(f"  at the memory peak of {r.label[:3]}: {r.at_peak or '-'}")
        if r.lingered >= 0.5:
            print(
                f"  {r.label[:3]}: processes it started lived on {r.lingered:.1f}s after it exited"
            )
    for r in runs:
        seen = sorted(r.cpu_by_name.items(), key=lambda kv: -kv[1])
        rest = r.cpu - sum(cpu for _, cpu in seen)
        shown = [f"{name} {cpu:.0f}s" for name, cpu in seen if cpu >= 0.5]
        print(
            f"  CPU of {r.label[:3]} by process: {', '.join(shown) or '-'}, "
            f"short-lived processes (< 50 ms, mostly git) {max(rest, 0):.0f}s"
        )
    for key in ("floor_tries", "allrepos_tries"):
        if key in bench.results:
            tries = bench.results[key]
            print(
                f"  {key.replace('_', ' ')}: "
                + ", ".join(f"--jobs {j}: {s:.1f}s" for j, s in tries.items())
            )
    print()
    targets: list[list[str]] = []
    summary: dict[str, Any] = {}

    def target(name: str, value: float | None, goal: str, ok: bool | None, fmt: str) -> None:
        shown = "-" if value is None else format(value, fmt)
        targets.append([name, shown, goal, "-" if ok is None else verdict(ok)])
        summary[name] = {"value": value, "target": goal, "pass": ok}

    a, b, c, d = by.get("(a)"), by.get("(b)"), by.get("(c)"), by.get("(d)")
    if a and c:
        target(
            "(c)/(a): fleetchange vs all-repos",
            c.seconds / a.seconds,
            ">= 2",
            c.seconds / a.seconds >= 2,
            ".2f",
        )
    else:
        target("(c)/(a): fleetchange vs all-repos", None, ">= 2", None, ".2f")
    if a and d:
        target(
            "(a)/(d): fleetchange vs the floor",
            a.seconds / d.seconds,
            "<= 1.5",
            a.seconds / d.seconds <= 1.5,
            ".2f",
        )
    if a and b:
        target(
            "(a)/(b): first run vs re-run",
            a.seconds / b.seconds,
            ">= 10",
            a.seconds / b.seconds >= 10,
            ".1f",
        )
    if a and c:
        target("(c)/(a) in CPU seconds (not a target)", c.cpu / a.cpu, "info", None, ".2f")
    if a and d:
        target("(a)/(d) in CPU seconds (not a target)", a.cpu / d.cpu, "info", None, ".2f")
    for label, seconds in status.items():
        if "status" in label:
            target(f"{label}, s", seconds, "< 0.3", seconds < 0.3, ".3f")
    if a:
        target(
            "peak memory of (a), process tree, MB",
            a.peak_tree_mb,
            "< 500",
            a.peak_tree_mb < 500,
            ".0f",
        )
    table(["target", "measured", "goal", "result"], targets)
    startup = next((v for k, v in status.items() if "--version" in k), None)
    if startup is not None:
        print(f"  (fleetchange --version alone, i.e. start-up: {startup:.3f}s)")
    for phase in ("first", "rerun"):
        trace = bench.results.get(f"git_trace_{phase}")
        if trace:
            print(
                f"\ngit calls made by fleetchange, {phase} run (--trace-git; times include the shim):"
            )
            table(
                ["git subcommand", "calls", "per repo", "wall s (summed)"],
                [
                    [k, str(v["calls"]), str(v["per_repo"]), str(v["seconds"])]
                    for k, v in trace.items()
                ],
            )
    failed = [what for what, ok in bench.checks if not ok]
    print()
    print(f"checks: {len(bench.checks) - len(failed)}/{len(bench.checks)} passed")
    for what in failed:
        print(f"  FAILED: {what}")
    return {
        "repos": n,
        "facts": bench.results["facts"],
        "phases": [dataclasses.asdict(r) for r in runs],
        "targets": summary,
        "status_seconds": status,
        "floor_tries": bench.results.get("floor_tries"),
        "allrepos_tries": bench.results.get("allrepos_tries"),
        "allrepos_version": bench.results.get("allrepos_version"),
        "git_trace": {k: v for k, v in bench.results.items() if k.startswith("git_trace")},
        "checks": [{"check": w, "ok": ok} for w, ok in bench.checks],
    }


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            f"{x:<{w}}" if i == 0 else f"{x:>{w}}"
            for i, (x, w) in enumerate(zip(row, widths, strict=True))
        )

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))


# -- main -------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time fleetchange against all-repos and against plain git, on one fleet.",
    )
    parser.add_argument("--repos", type=int, default=1000, help="fleet size N (default 1000)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="fleetchange --jobs (default: its own default)"
    )
    parser.add_argument(
        "--allrepos-jobs",
        type=int_list,
        default=[4, 8, 16],
        help="all-repos --jobs values to try, the best is reported (default 4,8,16)",
    )
    parser.add_argument(
        "--floor-jobs",
        type=int_list,
        default=[4, 8, 16],
        help="threads for the clone+grep floor, the best is reported (default 4,8,16)",
    )
    parser.add_argument("--skip-allrepos", action="store_true", help="leave out phase (c)")
    parser.add_argument(
        "--codemod",
        choices=sorted(CODEMODS),
        default="syntactic",
        help="syntactic: RenameMethodCall, the same textual change as all-repos-sed (default); "
        "semantic: ReplaceLoggingWarn, scope-aware and several times dearer",
    )
    parser.add_argument(
        "--allrepos-venv",
        type=Path,
        default=None,
        help="a virtualenv with all-repos installed (default: one created under the work dir)",
    )
    parser.add_argument("--status-repos", type=int, default=10_000, help="default 10000")
    parser.add_argument("--status-tries", type=int, default=5, help="best of (default 5)")
    parser.add_argument("--groups", type=int, default=20, help="forge groups (default 20)")
    parser.add_argument("--seed", type=int, default=4, help="fleet random seed (default 4)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to build (default: a new temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir at the end")
    parser.add_argument(
        "--trace-git",
        action="store_true",
        help="log every git call of the fleetchange runs through a shim (adds its overhead)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.repos < 3:
        parser.error("--repos must be at least 3")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--floor-worker"]:
        return floor_worker(argv[1:])
    args = parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            raise SystemExit(f"--workdir {args.workdir} must be empty")
        work = args.workdir.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="fleetchange-bench-"))
    log(f"work dir {work}")
    try:
        bench = Bench(args, work)
        bench.results["facts"] = machine_facts()
        bench.build_fleet()
        runs: list[Run] = []
        log("(d) the floor: parallel git clone --bare + git grep")
        floor = bench.floor()
        campaign = bench.setup_fleetchange()
        log("(a) fleetchange apply, first run (empty mirrors)")
        first = bench.fleetchange_apply(campaign, "(a) fleetchange apply, first run", "first")
        log(f"(a) {first.seconds:.1f}s")
        mrs = bench.check_fleetchange(first, "first", 0)
        log("(b) fleetchange apply again, nothing changed")
        rerun = bench.fleetchange_apply(campaign, "(b) fleetchange apply, re-run", "rerun")
        log(f"(b) {rerun.seconds:.1f}s")
        bench.check_fleetchange(rerun, "rerun", mrs)
        runs += [first, rerun]
        if not args.skip_allrepos:
            log("(c) all-repos")
            runs.append(bench.allrepos())
        runs.append(floor)
        log(f"status on a synthetic campaign of {args.status_repos} repos")
        status = bench.status()
        summary = report(bench, runs, status)
        if args.json:
            print(json.dumps(summary, indent=2))
        return 0 if all(ok for _, ok in bench.checks) else 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
