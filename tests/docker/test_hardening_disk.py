"""A full disk during a write leaves the old files intact.

The simulated nodes run unprivileged (no mount inside them), so the certificate folder is a small
tmpfs mounted on this host (root needed). A re-issue's install-certs and a config change through
the change set run against it after the disk is filled: each must fail with a one-line "No space
left" error, the previous certificate, key and config bytes must be unchanged, and no temporary
file may be left behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbtls_agent import fsio, state
from dbtls_agent.certs import ca as certs_ca
from dbtls_agent.certs import node as certs_node
from dbtls_agent.certs.layout import CertLayout
from dbtls_agent.crypto import DEFAULT_DAYS, get_backend
from dbtls_agent.errors import AgentError
from support import require


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    require(proc.returncode == 0, f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def fill(root: Path) -> None:
    """Write filler until the filesystem is full (bounded: a tmpfs of known size)."""
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(10000):
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "filler"}


def test_install_certs_on_a_full_disk_keeps_the_old_files(small_disk, tmp_path):
    backend = get_backend(None)
    ca = CertLayout(str(tmp_path / "ca-node"))
    certs_ca.init_ca(ca, backend, "disk CA", "rsa2048", 30, False)
    node = CertLayout(str(small_disk / "SSL-TLS"))
    info = {"hostname": "node1", "fqdn": "node1.env.test", "env_domain": "env.test", "addresses": ["10.0.0.1"]}

    def issue(rotate: bool) -> bytes:
        req = certs_node.make_request(node, backend, "server", None, [], "rsa2048", rotate, info)
        signed = certs_ca.sign_requests(ca, backend, req["csr"], "auto", dict(DEFAULT_DAYS))
        return signed["certificates"][0]["certificate"].encode() + signed["ca"]["certificate"].encode()

    certs_node.install(node, backend, issue(False), None)
    bundle = issue(True)  # the re-issue's new key waits in .pending/ for its certificate
    before = tree(small_disk)
    fill(small_disk)
    with pytest.raises(AgentError) as caught:
        certs_node.install(node, backend, bundle, None)
    assert "No space left" in str(caught.value) and "\n" not in str(caught.value)
    after = tree(small_disk)
    assert after == before  # old server.key/server.crt/root.crt and the pending key, byte for byte
    assert not [p for p in after if p.endswith(".tmp")]
    (small_disk / "filler").unlink()
    certs_node.install(node, backend, bundle, None)  # with space again the same input finishes the job
    assert Path(node.cert_path("server")).read_bytes() in bundle


def test_config_write_on_a_full_disk_keeps_the_original(small_disk):
    conf = small_disk / "postgresql.conf"
    original = b"# platform config\nport = 5432\n" + b"#" * 2000 + b"\n"
    conf.write_bytes(original)
    cert_dir = str(small_disk / "SSL-TLS")
    fsio.ensure_dir(cert_dir, 0o711)
    cs = state.ChangeSet(cert_dir, "postgres")
    cs.backup(str(conf))
    fill(small_disk)
    with pytest.raises(AgentError) as caught:
        cs.write(str(conf), original + b"ssl = on\n" * 3000)
    assert "No space left" in str(caught.value)
    assert conf.read_bytes() == original
    assert not [p for p in tree(small_disk) if p.endswith(".tmp")]
    assert state.ChangeSet(cert_dir, "postgres").original(str(conf)) == original  # the backup survived too
