"""Server-side JavaScript of ``script`` actions and ``onBeforeInit``, run in a real JS engine.

The engine renders ``${...}`` placeholders into the code, then runs it (actions.md, ``script``;
events.md, ``onBeforeInit``). We run the rendered code in QuickJS with exactly these globals:

- ``jelastic.env.control.GetEnvs()``: the simulated environments, shaped like the platform's answer
  (``{result: 0, infos: [{env: {...}, nodes: [...]}]}``; the upstream launchers read exactly this);
- ``MANIFEST`` and ``jps``: the manifest as an object;
- ``toJSON(value)``;
- the platform API calls of :mod:`dbtls.jps.platformapi` (scripts, installed apps, ExecuteAction,
  MessageDigest SHA-256, ``getParam``, ``appid``/``session``/``signature``), over a :class:`Platform`.

Touching anything else under ``jelastic``, ``api``, ``java``, ``com``, ``org`` or ``Packages`` throws a
"not simulated" error, which surfaces as :class:`UnsupportedFeature`: a script can never pass
because the simulation quietly answered a call the platform would have answered differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import quickjs

from dbtls.jps import platformapi
from dbtls.jps.errors import UnsupportedFeature
from dbtls.jps.model import Environment
from dbtls.jps.platformapi import Platform

_TIME_LIMIT_S = 10
_MEMORY_LIMIT = 128 << 20

_PRELUDE = r"""
var __notSimulated = function (what) {
  throw new Error(what + " is not simulated (only jelastic.env.control.GetEnvs, MANIFEST/jps, toJSON and the " +
                  "platform calls of docs/jps-semantics.md are)");
};
var __strict = function (path, target) {
  return new Proxy(target, {
    get: function (t, k) {
      if (typeof k === "symbol" || k in t) return t[k];
      if (k === "toJSON") return undefined;
      __notSimulated(path + "." + String(k));
    },
    set: function (t, k) { __notSimulated("assigning " + path + "." + String(k)); }
  });
};
var toJSON = function (value) { return JSON.stringify(value); };
var jelastic = __strict("jelastic", {
  env: __strict("jelastic.env", {
    control: __strict("jelastic.env.control", {
      GetEnvs: function () { return JSON.parse(__dbtlsEnvs); }
    })
  })
});
var api = __strict("api", {}), java = __strict("java", {}), com = __strict("com", {}),
    org = __strict("org", {}), Packages = __strict("Packages", {});
"""
_PLATFORM_GLOBALS = r"""
api = __strict("api", {dev: __strict("api.dev", {scripting: __scripting}),
                       marketplace: __strict("api.marketplace", {installation: __installation})});
java = __strict("java", {security: __strict("java.security", {MessageDigest: __messageDigest})});
"""


@dataclass
class Outcome:
    """A script's return value and the platform calls it left to run: ExecuteAction requests
    (``appUniqueName``, ``action``, ``session``) in the order made."""

    value: Any
    deferred: list[dict[str, Any]] = field(default_factory=list)


class ScriptFailure(Exception):
    """The script threw: ``message`` is the JavaScript error text."""


def get_envs(envs: list[Environment]) -> dict[str, Any]:
    """``jelastic.env.control.GetEnvs()`` over the simulated environments."""
    infos = []
    for env in envs:
        infos.append({
            "env": {"envName": env.env_name, "displayName": env.display_name or env.env_name,
                    "status": env.status, "domain": env.domain},
            "nodes": [n.placeholder_fields() for n in sorted(env.nodes, key=lambda n: n.id)],
        })
    return {"result": 0, "infos": infos}


def run(code: str, *, manifest: dict[str, Any], envs: list[Environment]) -> Any:
    """Run a script body (its ``return`` value is the result) and return that value as Python.
    Without a platform: ``api`` and ``java`` answer nothing (``onBeforeInit``)."""
    return run_script(code, manifest=manifest, envs=envs).value


def run_script(code: str, *, manifest: dict[str, Any], envs: list[Environment], platform: Platform | None = None,
               apps: list[dict[str, Any]] | None = None, params: dict[str, Any] | None = None,
               session: str | None = None) -> Outcome:
    """Run a script body; with ``platform``, the platform calls of :mod:`platformapi` answer, the
    scripts it creates or deletes change ``platform.scripts``, and ExecuteAction requests come back
    in :attr:`Outcome.deferred`. ``apps`` are the installed add-ons GetApps lists; ``params`` what
    ``getParam`` reads; ``session`` the caller's session ("" for a caller without one).

    Raises :class:`UnsupportedFeature` when the code touches something not simulated (or a name
    that is not defined here) and :class:`ScriptFailure` for any other JavaScript error.
    """
    ctx = quickjs.Context()
    ctx.set_time_limit(_TIME_LIMIT_S)
    ctx.set_memory_limit(_MEMORY_LIMIT)
    answer = json.dumps(json.dumps(get_envs(envs)))  # a JS string literal holding the JSON
    body = json.dumps(manifest, default=str)
    extra, tail = "", ""
    if platform is not None:
        state = json.dumps(platformapi.state_json(platform, apps or [], params, session))
        extra = f"var __dbtlsPlatform = {state};\n{platformapi.PRELUDE}\n{_PLATFORM_GLOBALS}\n"
        tail = ", scripts: __state.scripts, deferred: __deferred"
    program = (f"var __dbtlsEnvs = {answer};\n{_PRELUDE}\n{extra}var MANIFEST = {body};\nvar jps = MANIFEST;\n"
               f"var __r = (function () {{\n{code}\n}})();\n"
               f"JSON.stringify({{kind: typeof __r, value: __r === undefined ? null : __r{tail}}});")
    try:
        out = ctx.eval(program)
    except quickjs.JSException as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if "is not simulated" in text:
            raise UnsupportedFeature(f"script: {text}") from None
        if text.startswith("ReferenceError"):
            raise UnsupportedFeature(f"script: {text}: not simulated (only jelastic.env.control.GetEnvs, "
                                     "MANIFEST/jps and toJSON are)") from None
        raise ScriptFailure(text) from None
    data = json.loads(out)
    if platform is not None:
        platform.scripts = {str(k): dict(v) for k, v in data["scripts"].items()}
        return Outcome(data["value"], list(data["deferred"]))
    return Outcome(data["value"])
