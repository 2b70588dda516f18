"""Crypto backend on the ``cryptography`` package: no subprocesses, so a whole node set is fast.

Nodes may ship an old ``cryptography`` (Python 3.6 era), so only long-standing APIs are used and a
``backend`` argument is always passed (required before 3.1, ignored since). Certificates are read
by ``der.py``, as in the openssl backend, so both report identically. This module imports nothing
from ``cryptography``: keys live in ``pycakeys`` and building certificates and requests in
``pycabuild``, each imported by the methods that need it. With cryptography < 39 the first use of
its OpenSSL backend imports ``cryptography.x509`` and loads the bindings (about 50 ms of CPU), so a
command that only checks an RSA CA's signatures (``install-certs``) does it with ``rsapkcs1`` and
never pays that.
"""

import time
from typing import Any, Dict, List

from dbtls_agent.crypto import der, rsapkcs1
from dbtls_agent.crypto.base import CryptoBackend
from dbtls_agent.errors import AgentError


class CryptographyBackend(CryptoBackend):
    """Backend used whenever ``cryptography`` (>= 3.1) is importable on the node."""

    name = "cryptography"

    def generate_key(self, key_type: str) -> bytes:
        from dbtls_agent.crypto import pycakeys

        return pycakeys.generate(key_type)

    def make_csr(self, key_pem: bytes, cn: str, sans: List[str], kind: str) -> bytes:
        from dbtls_agent.crypto import pycabuild

        return pycabuild.make_csr(key_pem, cn, sans, kind)

    def create_ca(self, key_pem: bytes, cn: str, days: int) -> bytes:
        from dbtls_agent.crypto import pycabuild

        return pycabuild.create_ca(key_pem, cn, days)

    def sign_csr(
        self, csr_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, kind: str, cn: str, sans: List[str], days: int
    ) -> bytes:
        from dbtls_agent.crypto import pycabuild

        return pycabuild.sign_csr(csr_pem, ca_cert_pem, ca_key_pem, kind, cn, sans, days)

    def parse_cert(self, cert_pem: bytes) -> Dict[str, Any]:
        return der.parse_certificate(der.single_der(cert_pem, ("CERTIFICATE",)))

    def parse_csr(self, csr_pem: bytes) -> Dict[str, Any]:
        from dbtls_agent.crypto import pycabuild

        return pycabuild.parse_csr(csr_pem)

    def load_key_info(self, key_pem: bytes) -> Dict[str, Any]:
        from dbtls_agent.crypto import pycakeys

        return pycakeys.describe_key(pycakeys.load_key(key_pem).public_key())

    def verify_one(self, cert_pem: bytes, root_pem: bytes) -> None:
        cert_der = der.single_der(cert_pem, ("CERTIFICATE",))
        root_der = der.single_der(root_pem, ("CERTIFICATE",))
        cert, root = der.parse_certificate(cert_der), der.parse_certificate(root_der)
        if not root["is_ca"]:
            raise AgentError("root certificate {} is not a CA".format(root["subject"]))
        signed, issuer = der.signed_parts(cert_der), der.signed_parts(root_der)
        if signed["issuer"] != issuer["subject"]:
            raise AgentError("certificate {} was not issued by CA {}".format(cert["subject"], root["subject"]))
        scheme = der.SIG_SCHEMES.get(signed["signature_oid"])
        key_type = str(root["key_type"])
        if scheme is None or not key_type.startswith({"rsa": "rsa", "ec": "ecdsa"}[scheme[0]]):
            raise AgentError("unsupported signature algorithm {} for CA key {}".format(
                cert["signature_algorithm"], key_type))
        if scheme[0] == "rsa":
            numbers = der.rsa_public_numbers(issuer["spki"])
            if numbers is None or not rsapkcs1.usable_key(numbers):
                raise AgentError("CA certificate {} has an unusable RSA public key".format(root["subject"]))
            valid = rsapkcs1.verify(numbers, signed["signature"], signed["tbs"], scheme[1])
        else:
            from dbtls_agent.crypto import pycakeys

            valid = pycakeys.verify_ecdsa(issuer["spki"], signed["signature"], signed["tbs"], scheme[1])
        if not valid:
            raise AgentError("certificate signature does not verify against the CA {}".format(root["subject"]))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for which, info in (("certificate", cert), ("CA certificate", root)):
            if not info["not_before"] <= now <= info["not_after"]:
                raise AgentError("{} {} is not valid now".format(which, info["subject"]))
