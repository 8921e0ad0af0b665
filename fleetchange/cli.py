"""The command line: parse, dispatch to ``commands/``, map errors to exit statuses.

Exit statuses: 0 all good; 1 some repo errored or failed its tests; 2 bad input
(campaign file, options, credentials); 3 an internal error (traceback in a log
file whose path is printed); 130 interrupted.
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from . import __version__, paths
from .errors import FleetchangeError, UsageError
from .gitops import redact
from .state import Store

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="Push one change across many git repositories: one tested merge request per repo.",
)


def _console() -> Console:
    return Console(stderr=True)


def _out() -> Console:
    return Console()


def _version(value: bool) -> None:
    if value:
        print(f"fleetchange {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """fleetchange: campaigns of codemods, tests and merge requests across a fleet of repos."""


JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=256,
        help="Repos processed at once (default: 8 per core, at most 32).",
    ),
]


@app.command()
def apply(
    campaign_file: Annotated[
        Path, typer.Argument(help="The campaign TOML file.", show_default=False)
    ],
    jobs: JobsOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Process at most N target repos (in name order).")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Only repos matching this glob (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diffs; push nothing, record nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo repos whose base and campaign are unchanged.")
    ] = False,
    executor: Annotated[str, typer.Option(help="threads, processes or dask.")] = "threads",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    next_wave: Annotated[
        bool,
        typer.Option("--next-wave", help="Promote the rollout to its next wave without waiting."),
    ] = False,
    no_llm_cache: Annotated[
        bool,
        typer.Option(
            "--no-llm-cache", help="Ask the model again instead of reusing cached answers."
        ),
    ] = False,
) -> None:
    """Apply a campaign: change, test, push and open one merge request per affected repo."""
    from .campaign import load
    from .commands.apply import ApplyOptions, default_jobs
    from .commands.apply import apply as run

    if executor not in ("threads", "processes", "dask"):
        raise UsageError(f"--executor: expected threads, processes or dask, got {executor!r}")
    if executor == "dask" and not scheduler:
        raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT")
    campaign = load(campaign_file)
    options = ApplyOptions(
        jobs=jobs or default_jobs(),
        limit=limit,
        only=tuple(only or ()),
        dry_run=dry_run,
        force=force,
        executor=executor,
        scheduler=scheduler,
        use_llm_cache=not no_llm_cache,
        next_wave=next_wave,
    )
    raise typer.Exit(run(campaign, options=options, console=_console(), out=_out()))


@app.command()
def status(
    campaign_id: Annotated[
        str | None, typer.Argument(help="Campaign id (default: every campaign).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every repo, not only the first ones.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, help="Rows to list per campaign without --all.")
    ] = 50,
) -> None:
    """Show where every repository of a campaign stands."""
    from .commands.status import status as run

    store = _open_store()
    raise typer.Exit(
        run(
            store,
            campaign_id=campaign_id,
            as_json=as_json,
            show_all=show_all,
            limit=limit,
            out=_out(),
        )
    )


@app.command()
def campaigns(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the campaigns fleetchange has state for."""
    from .commands.status import campaigns as run

    raise typer.Exit(run(_open_store(), as_json=as_json, out=_out()))


@app.command()
def sync(
    campaign_id: Annotated[
        str | None, typer.Argument(help="Campaign id (default: every campaign).")
    ] = None,
    jobs: JobsOption = None,
) -> None:
    """Refresh every MR's state, pipeline and approvals from the forge."""
    from .commands.apply import default_jobs
    from .commands.review import sync as run

    raise typer.Exit(
        run(_open_store(), campaign_id=campaign_id, jobs=jobs or default_jobs(), console=_console())
    )


@app.command()
def merge(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id.", show_default=False)],
    auto: Annotated[
        bool,
        typer.Option("--auto", help="Set merge-when-pipeline-succeeds instead of merging now."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be merged; change nothing.")
    ] = False,
    allow_no_pipeline: Annotated[
        bool,
        typer.Option(
            "--allow-no-pipeline", help="Also merge approved MRs of repos that have no CI at all."
        ),
    ] = False,
    jobs: JobsOption = None,
) -> None:
    """Merge the MRs that are approved, green and mergeable; never bypasses a failing pipeline."""
    from .commands.apply import default_jobs
    from .commands.review import merge as run

    raise typer.Exit(
        run(
            _open_store(),
            campaign_id=campaign_id,
            auto=auto,
            dry_run=dry_run,
            allow_no_pipeline=allow_no_pipeline,
            jobs=jobs or default_jobs(),
            out=_out(),
        )
    )


@app.command()
def close(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id.", show_default=False)],
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why: posted as a comment on each MR.", show_default=False),
    ],
    repo: Annotated[
        str | None, typer.Option("--repo", help="Only repos matching this glob.")
    ] = None,
    jobs: JobsOption = None,
) -> None:
    """Close the campaign's open MRs with a comment and delete their branches."""
    from .commands.apply import default_jobs
    from .commands.review import close as run

    raise typer.Exit(
        run(
            _open_store(),
            campaign_id=campaign_id,
            pattern=repo,
            reason=reason,
            jobs=jobs or default_jobs(),
            out=_out(),
        )
    )


@app.command()
def verify(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    jobs: JobsOption = None,
) -> None:
    """Re-scan every target's default branch for the campaign's patterns; exit 1 if any remain."""
    from .commands.apply import default_jobs
    from .commands.verify import verify as run

    raise typer.Exit(
        run(
            _open_store(),
            campaign_id=campaign_id,
            jobs=jobs or default_jobs(),
            as_json=as_json,
            out=_out(),
        )
    )


@app.command(name="import")
def import_(
    campaign: Annotated[
        str, typer.Argument(help="Campaign id, or the campaign file.", show_default=False)
    ],
    branch: Annotated[
        str, typer.Option("--branch", help="Source branch of the MRs to adopt.", show_default=False)
    ],
    jobs: JobsOption = None,
) -> None:
    """Start tracking MRs that another tool or person already opened for the change."""
    from .commands.adopt import import_mrs
    from .commands.apply import default_jobs

    raise typer.Exit(
        import_mrs(
            _open_store(),
            campaign_ref=campaign,
            branch=branch,
            jobs=jobs or default_jobs(),
            out=_out(),
        )
    )


@app.command()
def nudge(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id.", show_default=False)],
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age such as 7d, 36h or 2w.")
    ] = "7d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List who would be nudged; comment nowhere.")
    ] = False,
    jobs: JobsOption = None,
) -> None:
    """Comment on open MRs older than --older-than (at most once per that interval)."""
    from .commands.adopt import nudge as run
    from .commands.apply import default_jobs

    raise typer.Exit(
        run(
            _open_store(),
            campaign_id=campaign_id,
            older_than=older_than,
            jobs=jobs or default_jobs(),
            dry_run=dry_run,
            out=_out(),
        )
    )


@app.command()
def demo(
    jobs: JobsOption = None,
) -> None:
    """Build a demo fleet on the local forge (once), apply the demo campaign, show its status."""
    from .commands.demo import demo as run

    raise typer.Exit(run(jobs=jobs, console=_console(), out=_out()))


@app.command()
def report(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id.", show_default=False)],
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a self-contained HTML page (burndown chart, counts, sortable repo table).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the burndown points as JSON for scripts.")
    ] = False,
) -> None:
    """Report progress: open vs merged over time, counts per state, every repo's MR."""
    from .commands.report import report as run

    raise typer.Exit(
        run(_open_store(), campaign_id=campaign_id, html_path=html, as_json=as_json, out=_out())
    )


def _open_store() -> Store:
    db = paths.state_db()
    if not db.exists():
        paths.ensure_private_dir(db.parent)
    return Store(db)


def _crash_log(exc: BaseException) -> Path:
    try:
        folder = paths.ensure_private_dir(paths.logs())
    except OSError:
        folder = Path(tempfile.gettempdir())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    path.write_text(redact(f"fleetchange {__version__}\n{' '.join(sys.argv)}\n\n{text}"))
    return path


def _fail(message: str, code: int) -> NoReturn:
    print(f"fleetchange: {redact(message)}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except FleetchangeError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130)
    except typer.TyperException as exc:  # usage errors from option parsing
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"fleetchange: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: one line here, the traceback in a file
        log = _crash_log(exc)
        _fail(f"internal error: {type(exc).__name__}: {exc} (traceback in {log})", 3)
    sys.exit(code if isinstance(code, int) else 0)
