"""The two key containers a client kit needs besides PEM: PKCS#8 DER and PKCS#12.

pgJDBC reads a client key only as unencrypted PKCS#8 DER (``.pk8``); Java tools and most GUI clients
take a PKCS#12 file. Each conversion exists for both crypto backends, like everything else the agent
does with keys: ``cryptography`` in-process, else the ``openssl`` command, which gets the key on
stdin or in a 0600 file of a private temporary folder, and the PKCS#12 password through such a
file (``-passout file:``), never on its command line.
"""

import subprocess
from typing import List

from dbtls_agent import fsio
from dbtls_agent.crypto import CryptoBackend, der
from dbtls_agent.errors import AgentError


def pkcs8_der(backend: CryptoBackend, key_pem: bytes) -> bytes:
    """The unencrypted PKCS#8 DER form of a PEM private key (any of the PEM key formats)."""
    blocks = der.pem_blocks(key_pem)
    if len(blocks) == 1 and blocks[0][0] == "PRIVATE KEY":
        return blocks[0][1]  # already PKCS#8: the PEM body is the DER
    if backend.name == "cryptography":
        from cryptography.hazmat.backends import default_backend
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(key_pem, None, default_backend())
        except (ValueError, TypeError):
            raise AgentError("the client key is not a readable unencrypted PEM private key") from None
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return _openssl(backend, ["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-passin", "pass:"], key_pem,
                    "convert the client key to PKCS#8")


def pkcs12(backend: CryptoBackend, key_pem: bytes, cert_pem: bytes, root_pem: bytes, name: str,
           password: bytes) -> bytes:
    """A PKCS#12 file holding the key, its certificate and the root, encrypted with ``password``."""
    if backend.name == "cryptography":
        from cryptography import x509
        from cryptography.hazmat.backends import default_backend
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12 as p12

        try:
            key = serialization.load_pem_private_key(key_pem, None, default_backend())
            cert = x509.load_pem_x509_certificate(cert_pem, default_backend())
            roots = [x509.load_pem_x509_certificate(der.to_pem(label, body), default_backend())
                     for label, body in der.pem_blocks(root_pem) if label == "CERTIFICATE"]
        except (ValueError, TypeError):
            raise AgentError("cannot read the client key, certificate or root for the PKCS#12 file") from None
        return p12.serialize_key_and_certificates(name.encode("utf-8"), key, cert, roots,
                                                  serialization.BestAvailableEncryption(password))
    with fsio.PrivateDir("dbtls-kit-") as tmp:
        roots_path = tmp.file("root.crt", root_pem)
        key_path = tmp.file("client.key", key_pem)
        password_path = tmp.file("password", password)
        # stdin carries the certificate; -name is the friendly name (the user name, no secret).
        return _openssl(backend, ["pkcs12", "-export", "-inkey", key_path, "-certfile", roots_path, "-name", name,
                                  "-passout", "file:" + password_path], cert_pem, "write the PKCS#12 file")


def _openssl(backend: CryptoBackend, args: List[str], stdin: bytes, what: str) -> bytes:
    binary = getattr(backend, "binary", None)  # type: Optional[str]
    if not binary:
        raise AgentError("cannot {}: no openssl command".format(what))
    proc = subprocess.run([binary] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0 or not proc.stdout:
        lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise AgentError("cannot {}: openssl {}".format(what, lines[-1] if lines else "exit {}".format(proc.returncode)))
    return proc.stdout
