"""The validator over the manifest corpus: passing/ must be clean, failing/ must say what it expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbtls.jps.schema import Problem
from dbtls.jps.validate import validate, validate_file

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "jps"
PASSING = sorted((CORPUS / "passing").glob("*.jps"))
FAILING = sorted((CORPUS / "failing").glob("*.jps"))


def _expectations(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def test_corpus_is_not_empty() -> None:
    assert len(PASSING) >= 3 and len(FAILING) >= 20


@pytest.mark.parametrize("path", PASSING, ids=lambda p: p.name)
def test_passing_manifest_has_no_problems(path: Path) -> None:
    assert validate_file(path) == []


@pytest.mark.parametrize("path", FAILING, ids=lambda p: p.name)
def test_failing_manifest_reports_expected_problem(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    problems = validate_file(path)
    for want in expected:
        assert any(want in p for p in problems), f"{want!r} not in {problems}"


def test_problem_prints_as_path_colon_message() -> None:
    assert str(Problem("actions.x[0]", "boom")) == "actions.x[0]: boom"
    assert str(Problem("", "boom", 3)) == "<root>: boom (line 3)"


def test_dict_input_skips_raw_text_checks_but_checks_shape() -> None:
    problems = validate({"type": "update", "name": "x", "globals": {"ssl": True},
                         "onInstall": [{"cmd[sqldb]": "echo", "user": "root"}]})
    assert problems == []
    problems = validate({"type": "update", "onInstall": "missing"})
    assert {str(p) for p in problems} >= {"name: missing",
                                          "onInstall: action 'missing' is neither built in nor defined in actions"}


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    [line] = validate_file(tmp_path / "absent.jps")
    assert "cannot read" in line


def test_shell_variables_in_non_cmd_text_are_unknown_placeholders() -> None:
    problems = [str(p) for p in validate("type: update\nname: x\nsuccess: hello ${WHO}\n")]
    assert problems == ["success: unknown placeholder ${WHO}"]


def test_this_string_argument_and_list_calls() -> None:
    text = """
type: update
name: x
onInstall:
  - one: sqldb
  - one: [sqldb, proxy]
  - one: {nodeGroup: sqldb}
actions:
  one:
    - cmd[${this}]: echo
"""
    problems = [str(p) for p in validate(text)]
    assert problems == ["actions.one[0].cmd[${this}]: ${this}: the call at onInstall[2].one "
                        "does not pass a text argument"]


def test_default_placeholders_are_accepted() -> None:
    text = "type: update\nname: x\nonInstall:\n  - log: ${settings.nothing:none} ${globals.g:}\n"
    assert validate(text) == []
