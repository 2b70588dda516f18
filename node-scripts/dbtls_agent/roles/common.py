"""Pieces every role shares: restoring recorded files, service control, certificates, role extras."""

import json
import os
from typing import Any, Callable, Dict, List, Optional

from dbtls_agent import fsio, safepath, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base

Inverse = Callable[[str], str]


def read_required(path: str, owner: Optional[str] = None) -> str:
    """A config file's text (surrogate-escaped so any byte survives); one-line error if missing.

    ``owner``: the file must belong to that account. For paths the server itself reports
    (``SHOW hba_file``), which its account can point anywhere with ALTER SYSTEM and a restart:
    the agent then edits only a file that account owned already, never a root file it named.
    """
    data, st = fsio.read_with_stat(path)
    if data is None or st is None:
        raise AgentError("{} does not exist; nothing was changed".format(path))
    ids = fsio.resolve_owner(owner) if owner else None
    if ids is not None and st.st_uid != ids[0]:
        raise AgentError("{} belongs to {}, not to {}, who runs the server that names it; dbtls edits only the "
                         "server's own files; nothing was changed".format(path, safepath.user_name(st.st_uid), owner))
    if not os.access(path, os.W_OK):
        raise AgentError("{} is not writable; nothing was changed".format(path))
    return data.decode("utf-8", "surrogateescape")


def _extra_path(ctx: base.Context, role: str) -> str:
    return state.layout(ctx.cert_dir).extra(role)


def load_extra(ctx: base.Context, role: str) -> Dict[str, Any]:
    """Role-specific undo facts that are not file contents (e.g. ALTER SYSTEM values we replaced)."""
    text = fsio.read_text(_extra_path(ctx, role))
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def save_extra(ctx: base.Context, role: str, data: Dict[str, Any]) -> None:
    path = _extra_path(ctx, role)
    if not data:
        if os.path.exists(path):
            os.unlink(path)
        return
    fsio.ensure_dir(os.path.dirname(path), 0o700)
    fsio.atomic_write(path, json.dumps(data, sort_keys=True).encode(), 0o600)


def restore_one(cs: state.ChangeSet, path: str, inverse: Optional[Inverse]) -> str:
    """Original bytes back, or the inverse edit when someone else changed the file after us.

    A file that already holds its original bytes (an earlier disable was killed before it could
    forget the record) counts as restored, not as a foreign edit.
    """
    entry = cs.entries[path]
    current = fsio.read_bytes(path)
    if entry.get("existed") and current is not None and state.sha256(current) == entry.get("original_sha256"):
        cs.forget(path)
        return "restored"
    outcome = cs.restore(path)
    if outcome == "foreign-edit":
        if inverse is None:
            return outcome
        text = (current or b"").decode("utf-8", "surrogateescape")
        new = inverse(text)
        if new != text:
            fsio.atomic_write(path, new.encode("utf-8", "surrogateescape"), entry.get("mode", 0o600),
                              (entry["uid"], entry["gid"]) if "uid" in entry else None)
        outcome = "inverse-edit"
    cs.forget(path)
    return outcome


def restore_all(ctx: base.Context, cs: state.ChangeSet, inverses: Dict[str, Inverse],
                skip: List[str] = ()) -> List[Dict[str, Any]]:
    """Restore every recorded file of the role except ``skip``; report each outcome."""
    files = []
    skipped = {os.path.abspath(p) for p in skip}
    for path in list(cs.paths()):
        if path in skipped:
            continue
        outcome = restore_one(cs, path, inverses.get(path))
        if outcome == "foreign-edit":
            raise AgentError("{} was changed by someone else since enable and dbtls cannot undo its own edit "
                             "there; restore it by hand from {}".format(path, cs.backups))
        if outcome == "inverse-edit":
            ctx.say("{} was edited by someone else after enable; only dbtls's own lines were removed".format(path))
        files.append({"path": path, "result": outcome})
    return files


def certificates(ctx: base.Context) -> List[Dict[str, Any]]:
    """The certificate entries of ``inspect`` (subject, SANs, expiry, fingerprints)."""
    try:
        from dbtls_agent.certs import inspect
        from dbtls_agent.certs.layout import CertLayout
        from dbtls_agent.crypto import get_backend
        return inspect.inspect(CertLayout(ctx.cert_dir), get_backend(None))["certificates"]
    except AgentError as exc:
        return [{"error": str(exc)}]


def remove_certs(ctx: base.Context) -> bool:
    """Delete server/, client/, pending keys and client kits (the manifest's Uninstall asks for this)."""
    removed = False
    for name in ("server", "client", ".pending", "kits"):
        path = os.path.join(ctx.cert_dir, name)
        if os.path.isdir(path):
            fsio.remove_tree(path)  # server/ and client/ belong to service accounts: no name-based walk
            removed = True
    return removed
