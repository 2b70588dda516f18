"""``certs due --within-days N``: every certificate the add-on manages here, and which need renewing.

Read-only, and exit 0 whether or not something is due: the caller (a renewal job, a person) reads
the JSON and decides. Each entry says which action renews it, so a scheduler can map "due" to the
add-on action to run.
"""

import datetime
import os
from typing import Any, Dict, List, Optional

#: What renews a certificate of each role.
RENEWED_BY = {
    "server": "re-issue certificates",
    "client": "re-issue certificates",
    "server-root": "CA rotation",
    "client-root": "CA rotation",
    "ca": "CA rotation",
    "ca-old": None,  # a retired CA, kept to check what it issued; nothing renews it
    "user-client": "user-cert",
    "kit": "kit build",
}  # type: Dict[str, Optional[str]]


def _extra_candidates(cert_dir: str) -> List[Any]:
    """(role, cert path, key path) of the user certificates and kits, which ``inspect`` leaves out."""
    from dbtls_agent.certs import kit

    out = []  # type: List[Any]
    users_dir = os.path.join(cert_dir, "client", "users")
    try:
        users = sorted(os.listdir(users_dir))
    except OSError:
        users = []
    for user in users:
        folder = os.path.join(users_dir, user)
        out.append(("user-client", os.path.join(folder, "client.crt"), os.path.join(folder, "client.key")))
    for user in kit.list_kits(cert_dir):
        folder = os.path.join(kit.kits_root(cert_dir), user)
        out.append(("kit", os.path.join(folder, "client.crt"), os.path.join(folder, "client.key")))
    return out


#: Roles whose certificate the CA node's current CA must have issued (the roots are CAs themselves).
_LEAVES = ("server", "client", "user-client", "kit")


def _current_ca(layout: Any) -> Optional[bytes]:
    """The CA certificate on this node (the CA node), None elsewhere."""
    from dbtls_agent import fsio

    return fsio.read_bytes(layout.ca_cert)


def _issued_by(backend: Any, cert_path: str, ca_cert: bytes) -> bool:
    from dbtls_agent import fsio
    from dbtls_agent.errors import AgentError

    try:
        backend.verify_one(fsio.read_bytes(cert_path) or b"", ca_cert)
    except AgentError:
        return False
    return True


def due(cert_dir: str, backend: Any, within_days: int, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """The report: every certificate with not_after, days_left, due and why.

    Due means: it ends within ``within_days``, it cannot be read, or (on the CA node) the current CA
    did not issue it, which is the state of every leaf certificate right after a CA rotation until
    it is re-issued, and of a kit built before the rotation.
    """
    from dbtls_agent.certs import inspect as certs_inspect
    from dbtls_agent.certs.layout import CertLayout

    layout = CertLayout(cert_dir)
    entries = list(certs_inspect.inspect(layout, backend)["certificates"])
    for role, cert_path, key_path in _extra_candidates(layout.root):
        entry = certs_inspect._entry(backend, role, cert_path, key_path)
        if entry is not None:
            entries.append(entry)
    ca_cert = _current_ca(layout)
    report = []  # type: List[Dict[str, Any]]
    for entry in entries:
        role = entry["role"]
        renewable = RENEWED_BY.get(role) is not None
        item = {"role": role, "path": entry["path"], "renewed_by": RENEWED_BY.get(role)}  # type: Dict[str, Any]
        reason = None  # type: Optional[str]
        if "error" in entry:
            item.update({"error": entry["error"], "not_after": None, "days_left": None})
            reason = "unreadable"
        else:
            left = certs_inspect.days_left(entry["not_after"], now)
            item.update({"subject": entry["subject"], "serial": entry["serial"], "not_after": entry["not_after"],
                         "days_left": left})
            if left <= within_days:
                reason = "ends within {} days".format(within_days) if left >= 0 else "expired"
            elif role in _LEAVES and ca_cert is not None and not _issued_by(backend, entry["path"], ca_cert):
                reason = "not issued by the current CA"
        item["due"] = renewable and reason is not None
        item["reason"] = reason if item["due"] else None
        report.append(item)
    from dbtls_agent.certs import renewplan

    return {"cert_dir": layout.root, "within_days": within_days, "certificates": report,
            "due": [item["path"] for item in report if item["due"]],
            "any_due": any(item["due"] for item in report),
            "next_renewal": renewplan.next_renewal(report, within_days)}


def text_line(report: Dict[str, Any]) -> str:
    """One human line of a report, for the Certificate status button: what is due now, and the
    next renewal (the earliest date a managed certificate becomes due)."""
    parts = []  # type: List[str]
    due_now = [item for item in report["certificates"] if item["due"]]
    if due_now:
        parts.append("due now: " + ", ".join("{} ({})".format(item["role"], item["reason"]) for item in due_now))
    nxt = report.get("next_renewal")
    if nxt:
        parts.append("next renewal {} ({}, by {})".format(str(nxt["date"])[:10], nxt["role"], nxt["renewed_by"]))
    else:
        parts.append("no managed certificate here")
    return "; ".join(parts)
