"""Frontend TLS files of the emulated ProxySQL: checked and generated with the openssl CLI.

Mirrors src/proxy_tls.cpp of ProxySQL 2.3+: three fixed file names in the datadir; at start
none -> generate a self-signed set, one or two -> refuse to start; PROXYSQL RELOAD TLS needs
all three, reads key, CA and cert (first PEM block each) and checks key/cert match.
The double never serves TLS: it only records what the "running" context would be.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

KEY_FILE = "proxysql-key.pem"
CERT_FILE = "proxysql-cert.pem"
CA_FILE = "proxysql-ca.pem"


class TLSError(Exception):
    pass


def _openssl(args):
    exe = shutil.which("openssl")
    if exe is None:
        raise TLSError("proxysql_admin_double needs the openssl command-line tool")
    proc = subprocess.run(
        [exe] + list(args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode(
        "utf-8", "replace"
    )


def paths(datadir):
    return (
        os.path.join(datadir, KEY_FILE),
        os.path.join(datadir, CERT_FILE),
        os.path.join(datadir, CA_FILE),
    )


def count_present(datadir):
    return sum(1 for p in paths(datadir) if os.access(p, os.R_OK))


def _x509(path, *opts):
    rc, out, _ = _openssl(["x509", "-in", path, "-noout"] + list(opts))
    if rc != 0:
        raise TLSError("Error on PEM_read_bio_X509() for " + path)
    return out.strip()


def _after_eq(line):
    return line.split("=", 1)[1].strip() if "=" in line else line.strip()


def load(datadir):
    """Validate the three files like PROXYSQL RELOAD TLS; return the facts of the new context."""
    key, cert, ca = paths(datadir)
    n = count_present(datadir)
    if n != 3:
        raise TLSError(f"RELOAD TLS failed: {n} TLS files are present. Expected: 3")
    rc, key_pub, _ = _openssl(["pkey", "-in", key, "-passin", "pass:", "-pubout"])
    if rc != 0 or "PUBLIC KEY" not in key_pub:
        raise TLSError("Error on PEM_read_bio_PrivateKey() for " + key)
    ca_fp = _after_eq(_x509(ca, "-fingerprint", "-sha256"))
    cert_fp = _after_eq(_x509(cert, "-fingerprint", "-sha256"))
    cert_pub = _x509(cert, "-pubkey")
    if "".join(cert_pub.split()) != "".join(key_pub.split()):
        raise TLSError("Private key does not match the public certificate")
    subject = _after_eq(_x509(cert, "-subject", "-nameopt", "RFC2253"))
    issuer = _after_eq(_x509(cert, "-issuer", "-nameopt", "RFC2253"))
    not_after = _after_eq(_x509(cert, "-enddate"))
    return {
        "cert_sha256": cert_fp.replace(":", "").lower(),
        "ca_sha256": ca_fp.replace(":", "").lower(),
        "pubkey_sha256": hashlib.sha256("".join(key_pub.split()).encode()).hexdigest(),
        "cert_subject": subject,
        "cert_issuer": issuer,
        "cert_not_after": not_after,
    }


def generate(datadir):
    """First start without any TLS file: ProxySQL writes one RSA-2048 key, a self-signed CA and
    a server certificate signed by it (same key for both), valid 3650 days."""
    key, cert, ca = paths(datadir)
    steps = [
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
        ["req", "-new", "-x509", "-key", key, "-sha256", "-days", "3650",
         "-subj", "/CN=ProxySQL_Auto_Generated_CA_Certificate", "-out", ca],
    ]
    for args in steps:
        rc, _, err = _openssl(args)
        if rc != 0:
            raise TLSError("cannot generate TLS files: " + err.strip())
    with tempfile.TemporaryDirectory() as tmp:
        csr = os.path.join(tmp, "server.csr")
        for args in (
            ["req", "-new", "-key", key, "-subj",
             "/CN=ProxySQL_Auto_Generated_Server_Certificate", "-out", csr],
            ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", key, "-set_serial", "2",
             "-days", "3650", "-sha256", "-out", cert],
        ):
            rc, _, err = _openssl(args)
            if rc != 0:
                raise TLSError("cannot generate TLS files: " + err.strip())
