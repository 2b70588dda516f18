"""Crypto backend on the ``cryptography`` package: no subprocesses, so a whole node set is fast.

Nodes may ship an old ``cryptography`` (Python 3.6 era), so only long-standing APIs are used and a
``backend`` argument is always passed (required before 3.1, ignored since). Certificates are read
by ``der.py``, as in the openssl backend, so both report identically. This module imports nothing
from ``cryptography``: keys live in ``pycakeys`` and building certificates and requests in
``pycabuild``, each imported by the methods that need it. With cryptography < 39 the first use of
its OpenSSL backend imports ``cryptography.x509`` and loads the bindings (about 50 ms of CPU); a
command that only checks an RSA CA's signatures (``install-certs``) checks them with ``rsapkcs1``
(``CryptoBackend.verify_one``) and never pays that.
"""

from typing import Any, Dict, List

from dbtls_agent.crypto import der
from dbtls_agent.crypto.base import CryptoBackend


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

    def verify_ecdsa(self, spki_der: bytes, signature: bytes, message: bytes, hash_name: str) -> bool:
        from dbtls_agent.crypto import pycakeys

        return pycakeys.verify_ecdsa(spki_der, signature, message, hash_name)
