from __future__ import annotations

from fleetchange.codeowners import reviewers

RULES = """\
# default owners
*           @alice
*.py        @bob @org/python-team
/docs/      @carol  # only top-level docs
src/api/**  @dave
build.mk    someone@example.com
[Section]
"""


def test_last_matching_rule_wins() -> None:
    assert reviewers(RULES, ["README.md"]) == ["alice"]
    assert reviewers(RULES, ["pkg/mod.py"]) == ["bob"]  # teams are not user reviewers
    assert reviewers(RULES, ["docs/index.md"]) == ["carol"]
    assert reviewers(RULES, ["sub/docs/index.md"]) == ["alice"]  # /docs/ is anchored
    assert reviewers(RULES, ["src/api/v1/routes.py"]) == ["dave"]
    assert reviewers(RULES, ["build.mk"]) == []  # e-mail owners cannot be requested


def test_most_files_first_and_limit() -> None:
    files = ["a.py", "b.py", "README.md", "src/api/x.txt"]
    assert reviewers(RULES, files) == ["bob", "alice", "dave"]
    assert reviewers(RULES, files, limit=1) == ["bob"]
