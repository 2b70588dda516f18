"""Count the platform calls a JPS handler makes, statically, for one topology.

Used on manifests we do not run (the upstream add-ons): it walks the YAML as the engine would run
it for a given target layer and node counts, without any node. Counting rules (docs/performance.md):

* every action that is a platform request (``dbtls.jps.timeline.is_platform_call``: ``cmd``,
  ``script``, ``install``, ``restartNodes``, API methods ...) is one call, whatever it targets: a
  ``cmd`` on a whole layer is one call;
* ``forEach(nodes.G)`` runs its body once per node of G (so N calls per call in the body);
* a custom action counts what its body counts; engine-local actions (``setGlobals``, ``set``,
  ``log``, ``if`` itself) count nothing; ``return``/``stopEvent`` end the handler;
* ``if``/``elif``/``else``: the condition is evaluated with ``dbtls.jps.conditions`` against the
  topology (``nodes.G`` is a list of its nodes, ``response.out`` is empty); a condition it cannot
  evaluate must be given in ``assume`` (its raw text -> true/false), otherwise counting fails;
* ``install [G1,G2]`` of a nested manifest is one call per layer plus the nested manifest's
  ``onInstall`` on that layer (``resolve`` maps the ``jps`` reference to the parsed manifest).

All calls of one handler are sequential here: none of the counted manifests runs two calls at once.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dbtls.jps.conditions import UNDEFINED, evaluate
from dbtls.jps.syntax import BUILTIN_ACTIONS, action_items, is_api_method, parse_action_key, split_commas
from dbtls.jps.timeline import is_platform_call

_LOCAL = {"setGlobals", "set", "log", "assert", "sleep"}
_ENDS = {"return", "stopEvent"}
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
_MAX_DEPTH = 40


class CountError(Exception):
    """The manifest needs something the counter does not model (one line, names the path)."""


class _Ended(Exception):
    """A ``return``/``stopEvent`` was reached: the handler ends here."""


@dataclass
class Count:
    """Platform calls of one handler run, by kind and by the custom action that issued them."""

    calls: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_handler: Counter[str] = field(default_factory=Counter)

    def add(self, other: Count) -> None:
        self.calls += other.calls
        self.by_kind.update(other.by_kind)
        self.by_handler.update(other.by_handler)


@dataclass
class Counter_:
    """One counting run: a manifest installed on ``group`` of an environment with ``layers``."""

    manifest: dict[str, Any]
    group: str
    layers: dict[str, int]  #: layer -> node count
    settings: dict[str, str] = field(default_factory=dict)
    assume: dict[str, bool] = field(default_factory=dict)
    resolve: Callable[[str], dict[str, Any]] | None = None
    result: Count = field(default_factory=Count)

    def render(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.endswith(".toBase64()"):
                inner = self.render("${" + expr[:-len(".toBase64()")] + "}")
                return m.group(0) if "${" in inner else base64.b64encode(inner.encode()).decode()
            name, _, default = expr.partition(":")
            if name == "targetNodes.nodeGroup":
                return self.group
            if name.startswith("settings.") and name[9:] in self.settings:
                return self.settings[name[9:]]
            return default if default else m.group(0)

        return _PLACEHOLDER.sub(one, text)

    def condition(self, raw: str, path: str) -> bool:
        if raw in self.assume:
            return self.assume[raw]
        text = self.render(raw)

        def lookup(name: str) -> Any:
            if name == "nodes":
                return {g: [{"id": i} for i in range(n)] for g, n in self.layers.items()}
            if name == "response":
                return {"out": ""}
            return UNDEFINED

        try:
            return bool(evaluate(text, lookup))
        except Exception as exc:  # noqa: BLE001 - any failure means "give it in assume"
            raise CountError(f"{path}: cannot evaluate {raw!r} ({exc}); give it in assume") from None

    def run(self, body: Any, path: str, handler: str, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise CountError(f"{path}: custom actions nest deeper than {_MAX_DEPTH}")
        items = action_items(body)
        taken: bool | None = None  # state of the current if/elif chain
        for i, item in enumerate(items):
            ipath = f"{path}[{i}]"
            if isinstance(item, str):
                self.custom(item, ipath, depth)
                taken = None
                continue
            key, raw, value = self.split(item, ipath)
            if key.name in ("if", "elif", "else"):
                if key.name != "if" and taken is None:
                    raise CountError(f"{ipath}: {key.name} without an if before it")
                if key.name == "if":
                    taken = False
                if not taken and (key.name == "else" or self.condition(key.arg or "", ipath)):
                    taken = True
                    self.run(value, f"{ipath}.{raw}", handler, depth)
                continue
            taken = None
            self.action(key, raw, value, item, ipath, handler, depth)

    def split(self, item: Any, path: str) -> tuple[Any, str, Any]:
        if not isinstance(item, dict):
            raise CountError(f"{path}: not an action item: {item!r}")
        found = []
        for raw in item:
            key = parse_action_key(str(raw))
            if key and (key.name in BUILTIN_ACTIONS or key.name in self.actions or is_api_method(key.name)):
                found.append((key, str(raw)))
        if len(found) != 1:
            raise CountError(f"{path}: expected one action in {sorted(map(str, item))}")
        key, raw = found[0]
        return key, raw, item[raw]

    @property
    def actions(self) -> dict[str, Any]:
        return self.manifest.get("actions") or {}

    def custom(self, name: str, path: str, depth: int) -> None:
        if name not in self.actions:
            raise CountError(f"{path}: unknown action {name!r}")
        self.run(self.actions[name], f"actions.{name}", name, depth + 1)

    def action(self, key: Any, raw: str, value: Any, item: dict[str, Any], path: str, handler: str,
               depth: int) -> None:
        name = key.name
        if name in self.actions:
            self.custom(name, path, depth)
        elif name == "forEach":
            m = re.fullmatch(r"\s*(?:\w+\s*:)?\s*nodes\.([\w-]+)\s*", self.render(key.arg or ""))
            if not m:
                raise CountError(f"{path}: forEach over {key.arg!r} is not modelled (only nodes.<layer>)")
            for _ in range(self.layers.get(m.group(1), 0)):
                self.run(value, f"{path}.{raw}", handler, depth)
        elif name in _LOCAL:
            return
        elif name in _ENDS:
            raise _Ended()
        elif name in ("install", "installAddon"):
            self.install(key, raw, value, item, handler)
        elif is_platform_call(name):
            self.result.calls += 1
            self.result.by_kind[name] += 1
            self.result.by_handler[handler] += 1
        else:
            raise CountError(f"{path}: action {name!r} is not modelled")

    def install(self, key: Any, raw: str, value: Any, item: dict[str, Any], handler: str) -> None:
        spec = {k: v for k, v in item.items() if k != raw}
        spec.update(value if isinstance(value, dict) else {"jps": value})
        groups = split_commas(self.render(key.selector)) if key.selector else [self.group]
        for group in groups:
            self.result.calls += 1
            self.result.by_kind["install"] += 1
            self.result.by_handler[handler] += 1
            if self.resolve is None:
                continue
            child = self.resolve(self.render(str(spec.get("jps", ""))))
            inner = Counter_(child, group, self.layers, self.settings, self.assume, self.resolve)
            self.result.add(inner.handler("onInstall"))

    def handler(self, name: str) -> Count:
        """Count one top-level handler (``onInstall``, ``onUninstall``) or custom action (a button)."""
        body = self.manifest.get(name) if name.startswith("on") else [name]
        try:
            self.run(body, name, name)
        except _Ended:
            pass
        return self.result


def count(manifest: dict[str, Any], handler: str, group: str, layers: dict[str, int], **kw: Any) -> Count:
    """Platform calls of ``handler`` of ``manifest`` installed on ``group``."""
    return Counter_(manifest, group, layers, **kw).handler(handler)
