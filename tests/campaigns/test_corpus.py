"""Invalid campaign files: one clear line, exit status 2, no traceback, nothing written.

``corpus/*.toml`` holds the invalid campaigns.  Each starts with two comment lines::

    # expect: <a part of the error line>
    # line: <the line the error must name, or "none" when it can name none>

(files marked ``# <- error`` on a line are the ones whose ``# line:`` points there).
Cases that cannot be committed as text (an empty file, bytes that are not UTF-8, a
file over 1 MiB, a directory, a missing file...) are built by :data:`GENERATED`.

Where paths may point, the rule the loader enforces:

* files fleetchange *reads on this machine* -- codemod files, templates, the local
  forge root -- may be anywhere the campaign names, relative to the campaign file's
  folder or absolute, ``..`` included: the campaign's author is the machine's user,
  and sharing one template folder between campaigns is normal;
* paths that name a file *inside every target repository* (the file kind's ``path``)
  must stay inside it: no ``..`` that leaves it, no absolute path, nothing under
  ``.git`` -- a campaign must not reach the clone's git config or the machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetchange.campaign import load
from fleetchange.errors import CampaignError
from tests.cli import run
from tests.fleet import campaign_toml

CORPUS = Path(__file__).parent / "corpus"
_HEADER = re.compile(r"# expect: (?P<expect>.+)\n# line: (?P<line>\d+|none)\n")


MARKER = "# <- error"
MARKED = -1  # Case.line: the line of the built file that ends with MARKER


@dataclass(frozen=True)
class Case:
    name: str
    expect: str
    line: int | None  # None: the error names no line
    build: Callable[[Path], Path]  # tmp folder -> the campaign path to load

    def expected_line(self, path: Path) -> int | None:
        if self.line != MARKED:
            return self.line
        lines = path.read_bytes().decode("utf-8-sig").split("\n")
        return next(n for n, text in enumerate(lines, 1) if text.rstrip("\r").endswith(MARKER))


def _corpus_case(path: Path) -> Case:
    head = path.read_text(encoding="utf-8").split("\n", 2)
    match = _HEADER.match("\n".join(head[:2]) + "\n")
    assert match, f"{path.name}: must start with '# expect: ...' and '# line: N|none'"
    line = None if match["line"] == "none" else int(match["line"])
    return Case(path.stem, match["expect"], line, lambda _tmp: path)


def _valid(tmp: Path) -> str:
    (tmp / "fleet").mkdir(exist_ok=True)
    return campaign_toml(tmp / "fleet")


def _write(name: str, data: Callable[[Path], bytes | str]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        content = data(tmp)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        else:
            path.write_bytes(content)
        return path

    return build


def _directory(tmp: Path) -> Path:
    (tmp / "campaign.toml").mkdir()
    return tmp / "campaign.toml"


def _pad_to_just_under_limit(tmp: Path) -> str:
    """~1 MiB of valid TOML (a long multi-line description) with the error at the very end."""
    text = _valid(tmp).replace(
        'description = "logging.warn is deprecated."',
        'description = """\n' + "[targets]\nforge = 'decoy'\n" * 40_000 + '"""',
    )
    return text + f'\n[commit]\nmesage = "typo"  {MARKER}\n'


GENERATED = [
    Case(
        "empty",
        "file is empty; a campaign needs [campaign], [targets] and [[change]]",
        None,
        _write("empty.toml", lambda _t: b""),
    ),
    Case(
        "whitespace-only",
        "file is empty",
        None,
        _write("blank.toml", lambda _t: " \n\t\n\r\n   \n"),
    ),
    Case(
        "not-utf8",
        "not UTF-8 (byte ",
        None,
        _write("latin1.toml", lambda t: _valid(t).replace("Replace", "Caf\xe9").encode("latin-1")),
    ),
    Case(
        "utf16",
        "not UTF-8 (byte 0)",
        None,
        _write("utf16.toml", lambda t: _valid(t).encode("utf-16")),
    ),
    Case(
        "over-1-mib",
        "file is larger than 1 MiB; is this really a campaign?",
        None,
        _write("huge.toml", lambda t: _valid(t) + "#" * (1024 * 1024) + "\n"),
    ),
    Case("directory", "is a directory, expected a campaign TOML file", None, _directory),
    Case("missing", "file not found", None, lambda tmp: tmp / "no-such-campaign.toml"),
    Case(
        "under-1-mib-error-at-the-end",
        "[commit] mesage: unknown key",
        MARKED,
        _write("big.toml", _pad_to_just_under_limit),
    ),
    Case(
        "byte-order-mark",
        "[targets] rooot: unknown key",
        MARKED,
        _write(
            "bom.toml",
            lambda t: "\ufeff" + _valid(t).replace("root =", f'rooot = "x"  {MARKER}\nroot ='),
        ),
    ),
    Case(
        "crlf-line-endings",
        "[test] timeout: must be between 1 and 86400, got 0",
        MARKED,
        _write(
            "crlf.toml",
            lambda t: (_valid(t) + f"[test]\ntimeout = 0  {MARKER}\n").replace("\n", "\r\n"),
        ),
    ),
    Case(
        "control-character",
        "TOML syntax error: Control characters",
        2,
        _write("ctrl.toml", lambda t: _valid(t).replace('"logging-warn"', '"logging\x01warn"')),
    ),
    Case(
        "nul-byte",
        "TOML syntax error",
        3,
        _write("nul.toml", lambda t: _valid(t).replace('title = "', 'title = "\x00')),
    ),
]
if Path("/dev/zero").exists():
    # no size to stat: only a bounded read stops it
    GENERATED.append(
        Case("endless-device", "file is larger than 1 MiB", None, lambda _t: Path("/dev/zero"))
    )

CASES = [_corpus_case(path) for path in sorted(CORPUS.glob("*.toml"))] + GENERATED


def test_the_corpus_is_large_and_well_formed() -> None:
    files = sorted(CORPUS.glob("*.toml"))
    assert len(files) >= 35
    for path in files:
        _corpus_case(path)  # asserts the header
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_load_names_file_line_and_problem(case: Case, tmp_path: Path) -> None:
    path = case.build(tmp_path)
    with pytest.raises(CampaignError) as raised:
        load(path)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert case.expect in message
    line = case.expected_line(path)
    if line is None:
        assert raised.value.line is None, message
        assert message.startswith(f"{path}: "), message
    else:
        assert raised.value.line == line, message
        assert message.startswith(f"{path}:{line}: "), message


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_apply_prints_one_line_exits_2_and_writes_nothing(
    case: Case, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = case.build(tmp_path)
    result = run(capsys, "apply", str(path))
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"fleetchange: {path}"), lines[0]
    assert case.expect in lines[0]
    assert "Traceback" not in result.err
    assert not (home / "state.sqlite3").exists()
    assert list(home.iterdir()) == []  # no state, locks or crash logs


def test_files_read_by_fleetchange_may_live_outside_the_campaign_folder(tmp_path: Path) -> None:
    """The rule (see the module docstring): templates, codemod files and the forge root may be
    anywhere the user names; only paths inside the target repositories are confined."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "owners.txt").write_text("* @{group}/maintainers\n")
    (shared / "codemod.py").write_text((CORPUS / "files" / "codemod.py").read_text())
    (tmp_path / "forge").mkdir()
    folder = tmp_path / "campaigns"
    folder.mkdir()
    changes = (
        '[[change]]\nkind = "file"\npath = ".github/CODEOWNERS"\ntemplate = "../shared/owners.txt"\n'
        f'[[change]]\nkind = "file"\npath = "docs/{{repo_name}}.md"\ntemplate = "{shared}/owners.txt"\n'
        '[[change]]\nkind = "libcst"\ncodemod = "../shared/codemod.py:Rename"\nargs = {old = "x"}\n'
    )
    path = folder / "campaign.toml"
    path.write_text(campaign_toml(Path("../forge"), changes=changes))
    campaign = load(path)
    assert campaign.targets.root == tmp_path / "forge"
    assert [step.options["content"] for step in campaign.steps[:2]] == [
        "* @{group}/maintainers\n"
    ] * 2
    assert campaign.steps[2].options["class_name"] == "Rename"


def test_environment_variables_in_the_forge_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FC_CORPUS_ROOT", str(tmp_path / "forge"))
    (tmp_path / "forge").mkdir()
    path = tmp_path / "campaign.toml"
    path.write_text(campaign_toml(Path("$FC_CORPUS_ROOT")))
    assert load(path).targets.root == tmp_path / "forge"
    monkeypatch.setenv("FC_CORPUS_ROOT", "nowhere" + os.sep + "x")
    with pytest.raises(CampaignError, match=r"root: forge root '\$FC_CORPUS_ROOT' does not exist"):
        load(path)
