"""The one status document every role's ``status`` returns, and the check that holds it to it.

The dashboard line (``commands/statusline.py``) and the simulator's node table read only these
fields, whatever the server family:

* ``role``: the registry name; ``version``: the server's version (str, or None when unknown);
  ``running``: bool, or None when the role cannot tell;
* ``stages``: the stages of ours in place now, in cluster order (a subset of :data:`STAGES`);
  ``enabled``: ``bool(stages)``;
* ``tls``: None when nothing could be asked (server stopped), else :func:`tls` 's dict: ``ok``,
  ``check`` (``handshake``: a real TLS handshake to the node's own name; ``runtime``: the server's
  runtime settings and the files they name, where the agent has no client for the protocol),
  ``protocol``, ``sha256`` (served), ``expected_sha256`` (server/server.crt), ``error``, ``note``;
* ``certificates``: the entries of ``inspect``.

A role adds fields of its own after these (the MySQL family's ``served``, ProxySQL's runtime
variables); nothing outside the agent reads them.
"""

from typing import Any, Dict, List, Optional

#: The stages a role can report, in cluster order.
STAGES = ("offer", "use", "require")
#: How ``tls.ok`` was established.
TLS_CHECKS = ("handshake", "runtime")
TLS_FIELDS = ("ok", "check", "protocol", "sha256", "expected_sha256", "error", "note")
FIELDS = ("role", "version", "running", "enabled", "stages", "tls", "certificates")


def tls(ok: bool, check: str, protocol: Optional[str] = None, sha256: Optional[str] = None,
        expected_sha256: Optional[str] = None, error: Optional[str] = None, note: Optional[str] = None,
        **more: Any) -> Dict[str, Any]:
    """The ``tls`` part; ``more`` keeps a check's own facts (host, port, cipher)."""
    result = dict(more)
    result.update({"ok": bool(ok), "check": check, "protocol": protocol, "sha256": sha256,
                   "expected_sha256": expected_sha256, "error": error, "note": note})
    return result


def handshake(result: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A PostgreSQL-protocol probe's result (``tlsprobe.probe``/``check_served``) as the ``tls`` part."""
    if result is None:
        return None
    more = dict(result)
    for key in TLS_FIELDS:
        more.pop(key, None)
    return tls(bool(result.get("ok")), "handshake", result.get("protocol"), result.get("sha256"),
               result.get("expected_sha256"), result.get("error"), result.get("note"), **more)


def document(role: str, version: Optional[str], running: Optional[bool], stages: List[str],
             tls_result: Optional[Dict[str, Any]], certificates: List[Dict[str, Any]],
             **details: Any) -> Dict[str, Any]:
    """The status document; ``details`` are the role's own fields, after the common ones."""
    ordered = [s for s in STAGES if s in stages]
    result = {"role": role, "version": version, "running": running, "enabled": bool(ordered),
              "stages": ordered, "tls": tls_result, "certificates": certificates}  # type: Dict[str, Any]
    for key, value in details.items():
        if key not in result:
            result[key] = value
    return result


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def problems(doc: Any) -> List[str]:
    """What keeps ``doc`` from being a status document (empty when it is one)."""
    if not isinstance(doc, dict):
        return ["not an object"]
    found = ["missing {}".format(k) for k in FIELDS if k not in doc]
    if found:
        return found
    if not isinstance(doc["role"], str) or not doc["role"]:
        found.append("role is not a name")
    if not _optional(doc["version"], str):
        found.append("version is not a string or null")
    if not _optional(doc["running"], bool):
        found.append("running is not true, false or null")
    stages = doc["stages"]
    if not isinstance(stages, list) or [s for s in STAGES if s in stages] != stages:
        found.append("stages {!r} are not stages in cluster order".format(stages))
    elif doc["enabled"] is not bool(stages):
        found.append("enabled is not bool(stages)")
    result = doc["tls"]
    if result is not None:
        if not isinstance(result, dict):
            found.append("tls is not an object or null")
        else:
            found.extend("tls: missing {}".format(k) for k in TLS_FIELDS if k not in result)
            if not isinstance(result.get("ok"), bool):
                found.append("tls.ok is not a boolean")
            if result.get("check") not in TLS_CHECKS:
                found.append("tls.check is not one of {}".format(", ".join(TLS_CHECKS)))
            for key in TLS_FIELDS[2:]:
                if not _optional(result.get(key), str):
                    found.append("tls.{} is not a string or null".format(key))
    certs = doc["certificates"]
    if not isinstance(certs, list) or not all(isinstance(c, dict) for c in certs):
        found.append("certificates is not a list of objects")
    return found
