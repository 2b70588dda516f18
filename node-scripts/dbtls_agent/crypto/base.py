"""The one interface both crypto backends implement, and the certificate profiles they share.

Everything crosses this interface as PEM bytes and plain dicts, so the rest of the agent never
touches a backend's own objects and either backend can be swapped in at run time. The profiles are
data, not code, so the two implementations cannot drift apart on what a certificate contains.
"""

import abc
import os
import time
from typing import Any, Callable, Dict, List

from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import DEFAULT_KEY_TYPE, KEY_TYPES, KeySpec  # noqa: F401  (re-exported)

KINDS = ("server", "client")

# Validity defaults, in days: the CA 10 years and client certificates 1 year, as the upstream add-on
# issues them. Server certificates get 825 days, not 10 years: Apple's TLS clients reject
# server certificates valid longer than 825 days even under a private root, and testssl.sh rates a
# longer life MEDIUM (10 years HIGH), which the TLS-quality scan must not find. Every command can override.
DEFAULT_DAYS = {"ca": 3650, "server": 825, "client": 365}


class Profile:
    """What a certificate of one kind must contain; built by :func:`profile_for`."""

    def __init__(self, kind: str, key_usage: List[str], eku: List[str], is_ca: bool, path_length: Any) -> None:
        self.kind = kind
        self.key_usage = key_usage
        self.eku = eku
        self.is_ca = is_ca
        self.path_length = path_length


def profile_for(kind: str, key_type: str) -> Profile:
    """The CA, server or client profile; the key usage depends on the subject key's algorithm.

    keyEncipherment only makes sense for RSA (RSA key transport); an EC key can only sign, and
    some TLS stacks reject an EC certificate that claims keyEncipherment.
    """
    if kind == "ca":
        return Profile("ca", ["keyCertSign", "cRLSign"], [], True, 0)
    usage = ["digitalSignature", "keyEncipherment"] if KeySpec.of(key_type).is_rsa else ["digitalSignature"]
    eku = {"server": ["serverAuth"], "client": ["clientAuth"]}[kind]
    return Profile(kind, usage, eku, False, None)


def new_serial() -> int:
    """A random positive serial that always encodes in exactly 16 DER bytes.

    The top bit is cleared (so the INTEGER stays positive without a leading zero byte) and the next
    one set (so it never shrinks to 15 bytes): 126 random bits, far beyond RFC 5280's 64-bit minimum,
    and unlike upstream's fixed ``01`` every re-issued certificate is told apart by its serial.
    """
    value = int.from_bytes(os.urandom(16), "big")
    return (value & ((1 << 127) - 1)) | (1 << 126)


class CryptoBackend(abc.ABC):
    """Key, CSR and certificate operations; all inputs and outputs are PEM bytes or plain dicts."""

    name = "abstract"

    @abc.abstractmethod
    def generate_key(self, key_type: str) -> bytes:
        """A new unencrypted PKCS#8 PEM private key of ``key_type`` (one of KEY_TYPES)."""

    def start_keys(self, key_types: List[str]) -> Callable[[], List[bytes]]:
        """Start making keys of ``key_types``, all at the same time; the returned function waits for
        them and gives them in order (or raises the first error).

        A node's request makes its server and client keys together; RSA key generation is nearly
        all of that work, and both backends do it outside the interpreter lock (an ``openssl``
        process, or cryptography's call into OpenSSL), so on a node with two or more cores the two
        keys cost the time of one, and the caller can read what else it needs in the meantime.
        """
        import threading

        keys = [b""] * len(key_types)
        errors = []  # type: List[BaseException]

        def make(index: int, key_type: str) -> None:
            try:
                keys[index] = self.generate_key(key_type)
            except BaseException as exc:  # handed to the caller's thread by wait()
                errors.append(exc)

        workers = [threading.Thread(target=make, args=(i, t)) for i, t in enumerate(key_types)]
        for worker in workers:
            worker.start()

        def wait() -> List[bytes]:
            for worker in workers:
                worker.join()
            if errors:
                raise errors[0]
            return keys

        return wait

    def generate_keys(self, key_types: List[str]) -> List[bytes]:
        """New keys of ``key_types``, made at the same time (see ``start_keys``), in order."""
        return self.start_keys(key_types)()

    @abc.abstractmethod
    def make_csr(self, key_pem: bytes, cn: str, sans: List[str], kind: str) -> bytes:
        """A PEM CSR for CN=``cn`` requesting ``sans`` (``DNS:``/``IP:`` strings) and ``kind``'s EKU."""

    @abc.abstractmethod
    def create_ca(self, key_pem: bytes, cn: str, days: int) -> bytes:
        """A self-signed CA certificate (PEM) with the CA profile."""

    @abc.abstractmethod
    def sign_csr(
        self, csr_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, kind: str, cn: str, sans: List[str], days: int
    ) -> bytes:
        """Issue a certificate for the CSR's public key with ``kind``'s profile.

        Subject and SANs are passed in explicitly (already checked by the caller) instead of being
        copied from the request, so the CA alone decides what it certifies.
        """

    @abc.abstractmethod
    def parse_cert(self, cert_pem: bytes) -> Dict[str, Any]:
        """Certificate fields as a dict (see ``der.parse_certificate`` for the keys)."""

    @abc.abstractmethod
    def parse_csr(self, csr_pem: bytes) -> Dict[str, Any]:
        """CSR fields as a dict, plus ``signature_valid`` (bool)."""

    def public_key_info(self, key_pem: bytes) -> Dict[str, Any]:
        """``key_type``, ``key_bits`` and ``spki_sha256`` of a private key's public half.

        Read from the key's DER when it is a plain RSA or EC key (``der.private_key_spki``), so
        matching keys and certificates does not load, and check, every private key on the node;
        any other form goes through the backend, which also rejects what is not a key.
        """
        from dbtls_agent.crypto import der

        spki = der.private_key_spki(key_pem)
        if spki is not None:
            return der.parse_spki(spki)
        return self.load_key_info(key_pem)

    @abc.abstractmethod
    def load_key_info(self, key_pem: bytes) -> Dict[str, Any]:
        """``public_key_info`` through the crypto library or tool, which loads the whole key."""

    def public_key_sha256(self, key_pem: bytes) -> str:
        """SHA-256 (hex) of the private key's SubjectPublicKeyInfo, comparable with ``spki_sha256``."""
        return str(self.public_key_info(key_pem)["spki_sha256"])

    def verify_one(self, cert_pem: bytes, root_pem: bytes) -> None:
        """Raise ``AgentError`` unless ``cert_pem`` is validly signed by the one CA ``root_pem``, in date.

        The same check for both backends: certificates read by ``der``, the issuer's name compared
        byte for byte, an RSA signature checked on the standard library (``rsapkcs1``: no library
        to load, no process to start) and an ECDSA one by the backend.
        """
        from dbtls_agent.crypto import der, rsapkcs1

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
            valid = self.verify_ecdsa(issuer["spki"], signed["signature"], signed["tbs"], scheme[1])
        if not valid:
            raise AgentError("certificate signature does not verify against the CA {}".format(root["subject"]))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for which, info in (("certificate", cert), ("CA certificate", root)):
            if not info["not_before"] <= now <= info["not_after"]:
                raise AgentError("{} {} is not valid now".format(which, info["subject"]))

    @abc.abstractmethod
    def verify_ecdsa(self, spki_der: bytes, signature: bytes, message: bytes, hash_name: str) -> bool:
        """True when the DER ECDSA ``signature`` over ``message`` with ``hash_name`` verifies with the key."""

    def verify_chain(self, cert_pem: bytes, root_pem: bytes) -> None:
        """Raise ``AgentError`` unless ``cert_pem`` is validly signed by a CA of ``root_pem`` and in date.

        ``root_pem`` may be a trust bundle (during a CA rotation root.crt holds the new root and
        the previous one): one root that verifies is enough. The error names the root whose
        subject issued the certificate, else the first one.
        """
        from dbtls_agent.crypto import der

        roots = [der.to_pem(label, body) for label, body in der.pem_blocks(root_pem) if label == "CERTIFICATE"]
        if len(roots) <= 1:
            self.verify_one(cert_pem, root_pem)
            return
        issuer = self.parse_cert(cert_pem)["issuer"]
        errors = []
        for root in roots:
            try:
                self.verify_one(cert_pem, root)
                return
            except AgentError as exc:
                errors.append((self.parse_cert(root)["subject"] == issuer, exc))
        raise next((exc for match, exc in errors if match), errors[0][1])

    def key_matches_cert(self, key_pem: bytes, cert_pem: bytes) -> bool:
        """True when the private key belongs to the certificate (same public key)."""
        return self.public_key_sha256(key_pem) == self.parse_cert(cert_pem)["spki_sha256"]
