"""What a layer's renewal does, decided from the ``certs due`` reports of its nodes (pure).

The manifest's ``renew`` action collects one ``certs due`` report per node of the layer, plus the
CA node's, and hands them to the CA node's agent as data. This module turns them into a plan the
manifest can act on with fixed words only (``yes``/``no``, a re-issue scope, user names the agent
checks itself), so nothing a node printed ever decides more than which of the existing steps run:

* a server certificate due on some node of the layer: re-issue the layer's server certificates;
* a client certificate due: re-issue the layer's client certificates (both: one re-issue, ``all``);
* a ``user-cert`` certificate or a kit due on the CA node, when the CA node is in the layer:
  ``user-cert --user U`` / ``kit build --user U`` for each;
* the CA, or a copy of its root, due: nothing automatic; the summary says a CA rotation is needed.
"""

import datetime
import os
import re
from typing import Any, Dict, List, Optional, Tuple

#: Roles whose renewal is a CA rotation (the CA and the copies of its root on every node).
ROTATION_ROLES = ("ca", "server-root", "client-root")
#: The names ``user-cert`` and ``kit build`` take (the same rule as their own checks).
_USER = re.compile(r"^[A-Za-z0-9_@%][A-Za-z0-9_.@%-]{0,79}$")
#: What ``--show`` may ask.
QUESTIONS = ("summary", "work", "scope", "kits", "users", "json")


def _due_items(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    certs = report.get("certificates") if isinstance(report, dict) else None
    if not isinstance(certs, list):
        return []
    return [c for c in certs if isinstance(c, dict) and c.get("due") is True]


def _owner(path: Any) -> Optional[str]:
    """The user a ``client/users/NAME/client.crt`` or ``kits/NAME/client.crt`` belongs to, when the
    name is one the renewing command takes."""
    name = os.path.basename(os.path.dirname(str(path)))
    return name if _USER.match(name) else None


def plan(layer_reports: List[Tuple[int, Dict[str, Any]]], ca_node: int,
         ca_report: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The renewal plan of a layer.

    ``layer_reports``: (node id, ``certs due`` JSON) of every node of the layer; ``ca_node``: the CA
    node's id; ``ca_report``: the CA node's own report (its CA entry counts on every layer; its kits
    and user certificates only when the CA node belongs to the layer).
    """
    server, client = [], []  # type: List[int], List[int]
    kits, users = [], []  # type: List[str], List[str]
    rotation = []  # type: List[str]
    skipped = []  # type: List[str]
    layer_ids = [node_id for node_id, _ in layer_reports]
    sources = list(layer_reports)
    if ca_report is not None and ca_node not in layer_ids:
        # Only the CA's own entry matters from a CA node outside the layer.
        sources.append((ca_node, {"certificates": [c for c in _due_items(ca_report) if c.get("role") == "ca"]}))
    for node_id, report in sources:
        for item in _due_items(report):
            role, why = item.get("role"), item.get("reason") or "due"
            if role == "server":
                server.append(node_id)
            elif role == "client":
                client.append(node_id)
            elif role in ROTATION_ROLES:
                rotation.append("node{}: {} ({})".format(node_id, item.get("path"), why))
            elif role in ("kit", "user-client") and node_id == ca_node:
                user = _owner(item.get("path"))
                if user is None:
                    skipped.append("node{}: {} (not a user name dbtls takes)".format(node_id, item.get("path")))
                else:
                    (kits if role == "kit" else users).append(user)
    return {"server": sorted(set(server)), "client": sorted(set(client)), "kits": sorted(set(kits)),
            "users": sorted(set(users)), "ca_rotation": rotation, "skipped": skipped}


def scope(the_plan: Dict[str, Any]) -> str:
    """The re-issue scope the plan needs: ``server``, ``client``, ``all`` (both) or ``none``."""
    if the_plan["server"] and the_plan["client"]:
        return "all"
    if the_plan["server"]:
        return "server"
    return "client" if the_plan["client"] else "none"


def has_work(the_plan: Dict[str, Any]) -> bool:
    """Whether anything will be renewed automatically (a CA rotation never is)."""
    return bool(the_plan["server"] or the_plan["client"] or the_plan["kits"] or the_plan["users"])


def _nodes(ids: List[int]) -> str:
    return ", ".join("node{}".format(i) for i in ids)


def summary(the_plan: Dict[str, Any], within_days: int) -> str:
    """One human paragraph for the action's result message."""
    parts = []  # type: List[str]
    if the_plan["server"]:
        parts.append("server certificates (due on {})".format(_nodes(the_plan["server"])))
    if the_plan["client"]:
        parts.append("client certificates (due on {})".format(_nodes(the_plan["client"])))
    if the_plan["users"]:
        parts.append("user certificates of {}".format(", ".join(the_plan["users"])))
    if the_plan["kits"]:
        parts.append("client kits of {}".format(", ".join(the_plan["kits"])))
    text = ("renewing " + "; ".join(parts) + "." if parts
            else "nothing is due within {} days; nothing was changed.".format(within_days))
    if the_plan["ca_rotation"]:
        text += (" The CA is due: {}. Nothing renews it automatically: press Re-issue certificates, "
                 "'Everything, including a new CA' (clients need the new root.crt).".format(
                     "; ".join(the_plan["ca_rotation"])))
    if the_plan["skipped"]:
        text += " Left alone: {}.".format("; ".join(the_plan["skipped"]))
    return text


def answer(the_plan: Dict[str, Any], question: str, within_days: int) -> str:
    """The text ``certs plan --show QUESTION`` prints (no trailing newline for the one-word answers:
    the manifest compares them whole)."""
    if question == "work":
        return "yes" if has_work(the_plan) else "no"
    if question == "scope":
        return scope(the_plan)
    if question in ("kits", "users"):
        return "".join(name + "\n" for name in the_plan[question])
    if question == "summary":
        return summary(the_plan, within_days)
    raise ValueError(question)


def next_renewal(report_items: List[Dict[str, Any]], within_days: int) -> Optional[Dict[str, Any]]:
    """The earliest date at which a managed certificate becomes due (``not_after`` minus
    ``within_days``), with its role and path; None when nothing renewable is readable."""
    best = None  # type: Optional[Tuple[datetime.datetime, Dict[str, Any]]]
    for item in report_items:
        if not item.get("renewed_by") or not item.get("not_after"):
            continue
        try:
            end = datetime.datetime.strptime(str(item["not_after"]), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
        when = end - datetime.timedelta(days=within_days)
        if best is None or when < best[0]:
            best = (when, item)
    if best is None:
        return None
    return {"date": best[0].strftime("%Y-%m-%dT%H:%M:%SZ"), "role": best[1].get("role"),
            "path": best[1].get("path"), "renewed_by": best[1].get("renewed_by")}
