"""Does one ``${...}`` placeholder resolve where it is used? (validator cross-check)

Kept apart from validate.py because it is the one place that encodes the scoping rules: which
roots exist, that ``${this.x}`` must be passed by every caller, that iterators only live inside
their ``forEach``, and that ``${VAR}`` in a cmd script is the shell-variable trap (docs/jps-semantics.md,
Placeholders).
"""

from __future__ import annotations

import re
from typing import Any

from dbtls.jps.syntax import PLACEHOLDER_ROOTS, SHELL_LOOKALIKES

ENV_KEYS = {"envName", "name", "shortdomain", "domain", "appid", "url", "protocol", "region",
            "displayName", "status", "ssl", "uid", "hardwareNodeGroup", "nodes", "contexts", "extdomains"}
USER_KEYS = {"email", "uid", "name", "appPassword"}
FN_NAMES = {"password", "random", "uuid", "base64", "md5", "compare", "compareEngine"}
_HEAD = re.compile(r"(@*\w*)(?:\s*\.\s*(\w+))?")


def check_use(expr: str, token: str, has_default: bool, in_cmd: bool, loops: tuple[str, ...],
              action: str | None, handler: str | None, script_params: frozenset[str],
              known_globals: set[str], settings: set[str],
              calls: dict[str, list[tuple[str, Any]]], set_this: dict[str | None, set[str]],
              layers: set[str]) -> str | None:
    """A problem message for this use of a placeholder, or ``None`` when it resolves."""
    m = _HEAD.match(expr)
    root, seg = (m.group(1), m.group(2)) if m else ("", None)
    if root not in PLACEHOLDER_ROOTS and not root.startswith("@"):
        name = re.sub(r"\W.*", "", expr.lstrip("#!")) or expr
        if not in_cmd:
            return f"unknown placeholder {token}"
        if name in SHELL_LOOKALIKES:
            return (f"{token} in a cmd script: the engine replaces it with its own value before bash "
                    f"runs; write ${name}")
        return (f"shell variable {token} in a cmd script: the engine substitutes ${{...}} names it "
                f"knows; write ${name}")
    if root.startswith("@"):
        return _iterator(root, token, loops)
    if has_default:
        return None
    if root == "globals" and seg not in known_globals:
        return f"{token}: global {seg!r} is never defined (globals: or setGlobals)"
    if root == "settings" and seg not in settings:
        return f"{token}: no settings form declares a field {seg!r}"
    if root == "this":
        return _this(token, seg, action, script_params, calls, set_this)
    if root in ("event", "events") and (handler in ("onInstall", "onUninstall") or
                                        (handler is None and action is None)):
        return f"{token}: there is no event data in {handler or 'this place'}"
    if root == "targetNodes" and seg != "nodeGroup":
        return f"{token}: only targetNodes.nodeGroup is available"
    if root == "env" and seg not in ENV_KEYS:
        return f"{token}: unknown environment field {seg!r}"
    if root == "user" and seg not in USER_KEYS:
        return f"{token}: unknown user field {seg!r}"
    if root == "fn" and seg not in FN_NAMES:
        return f"{token}: unknown function fn.{seg}"
    if root == "nodes" and seg is not None and seg not in layers:
        return f"{token}: {seg!r} is neither a known layer nor a targetNodes nodeType"
    return None


def _iterator(root: str, token: str, loops: tuple[str, ...]) -> str | None:
    if root == "@":
        return None if loops else f"{token} (loop index) used outside forEach"
    name = root.lstrip("@")
    if name in loops:
        return None
    return f"iterator {token} used outside forEach({name}:...) (custom actions do not see the caller's loops)"


def _this(token: str, seg: str | None, action: str | None, script_params: frozenset[str],
          calls: dict[str, list[tuple[str, Any]]], set_this: dict[str | None, set[str]]) -> str | None:
    if seg is not None and seg in script_params:
        return None
    if seg is not None and seg in set_this.get(action, set()):
        return None
    if action is None:
        return f"{token} outside a custom action (and not set with 'set')"
    for path, arg in calls.get(action, []):
        args = arg if isinstance(arg, list) else [arg]
        for one in args:
            if arg == "<button>":
                return f"{token}: action {action!r} is run by a button at {path}, which passes no parameters"
            if seg is None and not isinstance(one, str | int):
                return f"{token}: the call at {path} does not pass a text argument"
            if seg is not None and not (isinstance(one, dict) and seg in one):
                return f"{token}: the call at {path} does not pass {seg!r}"
    return None
