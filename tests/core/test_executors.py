"""The same end-to-end campaign on every executor: threads, processes and a real Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')\n"


def build(fleet: LocalFleet) -> None:
    for index in range(6):
        files = {"m.py": WARN if index % 2 == 0 else "x = 1\n"}
        fleet.add(f"group/repo{index}", files)


def expected(fleet: LocalFleet) -> dict[str, str]:
    return {f"group/repo{i}": "mr-open" if i % 2 == 0 else "no-match" for i in range(6)}


def check(fleet: LocalFleet, capsys: pytest.CaptureFixture[str], *args: str) -> None:
    campaign = fleet.root.parent / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    result = run(capsys, "apply", str(campaign), *args)
    assert result.code == 0, result.err
    status = run(capsys, "status", "logging-warn", "--json").json()
    assert {r["repo"]: r["state"] for r in status["repos"]} == expected(fleet)
    assert len(fleet.forge().all_mrs()) == 3
    for i in (0, 2, 4):
        assert "logging.warning('x')" in fleet.show(
            f"group/repo{i}", "fleetchange/logging-warn", "m.py"
        )
    # and a second run, on the same executor, changes nothing
    again = run(capsys, "apply", str(campaign), *args)
    assert again.code == 0 and "6 repo(s) unchanged" in again.err
    assert len(fleet.forge().all_mrs()) == 3


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_local_executors(
    fleet: LocalFleet, capsys: pytest.CaptureFixture[str], executor: str
) -> None:
    build(fleet)
    check(fleet, capsys, "--executor", executor, "--jobs", "2")


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_executor(
    fleet: LocalFleet, capsys: pytest.CaptureFixture[str], dask_scheduler: str, tmp_path: Path
) -> None:
    build(fleet)
    check(fleet, capsys, "--executor", "dask", "--scheduler", dask_scheduler)


def test_dask_needs_a_scheduler(fleet: LocalFleet, capsys: pytest.CaptureFixture[str]) -> None:
    build(fleet)
    campaign = fleet.root.parent / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    result = run(capsys, "apply", str(campaign), "--executor", "dask")
    assert result.code == 2
    assert result.err.strip() == "fleetchange: --executor dask needs --scheduler tcp://HOST:PORT"
    unreachable = run(
        capsys, "apply", str(campaign), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"
    )
    assert unreachable.code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in unreachable.err
