"""The JPS grammar shared by the validator and the interpreter.

Both must agree on what ``cmd [sqldb]``, ``if (...)``, ``forEach(n:...)`` and
``onAfterScaleOut[sqldb]`` mean, and on where a ``${...}`` placeholder starts and ends; keeping
that in one module stops the two from drifting apart (a manifest the validator accepts but the
interpreter parses differently would make the simulation lie).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Actions the platform provides (Cloud Scripting docs, actions.md). Used by the validator to accept calls to them.
BUILTIN_ACTIONS: frozenset[str] = frozenset({
    "cmd", "forEach", "if", "elif", "else", "setGlobals", "set", "install", "installAddon",
    "return", "stopEvent", "log", "script", "api", "sleep", "assert", "writeFile", "appendFile",
    "createFile", "createDirectory", "replaceInFile", "upload", "unpack", "restartNodes",
    "restartNode", "restartServices", "restartContainers", "setNodeDisplayName", "setNodeCount",
    "setExtIpEnabled", "addNodes", "call",
})

#: Parameters each built-in accepts beside its key; anything else is a typo the platform ignores.
ACTION_PARAMS: dict[str, frozenset[str]] = {
    "cmd": frozenset({"user", "nodeGroup", "nodeId", "nodeType", "sayYes", "sync", "commands"}),
    "script": frozenset({"params", "type", "nodeGroup", "nodeId", "nodeType"}),
    "install": frozenset({"jps", "envName", "nodeGroup", "targetNodes", "settings", "loggerName",
                          "region", "displayName", "skipEmail"}),
    "api": frozenset({"nodeGroup", "nodeId", "nodeType", "isSequential", "params", "method"}),
    "restartNodes": frozenset({"nodeGroup", "nodeId", "nodeType", "reboot", "isSequential"}),
    "restartNode": frozenset({"nodeGroup", "nodeId", "nodeType", "reboot", "isSequential"}),
    "writeFile": frozenset({"nodeGroup", "nodeId", "nodeType", "path", "body", "user"}),
    "appendFile": frozenset({"nodeGroup", "nodeId", "nodeType", "path", "body", "user"}),
}

#: Platform events (Cloud Scripting docs, events.md), without the ``on`` prefix filters.
_EVENT_STEMS = (
    "ScaleOut", "ServiceScaleOut", "ScaleIn", "RedeployContainer", "Clone", "Migrate",
    "ResetServicePassword", "ResetNodePassword", "RestartNode", "RestartContainer",
    "ChangeTopology", "AddNode", "RemoveNode", "Start", "Stop", "SetCloudletCount", "SetEnvVars",
    "StartService", "InstallAddon", "CloneNodes", "LinkNode", "LinkNodes", "UnlinkNodes",
    "AttachExtIp", "DetachExtIp", "UpdateVcsProject", "SetCrossServiceNetworkIpCount",
    "ChangeEngine", "BuildProject", "Deploy", "SetEntryPoint", "SetRunCmd", "AddVolume",
    "RemoveVolume", "SwapExtDomains", "SwapExtIps", "BindSSL", "RemoveSSL", "MoveProduct",
    "Delete",
)
EVENTS: frozenset[str] = frozenset(
    {f"on{when}{stem}" for when in ("Before", "After") for stem in _EVENT_STEMS}
    | {"onInstall", "onUninstall", "onBeforeInit", "onBeforeInstall", "onAlert",
       "onAfterConfirmTransfer", "onApplySubscriptionSettings", "onCustomNodeEvent"}
)

#: Placeholder roots the engine itself resolves (Cloud Scripting docs, placeholders.md). Anything else
#: stays literal there.
PLACEHOLDER_ROOTS: frozenset[str] = frozenset({
    "env", "nodes", "globals", "settings", "this", "response", "event", "events", "targetNodes",
    "user", "baseUrl", "platformUrl", "engine", "fn", "placeholders",
})

#: File-path placeholders that collide with shell variable names (Cloud Scripting docs, placeholders.md; docs/jps-semantics.md).
SHELL_LOOKALIKES: frozenset[str] = frozenset({
    "HOME", "JAVA_HOME", "SYSTEM_ETC", "SERVER_CONF", "SERVER_DATA", "SERVER_LIBS", "SERVER_LOGS",
    "SERVER_WEBROOT", "SERVER_BACKUP", "SERVER_CONF_D", "SERVER_MODULES", "SERVER_SCRIPTS",
    "WEBROOT", "STACK_PATH", "STACK_USER",
})

_SELECTOR_RE = re.compile(r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*(?:\[(?P<sel>.*)\])?\s*$", re.S)
_CALL_RE = re.compile(r"^\s*(?P<name>if|elif|forEach)\s*\((?P<arg>.*)\)\s*$", re.S)
_EVENT_RE = re.compile(r"^\s*(?P<name>on[A-Z]\w*)\s*(?:\[(?P<filter>.*)\])?\s*$", re.S)


@dataclass(frozen=True)
class ActionKey:
    """A parsed action key: ``cmd [sqldb]`` -> name ``cmd``, selector ``sqldb``."""

    name: str
    selector: str | None = None
    arg: str | None = None  #: the expression of ``if (...)`` / ``elif (...)`` / ``forEach(...)``
    raw: str = field(default="", compare=False)  #: the key as written (for YAML paths)


def parse_action_key(key: str) -> ActionKey | None:
    """Parse a list item key; ``None`` when it is not shaped like an action at all."""
    m = _CALL_RE.match(key)
    if m:
        return ActionKey(m["name"], arg=m["arg"].strip(), raw=key)
    m = _SELECTOR_RE.match(key)
    if m:
        sel = m["sel"].strip() if m["sel"] is not None else None
        return ActionKey(m["name"], selector=sel, raw=key)
    return None


def parse_event_key(key: str) -> tuple[str, str | None] | None:
    """``onAfterScaleOut [sqldb]`` -> (``onAfterScaleOut``, ``sqldb``); ``None`` if not an event key."""
    m = _EVENT_RE.match(key)
    if not m:
        return None
    flt = m["filter"].strip() if m["filter"] is not None else None
    return m["name"], flt


def is_api_method(name: str) -> bool:
    """API methods may be used as action keys directly (``env.control.AddContainerEnvVars``)."""
    return name.startswith(("env.", "environment.", "jelastic.", "api.", "system.", "users."))


@dataclass(frozen=True)
class Placeholder:
    """One ``${...}`` occurrence: ``text[start:end]`` is the whole token, ``expr`` its inside."""

    start: int
    end: int
    expr: str

    @property
    def root(self) -> str:
        """First path segment: ``globals`` for ``${globals.x:y}``, ``@i`` for ``${@i.id}``."""
        m = re.match(r"[@\w]*", self.expr.strip())
        return m.group(0) if m else ""


def find_placeholders(text: str) -> list[Placeholder]:
    """Find every top-level ``${...}``, honouring nested braces (``${x:[fn.md5([fn.random])]}``).

    An unterminated ``${`` is not a placeholder (the engine leaves it alone, so do we).
    """
    found: list[Placeholder] = []
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            return found
        depth, j = 0, start + 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(text):
            return found
        found.append(Placeholder(start, j + 1, text[start + 2:j]))
        i = j + 1


def split_default(expr: str) -> tuple[str, str | None]:
    """``a.b:default`` -> (``a.b``, ``default``); a colon inside brackets/parens is not a separator."""
    depth = 0
    for i, ch in enumerate(expr):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            return expr[:i], expr[i + 1:]
    return expr, None


def split_commas(text: str) -> list[str]:
    """Split a selector/filter list on commas, dropping blanks (``sqldb, proxy`` -> two tokens)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def action_items(value: object) -> list[object]:
    """Normalise a handler body: a bare string or one map is a one-item list."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
