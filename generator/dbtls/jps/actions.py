"""Execution of action lists: the semantics of each supported action (jps.md §5).

One :class:`Run` is one handler execution (install, button, event, uninstall). It owns the
``response`` of the last action, the run's globals and the :class:`Result`. Anything outside the
supported subset raises :class:`UnsupportedFeature`; nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .conditions import UNDEFINED, evaluate
from .errors import ConditionError, ManifestError, UnsupportedFeature
from .model import CmdResult, Node
from .placeholders import Loop, Scope, is_missing, nodes_view
from .results import Result, Step, Stop
from .syntax import (
    ACTION_PARAMS,
    BUILTIN_ACTIONS,
    ActionKey,
    action_items,
    is_api_method,
    parse_action_key,
    split_commas,
)

if TYPE_CHECKING:
    from .interpreter import Addon, Interpreter

_MAX_DEPTH = 40
_NO_PARAMS = {"log", "setGlobals", "set", "sleep", "assert", "return", "stopEvent", "forEach"}


@dataclass
class Frame:
    """Per-call state: ``${this}`` of the custom action and the active ``forEach`` loops.

    A custom action starts with no loops: iterators of the caller are not visible inside it
    (pass what it needs as parameters; whether the platform leaks them is unverified).
    """

    this: Any = None
    loops: list[Loop] = field(default_factory=list)
    depth: int = 0


class Run:
    """One handler execution of one add-on instance."""

    def __init__(self, interp: Interpreter, addon: Addon, settings: dict[str, Any],
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
            "user": {"email": interp.user.email, "uid": interp.user.uid, "name": interp.user.name},
            "baseUrl": self.addon.base_url,
        }
        if roots["baseUrl"] is None:
            del roots["baseUrl"]
        return Scope(roots, list(frame.loops), interp.rng, interp.strict)

    def step(self, action: str, **kw: Any) -> Step:
        step = Step(action, addon=self.addon.label, **kw)
        self.result.steps.append(step)
        return step

    # -- lists -------------------------------------------------------------------------------

    def run_list(self, items: Any, frame: Frame) -> None:
        items = action_items(items)
        i = 0
        while i < len(items):
            item = items[i]
            if isinstance(item, str):  # a bare custom-action name as a list item
                self.call_custom(item, None, frame)
                i += 1
                continue
            key, value, params = self.split_item(item)
            if key.name == "if":
                i = self.run_if_chain(items, i, frame)
                continue
            if key.name in ("elif", "else"):
                raise ManifestError(f"'{key.name}' does not directly follow an 'if' item")
            self.dispatch(key, value, params, frame)
            i += 1

    def split_item(self, item: Any) -> tuple[ActionKey, Any, dict[str, Any]]:
        """Find the one action key of a list item; the other keys are its parameters."""
        if not isinstance(item, dict) or not item:
            raise ManifestError(f"an action list item must be a one-action map, got {item!r}")
        actions = []
        for key in item:
            parsed = parse_action_key(str(key))
            if parsed and (parsed.name in BUILTIN_ACTIONS or parsed.name in self.addon.actions
                           or is_api_method(parsed.name)):
                actions.append((key, parsed))
        if len(actions) != 1:
            names = [k for k, _ in actions] or list(item)
            what = "unknown action" if not actions else "several actions in one item"
            raise ManifestError(f"{what}: {', '.join(map(str, names))}")
        raw, parsed = actions[0]
        params = {k: v for k, v in item.items() if k != raw}
        return parsed, item[raw], params

    def run_if_chain(self, items: list[Any], i: int, frame: Frame) -> int:
        """Run the first true branch of ``if``/``elif``.../``else`` starting at ``items[i]``."""
        chain: list[tuple[str | None, Any]] = []
        while i < len(items):
            item = items[i]
            if not isinstance(item, dict) or len(item) != 1:
                break
            (raw, body), = item.items()
            key = parse_action_key(str(raw))
            if key is None or (chain and key.name == "if") or key.name not in ("if", "elif", "else"):
                break
            chain.append((key.arg if key.name != "else" else None, body))
            i += 1
            if key.name == "else":
                break
        for cond, body in chain:
            if cond is None or self.condition(cond, frame):
                self.run_list(body, frame)
                break
        return i

    def condition(self, text: str, frame: Frame) -> bool:
        scope = self.scope(frame)
        rendered = scope.render(text)

        def lookup(name: str) -> Any:
            if name in ("env", "nodes", "globals", "settings", "user", "response", "event", "this"):
                value = scope.lookup(name)
                return UNDEFINED if is_missing(value) else value
            raise ConditionError(f"unknown identifier {name!r} in condition {rendered!r}")

        value = evaluate(rendered, lookup)
        self.step("if", detail=f"{rendered} -> {str(value).lower()}")
        return value

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        name = key.name
        if name in self.addon.actions:
            if params or key.selector:
                raise UnsupportedFeature(f"custom action {name!r} called with a selector or sibling keys")
            self.call_custom(name, value, frame)
            return
        allowed = ACTION_PARAMS.get(name, frozenset())
        if name in _NO_PARAMS and params:
            raise ManifestError(f"{name}: unexpected sibling keys {sorted(params)}")
        if set(params) - allowed:
            raise ManifestError(f"{name}: unknown parameters {sorted(set(params) - allowed)}")
        handler = getattr(self, f"do_{name}", None)
        if handler is None or (key.selector is not None and name not in ("cmd", "install")):
            raise UnsupportedFeature(f"action {name!r}{' with a selector' if key.selector else ''} "
                                     f"is not simulated")
        handler(key, value, params, frame)

    def call_custom(self, name: str, arg: Any, frame: Frame) -> None:
        if name not in self.addon.actions:
            raise ManifestError(f"unknown action {name!r}")
        if frame.depth >= _MAX_DEPTH:
            raise ManifestError(f"custom actions nest deeper than {_MAX_DEPTH} (recursion via {name!r}?)")
        scope = self.scope(frame)
        args = scope.render_value(arg)
        for one in args if isinstance(args, list) else [args]:
            self.step(f"call:{name}", detail=str(one) if one is not None else "")
            self.run_list(self.addon.actions[name], Frame(this=one, depth=frame.depth + 1))

    # -- built-ins ---------------------------------------------------------------------------

    def do_cmd(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        if isinstance(value, dict):
            extra = set(value) - ACTION_PARAMS["cmd"]
            if extra:
                raise ManifestError(f"cmd: unknown parameters {sorted(extra)}")
            params = {**params, **value}
            value = params.pop("commands", None)
        elif "commands" in params:
            raise ManifestError("cmd: both a value and 'commands'")
        if isinstance(value, list):
            value = "\n".join(str(v) for v in value)
        if not isinstance(value, str):
            raise ManifestError(f"cmd: script must be a string or list of strings, got {value!r}")
        scope = self.scope(frame)
        script = scope.render(value)
        user = scope.render(str(params["user"])) if params.get("user") is not None else None
        nodes = self.target_nodes(key.selector, params, scope, "cmd")
        say_yes = _as_bool(params.get("sayYes", True), "sayYes")
        sequential = _as_bool(params.get("sync", False), "sync") or not self.interp.parallel
        outcomes = self.interp.run_on_nodes(nodes, script, user, say_yes, sequential)
        responses = []
        failed: list[tuple[Node, CmdResult]] = []
        for node, res in zip(nodes, outcomes, strict=True):
            out = res.stdout.rstrip("\n")
            self.step("cmd", node_ids=(node.id,), exit_code=res.exit_code, out=out, err=res.stderr,
                      detail=script, user=user)
            responses.append({"nodeid": node.id, "out": out, "errOut": res.stderr.rstrip("\n"),
                              "result": 0 if res.exit_code == 0 else 4109, "exitStatus": res.exit_code})
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
                     action: str) -> list[Node]:
        """Selector in brackets wins over sibling nodeId/nodeGroup/nodeType (jps.md §5.2)."""
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
            raise UnsupportedFeature(f"{action} without target nodes (no selector, nodeId or nodeGroup)")
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

    def do_forEach(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        scope = self.scope(frame)
        arg = scope.render(key.arg or "")
        m = re.fullmatch(r"\s*(?:(\w+)\s*:)?\s*(.+?)\s*", arg, re.S)
        if not m:
            raise ManifestError(f"forEach: cannot parse {key.arg!r}")
        name, expr = m.group(1) or "i", m.group(2)
        items = scope.lookup(expr)
        if is_missing(items):
            raise ManifestError(f"forEach: {expr!r} does not resolve")
        if not isinstance(items, list):
            raise UnsupportedFeature(f"forEach over {type(items).__name__} ({expr!r}); only lists/layers")
        for index, element in enumerate(list(items)):
            frame.loops.append(Loop(name, element, index))
            try:
                self.run_list(value, frame)
            finally:
                frame.loops.pop()

    def do_setGlobals(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        if not isinstance(value, dict):
            raise ManifestError("setGlobals needs a map")
        rendered = self.scope(frame).render_value(value)
        self.globals.update(rendered)
        self.step("setGlobals", detail=", ".join(sorted(rendered)))

    def do_set(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        if not isinstance(value, dict) or not (frame.this is None or isinstance(frame.this, dict)):
            raise UnsupportedFeature("set needs a map and an action called with a map (or nothing)")
        frame.this = {**(frame.this or {}), **self.scope(frame).render_value(value)}
        self.step("set", detail=", ".join(sorted(value)))

    def do_log(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        scope = self.scope(frame)
        for line in action_items(value):
            text = scope.render(str(line))
            self.result.log.append(text)
            self.step("log", detail=text)

    def do_sleep(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        ms = value.get("milliseconds") if isinstance(value, dict) else value
        ms = int(self.scope(frame).render(str(ms)))
        self.step("sleep", detail=f"{ms} ms")
        self.interp.sleep(ms / 1000)

    def do_assert(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        for item in action_items(value):
            cond, message = (item.get("condition"), item.get("message")) if isinstance(item, dict) \
                else (item, None)
            if not self.condition(str(cond), frame):
                text = self.scope(frame).render(message) if message else f"assertion failed: {cond}"
                raise Stop("error", text, "error")

    def do_return(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        value = self.scope(frame).render_value(value)
        if isinstance(value, str):
            raise Stop("return", value, "error")  # a plain string return is an error pop-up
        if not isinstance(value, dict):
            raise ManifestError(f"return: expected a text or a map, got {value!r}")
        mtype, message = value.get("type"), value.get("message")
        code = value.get("result", 0)
        mapped = self.addon.responses.get(code) or self.addon.responses.get(str(code)) or {}
        mtype = mtype or mapped.get("type") or ("success" if str(code) == "0" else "error")
        raise Stop("return", message or mapped.get("message"), str(mtype))

    def do_stopEvent(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        value = self.scope(frame).render_value(value)
        if isinstance(value, dict):
            raise Stop("stopEvent", value.get("message"), str(value.get("type", "warning")))
        raise Stop("stopEvent", value if isinstance(value, str) else None, "warning")

    def do_install(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        if isinstance(value, list):
            for one in value:  # a list under one install is parallel on the platform; order-free here
                self.do_install(ActionKey("install", key.selector), one, params, frame)
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
            raise ManifestError(f"install: unknown parameters {sorted(unknown)}")
        jps = spec["jps"] if isinstance(spec.get("jps"), dict) else scope.render(str(spec.get("jps", "")))
        env_name = scope.render(str(spec["envName"])) if spec.get("envName") else None
        if env_name and env_name != self.interp.env.env_name:
            raise UnsupportedFeature(f"install into another environment ({env_name!r})")
        settings = scope.render_value(spec.get("settings") or {})
        if key.selector is not None:
            groups: list[str | None] = list(split_commas(scope.render(key.selector)))
        elif spec.get("nodeGroup") or spec.get("targetNodes"):
            groups = split_commas(scope.render(str(spec.get("nodeGroup") or spec.get("targetNodes"))))
        else:
            groups = [None]
        for group in groups:
            self.step("install", detail=f"{jps if isinstance(jps, str) else '<inline>'} on {group or '-'}")
            child = self.interp.install_child(self.addon, jps, group, settings)
            self.result.steps.extend(child.steps)
            self.result.log.extend(child.log)
            if not child.ok:
                raise Stop("error", f"nested install failed: {child.error}", "error")
        self.response = {"result": 0}

    def do_script(self, key: ActionKey, value: Any, params: dict[str, Any], frame: Frame) -> None:
        hook = self.interp.script_hook
        if hook is None:
            raise UnsupportedFeature("server-side 'script' actions need Interpreter(script_hook=...)")
        scope = self.scope(frame)
        code = "\n".join(value) if isinstance(value, list) else str(value)
        response = hook(self.addon, scope.render(code), scope.render_value(params.get("params", {})))
        self.step("script", detail=code[:200])
        self.response = dict(response)
        if str(self.response.get("result", 0)) != "0":
            raise Stop("error", str(self.response.get("error") or self.response), "error")


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ManifestError(f"{name}: expected true or false, got {value!r}")
