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


def test_this_from_engine_data_needs_no_base64() -> None:
    text = """
type: update
name: x
onInstall:
  - forEach(n:nodes.sqldb):
      - sign: {nodeId: "${@n.id}", ip: "${@n.address}", name: "node${@n.id}"}
      - sign: {nodeId: "${@n.id}", ip: "${@n.intIP}", name: "${env.domain}"}
  - sign: {nodeId: "${nodes.sqldb.master.id}", ip: 10.0.0.2, name: "${env.domain}"}
  - relay: {layer: "${targetNodes.nodeGroup}"}
actions:
  sign:
    - cmd[${this.nodeId}]: agent csr --ip ${this.ip} --name ${this.name} --id ${this.nodeId}
      user: root
  relay:
    - sign: {nodeId: "${this.layer}", ip: 10.0.0.1, name: "${env.envName}"}
    - set: {mode: fast}
    - cmd[sqldb]: agent --layer ${this.layer} --mode ${this.mode}
      user: root
"""
    assert [str(p) for p in validate(text)] == []


def test_this_is_tainted_when_any_caller_passes_other_data() -> None:
    text = """
type: update
name: x
settings:
  fields:
    - {type: string, name: names, caption: Names}
onInstall:
  - sign: {name: "${env.domain}"}
  - relay: {v: "${settings.names}"}
actions:
  sign:
    - cmd[sqldb]: agent --name ${this.name}
      user: root
  relay:
    - sign: {name: "${this.v}"}
"""
    problems = [str(p) for p in validate(text)]
    assert problems == ["actions.sign[0].cmd[sqldb]: ${this.name} in cmd text: node output and user input "
                        "reach a shell or JavaScript only as base64; write ${this.name.toBase64()}"]


def test_response_reads_right_after_cmd_script_or_call_are_fine() -> None:
    text = """
type: update
name: x
onInstall:
  - cmd[sqldb]: echo a
    user: root
  - setGlobals: {a: "${response.out.toBase64()}"}
  - script: "return {result: 0, b: 1};"
  - log: ${response.b}
  - act
  - if ('${response.out.toBase64()}' == ''):
      - log: x
actions:
  act:
    - cmd[sqldb]: echo b
      user: root
"""
    assert [str(p) for p in validate(text)] == []
