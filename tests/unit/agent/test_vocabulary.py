"""The install form offers exactly the key types and TLS minimums the agent accepts.

The form lives in the generated manifest.jps (what the platform shows); the agent's words are in
:mod:`dbtls_agent.vocab`. A value only one side knows is either an option that fails on the node or
one the user can never choose.
"""

from pathlib import Path

import yaml

from dbtls_agent import cli, options, vocab
from dbtls_agent.crypto import KEY_TYPES

MANIFEST = Path(__file__).resolve().parents[3] / "manifest.jps"


def _form_field(name: str) -> dict:
    manifest = yaml.safe_load(MANIFEST.read_text())
    fields = manifest["settings"]["main"]["fields"]
    found = [f for f in fields if f.get("name") == name]
    assert len(found) == 1, f"the install form has {len(found)} fields named {name}"
    return found[0]


def test_form_key_types_are_the_agents():
    field = _form_field("keyType")
    assert tuple(field["values"]) == vocab.KEY_TYPES
    assert field["default"] == vocab.DEFAULT_KEY_TYPE


def test_form_min_tls_values_are_the_agents():
    field = _form_field("minTls")
    assert tuple(field["values"]) == vocab.MIN_TLS_VERSIONS
    assert field["default"] == vocab.DEFAULT_MIN_TLS


def test_the_agent_uses_one_vocabulary():
    assert KEY_TYPES is vocab.KEY_TYPES and options.MIN_TLS is vocab.MIN_TLS_VERSIONS
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("enable", "restart-expected"):
        min_tls = next(a for a in sub.choices[command]._actions if a.dest == "min_tls")
        assert tuple(min_tls.choices) == vocab.MIN_TLS_VERSIONS and min_tls.default == vocab.DEFAULT_MIN_TLS
