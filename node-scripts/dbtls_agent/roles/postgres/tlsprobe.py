"""Prove what a PostgreSQL-protocol server (PostgreSQL or Pgpool-II) really serves over TLS.

``SHOW ssl`` says ``on`` even when the server failed to load its files, and Pgpool starts without TLS
on bad files, so the only honest check is a handshake. Python's ``ssl.get_server_certificate`` cannot
do PostgreSQL's protocol upgrade (an 8-byte SSLRequest answered by one byte, ``S`` or ``N``), so this
module sends it itself, then wraps the socket and reports the certificate actually served.
"""

import hashlib
import socket
import ssl
import struct
from typing import Any, Dict, Optional

from dbtls_agent.errors import AgentError

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def pem_sha256(pem: bytes) -> str:
    """SHA-256 of the first certificate in a PEM file, as lower-case hex of its DER bytes."""
    text = pem.decode("ascii", "replace")
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[begin:end])).hexdigest()


def make_context(cafile: Optional[str], verify_host: bool = True) -> ssl.SSLContext:
    """A client context that verifies the chain against ``cafile`` (and the name, like verify-full)."""
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = verify_host
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def probe(host: str, port: int = 5432, cafile: Optional[str] = None, verify_host: bool = True,
          timeout: float = 5.0) -> Dict[str, Any]:
    """Handshake with ``host:port``; never raises, the result says what went wrong.

    Result keys: ok, host, port, tls (server answered 'S'), protocol, cipher, sha256, error.
    """
    result = {"ok": False, "host": host, "port": port, "tls": False, "protocol": None,
              "cipher": None, "sha256": None, "error": None}  # type: Dict[str, Any]
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        result["error"] = "cannot connect to {}:{}: {}".format(host, port, exc.strerror or exc)
        return result
    try:
        raw.sendall(SSL_REQUEST)
        answer = raw.recv(1)
        if answer != b"S":
            result["error"] = "server at {}:{} does not offer TLS (answered {!r})".format(host, port, answer)
            return result
        result["tls"] = True
        context = make_context(cafile, verify_host)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            result["protocol"] = tls.version()
            cipher = tls.cipher()
            result["cipher"] = cipher[0] if cipher else None
            result["sha256"] = hashlib.sha256(der).hexdigest() if der else None
            result["ok"] = True
            try:
                tls.sendall(struct.pack("!cI", b"X", 4))  # Terminate, so the server logs no EOF
            except OSError:
                pass
    except ssl.SSLError as exc:
        result["error"] = "TLS handshake with {}:{} failed: {}".format(host, port, exc.reason or exc)
    except ssl.CertificateError as exc:  # Python < 3.7 reports name mismatches this way
        result["error"] = "certificate of {}:{} does not match: {}".format(host, port, exc)
    except OSError as exc:
        result["error"] = "TLS handshake with {}:{} failed: {}".format(host, port, exc.strerror or exc)
    finally:
        try:
            raw.close()
        except OSError:
            pass
    return result


def check_served(host: str, port: int, cafile: str, expected_sha256: str, timeout: float = 5.0) -> Dict[str, Any]:
    """Probe with full verification and also demand the expected certificate fingerprint."""
    result = probe(host, port, cafile, True, timeout)
    result["expected_sha256"] = expected_sha256
    if result["ok"] and result["sha256"] != expected_sha256:
        result["ok"] = False
        result["error"] = "{}:{} serves a different certificate (sha256 {}) than {}".format(
            host, port, result["sha256"], expected_sha256)
    return result


def served_names(address: str, port: int, cafile: str, timeout: float = 5.0) -> Dict[str, Any]:
    """CN, DNS and IP SANs of the certificate served at ``address:port``, chain verified against
    ``cafile`` (no name check: finding the names is the point); AgentError when that fails."""
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise AgentError("cannot connect to {}:{}: {}".format(address, port, exc.strerror or exc)) from None
    try:
        raw.sendall(SSL_REQUEST)
        if raw.recv(1) != b"S":
            raise AgentError("{}:{} does not offer TLS".format(address, port))
        with make_context(cafile, verify_host=False).wrap_socket(raw, server_hostname=None) as tls:
            cert = tls.getpeercert() or {}
            try:
                tls.sendall(struct.pack("!cI", b"X", 4))
            except OSError:
                pass
    except (ssl.SSLError, OSError) as exc:
        raise AgentError("TLS handshake with {}:{} failed: {}".format(
            address, port, getattr(exc, "reason", None) or exc)) from None
    finally:
        raw.close()
    cn = next((value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"), None)
    sans = cert.get("subjectAltName", ())
    return {"cn": cn, "dns": [v for k, v in sans if k == "DNS"],
            "ips": [v.strip() for k, v in sans if k == "IP Address"]}
