"""Every script the manifest runs on a node passes ``shellcheck``.

The scripts are read out of the built manifest (every ``cmd[...]`` text), so each variant a template
renders to is checked exactly as a node receives it. The platform replaces its placeholders
(``${nodes.sqldb.master.id}``, ``${@n.id}``, ``${this.step}``, ``${globals.x.toBase64()}``) with
text before bash sees the script; they are not shell expansions, so each becomes the word
``placeholder`` here first.

Checks left out, and why:

* SC1091 (not following a sourced file): ``/etc/jelastic/metainf.conf`` exists on the nodes only.
* SC2043, SC2050, SC2194 (a loop over one word, a constant test, a constant ``case`` word): what
  is constant is a platform placeholder, which is constant by design: the manifest branches on
  ``${this.step}`` or ``${this.mode}`` inside the script because the value is only known at run
  time on the platform side.
* SC2015 in ``deferred`` only: ``rm -rf $D && mkdir $D || { echo ...; exit 1; }`` means "either
  step failing is the error", which is what ``A && B || C`` does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from dbtls.addon import shell
from dbtls.addon.manifest import build_manifest
from support import require

PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
EXCLUDED = "SC1091,SC2043,SC2050,SC2194"
#: Script-specific exclusions, found by the marker the script contains.
EXCLUDED_IN = {"DBTLS_STEP": "SC2015"}


def node_scripts(tree: Any) -> set[str]:
    """Every ``cmd[...]`` text in a manifest (a dict/list tree)."""
    found: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(key, str) and key.startswith("cmd[") and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= node_scripts(value)
    elif isinstance(tree, list):
        for item in tree:
            found |= node_scripts(item)
    return found


def shellcheck(script: str) -> str:
    """shellcheck's findings for one node script (empty when clean)."""
    excluded = ",".join([EXCLUDED] + [codes for marker, codes in EXCLUDED_IN.items() if marker in script])
    text = "#!/bin/bash\n" + PLACEHOLDER.sub("placeholder", script) + "\n"
    run = subprocess.run(["shellcheck", "--shell=bash", "--format=gcc", f"--exclude={excluded}", "-"],
                         input=text, capture_output=True, text=True, timeout=60)
    return run.stdout.strip()


@pytest.fixture(scope="module")
def scripts() -> list[str]:
    require(shutil.which("shellcheck"), "shellcheck is not installed (scripts/install-sysdeps.sh installs it)")
    return sorted(node_scripts(build_manifest("0" * 64, None)))


def test_the_manifest_carries_the_scripts(scripts):
    # Every template is reached: the ones with variants more than once.
    assert len(scripts) >= 30
    assert any(shell.AGENT_DIR in s and "sha256sum" in s for s in scripts)
    assert any("DBTLS_STEP" in s for s in scripts)


def test_every_node_script_passes_shellcheck(scripts):
    findings = {s.splitlines()[-1][:70]: found for s in scripts if (found := shellcheck(s))}
    assert not findings, "\n".join(f"script ending {tail!r}:\n{found}" for tail, found in findings.items())


def test_shellcheck_finds_a_real_mistake():
    require(shutil.which("shellcheck"), "shellcheck is not installed (scripts/install-sysdeps.sh installs it)")
    assert "SC2086" in shellcheck('rc=$(cat /run/x)\nexit $rc')
