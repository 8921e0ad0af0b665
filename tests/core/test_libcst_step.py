"""The libcst step keeps every byte it does not mean to change."""

from __future__ import annotations

from typing import Any

from fleetchange.changes.libcst import transform_source

RENAME: dict[str, Any] = {
    "codemod": "codemods.rename_method.RenameMethodCall",
    "source": None,
    "class_name": "RenameMethodCall",
    "args": {"receiver": "logging", "old": "warn", "new": "warning"},
}


def test_files_libcst_cannot_print_back_exactly_are_left_alone() -> None:
    # libcst prints `except (A, B) :` back without the space (LibCST#1457): editing this file
    # would smuggle that change into the MR, so it is reported instead
    code = (
        "import logging\ntry:\n    pass\nexcept (ValueError, KeyError) :\n    logging.warn('x')\n"
    )
    assert transform_source(RENAME, "a.py", code) == (
        "roundtrip",
        "libcst cannot print this file back byte for byte",
    )


def test_changes_unparsable_and_failing_codemods() -> None:
    assert transform_source(RENAME, "a.py", "import logging\nlogging.warn(1)\n") == (
        "import logging\nlogging.warning(1)\n"
    )
    assert transform_source(RENAME, "a.py", "import logging\nlogging.warning(1)\n") is None
    assert transform_source(RENAME, "a.py", "def f(:\n") == ("parse", "1")
    bad = {**RENAME, "args": {"receiver": "logging", "old": "warn"}}  # missing "new"
    outcome = transform_source(bad, "a.py", "x = 1\n")
    assert isinstance(outcome, tuple) and outcome[0] == "failed" and "new" in outcome[1]
