"""Report every certificate under the certificate directory, for ``status`` and for people.

Never fails on one bad file: a corrupt or missing certificate is reported in its entry, because the
point of inspecting is usually to find out what is wrong.
"""

import datetime
import os
from typing import Any, Dict, Optional

from dbtls_agent import fsio
from dbtls_agent.certs.layout import CertLayout
from dbtls_agent.crypto import CryptoBackend, der
from dbtls_agent.errors import AgentError

_FIELDS = (
    "subject",
    "cn",
    "sans",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "sha256",
    "key_type",
    "is_ca",
    "key_usage",
    "extended_key_usage",
)


def days_left(not_after: str, now: Optional[datetime.datetime] = None) -> int:
    """Whole days until expiry (negative once expired), from the ISO form the backends report."""
    end = datetime.datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ")
    current = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return (end - current).days


def _entry(backend: CryptoBackend, role: str, cert_path: str, key_path: Optional[str]) -> Optional[Dict[str, Any]]:
    pem = fsio.read_bytes(cert_path)
    if pem is None:
        return None
    entry = {"role": role, "path": cert_path, "key_path": key_path}  # type: Dict[str, Any]
    try:
        blocks = [der.to_pem(label, body) for label, body in der.pem_blocks(pem) if label == "CERTIFICATE"]
        if role.endswith("-root") and len(blocks) > 1:
            # A trust bundle during a CA rotation: the current root first, then the previous one.
            pem = blocks[0]
            entry["also_trusted"] = [{k: backend.parse_cert(b)[k] for k in ("subject", "sha256", "not_after")}
                                     for b in blocks[1:]]
        info = backend.parse_cert(pem)
    except AgentError as exc:
        entry["error"] = str(exc)
        return entry
    entry.update((name, info[name]) for name in _FIELDS)
    entry["days_left"] = days_left(info["not_after"])
    entry["key_matches_cert"] = None
    if key_path:
        key = fsio.read_bytes(key_path)
        if key is None:
            entry["key_error"] = "key file missing"
        else:
            try:
                entry["key_matches_cert"] = backend.public_key_sha256(key) == info["spki_sha256"]
            except AgentError as exc:
                entry["key_error"] = str(exc)
    return entry


def inspect(layout: CertLayout, backend: CryptoBackend) -> Dict[str, Any]:
    """JSON-ready description of the server, client and CA certificates that exist here."""
    candidates = []
    for kind in ("server", "client"):
        candidates.append((kind, layout.cert_path(kind), layout.key_path(kind)))
        candidates.append((kind + "-root", layout.root_path(kind), None))
    candidates.append(("ca", layout.ca_cert, layout.ca_key))
    for old in layout.old_ca_dirs():
        candidates.append(("ca-old", os.path.join(old, "ca.crt"), os.path.join(old, "ca.key")))
    certificates = []  # type: List[Dict[str, Any]]
    for role, cert_path, key_path in candidates:
        entry = _entry(backend, role, cert_path, key_path)
        if entry is not None:
            certificates.append(entry)
    pending = [kind for kind in ("server", "client") if os.path.exists(layout.pending_key(kind))]
    return {"cert_dir": layout.root, "backend": backend.name, "certificates": certificates, "pending_keys": pending}
