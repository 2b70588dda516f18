"""``dbtls build``: reproducible agent zipapp, YAML 1.1-safe output, valid manifests, --check."""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

import yaml
from typer.testing import CliRunner

from dbtls.addon import build_outputs, build_zipapp, write_outputs
from dbtls.addon.project import repo_root
from dbtls.addon.yamlout import dump
from dbtls.cli import app
from dbtls.jps.validate import validate

ROOT = repo_root()
AGENT_DIR = ROOT / "node-scripts" / "dbtls_agent"


def _copy_agent(dst: Path) -> Path:
    target = dst / "node-scripts" / "dbtls_agent"
    shutil.copytree(AGENT_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def test_zipapp_is_byte_for_byte_reproducible(tmp_path):
    first = build_zipapp(AGENT_DIR)
    copy = _copy_agent(tmp_path)
    for i, path in enumerate(sorted(copy.rglob("*"))):  # other mtimes, other permissions
        os.utime(path, (1_000_000 + i, 2_000_000 + i))
        if path.is_file():
            path.chmod(0o600 if i % 2 else 0o755)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"junk")
    second = build_zipapp(copy)
    assert first.data == second.data and first.sha256 == second.sha256


def test_zipapp_runs_the_agent_and_has_fixed_metadata(tmp_path):
    app_ = build_zipapp(AGENT_DIR)
    assert app_.data.startswith(b"#!/usr/bin/env python3\n")
    path = tmp_path / "a.pyz"
    path.write_bytes(app_.data)
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    assert infos[0].filename == "__main__.py"
    assert [i.filename for i in infos[1:]] == sorted(i.filename for i in infos[1:])
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert not any("__pycache__" in i.filename for i in infos)


def test_yaml_quotes_yaml11_booleans_and_keeps_scripts_as_block_scalars():
    data = {"a": "on", "b": "off", "c": "yes", "d": "no", "e": "y", "f": True,
            "script": "set -e\necho $X\n", "g": "@i"}
    text = dump(data)
    for word in ("on", "off", "yes", "no", "y"):
        assert re.search(rf": '{word}'$", text, re.M), word
    assert "script: |" in text
    assert yaml.safe_load(text) == data


MANIFESTS = ("manifest.jps", "marketplace/dbtls-postgres.jps", "marketplace/dbtls-mysql.jps")


def test_generated_manifests_validate_and_have_no_shell_braces():
    outputs = {o.path: o.data for o in build_outputs(ROOT)}
    assert set(outputs) >= {*MANIFESTS, "node-scripts/dist/dbtls-agent.pyz", "marketplace/dbtls.svg"}
    sha = build_zipapp(AGENT_DIR).sha256
    for path in MANIFESTS:
        text = outputs[path].decode()
        assert validate(text) == [], path
        assert not re.search(r"\$\{[A-Z_][A-Z0-9_]*[:}]", text), path  # ${VAR} is the engine's
        assert "baseUrl:" not in text, path  # the platform derives it from the import URL
    manifest = yaml.safe_load(outputs["manifest.jps"])
    fetch = manifest["actions"]["fetchAgent"][0]["cmd[${this}]"]
    assert f"want={sha}" in fetch
    assert manifest["type"] == "update" and manifest["id"] == "dbtls"
    assert [b["caption"] for b in manifest["buttons"]] == [
        "Re-issue certificates", "Renew due certificates", "Configuration Tutorial", "Certificate status",
        "Check before enabling TLS", "Client connection kit", "Require client certificate for a user"]
    launchers = [yaml.safe_load(outputs[p]) for p in MANIFESTS[1:]]
    # Not the ids of the platform's own add-ons (postgres-ssl, mysql-based-ssl).
    assert [m["id"] for m in launchers] == ["dbtls-postgres", "dbtls-mysql"]


def test_target_nodes_list_the_documented_aliases():
    manifest = yaml.safe_load(next(o.data for o in build_outputs(ROOT) if o.path == "manifest.jps"))
    types = set(manifest["targetNodes"]["nodeType"])
    # selecting-containers.md: canonical names and their aliases.
    assert {"mariadb-dockerized", "mariadb10", "mariadb1010", "mariadb106", "mariadb107", "mariadb104",
            "mariadb109", "mariadb108", "mariadb103", "mariadb105", "mysql", "mysql5", "mysql8",
            "perconadb", "percona5.7", "percona8", "percona5", "percona8.0", "postgresql", "postgres11",
            "postgres12", "postgres13", "postgres14", "pgpool2", "pgpool2-4", "proxysql"} <= types


def test_base_url_only_when_pinned():
    a = build_outputs(ROOT, "https://example.com/x/")
    b = build_outputs(ROOT, "https://example.com/x")
    assert [(o.path, o.data) for o in a] == [(o.path, o.data) for o in b]
    pinned = {o.path: yaml.safe_load(o.data) for o in a if o.path.endswith(".jps")}
    assert {m["baseUrl"] for m in pinned.values()} == {"https://example.com/x"}


def test_check_detects_drift(tmp_path):
    _copy_agent(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["build", "--root", str(tmp_path)]).exit_code == 0
    ok = runner.invoke(app, ["build", "--check", "--root", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    manifest = tmp_path / "manifest.jps"
    manifest.write_text(manifest.read_text() + "# edited\n")
    bad = runner.invoke(app, ["build", "--check", "--root", str(tmp_path)])
    assert bad.exit_code == 1 and "manifest.jps: differs" in bad.output
    (tmp_path / "node-scripts" / "dbtls_agent" / "extra.py").write_text("X = 1\n")
    write_outputs(tmp_path, build_outputs(tmp_path))
    assert runner.invoke(app, ["build", "--check", "--root", str(tmp_path)]).exit_code == 0


def test_validate_command_prints_one_line_per_problem(tmp_path):
    bad = ROOT / "tests" / "corpus" / "jps" / "failing" / "undefined-action.jps"
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert all(": " in line for line in result.output.strip().splitlines())


def _scripts(node):
    """Every ``cmd`` script anywhere in a manifest's action tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("cmd") and isinstance(value, str):
                yield value
            else:
                yield from _scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _scripts(item)


def test_passwords_cross_nodes_only_sealed():
    """No script hands cleartext passwords on: enable gets sealed blobs, seal gets a public key."""
    manifest = yaml.safe_load(next(o.data for o in build_outputs(ROOT) if o.path == "manifest.jps"))
    scripts = list(_scripts(manifest))
    assert scripts
    assert not [s for s in scripts if "--passwords-stdin" in s or "getPswd" in s]
    feeding = [s for s in scripts if "--passwords-sealed" in s]
    assert feeding and all("${globals.sealed.toBase64()}" in s and "${response.out" not in s for s in feeding)
    sealing = [s for s in scripts if "secrets seal" in s]
    assert sealing and all("${globals.sealTo.toBase64()}" in s and "${response.out" not in s for s in sealing)
    assert "secrets recipient" in "\n".join(scripts)


def test_node_output_and_form_values_reach_scripts_only_as_base64():
    """In a cmd, anything a node printed or a person typed is the platform's base64 of it."""
    manifest = yaml.safe_load(next(o.data for o in build_outputs(ROOT) if o.path == "manifest.jps"))
    for script in _scripts(manifest):
        for ref in re.findall(r"\$\{((?:response|globals|settings|event)\.[^}]*)\}", script):
            assert ref.endswith(".toBase64()"), (ref, script[:200])
        last = [line for line in script.strip().splitlines() if line.strip()][-1].strip()
        assert not last.startswith("#") and not re.fullmatch(r"[A-Z_]+", last), last
