"""Crypto backend on the ``cryptography`` package: no subprocesses, so a whole node set is fast.

Nodes may ship an old ``cryptography`` (Python 3.6 era), so only long-standing APIs are used and a
``backend`` argument is always passed (required before 3.1, ignored since). Certificates are read
by ``der.py``, as in the openssl backend, so both report identically; building certificates and
requests lives in ``pycabuild``, imported by the methods that build (see its docstring).
"""

from typing import Any, Dict, List

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dbtls_agent.crypto import der, pycakeys
from dbtls_agent.crypto.base import CryptoBackend, KeySpec
from dbtls_agent.errors import AgentError

# Signature algorithms a CA of this add-on (or a common tool) signs with, by OID.
_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.11": ("rsa", hashes.SHA256),
    "1.2.840.113549.1.1.12": ("rsa", hashes.SHA384),
    "1.2.840.113549.1.1.13": ("rsa", hashes.SHA512),
    "1.2.840.10045.4.3.2": ("ec", hashes.SHA256),
    "1.2.840.10045.4.3.3": ("ec", hashes.SHA384),
    "1.2.840.10045.4.3.4": ("ec", hashes.SHA512),
}


class CryptographyBackend(CryptoBackend):
    """Backend used whenever ``cryptography`` (>= 3.1) is importable on the node."""

    name = "cryptography"

    def generate_key(self, key_type: str) -> bytes:
        spec = KeySpec.parse(key_type)
        if spec.is_rsa:
            key = rsa.generate_private_key(65537, spec.bits, default_backend())
        else:
            key = ec.generate_private_key(ec.SECP256R1(), default_backend())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pycakeys.KEY_CACHE[pem] = key  # the CSR is made from it next: loading it back would check it again
        return pem

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
        kind_and_hash = _SIGNATURE_HASHES.get(signed["signature_oid"])
        try:
            public_key = serialization.load_der_public_key(issuer["spki"], default_backend())
        except (ValueError, TypeError):
            raise AgentError("CA certificate {} has an unreadable public key".format(root["subject"])) from None
        try:
            if kind_and_hash is not None and kind_and_hash[0] == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signed["signature"], signed["tbs"], padding.PKCS1v15(), kind_and_hash[1]())
            elif kind_and_hash is not None and kind_and_hash[0] == "ec" and isinstance(public_key, ec.EllipticCurvePublicKey):
                public_key.verify(signed["signature"], signed["tbs"], ec.ECDSA(kind_and_hash[1]()))
            else:
                raise AgentError("unsupported signature algorithm {} for CA key {}".format(
                    cert["signature_algorithm"], root["key_type"]))
        except InvalidSignature:
            raise AgentError("certificate signature does not verify against the CA {}".format(root["subject"])) from None
        now = pycakeys.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        for which, info in (("certificate", cert), ("CA certificate", root)):
            if not info["not_before"] <= now <= info["not_after"]:
                raise AgentError("{} {} is not valid now".format(which, info["subject"]))
