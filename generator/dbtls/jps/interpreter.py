"""A JPS interpreter for the simulated platform (its rules and their sources: docs/jps-semantics.md).

It runs a manifest's handlers against an :class:`Environment` whose nodes are reached only through
a :class:`NodeRunner`. Public entry points::

    interp = Interpreter(env, runner)
    addon, result = interp.install("http://gw:8000/manifest.jps", node_group="sqldb", settings={...})
    interp.click(addon, "Re-issue certificates", settings={"newCa": True})
    interp.fire_all("onAfterServiceScaleOut", params={"nodeGroup": "sqldb"},
                    response={"nodes": [new_node]})
    interp.uninstall(addon)

Each call returns a :class:`Result` with every executed step. Unsupported manifest features raise
:class:`UnsupportedFeature` at load or when reached; they are never skipped.
"""

from __future__ import annotations

import copy
import hashlib
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dbtls.jps import jsengine
from dbtls.jps.actions import Frame, Run
from dbtls.jps.errors import ManifestError, UnsupportedFeature
from dbtls.jps.loading import Fetcher, base_of, declared_base_url, default_fetch, is_link, parse_manifest
from dbtls.jps.model import Addon, CmdResult, Environment, Node, NodeRunner, User
from dbtls.jps.placeholders import node_dicts
from dbtls.jps.platformapi import Platform, url_name
from dbtls.jps.results import Result, Stop
from dbtls.jps.syntax import EVENTS, action_items, parse_event_key, split_commas
from dbtls.jps.timeline import Recorder

#: Top-level keys that are pure metadata for the interpreter (shown by the dashboard only).
_METADATA = {"type", "jpsType", "jpsVersion", "version", "id", "name", "description", "logo",
             "homepage", "categories", "targetEditions", "targetNodes", "permanent",
             "skipNodeEmails", "startPage"}
_HANDLED = {"nodeGroupAlias", "baseUrl", "settings", "globals", "actions", "buttons", "menu", "success",
            "responses", "mixins", "onInstall", "onUninstall", "onBeforeInit"}
#: events.md, onBeforeInit: what its result may not override.
_INIT_FIXED = {"type", "name", "baseUrl", "result"}
#: ``fire_all`` orders: the order instances were installed in, or the reverse.
ORDERS = ("install", "reverse")


class Interpreter:
    """Runs manifests against one simulated environment.

    ``envs`` are the environments ``jelastic.env.control.GetEnvs()`` reports to scripts (default:
    just ``env``).
    """

    def __init__(self, env: Environment, runner: NodeRunner, *, user: User | None = None,
                 fetch: Fetcher = default_fetch, parallel: bool = True,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 envs: list[Environment] | None = None) -> None:
        self.env = env
        self.runner = runner
        self.user = user or User()
        self.fetch = fetch
        self.parallel = parallel
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.envs = envs if envs is not None else [env]
        if not env.appid:
            env.appid = hashlib.md5(env.env_name.encode()).hexdigest()
        #: Scripts and sessions of the platform API calls scripts make (platformapi.py).
        self.platform = Platform(appid=env.appid)
        #: Every action an ExecuteAction ran: (installation, action, result), in order.
        self.executed: list[tuple[Addon, str, Result]] = []
        self.addons: list[Addon] = []  #: installed instances, in install order
        #: Set a :class:`timeline.Recorder` to time every platform call (docs/performance.md).
        self.recorder: Recorder | None = None
        self._lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------------

    def load(self, source: str | Path | dict[str, Any], *, node_group: str | None = None,
             settings: dict[str, Any] | None = None, parent: Addon | None = None) -> Addon:
        """Parse a manifest (path, URL, YAML text or dict), run its ``onBeforeInit``, fill the form.

        ``${baseUrl}`` (basic-configs.md, Relative Links): a declared ``baseUrl`` wins over where the
        manifest came from (with a trailing slash added); otherwise it is the folder the manifest
        was read from, without a trailing slash; an inline manifest inherits the parent's.
        """
        manifest, location = self._read(source, parent)
        unknown = [k for k in manifest if k not in _METADATA | _HANDLED and parse_event_key(k) is None]
        if unknown:
            raise UnsupportedFeature(f"top-level keys not simulated: {', '.join(map(str, unknown))}")
        for key in manifest:
            parsed = parse_event_key(str(key))
            if parsed and parsed[0] not in EVENTS:
                raise ManifestError(f"{key}: not a platform event")
            if parsed and parsed[0] == "onBeforeInstall":
                raise UnsupportedFeature("onBeforeInstall is not simulated")
        if isinstance(manifest.get("settings"), dict) and any(
                isinstance(v, dict) and "onBeforeInit" in v for v in [manifest["settings"],
                                                                      *manifest["settings"].values()]):
            raise UnsupportedFeature("settings.onBeforeInit is not simulated (use the top-level onBeforeInit)")
        if manifest.get("baseUrl"):
            base_url: str | None = declared_base_url(str(manifest["baseUrl"]))
        elif location is not None:
            base_url = base_of(location)
        else:
            base_url = parent.base_url if parent else None
        addon = Addon(manifest, node_group, {}, base_url)
        addon.aliases = {str(v): str(k) for k, v in (manifest.get("nodeGroupAlias") or {}).items()}
        if "onBeforeInit" in manifest:
            self._on_before_init(addon)
        addon.settings = {**form_defaults(addon.manifest.get("settings"), "main"), **(settings or {})}
        self._merge_mixins(addon)
        return addon

    def _read(self, source: str | Path | dict[str, Any], parent: Addon | None
              ) -> tuple[dict[str, Any], str | None]:
        if isinstance(source, dict):
            return copy.deepcopy(source), None
        text = str(source)
        if isinstance(source, Path) or ("\n" not in text and not text.lstrip().startswith("{")):
            body, location = self.fetch(text, parent.base_url if parent else None)
            return parse_manifest(body, location), location
        return parse_manifest(text), None

    def _on_before_init(self, addon: Addon) -> None:
        """events.md, onBeforeInit: JS that sees the manifest as ``jps``; a result-0 answer's fields
        (except type, name, baseUrl) replace the manifest's. The whole ``jps`` may be returned too."""
        value = addon.manifest["onBeforeInit"]
        code = "\n".join(map(str, value)) if isinstance(value, list) else str(value)
        if is_link(code):
            code, _ = self.fetch(code, addon.base_url)
        run = Run(self, addon, {})
        scope = run.scope(Frame())
        rendered = scope.render(code)
        try:
            answer = jsengine.run(rendered, manifest=addon.manifest, envs=self.envs)
        except jsengine.ScriptFailure as exc:
            raise ManifestError(f"onBeforeInit failed (11041, JPS manifest initialization error): {exc}") from None
        if not isinstance(answer, dict) or str(answer.get("result", 0)) != "0":
            raise ManifestError(f"onBeforeInit failed (11041, JPS manifest initialization error): {answer!r}")
        for key, val in answer.items():
            if key not in _INIT_FIXED:
                addon.manifest[key] = val

    def _merge_mixins(self, addon: Addon) -> None:
        """Mixins contribute globals/actions/responses; the main manifest wins (mixins.md)."""
        parts: list[dict[str, Any]] = []
        for ref in action_items(addon.manifest.get("mixins")):
            body, location = self.fetch(str(ref), addon.base_url)
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
        """Nested ``install`` (called by the ``install`` action); a relative ``jps`` resolves
        against the parent's ``${baseUrl}``."""
        addon = self.load(jps, node_group=node_group or parent.node_group, settings=settings,
                          parent=parent)
        return self._install(addon)

    def _install(self, addon: Addon) -> Result:
        result = self._run(addon, addon.manifest.get("onInstall"), addon.settings, path="onInstall",
                           with_success=True)
        if result.ok:
            if not addon.unique_name:
                addon.unique_name = secrets.token_hex(16)
            with self._lock:
                self.addons.append(addon)
        return result

    def click(self, addon: Addon, caption: str, settings: dict[str, Any] | None = None) -> Result:
        """Press a button (or menu item) by caption or name, with the values of its own form.

        The action sees in ``${settings.*}`` only its own form's values (or nothing without a form):
        whether the engine merges the install settings in is undocumented, so a manifest must not
        depend on it.
        """
        entries = [("buttons", i, b) for i, b in enumerate(addon.manifest.get("buttons") or [])]
        entries += [("menu", i, b) for i, b in enumerate(addon.manifest.get("menu") or [])]
        found = next(((sec, i, b) for sec, i, b in entries if caption in (b.get("caption"), b.get("name"))), None)
        if found is None:
            raise ManifestError(f"no button or menu item {caption!r}")
        section, index, button = found
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
        own = {**form, **(settings or {})}
        result = self._run(addon, {str(button["action"]): None}, own, path=f"{section}[{index}].action")
        if result.ok and not result.stopped and button.get("successText"):
            result.message = str(button["successText"])
        return result

    def fire(self, addon: Addon, event: str, *, params: dict[str, Any] | None = None,
             response: dict[str, Any] | None = None) -> Result | None:
        """Raise a platform event on one add-on instance; ``None`` when none of its handlers matches."""
        if event not in EVENTS:
            raise ManifestError(f"{event!r} is not a platform event")
        params = dict(params or {})
        response = dict(response or {})
        if "nodes" in response:
            response["nodes"] = node_dicts(response["nodes"])
        payload = {"params": params, "response": response}
        bodies = [(str(key), body) for key, body in addon.manifest.items()
                  if (p := parse_event_key(str(key))) and p[0] == event
                  and self._filter_matches(addon, p[1], payload)]
        if not bodies:
            return None
        result = Result()
        for key, body in bodies:
            one = self._run(addon, body, addon.settings, payload, path=key)
            result.steps += one.steps
            result.log += one.log
            result.ok, result.error, result.stopped = one.ok, one.error, one.stopped
            result.message, result.message_type = one.message, one.message_type
            if not one.ok or one.stopped:
                break
        return result

    def fire_all(self, event: str, *, order: str = "install", concurrent: bool = False,
                 **kw: Any) -> list[tuple[Addon, Result]]:
        """Raise an event in the environment: every installed instance hears it and runs its
        handlers whose filter matches (rendered with that instance's ``targetNodes``).

        The platform documents no order between add-ons, so callers can run the instances in
        install order, in reverse, or all at once (a thread per instance).
        """
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        with self._lock:
            addons = list(self.addons) if order == "install" else list(reversed(self.addons))
        if concurrent and len(addons) > 1:
            with ThreadPoolExecutor(max_workers=len(addons), thread_name_prefix="jps-event") as pool:
                futures = [pool.submit(self.fire, a, event, **kw) for a in addons]
                outcomes = [f.result() for f in futures]
        else:
            outcomes = [self.fire(a, event, **kw) for a in addons]
        return [(a, r) for a, r in zip(addons, outcomes, strict=True) if r is not None]

    def uninstall(self, addon: Addon) -> Result:
        """Run ``onUninstall`` (with the install settings) and forget the add-on."""
        result = self._run(addon, addon.manifest.get("onUninstall"), addon.settings, path="onUninstall")
        with self._lock:
            if addon in self.addons:
                self.addons.remove(addon)
        return result

    def installed_apps(self) -> list[dict[str, Any]]:
        """What ``GetApps`` lists: the installed instances (app id, layer, unique name)."""
        with self._lock:
            addons = list(self.addons)
        return [{"uniqueName": a.unique_name, "app_id": str(a.manifest.get("id") or ""),
                 "nodeGroup": a.node_group or "", "isInstalled": True, "name": str(a.manifest.get("name") or "")}
                for a in addons]

    def execute_action(self, unique_name: str, action: str) -> dict[str, Any]:
        """``api.marketplace.installation.ExecuteAction``: run ``action`` of the installation, with no
        form values (as a button without a form), and answer as the platform's InstallResponse."""
        with self._lock:
            addon = next((a for a in self.addons if a.unique_name == unique_name), None)
        if addon is None:
            return {"result": 2303, "error": f"no installation {unique_name}"}
        if action not in addon.actions:
            return {"result": 2304, "error": f"{addon.label} has no action {action}"}
        result = self._run(addon, {action: None}, {}, path=f"(ExecuteAction {action})")
        self.executed.append((addon, action, result))
        if not result.ok:
            return {"result": 99, "error": result.error or "error", "type": "error"}
        return {"result": 0, "message": result.message or "", "type": result.message_type or "success"}

    def run_deferred(self, value: Any, deferred: list[dict[str, Any]]) -> Any:
        """Run the ExecuteAction requests a script made, in order; a returned marker becomes the answer."""
        answers = [self.execute_action(d["appUniqueName"], d["action"]) for d in deferred]
        if isinstance(value, dict) and set(value) == {"__dbtlsDeferred"}:
            return answers[int(value["__dbtlsDeferred"])]
        return value

    def invoke_script(self, name: str, params: dict[str, Any]) -> Any:
        """A request to the platform script ``name`` over HTTPS (``https://<host>/<name>``) without a
        session, with the request's parameters: what a node's renewal check sends. Only a script
        that declares ``//@url('/<name>')`` is served. Returns the script's answer."""
        script = self.platform.scripts.get(name)
        if script is None or url_name(script["code"]) != name:
            return {"result": 1103, "error": f"no script served at /{name}"}
        outcome = jsengine.run_script(script["code"], manifest={}, envs=self.envs, platform=self.platform,
                                      apps=self.installed_apps(), params=params, session="")
        return self.run_deferred(outcome.value, outcome.deferred)

    def call(self, addon: Addon, action: str, arg: Any = None) -> Result:
        """Run one custom action directly with the install settings (tests)."""
        return self._run(addon, {action: arg}, addon.settings, path=f"(call {action})")

    # -- machinery ---------------------------------------------------------------------------

    def _run(self, addon: Addon, body: Any, settings: dict[str, Any],
             event: dict[str, Any] | None = None, *, path: str, with_success: bool = False) -> Result:
        run = Run(self, addon, settings, event)
        frame = Frame()
        try:
            # globals are (re)computed for every run: persisted state belongs on the nodes.
            for name, value in addon.globals_spec.items():
                run.globals[name] = run.scope(frame).render_value(value)
            if isinstance(body, str):
                run.call_custom(body, None, frame, path)
            else:
                run.run_list(body, frame, path)
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
        """events.md, Events Filtering: ``[key:value, ...]``; a bare token is a nodeId, else a
        nodeGroup, else a nodeType; keywords are case-insensitive."""
        if not flt:
            return True
        run = Run(self, addon, addon.settings, payload)
        params = {str(k).lower(): v for k, v in payload["params"].items()}
        for token in split_commas(run.scope(Frame()).render(flt)):
            if ":" in token:
                k, v = (s.strip() for s in token.split(":", 1))
                if str(params.get(k.lower(), "")).lower() != v.lower():
                    return False
                continue
            ids = {str(n.get("id")) for n in payload["response"].get("nodes", [])}
            if token not in {str(params.get("nodegroup")), str(params.get("nodetype")),
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
            text, _ = self.fetch(text, addon.base_url)
        return run.scope(Frame()).render(text)

    def run_on_nodes(self, nodes: list[Node], command_b64: str, user: str, sequential: bool) -> list[CmdResult]:
        """Run one engine payload on several nodes: all at once (a thread per node) unless sequential."""
        if sequential or len(nodes) == 1:
            return [self.runner.run(n, command_b64, user) for n in nodes]
        with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="jps-cmd") as pool:
            futures = [pool.submit(self.runner.run, n, command_b64, user) for n in nodes]
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
