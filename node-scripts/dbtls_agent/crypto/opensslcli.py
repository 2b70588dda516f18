"""Crypto backend on the ``openssl`` command, for nodes without the ``cryptography`` package.

Written for the oldest openssl a platform node may have (1.0.2 on CentOS 7): extensions come from
generated config files (no ``-addext``), serials from ``-set_serial``, and certificates are decoded
by ``der.py`` rather than by scraping ``-text``. Keys and configs are handed over as 0600 files in a
private 0700 temporary directory, or through stdin, never on the command line.
"""

import shutil
import subprocess
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio
from dbtls_agent.crypto import der
from dbtls_agent.crypto.base import CryptoBackend, KeySpec, new_serial, profile_for
from dbtls_agent.crypto.names import check_cn
from dbtls_agent.errors import AgentError


def _extension_lines(kind: str, key_type: str, sans: List[str]) -> List[str]:
    profile = profile_for(kind, key_type)
    if profile.is_ca:
        lines = ["basicConstraints = critical, CA:TRUE, pathlen:{}".format(profile.path_length)]
    else:
        lines = ["basicConstraints = critical, CA:FALSE"]
    lines.append("keyUsage = critical, " + ", ".join(profile.key_usage))
    if profile.eku:
        lines.append("extendedKeyUsage = " + ", ".join(profile.eku))
    if sans:
        lines.append("subjectAltName = " + ", ".join(sans))
    lines += ["subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid:always"]
    return lines


def _req_config(cn: str, request_lines: List[str]) -> bytes:
    """A self-contained ``req`` config, so the node's own openssl.cnf cannot change the result.

    ``utf8only`` matches the UTF8String encoding the cryptography backend uses for the CN.
    """
    lines = ["[ req ]", "distinguished_name = dn", "prompt = no", "string_mask = utf8only"]
    if request_lines:
        lines.append("req_extensions = req_ext")
    lines += ["[ dn ]", "CN = " + check_cn(cn)]
    if request_lines:
        lines += ["[ req_ext ]"] + request_lines
    lines += ["[ ext ]"]
    return ("\n".join(lines) + "\n").encode("ascii")


class OpensslBackend(CryptoBackend):
    """Backend that shells out to ``openssl``; chosen when ``cryptography`` is not importable."""

    name = "openssl"

    def __init__(self, binary: Optional[str] = None) -> None:
        self.binary = binary or shutil.which("openssl") or ""
        if not self.binary:
            raise AgentError("neither the python 'cryptography' package nor the 'openssl' command is available")

    def _run(self, args: List[str], stdin: Optional[bytes] = None, check: bool = True) -> "subprocess.CompletedProcess[bytes]":
        proc = subprocess.run(
            [self.binary] + args,
            input=stdin if stdin is not None else b"",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if check and proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            raise AgentError("openssl {} failed: {}".format(args[0], lines[-1] if lines else "exit {}".format(proc.returncode)))
        return proc

    def generate_key(self, key_type: str) -> bytes:
        spec = KeySpec.parse(key_type)
        if spec.is_rsa:
            args = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:{}".format(spec.bits)]
        else:
            # named_curve: without it openssl 1.0.2 writes explicit curve parameters that many TLS
            # libraries refuse.
            args = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + str(spec.curve), "-pkeyopt",
                    "ec_param_enc:named_curve"]
        return self._run(args).stdout

    def make_csr(self, key_pem: bytes, cn: str, sans: List[str], kind: str) -> bytes:
        request = []
        if sans:
            request.append("subjectAltName = " + ", ".join(sans))
        request.append("extendedKeyUsage = " + ", ".join(profile_for(kind, "rsa").eku))
        with fsio.PrivateDir("dbtls-openssl-") as work:
            key = work.file("key.pem", key_pem)
            config = work.file("req.cnf", _req_config(cn, request))
            return self._run(["req", "-new", "-sha256", "-key", key, "-config", config]).stdout

    def create_ca(self, key_pem: bytes, cn: str, days: int) -> bytes:
        key_type = self.public_key_info(key_pem)["key_type"]
        with fsio.PrivateDir("dbtls-openssl-") as work:
            key = work.file("key.pem", key_pem)
            config = work.file("req.cnf", _req_config(cn, []) + self._ext_section("ca", key_type, []))
            args = ["req", "-new", "-x509", "-sha256", "-key", key, "-config", config, "-extensions", "ext"]
            args += ["-days", str(days), "-set_serial", hex(new_serial())]
            return self._run(args).stdout

    @staticmethod
    def _ext_section(kind: str, key_type: str, sans: List[str]) -> bytes:
        return ("\n".join(_extension_lines(kind, key_type, sans)) + "\n").encode("ascii")

    def sign_csr(
        self, csr_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, kind: str, cn: str, sans: List[str], days: int
    ) -> bytes:
        request = der.parse_csr(der.single_der(csr_pem, ("CERTIFICATE REQUEST",)))
        # x509 -req copies the request's subject verbatim and cannot replace it on openssl 1.0.2,
        # so the subject must already be exactly what we certify.
        if request["cn"] != cn or request["subject_attributes"] != 1:
            raise AgentError("certificate request subject must be exactly CN={}".format(cn))
        with fsio.PrivateDir("dbtls-openssl-") as work:
            csr = work.file("req.pem", csr_pem)
            ca_cert = work.file("ca.crt", ca_cert_pem)
            ca_key = work.file("ca.key", ca_key_pem)
            ext = work.file("ext.cnf", b"[ ext ]\n" + self._ext_section(kind, request["key_type"], sans))
            args = ["x509", "-req", "-sha256", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key]
            args += ["-set_serial", hex(new_serial()), "-days", str(days), "-extfile", ext, "-extensions", "ext"]
            return self._run(args).stdout

    def parse_cert(self, cert_pem: bytes) -> Dict[str, Any]:
        return der.parse_certificate(der.single_der(cert_pem, ("CERTIFICATE",)))

    def parse_csr(self, csr_pem: bytes) -> Dict[str, Any]:
        info = der.parse_csr(der.single_der(csr_pem, ("CERTIFICATE REQUEST",)))
        proc = self._run(["req", "-verify", "-noout"], stdin=csr_pem, check=False)
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace").lower()
        # openssl 1.0.2 exits 0 even when the check fails, so the message decides.
        info["signature_valid"] = proc.returncode == 0 and "ok" in output and "fail" not in output
        return info

    def load_key_info(self, key_pem: bytes) -> Dict[str, Any]:
        # -passin with an empty password makes an encrypted key fail instead of prompting on a tty.
        proc = self._run(["pkey", "-pubout", "-outform", "DER", "-passin", "pass:"], stdin=key_pem, check=False)
        if proc.returncode != 0 or not proc.stdout:
            raise AgentError("private key is not a readable unencrypted PEM key")
        return der.parse_spki(proc.stdout)

    def verify_ecdsa(self, spki_der: bytes, signature: bytes, message: bytes, hash_name: str) -> bool:
        # ``dgst -verify`` exists in every openssl a node may have (1.0.2 included) and prints
        # "Verified OK" only for a good signature; the key, signature and message go in as files.
        with fsio.PrivateDir("dbtls-openssl-") as work:
            key_file = work.file("ca.pub", der.to_pem("PUBLIC KEY", spki_der))
            signature_file = work.file("signature", signature)
            message_file = work.file("message", message)
            proc = self._run(["dgst", "-" + hash_name, "-verify", key_file, "-signature", signature_file, message_file],
                             check=False)
        return proc.returncode == 0 and b"Verified OK" in proc.stdout
