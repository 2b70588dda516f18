"""The install form offers exactly the key types and TLS minimums the agent accepts.

The form lives in the generated manifest.jps (what the platform shows); the agent's words are in
:mod:`dbtls_agent.vocab`. A value only one side knows is either an option that fails on the node or
one the user can never choose.
"""

from pathlib import Path

import pytest
import yaml

from dbtls_agent import cli, options, vocab
from dbtls_agent.crypto import KEY_TYPES
from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import KeySpec

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


def _option(path, dest):
    parser = cli.build_parser()
    for name in path:
        sub = next(a for a in parser._actions if a.dest and a.dest.endswith("command") and a.choices)
        parser = sub.choices[name]
    return next(a for a in parser._actions if a.dest == dest)


@pytest.mark.parametrize("path, dest, values", [
    (("ca", "init"), "key_type", vocab.KEY_TYPES), (("csr",), "key_type", vocab.KEY_TYPES),
    (("options", "save"), "key_type", vocab.KEY_TYPES), (("options", "save"), "min_tls", vocab.MIN_TLS_VERSIONS),
])
def test_every_key_type_and_min_tls_option_takes_the_vocabulary_as_choices(path, dest, values):
    assert tuple(_option(path, dest).choices) == values


@pytest.mark.parametrize("name, algorithm, bits, curve", [
    ("rsa2048", "rsa", 2048, None), ("rsa4096", "rsa", 4096, None), ("ecdsa-p256", "ecdsa", 256, "P-256"),
])
def test_a_key_type_is_parsed_once_into_a_spec(name, algorithm, bits, curve):
    spec = KeySpec.parse(name)
    assert (spec.name, spec.algorithm, spec.bits, spec.curve) == (name, algorithm, bits, curve)
    assert spec == KeySpec.of(name) and spec.is_rsa is (algorithm == "rsa") and spec.is_ecdsa is (algorithm == "ecdsa")


def test_parse_refuses_what_the_agent_does_not_generate_but_of_reads_any_reported_key():
    for name in ("rsa1024", "ecdsa-p384", "ed25519", "RSA2048", ""):
        with pytest.raises(AgentError, match="unknown key type .* \\(choose rsa2048, rsa3072, rsa4096, ecdsa-p256\\)"):
            KeySpec.parse(name)
    assert (KeySpec.of("rsa1024").algorithm, KeySpec.of("rsa1024").bits) == ("rsa", 1024)
    assert (KeySpec.of("ecdsa-p384").curve, KeySpec.of("ec-1.2.3").algorithm) == ("P-384", "ecdsa")
    assert (KeySpec.of("ed25519").algorithm, KeySpec.of("unknown-1.2").is_rsa) == ("other", False)


def test_tls_versions_of_a_minimum():
    assert vocab.tls_versions("TLSv1.2") is None and vocab.tls_versions(None) is None
    assert vocab.tls_versions("TLSv1.3") == vocab.tls_versions("1.3") == ["TLSv1.3"]
    with pytest.raises(AgentError, match="--min-tls must be 1.2 or 1.3"):
        vocab.tls_versions("TLSv1.1")
