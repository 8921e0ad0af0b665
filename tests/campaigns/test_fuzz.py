"""Property-based tests: the campaign loader and the template filler under random input.

The loader must load a file or raise :class:`CampaignError` -- one line naming the
file -- and nothing else, whatever the text.  The filler substitutes plain known
names and nothing else, and never raises.
"""

from __future__ import annotations

import datetime
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fleetchange.campaign import Campaign, load
from fleetchange.errors import CampaignError
from fleetchange.template import fill, placeholders, unknown_placeholders
from tests.fleet import campaign_toml

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LOADER_FUZZ = settings(FUZZ, max_examples=100)  # each example writes and loads a file

TABLES = ["campaign", "targets", "change", "test", "merge_request", "commit", "rollout"]
KEYS = [
    *TABLES,
    *("id", "title", "description", "branch", "forge", "root", "url", "repos", "contains"),
    *("kind", "name", "paths", "grep", "codemod", "args", "run", "timeout", "path", "content"),
    *("template", "mode", "set", "remove", "dependencies", "file", "command", "labels"),
    *("message", "draft", "include_archived", "waves", "promote_when", "max_open", "window"),
]
CHANGES = (
    '[[change]]\nkind = "libcst"\ncodemod = "codemods.logging_warn.ReplaceLoggingWarn"\n'
    "grep = '\\.warn\\('\n"
    '[[change]]\nkind = "command"\nrun = "ruff check --fix"\ntimeout = 120\n'
    '[[change]]\nkind = "toml"\nremove = ["tool.black"]\n'
    '[change.set]\n"tool.ruff.line-length" = 100\n'
    '[change.dependencies]\nrequests = ">=2.32"\n'
    '[[change]]\nkind = "file"\npath = "docs/{repo_name}.md"\ncontent = "# {repo}"\n'
    '[[change]]\nkind = "libcst"\ncodemod = "codemods.rename_call.RenameCall"\n'
    'args = {old = "a.b.old", new = "a.b.new"}\n'
)
EXTRA = 'repos = ["team/*"]\nexclude = ["team/legacy-*"]\ncontains = "logging"\n'


@contextmanager
def campaign_folder() -> Iterator[Path]:
    """A fresh folder with a forge root ``fleet``; tmp_path is shared across examples."""
    with tempfile.TemporaryDirectory(prefix="fc-fuzz-") as tmp:
        folder = Path(tmp)
        (folder / "fleet").mkdir()
        yield folder


def valid_text(folder: Path) -> str:
    return (
        campaign_toml(Path("fleet"), extra=EXTRA, test="pytest -q", changes=CHANGES)
        + '\n[merge_request]\ntitle = "{repo}: logging"\nlabels = ["fleet"]\n'
        + '\n[rollout]\nwaves = [2, "100%"]\npromote_when = "merged >= 0.8"\nmax_open = 5\n'
        + 'window = "09:00-17:00"\ndays = ["mon", "tue"]\n'
    )


def load_or_campaign_error(folder: Path, text: str | bytes) -> Campaign | CampaignError:
    """Load ``text``; anything but a campaign or a one-line CampaignError fails the test."""
    path = folder / "campaign.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    try:
        return load(path)
    except CampaignError as exc:
        message = str(exc)
        assert message.startswith(f"{path}"), message
        assert "\n" not in message and "\r" not in message, message
        assert "Traceback" not in message
        if exc.line is not None:
            assert message.startswith(f"{path}:{exc.line}: ")
            lines = path.read_bytes().count(b"\n") + 1
            assert 1 <= exc.line <= lines, (exc.line, lines, message)
        return exc


def test_the_starting_point_is_valid() -> None:
    with campaign_folder() as folder:
        loaded = load_or_campaign_error(folder, valid_text(folder))
        assert isinstance(loaded, Campaign), loaded
        assert [step.kind for step in loaded.steps] == [
            "libcst",
            "command",
            "toml",
            "file",
            "libcst",
        ]


# -- random text --------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "\n",
        " ",
        "=",
        ".",
        ",",
        "#",
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        '"',
        "'",
        '"""',
        "'''",
        "\\",
        "\\u00",
        "\\n",
        "\r\n",
        "\t",
        "\x00",
        "\u2028",
        "\ufeff",
        "1",
        "-1",
        "0x1f",
        "1e999",
        "nan",
        "true",
        "false",
        "1979-05-27",
        "07:32:00",
        "T",
        "Z",
        "+",
        *KEYS,
        *(f"[{t}]\n" for t in TABLES),
        "[[change]]\n",
        '"fleet"',
        '"local"',
        '"command"',
        '"libcst"',
        '"toml"',
        '"file"',
        "'(a+)+$'",
        '"\\d"',
        "..",
        "/",
        "~",
    ]
)
TOMLISH = st.lists(FRAGMENTS | st.text(max_size=4), max_size=60).map("".join)


@LOADER_FUZZ
@given(text=TOMLISH)
def test_random_tomlish_text(text: str) -> None:
    with campaign_folder() as folder:
        load_or_campaign_error(folder, text)


@LOADER_FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    with campaign_folder() as folder:
        load_or_campaign_error(folder, data)


# -- random structurally valid TOML -------------------------------------------------

SCALARS = (
    st.text(max_size=12)
    | st.sampled_from(["fleet", "local", "gitlab", "command", "libcst", "toml", "file", "x.y:Z"])
    | st.integers()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.dates()
    | st.datetimes()
    | st.times()
    | st.datetimes(timezones=st.just(datetime.UTC))
)
NAMES = st.sampled_from(KEYS) | st.text(min_size=1, max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(NAMES, children, max_size=3),
    max_leaves=6,
)


def dumps(document: Mapping[str, Any]) -> str | None:
    try:
        return tomlkit.dumps(document)
    except Exception:  # tomlkit cannot write every Python value (e.g. mixed arrays of tables)
        return None


@LOADER_FUZZ
@given(document=st.dictionaries(NAMES, VALUES, max_size=6))
def test_random_toml_documents(document: dict[str, Any]) -> None:
    text = dumps(document)
    assume(text is not None)
    assert text is not None
    with campaign_folder() as folder:
        load_or_campaign_error(folder, text)


@LOADER_FUZZ
@given(
    document=st.fixed_dictionaries(
        {},
        optional={
            name: st.dictionaries(NAMES, VALUES, max_size=3) for name in TABLES if name != "change"
        },
    ),
    changes=st.lists(
        st.dictionaries(NAMES, VALUES, max_size=4).map(dict)
        | st.builds(
            lambda kind, rest: {**rest, "kind": kind},
            st.sampled_from(["libcst", "command", "toml", "file", "llm", "x"]),
            st.dictionaries(st.sampled_from(KEYS[len(TABLES) :]), VALUES, max_size=3),
        ),
        max_size=3,
    ),
)
def test_random_campaign_shaped_documents(
    document: dict[str, Any], changes: list[dict[str, Any]]
) -> None:
    text = dumps({**document, "change": changes} if changes else document)
    assume(text is not None)
    assert text is not None
    with campaign_folder() as folder:
        load_or_campaign_error(folder, text)


# -- mutations of a valid campaign ----------------------------------------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value (tables and arrays included) below ``node``."""
    items: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*path, key)
        if isinstance(value, dict | list):
            yield from _leaves(value, (*path, key))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


Mutation = Callable[[dict[str, Any]], None]


@st.composite
def mutations(draw: st.DrawFn, document: dict[str, Any]) -> Mutation:
    paths = sorted(_leaves(document), key=repr)
    target = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(["replace", "drop", "add", "wrap"]))
    value = draw(VALUES)
    name = draw(NAMES)

    def mutate(doc: dict[str, Any]) -> None:
        parent = _parent(doc, target)
        key = target[-1]
        if how == "replace":
            parent[key] = value
        elif how == "drop":
            del parent[key]
        elif how == "wrap":
            parent[key] = [parent[key]] if not isinstance(parent[key], list) else {"x": parent[key]}
        elif isinstance(parent, dict):
            parent[name] = value
        else:
            parent.append(value)

    return mutate


def _plain(folder: Path) -> dict[str, Any]:
    return tomlkit.parse(valid_text(folder)).unwrap()


@LOADER_FUZZ
@given(data=st.data())
def test_mutated_valid_campaign(data: st.DataObject) -> None:
    with campaign_folder() as folder:
        document = _plain(folder)
        for mutate in data.draw(st.lists(mutations(document), min_size=1, max_size=3)):
            try:
                mutate(document)
            except (KeyError, IndexError, TypeError):  # an earlier mutation moved things
                continue
        text = dumps(document)
        assume(text is not None)
        assert text is not None
        load_or_campaign_error(folder, text)


@LOADER_FUZZ
@given(data=st.data())
def test_mutated_valid_campaign_text(data: st.DataObject) -> None:
    """Line-level edits: what a hand-edited file goes through (the locator's input)."""
    with campaign_folder() as folder:
        lines = valid_text(folder).split("\n")
        for _ in range(data.draw(st.integers(1, 3))):
            index = data.draw(st.integers(0, len(lines) - 1))
            how = data.draw(st.sampled_from(["delete", "duplicate", "insert", "edit"]))
            if how == "delete":
                del lines[index]
            elif how == "duplicate":
                lines.insert(index, lines[index])
            elif how == "insert":
                lines.insert(index, data.draw(TOMLISH))
            else:
                cut = data.draw(st.integers(0, len(lines[index])))
                lines[index] = lines[index][:cut] + data.draw(TOMLISH) + lines[index][cut:]
            if not lines:
                lines = [""]
        load_or_campaign_error(folder, "\n".join(lines))


# -- the template filler ------------------------------------------------------------

KNOWN = ["repo", "repo_name", "group", "campaign", "title", "default_branch"]
TEMPLATE_PARTS = st.sampled_from(
    [
        "{",
        "}",
        "{{",
        "}}",
        "{repo}",
        "{title}",
        "{campaign}",
        "{group}",
        "{unknown}",
        "{repo.__class__}",
        "{repo.__class__.__mro__}",
        "{repo[0]}",
        "{repo!r}",
        "{title:>10}",
        "{0}",
        "{}",
        "{ repo }",
        "{répo}",
        "{_x1}",
        "{1x}",
        "{repo}}",
        "{{repo}",
        "{{{repo}}}",
        "a",
        " ",
        "\n",
        "é",
        "%s",
        "$repo",
        "${repo}",
    ]
)
TEMPLATES = st.lists(TEMPLATE_PARTS | st.text(max_size=3), max_size=20).map("".join)
VALUE_TEXT = st.text(max_size=8) | st.sampled_from(["{repo}", "{{", "}", "{title}"])
FILL_VALUES = st.dictionaries(st.sampled_from([*KNOWN, "unknown", "x"]), VALUE_TEXT)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def reference_fill(template: str, values: Mapping[str, str]) -> str:
    """An independent left-to-right reading of the filler's contract."""
    out: list[str] = []
    pos = 0
    while pos < len(template):
        if template.startswith(("{{", "}}"), pos):
            out.append(template[pos])
            pos += 2
            continue
        if template[pos] == "{":
            close = template.find("}", pos + 1)
            name = template[pos + 1 : close] if close > 0 else ""
            if _NAME.fullmatch(name):
                out.append(values.get(name, "{" + name + "}"))
                pos = close + 1
                continue
        out.append(template[pos])
        pos += 1
    return "".join(out)


class Recording(dict[str, str]):
    """Values that remember which names the filler looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


@FUZZ
@given(template=TEMPLATES, values=FILL_VALUES)
def test_fill_matches_the_reference(template: str, values: dict[str, str]) -> None:
    assert fill(template, values) == reference_fill(template, values)


@FUZZ
@given(text=st.text(), values=FILL_VALUES)
def test_text_without_braces_is_unchanged(text: str, values: dict[str, str]) -> None:
    text = text.replace("{", "").replace("}", "")
    assert fill(text, values) == text
    assert placeholders(text) == set()


@FUZZ
@given(text=TEMPLATES, values=FILL_VALUES)
def test_doubled_braces_are_literal(text: str, values: dict[str, str]) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert fill(escaped, values) == text
    assert placeholders(escaped) == set()


@FUZZ
@given(template=TEMPLATES, values=FILL_VALUES)
def test_only_plain_names_are_substituted(template: str, values: dict[str, str]) -> None:
    recording = Recording(values)
    filled = fill(template, recording)
    assert all(_NAME.fullmatch(name) for name in recording.asked)
    # attribute access, indexing, conversions and format specs are never evaluated
    for name in values:
        for expression in (f"{{{name}.__class__}}", f"{{{name}[0]}}", f"{{{name}!r}}"):
            assert fill(expression, values) == expression
    assert "<class" not in filled or "<class" in template + "".join(values.values())


@FUZZ
@given(template=TEMPLATES, known=st.lists(st.sampled_from([*KNOWN, "unknown"]), unique=True))
def test_unknown_placeholders_agree_with_fill(template: str, known: list[str]) -> None:
    recording = Recording(dict.fromkeys(known, "value"))
    fill(template, recording)
    assert placeholders(template) == recording.asked
    assert unknown_placeholders(template, known) == sorted(recording.asked - set(known))
    # filling the known names leaves exactly the unknown ones as they were written
    left = fill(template, {name: "" for name in known})
    for name in unknown_placeholders(template, known):
        assert "{" + name + "}" in left


@FUZZ
@given(template=st.text(), values=st.dictionaries(st.text(), st.text()))
def test_fill_never_raises(template: str, values: dict[str, str]) -> None:
    assert isinstance(fill(template, values), str)
    assert isinstance(unknown_placeholders(template, values), list)
