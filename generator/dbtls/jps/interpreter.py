"""A JPS interpreter for the simulated platform (design.md §6, jps.md §12).

It runs a manifest's handlers against an :class:`Environment` whose nodes are reached only through
a :class:`NodeRunner`. Public entry points::

    interp = Interpreter(env, runner, base_url="http://127.0.0.1:8000/")
    addon, result = interp.install("manifest.jps", node_group="sqldb", settings={...})
    interp.click(addon, "Re-issue certificates", settings={"newCa": True})
    interp.fire(addon, "onAfterServiceScaleOut", params={"nodeGroup": "sqldb"},
                response={"nodes": [new_node]})
    interp.uninstall(addon)

Each call returns a :class:`Result` with every executed step. Unsupported manifest features raise
:class:`UnsupportedFeature` at load or when reached; they are never skipped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import Frame, Run
from .errors import ManifestError, UnsupportedFeature
from .loading import Fetcher, base_of, default_fetch, parse_manifest
from .model import CmdResult, Environment, Node, NodeRunner, User
from .placeholders import node_dicts
from .results import Result, Stop
from .syntax import EVENTS, action_items, parse_event_key, split_commas

#: Top-level keys that are pure metadata for the interpreter (shown by the dashboard only).
_METADATA = {"type", "jpsType", "jpsVersion", "version", "id", "name", "description", "logo",
             "homepage", "categories", "targetEditions", "targetNodes", "permanent",
             "skipNodeEmails", "startPage"}
_HANDLED = {"nodeGroupAlias", "baseUrl", "settings", "globals", "actions", "buttons", "menu", "success",
            "responses", "mixins", "onInstall", "onUninstall", "onBeforeInit"}

#: ``script_hook(addon, rendered_js, params) -> response dict`` stands in for server-side JS.
ScriptHook = Callable[["Addon", str, dict[str, Any]], dict[str, Any]]


@dataclass
class Addon:
    """One installation of a manifest (on one layer for ``type: update``)."""

    manifest: dict[str, Any]
    node_group: str | None
    settings: dict[str, Any]
    base_url: str | None  #: value of ``${baseUrl}``
    source_base: str | None  #: where relative ``install``/``mixins`` references resolve
    actions: dict[str, Any] = field(default_factory=dict)
    responses: dict[Any, Any] = field(default_factory=dict)
    globals_spec: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  #: alias -> real layer (nodeGroupAlias)

    @property
    def label(self) -> str:
        return f"{self.manifest.get('id') or self.manifest.get('name', '?')}@{self.node_group or '-'}"


class Interpreter:
    """Runs manifests against one simulated environment."""

    def __init__(self, env: Environment, runner: NodeRunner, *, user: User | None = None,
                 fetch: Fetcher = default_fetch, base_url: str | None = None, parallel: bool = True,
                 strict: bool = True, sleep: Callable[[float], None] = time.sleep,
                 script_hook: ScriptHook | None = None, seed: int | None = None,
                 ignore_on_before_init: bool = False) -> None:
        self.env = env
        self.runner = runner
        self.user = user or User()
        self.fetch = fetch
        self.base_url_override = base_url
        self.parallel = parallel
        self.strict = strict
        self.sleep = sleep
        self.script_hook = script_hook
        self.rng = random.Random(seed)
        self.ignore_on_before_init = ignore_on_before_init
        self.addons: list[Addon] = []  #: installed instances, in install order

    # -- loading -----------------------------------------------------------------------------

    def load(self, source: str | Path | dict[str, Any], *, node_group: str | None = None,
             settings: dict[str, Any] | None = None, parent: Addon | None = None) -> Addon:
        """Parse and check a manifest (path, URL, YAML text or dict) without running anything."""
        manifest, location = self._read(source, parent)
        unknown = [k for k in manifest if k not in _METADATA | _HANDLED and parse_event_key(k) is None]
        if unknown:
            raise UnsupportedFeature(f"top-level keys not simulated: {', '.join(map(str, unknown))}")
        if "onBeforeInit" in manifest and not self.ignore_on_before_init:
            raise UnsupportedFeature("onBeforeInit (server-side JS) is not simulated; pass "
                                     "ignore_on_before_init=True and supply the form values yourself")
        for key in manifest:
            parsed = parse_event_key(str(key))
            if parsed and parsed[0] not in EVENTS:
                raise ManifestError(f"{key}: not a platform event")
        source_base = base_of(location) if location else (parent.source_base if parent else None)
        own_base = manifest.get("baseUrl")
        base_url = self.base_url_override or own_base or (parent.base_url if parent else None) \
            or source_base
        if own_base and not self.base_url_override:
            source_base = own_base
        addon = Addon(manifest, node_group, {}, base_url, source_base)
        addon.aliases = {str(v): str(k) for k, v in (manifest.get("nodeGroupAlias") or {}).items()}
        addon.settings = {**form_defaults(manifest.get("settings"), "main"), **(settings or {})}
        self._merge_mixins(addon)
        return addon

    def _read(self, source: str | Path | dict[str, Any], parent: Addon | None
              ) -> tuple[dict[str, Any], str | None]:
        if isinstance(source, dict):
            return source, None
        text = str(source)
        if isinstance(source, Path) or ("\n" not in text and not text.lstrip().startswith("{")):
            body, location = self.fetch(text, parent.source_base if parent else None)
            return parse_manifest(body, location), location
        return parse_manifest(text), None

    def _merge_mixins(self, addon: Addon) -> None:
        """Mixins contribute globals/actions/responses; the main manifest wins (jps.md §1.1)."""
        parts: list[dict[str, Any]] = []
        for ref in action_items(addon.manifest.get("mixins")):
            body, location = self.fetch(str(ref), addon.source_base)
            parts.append(parse_manifest(body, location))
        for part in [*parts, addon.manifest]:
            for key in set(part) - {"globals", "actions", "responses", "baseUrl", "type", "id", "name"}:
                if part is not addon.manifest:
                    raise UnsupportedFeature(f"mixin key {key!r} is not simulated")
            addon.globals_spec.update(part.get("globals") or {})
            addon.actions.update(part.get("actions") or {})
            addon.responses.update(part.get("responses") or {})

    # -- entry points ------------------------------------------------------------------------

    def install(self, source: str | Path | dict[str, Any], *, node_group: str | None = None,
                settings: dict[str, Any] | None = None) -> tuple[Addon, Result]:
        """Install a manifest: run ``onInstall`` and render ``success``; registers the add-on."""
        addon = self.load(source, node_group=node_group, settings=settings)
        return addon, self._install(addon)

    def install_child(self, parent: Addon, jps: str | dict[str, Any], node_group: str | None,
                      settings: dict[str, Any]) -> Result:
        """Nested ``install`` (called by the ``install`` action)."""
        addon = self.load(jps, node_group=node_group or parent.node_group, settings=settings,
                          parent=parent)
        return self._install(addon)

    def _install(self, addon: Addon) -> Result:
        result = self._run(addon, addon.manifest.get("onInstall"), addon.settings, with_success=True)
        if result.ok:
            self.addons.append(addon)
        return result

    def click(self, addon: Addon, caption: str, settings: dict[str, Any] | None = None) -> Result:
        """Press a button (or menu item) by caption or name, with the values of its form."""
        button = next((b for b in [*(addon.manifest.get("buttons") or []), *(addon.manifest.get("menu") or [])]
                       if caption in (b.get("caption"), b.get("name"))), None)
        if button is None:
            raise ManifestError(f"no button or menu item {caption!r}")
        if button.get("href") and not button.get("action"):
            return Result(message=str(button["href"]), message_type="info")
        form: dict[str, Any] = {}
        if button.get("settings"):
            form = form_defaults(addon.manifest.get("settings"), str(button["settings"]))
            declared = set(form) | form_names(addon.manifest.get("settings"), str(button["settings"]))
            unknown = set(settings or {}) - declared
            if unknown:
                raise ManifestError(f"button {caption!r}: form has no fields {sorted(unknown)}")
        elif settings:
            raise ManifestError(f"button {caption!r} has no settings form")
        merged = {**addon.settings, **form, **(settings or {})}
        result = self._run(addon, [{str(button["action"]): None}], merged)
        if result.ok and not result.stopped and button.get("successText"):
            result.message = str(button["successText"])
        return result

    def fire(self, addon: Addon, event: str, *, params: dict[str, Any] | None = None,
             response: dict[str, Any] | None = None) -> Result | None:
        """Raise a platform event on one add-on; ``None`` when none of its handlers matches."""
        if event not in EVENTS:
            raise ManifestError(f"{event!r} is not a platform event")
        params = dict(params or {})
        response = dict(response or {})
        if "nodes" in response:
            response["nodes"] = node_dicts(response["nodes"])
        payload = {"params": params, "response": response}
        bodies = [body for key, body in addon.manifest.items()
                  if (p := parse_event_key(str(key))) and p[0] == event
                  and self._filter_matches(addon, p[1], payload)]
        if not bodies:
            return None
        result = Result()
        for body in bodies:
            one = self._run(addon, body, addon.settings, payload)
            result.steps += one.steps
            result.log += one.log
            result.ok, result.error, result.stopped = one.ok, one.error, one.stopped
            result.message, result.message_type = one.message, one.message_type
            if not one.ok or one.stopped:
                break
        return result

    def fire_all(self, event: str, **kw: Any) -> list[tuple[Addon, Result]]:
        """Raise an event on every installed add-on that handles it, in install order."""
        out = []
        for addon in list(self.addons):
            res = self.fire(addon, event, **kw)
            if res is not None:
                out.append((addon, res))
        return out

    def uninstall(self, addon: Addon) -> Result:
        """Run ``onUninstall`` and forget the add-on."""
        result = self._run(addon, addon.manifest.get("onUninstall"), addon.settings)
        if addon in self.addons:
            self.addons.remove(addon)
        return result

    def call(self, addon: Addon, action: str, arg: Any = None) -> Result:
        """Run one custom action directly (what a button does, without the form)."""
        return self._run(addon, [{action: arg}], addon.settings)

    # -- machinery ---------------------------------------------------------------------------

    def _run(self, addon: Addon, body: Any, settings: dict[str, Any],
             event: dict[str, Any] | None = None, with_success: bool = False) -> Result:
        run = Run(self, addon, settings, event)
        frame = Frame()
        try:
            # globals are (re)computed for every run: persisted state belongs on the nodes.
            for name, value in addon.globals_spec.items():
                run.globals[name] = run.scope(frame).render_value(value)
            if isinstance(body, str):
                run.call_custom(body, None, frame)
            else:
                run.run_list(body, frame)
            if with_success:
                run.result.message = self._success_text(run)
        except Stop as stop:
            run.result.message, run.result.message_type = stop.message, stop.message_type
            if stop.kind == "error" or stop.message_type == "error":
                run.result.ok = False
                run.result.error = stop.message or "error"
            else:
                run.result.stopped = True
        return run.result

    def _filter_matches(self, addon: Addon, flt: str | None, payload: dict[str, Any]) -> bool:
        if not flt:
            return True
        run = Run(self, addon, addon.settings, payload)
        params = payload["params"]
        for token in split_commas(run.scope(Frame()).render(flt)):
            if ":" in token:
                k, v = (s.strip() for s in token.split(":", 1))
                if str(params.get(k, "")).lower() != v.lower():
                    return False
                continue
            ids = {str(n.get("id")) for n in payload["response"].get("nodes", [])}
            if token not in {str(params.get("nodeGroup")), str(params.get("nodeType")),
                             str(params.get("nodeid"))} | ids:
                return False
        return True

    def _success_text(self, run: Run) -> str | None:
        """The manifest's ``success`` text, rendered with the run's final globals/settings."""
        addon = run.addon
        success = addon.manifest.get("success")
        if isinstance(success, dict):
            success = success.get("text", success.get("en"))
            if isinstance(success, dict):
                success = success.get("en")
        if success is None:
            return None
        text = str(success)
        if text.endswith(".md") and "\n" not in text:
            text, _ = self.fetch(text, addon.source_base)
        return run.scope(Frame()).render(text)

    def run_on_nodes(self, nodes: list[Node], script: str, user: str | None, say_yes: bool,
                     sequential: bool) -> list[CmdResult]:
        """Run one script on several nodes: all at once (a thread per node) unless sequential."""
        if sequential or len(nodes) == 1:
            return [self.runner.run(n, script, user, say_yes=say_yes) for n in nodes]
        with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="jps-cmd") as pool:
            futures = [pool.submit(self.runner.run, n, script, user, say_yes=say_yes) for n in nodes]
            return [f.result() for f in futures]


def _fields(settings: Any, form: str) -> list[dict[str, Any]]:
    if not isinstance(settings, dict):
        return []
    if form == "main" and "fields" in settings:
        return list(settings.get("fields") or [])
    entry = settings.get(form)
    return list(entry.get("fields") or []) if isinstance(entry, dict) else []


def form_defaults(settings: Any, form: str) -> dict[str, Any]:
    """Default values of a form's fields, following ``showIf`` for the selected value."""
    values: dict[str, Any] = {}

    def walk(fields: list[Any]) -> None:
        for f in fields:
            if not isinstance(f, dict) or not f.get("name"):
                continue
            if "value" in f or "default" in f:
                values[f["name"]] = f.get("value", f.get("default"))
            chosen = values.get(f["name"])
            for when, more in (f.get("showIf") or {}).items():
                if str(when).lower() == str(chosen).lower() and isinstance(more, list):
                    walk(more)

    walk(_fields(settings, form))
    return values


def form_names(settings: Any, form: str) -> set[str]:
    """Every field name of a form, including ``showIf`` sub-fields."""
    names: set[str] = set()

    def walk(fields: list[Any]) -> None:
        for f in fields:
            if isinstance(f, dict):
                if f.get("name"):
                    names.add(str(f["name"]))
                for more in (f.get("showIf") or {}).values():
                    walk(more if isinstance(more, list) else [])

    walk(_fields(settings, form))
    return names
