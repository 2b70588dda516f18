"""Execution of action lists: the semantics of each supported action (docs/jps-semantics.md).

One :class:`Run` is one handler execution (install, button, event, uninstall). It owns the
``response`` of the last action, the run's globals and the :class:`Result`. Anything outside the
supported subset raises :class:`UnsupportedFeature`; nothing is skipped silently.

``response`` follows actions.md (``assert``: "Response placeholders ... are defined only from the
previous one action"): every action replaces it. ``cmd`` and ``script`` set it; a custom action
leaves what its last action left; every other action (``setGlobals``, ``set``, ``log``, ``if``,
``forEach``, ``install`` ...) leaves ``{}``. The first action of an ``if`` branch, a ``forEach``
body or a custom action sees ``{}``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbtls.jps import jsengine, timeline
from dbtls.jps.cmdwrap import command_text, encode, wrap
from dbtls.jps.conditions import UNDEFINED, evaluate
from dbtls.jps.errors import ConditionError, ManifestError, UnsupportedFeature
from dbtls.jps.loading import Fetcher, is_link
from dbtls.jps.model import Addon, CmdResult, Environment, Node, User
from dbtls.jps.placeholders import Loop, Scope, is_missing, nodes_view, to_text
from dbtls.jps.platformapi import Platform
from dbtls.jps.results import Result, Step, Stop
from dbtls.jps.schema import join
from dbtls.jps.syntax import (
    ACTION_PARAMS,
    BUILTIN_ACTIONS,
    ActionKey,
    action_items,
    is_api_method,
    parse_action_key,
    split_commas,
)


class Host(Protocol):
    """What a run uses of the interpreter that started it (``Interpreter`` is the one host); a
    protocol here, so that this module does not import the interpreter that imports it."""

    env: Environment
    envs: list[Environment]
    user: User
    rng: random.Random
    platform: Platform
    parallel: bool
    fetch: Fetcher
    sleep: Callable[[float], None]

    def run_on_nodes(self, nodes: list[Node], command_b64: str, user: str,
                     sequential: bool) -> list[CmdResult]: ...

    def installed_apps(self) -> list[dict[str, Any]]: ...

    def run_deferred(self, value: Any, deferred: list[dict[str, Any]]) -> Any: ...

    def install_child(self, parent: Addon, jps: str | dict[str, Any], node_group: str | None,
                      settings: dict[str, Any]) -> Result: ...

_MAX_DEPTH = 40
_NO_PARAMS = {"log", "setGlobals", "set", "sleep", "assert", "return", "stopEvent", "forEach"}
#: Actions that set ``response`` themselves; after any other built-in it is ``{}``.
_SETS_RESPONSE = {"cmd", "script"}
#: conditions-and-iterations.md, ForEach: the documented iterables (after placeholders are rendered).
ITERABLE_RE = re.compile(r"env\.nodes|nodes|nodes\.[\w-]+|env\.contexts|env\.extdomains|event\.response\.nodes")
_FOREACH_RE = re.compile(r"\s*(?:(\w+)\s*:)?\s*(.+?)\s*", re.S)
_POPUP_TYPES = ("success", "info", "warning", "error")


@dataclass
class Frame:
    """Per-call state: ``${this}`` of the custom action and the active ``forEach`` loops.

    A custom action starts with no loops: iterators of the caller are not visible inside it
    (pass what it needs as parameters; whether the platform leaks them is undocumented).
    """

    this: Any = None
    loops: list[Loop] = field(default_factory=list)
    depth: int = 0


class Run:
    """One handler execution of one add-on instance."""

    def __init__(self, interp: Host, addon: Addon, settings: dict[str, Any],
                 event: dict[str, Any] | None = None, result: Result | None = None) -> None:
        self.interp = interp
        self.addon = addon
        self.settings = settings
        self.event = event or {}
        self.response: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.result = result or Result()

    # -- scope -------------------------------------------------------------------------------

    def scope(self, frame: Frame) -> Scope:
        interp = self.interp
        nodes = nodes_view(interp.env)
        for alias, real in self.addon.aliases.items():  # nodeGroupAlias: only inside this manifest
            if real in nodes:
                nodes.setdefault(alias, nodes[real])
        roots = {
            "env": interp.env.placeholder_fields(), "nodes": nodes,
            "globals": self.globals, "settings": self.settings, "this": frame.this,
            "response": self.response, "event": self.event, "events": self.event,
            "targetNodes": {"nodeGroup": self.addon.node_group} if self.addon.node_group else {},
            "user": {"email": interp.user.email, "uid": interp.user.uid, "name": interp.user.email},
            "baseUrl": self.addon.base_url,
        }
        if roots["baseUrl"] is None:
            del roots["baseUrl"]
        return Scope(roots, list(frame.loops), interp.rng)

    def step(self, action: str, **kw: Any) -> Step:
        step = Step(action, addon=self.addon.label, **kw)
        self.result.steps.append(step)
        return step

    # -- lists -------------------------------------------------------------------------------

    def run_list(self, body: Any, frame: Frame, path: str) -> None:
        items = action_items(body)
        listed = isinstance(body, list)
        i = 0
        while i < len(items):
            item = items[i]
            ipath = join(path, i) if listed else path
            if isinstance(item, str):  # a bare custom-action name as a list item
                self.call_custom(item, None, frame, ipath)
                i += 1
                continue
            key, value, params = self.split_item(item, ipath)
            if key.name == "if":
                i = self.run_if_chain(items, i, frame, path, listed)
                continue
            if key.name in ("elif", "else"):
                raise ManifestError(f"{ipath}: '{key.name}' does not directly follow an 'if' item")
            self.dispatch(key, value, params, frame, ipath)
            if key.name not in _SETS_RESPONSE and key.name not in self.addon.actions:
                self.response = {}
            i += 1

    def split_item(self, item: Any, path: str) -> tuple[ActionKey, Any, dict[str, Any]]:
        """Find the one action key of a list item; the other keys are its parameters."""
        if not isinstance(item, dict) or not item:
            raise ManifestError(f"{path}: an action list item must be a one-action map, got {item!r}")
        actions = []
        for key in item:
            parsed = parse_action_key(str(key))
            if parsed and (parsed.name in BUILTIN_ACTIONS or parsed.name in self.addon.actions
                           or is_api_method(parsed.name)):
                actions.append((key, parsed))
        if len(actions) != 1:
            names = [k for k, _ in actions] or list(item)
            what = "unknown action" if not actions else "several actions in one item"
            raise ManifestError(f"{path}: {what}: {', '.join(map(str, names))}")
        raw, parsed = actions[0]
        params = {k: v for k, v in item.items() if k != raw}
        return parsed, item[raw], params

    def run_if_chain(self, items: list[Any], i: int, frame: Frame, path: str, listed: bool) -> int:
        """Run the first true branch of ``if``/``elif``.../``else`` starting at ``items[i]``.

        The ``if`` item is an action: its condition sees the previous action's response; every
        later condition and every branch start from ``response = {}``.
        """
        chain: list[tuple[str | None, Any, str]] = []
        while i < len(items):
            item = items[i]
            if not isinstance(item, dict) or len(item) != 1:
                break
            (raw, body), = item.items()
            key = parse_action_key(str(raw))
            if key is None or (chain and key.name == "if") or key.name not in ("if", "elif", "else"):
                break
            ipath = join(path, i) if listed else path
            chain.append((key.arg if key.name != "else" else None, body, join(ipath, str(raw))))
            i += 1
            if key.name == "else":
                break
        for cond, body, bpath in chain:
            taken = cond is None or self.condition(cond, frame, bpath)
            self.response = {}
            if taken:
                self.run_list(body, frame, bpath)
                break
        self.response = {}
        return i

    def condition(self, text: str, frame: Frame, path: str) -> bool:
        """Evaluate an ``if``/``assert`` condition; stricter than the engine on purpose.

        The engine skips a branch whose condition is invalid (conditions-and-iterations.md); here an
        unresolved placeholder or a condition outside the evaluated JavaScript subset is an error,
        because both are manifest bugs the engine would hide.
        """
        scope = self.scope(frame)
        rendered = scope.render(text)
        if scope.unresolved:
            raise ConditionError(f"{path}: unresolved placeholder {scope.unresolved[0]} in condition "
                                 f"{rendered!r} (the engine would skip the branch silently)")

        def lookup(name: str) -> Any:
            if name in ("env", "nodes", "globals", "settings", "user", "response", "event", "this"):
                value = scope.lookup(name)
                return UNDEFINED if is_missing(value) else value
            raise ConditionError(f"{path}: unknown identifier {name!r} in condition {rendered!r}")

        try:
            value = evaluate(rendered, lookup)
        except ConditionError as exc:
            raise ConditionError(f"{path}: {exc}" if not str(exc).startswith(path) else str(exc)) from None
        self.step("if", detail=f"{rendered} -> {str(value).lower()}", path=path)
        return value

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        name = key.name
        if name in self.addon.actions:
            if params or key.selector:
                raise UnsupportedFeature(f"{path}: custom action {name!r} called with a selector or sibling keys")
            self.call_custom(name, value, frame, path)
            return
        allowed = ACTION_PARAMS.get(name, frozenset())
        if name in _NO_PARAMS and params:
            raise ManifestError(f"{path}: {name}: unexpected sibling keys {sorted(params)}")
        if set(params) - allowed:
            raise ManifestError(f"{path}: {name}: unknown parameters {sorted(set(params) - allowed)}")
        handler = getattr(self, f"do_{name}", None)
        if handler is None or (key.selector is not None and name not in ("cmd", "install")):
            raise UnsupportedFeature(f"{path}: action {name!r}{' with a selector' if key.selector else ''} "
                                     f"is not simulated")
        recorder = self.interp.recorder
        if recorder is None or not timeline.is_platform_call(name):
            handler(key, value, params, frame, path)
            return
        target = timeline.target_text(key.selector, params, self.scope(frame).render)
        with recorder.call(name, path, target, timeline.target_nodes(self.interp.env, target, self.addon.aliases),
                           addon=self.addon.label):
            handler(key, value, params, frame, path)

    def call_custom(self, name: str, arg: Any, frame: Frame, path: str) -> None:
        """Run a custom action; ``response`` afterwards is what its last action left."""
        if name not in self.addon.actions:
            raise ManifestError(f"{path}: unknown action {name!r}")
        if frame.depth >= _MAX_DEPTH:
            raise ManifestError(f"{path}: custom actions nest deeper than {_MAX_DEPTH} (recursion via {name!r}?)")
        scope = self.scope(frame)
        args = scope.render_value(arg)
        for one in args if isinstance(args, list) else [args]:
            self.step(f"call:{name}", detail=to_text(one) if one is not None else "", path=path)
            self.response = {}
            self.run_list(self.addon.actions[name], Frame(this=one, depth=frame.depth + 1),
                          f"actions.{name}")

    # -- built-ins ---------------------------------------------------------------------------

    def do_cmd(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        if isinstance(value, dict):
            extra = set(value) - ACTION_PARAMS["cmd"]
            if extra:
                raise ManifestError(f"{path}: cmd: unknown parameters {sorted(extra)}")
            params = {**params, **value}
            value = params.pop("commands", None)
        elif "commands" in params:
            raise ManifestError(f"{path}: cmd: both a value and 'commands'")
        if not isinstance(value, str | list) or isinstance(value, list) and not all(
                isinstance(v, str) for v in value):
            raise ManifestError(f"{path}: cmd: commands must be a string or a list of strings, got {value!r}")
        if params.get("user") is None:
            raise UnsupportedFeature(f"{path}: cmd without 'user:' runs as the engine's restricted default "
                                     "user, which is not simulated (say user: root)")
        scope = self.scope(frame)
        text = command_text(scope.render_value(value))
        user = scope.render(str(params["user"]))
        unresolved = tuple(scope.unresolved)
        nodes = self.target_nodes(key.selector, params, scope, "cmd", path)
        say_yes = _as_bool(params.get("sayYes", True), "sayYes", path)
        sequential = _as_bool(params.get("sync", False), "sync", path) or not self.interp.parallel
        outcomes = self.interp.run_on_nodes(nodes, encode(wrap(text, say_yes)), user, sequential)
        responses = []
        failed: list[tuple[Node, CmdResult]] = []
        for node, res in zip(nodes, outcomes, strict=True):
            self.step("cmd", node_ids=(node.id,), exit_code=res.exit_code, out=res.stdout, err=res.stderr,
                      detail=text, user=user, path=path, unresolved=unresolved)
            responses.append({"nodeid": node.id, "out": res.stdout, "errOut": res.stderr,
                              "exitStatus": res.exit_code, "result": 0 if res.exit_code == 0 else 4109})
            if res.exit_code != 0:
                failed.append((node, res))
        self.response = {"result": 4109 if failed else 0, "responses": responses}
        if len(nodes) == 1:
            self.response["out"] = responses[0]["out"]
            self.response["errOut"] = responses[0]["errOut"]
        if failed:
            node, res = failed[0]
            tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
            raise Stop("error", f"cmd on node {node.id} exited with {res.exit_code}: {tail[0]}", "error")

    def target_nodes(self, selector: str | None, params: dict[str, Any], scope: Scope,
                     action: str, path: str) -> list[Node]:
        """Selector in brackets wins over sibling nodeId/nodeGroup/nodeType (selecting-containers.md)."""
        tokens: list[str] = []
        if selector is not None:
            tokens = split_commas(scope.render(selector))
        else:
            for param in ("nodeId", "nodeGroup", "nodeType"):
                if params.get(param) is not None:
                    raw = params[param]
                    items = raw if isinstance(raw, list) else [raw]
                    tokens += [t for v in items for t in split_commas(scope.render(str(v)))]
        if not tokens:
            raise UnsupportedFeature(f"{path}: {action} without target nodes (no selector, nodeId or nodeGroup)")
        env = self.interp.env
        chosen: dict[int, Node] = {}
        for token in tokens:
            token = self.addon.aliases.get(token, token)
            if token == "*":
                found = list(env.nodes)
            elif token.isdigit():
                node = env.by_id(int(token))
                found = [node] if node else []
            else:
                found = env.in_group(token) or [n for n in env.nodes if n.node_type == token]
            if not found:
                raise Stop("error", f"{action}: no node or layer matches {token!r} (can't find node, 11022)",
                           "error")
            chosen.update((n.id, n) for n in found)
        return [chosen[i] for i in sorted(chosen)]

    def do_forEach(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        scope = self.scope(frame)
        arg = scope.render(key.arg or "")
        m = _FOREACH_RE.fullmatch(arg)
        name, expr = (m.group(1) or "i", m.group(2)) if m else ("i", arg.strip())
        if not ITERABLE_RE.fullmatch(expr):
            raise ManifestError(f"{path}: forEach over {expr}: not a documented iterable "
                                "(env.nodes, nodes, nodes.<group>, env.contexts, env.extdomains, "
                                "event.response.nodes)")
        if expr == "nodes":  # every node of the environment, as env.nodes
            expr = "env.nodes"
        items = scope.lookup(expr)
        if is_missing(items) or not isinstance(items, list):
            raise ManifestError(f"{path}: forEach over {expr}: nothing to iterate here "
                                "(no such layer, or no nodes in this event)")
        for index, element in enumerate(list(items)):
            frame.loops.append(Loop(name, element, index))
            self.response = {}
            try:
                self.run_list(value, frame, join(path, key.raw or "forEach"))
            finally:
                frame.loops.pop()

    def do_setGlobals(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        if not isinstance(value, dict):
            raise ManifestError(f"{path}: setGlobals needs a map")
        rendered = self.scope(frame).render_value(value)
        self.globals.update(rendered)
        self.step("setGlobals", detail=", ".join(sorted(rendered)), path=path)

    def do_set(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        if not isinstance(value, dict) or not (frame.this is None or isinstance(frame.this, dict)):
            raise UnsupportedFeature(f"{path}: set needs a map and an action called with a map (or nothing)")
        frame.this = {**(frame.this or {}), **self.scope(frame).render_value(value)}
        self.step("set", detail=", ".join(sorted(value)), path=path)

    def do_log(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        scope = self.scope(frame)
        for line in action_items(value):
            text = scope.render(str(line))
            self.result.log.append(text)
            self.step("log", detail=text, path=path)

    def do_sleep(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        ms = value.get("milliseconds") if isinstance(value, dict) else value
        ms = int(self.scope(frame).render(str(ms)))
        self.step("sleep", detail=f"{ms} ms", path=path)
        self.interp.sleep(ms / 1000)

    def do_assert(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        for item in action_items(value):
            cond, message = (item.get("condition"), item.get("message")) if isinstance(item, dict) \
                else (item, None)
            if not self.condition(to_text(cond), frame, path):
                text = self.scope(frame).render(message) if message else f"assertion failed: {cond}"
                raise Stop("error", text, "error")

    def do_return(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        """actions.md, return: a text is an error pop-up; a map is a pop-up of its ``type``.

        Only ``type: success`` (or a ``result`` that ``responses:`` maps to success) ends the handler
        successfully. A map without ``type`` is an error pop-up even with ``result: 0``: actions.md
        says the error window is the default and that a zero result "is not passed to the response
        code", so nothing makes such a return a success.
        """
        value = self.scope(frame).render_value(value)
        if isinstance(value, str):
            raise Stop("error", value, "error")
        if not isinstance(value, dict):
            raise ManifestError(f"{path}: return: expected a text or a map, got {value!r}")
        mtype, message = value.get("type"), _localised(value.get("message"))
        code = value.get("result", 0)
        mapped = self.addon.responses.get(code) or self.addon.responses.get(str(code)) or {}
        if mtype is None and str(code) in _POPUP_TYPES:
            mtype = str(code)  # handling-custom-responses.md: ``result: warning``
        mtype = str(mtype or mapped.get("type") or "error")
        if mtype not in _POPUP_TYPES:
            raise ManifestError(f"{path}: return: type {mtype!r} is not one of {', '.join(_POPUP_TYPES)}")
        message = message or _localised(mapped.get("message"))
        raise Stop("return" if mtype == "success" else "error", message, mtype)

    def do_stopEvent(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        value = self.scope(frame).render_value(value)
        if isinstance(value, dict):
            raise Stop("stopEvent", _localised(value.get("message")), str(value.get("type", "warning")))
        raise Stop("stopEvent", value if isinstance(value, str) else None, "warning")

    def do_install(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        if isinstance(value, list):
            for one in value:  # a list under one install is parallel on the platform
                self.do_install(key, one, params, frame, path)
            return
        scope = self.scope(frame)
        spec = dict(params)
        if isinstance(value, dict) and "jps" not in value and "type" in value:
            spec["jps"] = value  # an inline manifest
        elif isinstance(value, dict):
            spec.update(value)
        else:
            spec["jps"] = value
        unknown = set(spec) - ACTION_PARAMS["install"]
        if unknown:
            raise ManifestError(f"{path}: install: unknown parameters {sorted(unknown)}")
        jps = spec["jps"] if isinstance(spec.get("jps"), dict) else scope.render(str(spec.get("jps", "")))
        env_name = scope.render(str(spec["envName"])) if spec.get("envName") else None
        if env_name and env_name != self.interp.env.env_name:
            raise UnsupportedFeature(f"{path}: install into another environment ({env_name!r})")
        settings = scope.render_value(spec.get("settings") or {})
        if key.selector is not None:
            groups: list[str | None] = list(split_commas(scope.render(key.selector)))
        elif spec.get("nodeGroup") or spec.get("targetNodes"):
            groups = split_commas(scope.render(str(spec.get("nodeGroup") or spec.get("targetNodes"))))
        else:
            groups = [None]
        for group in groups:
            self.step("install", detail=f"{jps if isinstance(jps, str) else '<inline>'} on {group or '-'}",
                      path=path)
            child = self.interp.install_child(self.addon, jps, group, settings)
            self.result.steps.extend(child.steps)
            self.result.log.extend(child.log)
            if not child.ok:
                raise Stop("error", f"nested install failed: {child.error}", "error")

    def do_script(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame, path: str) -> None:
        """Run server-side JavaScript (jsengine); its returned object becomes ``response``."""
        if isinstance(value, dict):
            params = {**params, **{k: v for k, v in value.items() if k != "script"}}
            value = value.get("script")
        if str(params.get("type", "js")) not in ("js", "javascript"):
            raise UnsupportedFeature(f"{path}: script type {params.get('type')!r} is not simulated")
        code = "\n".join(map(str, value)) if isinstance(value, list) else str(value)
        if is_link(code):
            code, _ = self.interp.fetch(code, self.addon.base_url)
        extra = {k: v for k, v in params.items() if k not in ("params", "type")}
        if extra:
            raise UnsupportedFeature(f"{path}: script parameters other than params/type: {sorted(extra)}")
        this = frame.this
        if params.get("params") is not None:
            this = self.scope(frame).render_value(params["params"])
        scope = self.scope(Frame(this=this, loops=frame.loops, depth=frame.depth))
        rendered = scope.render(code)
        self.step("script", detail=rendered[:200], path=path, unresolved=tuple(scope.unresolved))
        try:
            outcome = jsengine.run_script(rendered, manifest=self.addon.manifest, envs=self.interp.envs,
                                          platform=self.interp.platform, apps=self.interp.installed_apps())
            value = self.interp.run_deferred(outcome.value, outcome.deferred)
        except jsengine.ScriptFailure as exc:
            self.response = {}
            raise Stop("error", f"script failed: {exc}", "error") from None
        if isinstance(value, str) or not isinstance(value, dict):
            self.response = {}
            # handling-custom-responses.md: a string is an error pop-up (result 11039)
            raise Stop("error", to_text(value), "error")
        self.response = value
        if str(value.get("result", 0)) != "0":
            raise Stop("error", str(value.get("message") or value.get("error") or value), "error")


def _localised(message: Any) -> str | None:
    if isinstance(message, dict):
        message = message.get("en", next(iter(message.values()), None))
    return None if message is None else str(message)


def _as_bool(value: Any, name: str, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ManifestError(f"{path}: {name}: expected true or false, got {value!r}")
