"""The platform API calls the simulation answers inside ``script`` actions and platform scripts.

Only what the add-on's renewal trigger uses (docs/renewal.md), with the argument checks the
platform's API reference documents, and the conservative reading where it is silent
(docs/jps-semantics.md, "Platform API in scripts"):

- ``api.dev.scripting.CreateScript(appid, session, name, type, code)``: ``type`` ``js``; every
  argument a non-empty string; a name that exists already is an error (the Let's Encrypt add-on
  deletes before it creates, so we read the platform as refusing duplicates).
- ``api.dev.scripting.DeleteScript(appid, session, name)``: a missing script is an error result
  (``result`` != 0), not an exception.
- ``api.dev.scripting.Eval("appstore", session, "GetApps", {targetAppid, search})``: the installed
  add-ons of the environment ``targetAppid``; ``search`` keys ``appstore``, ``app_id`` (exact, or
  ``{like: "x%"}``) and ``nodeGroup`` only.
- ``api.marketplace.installation.ExecuteAction({appid, session, appUniqueName, action[, settingsId,
  params, lang]})`` (the reference: ``appid``, ``session``, ``appUniqueName`` required). The action
  runs after the script returns, and the script may only pass its answer on: reading it inside
  the script is not simulated (the simulation cannot know it before the action ran).
- ``java.security.SecureRandom().nextInt(bound)``: backed by Python's ``secrets``.
- ``getParam(name[, default])``, ``appid``, ``session``, ``signature``, ``window.location.host``.

The state (scripts, the session of the run) lives in :class:`Platform`; the JavaScript works on a
copy and hands the changes back, because the JS engine cannot call into Python while a time limit
is set.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

#: ``//@url('/NAME')`` at the start of a line: the platform serves the script at ``/NAME``.
URL_RE = re.compile(r"^//@url\('/([^']+)'\)", re.M)


@dataclass
class Platform:
    """What the simulated platform knows beyond the environment: its host, sessions, scripts."""

    appid: str
    host: str = "app.platform.sim.invalid"
    session: str = field(default_factory=lambda: "sim-session-" + secrets.token_hex(8))
    signature: str = field(default_factory=lambda: "sim-signature-" + secrets.token_hex(8))
    #: name -> {"appid", "type", "code"}
    scripts: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"appid": self.appid, "host": self.host, "scripts": self.scripts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(appid=str(data["appid"]), host=str(data.get("host") or cls.host),
                   scripts={str(k): dict(v) for k, v in (data.get("scripts") or {}).items()})


def url_name(code: str) -> str | None:
    """The ``//@url('/NAME')`` a script declares, which makes the platform serve it over HTTPS."""
    m = URL_RE.search(code)
    return m.group(1) if m else None


PRELUDE = r"""
var __state = JSON.parse(__dbtlsPlatform), __deferred = [], __pool = __state.random, __poolAt = 0;
var __err = function (what) { throw new Error(what); };
var __str = function (method, name, value) {
  if (typeof value !== "string" || value === "") __err(method + ": " + name + " must be a non-empty string");
  return value;
};
var appid = __state.appid, session = __state.session, signature = __state.signature;
var getParam = function (name, dflt) {
  var v = __state.params[name];
  return v === undefined || v === null ? (dflt === undefined ? null : dflt) : v;
};
var window = __strict("window", {location: __strict("window.location", {host: __state.host})});
var __checkApp = function (method, a, s) {
  __str(method, "appid", a); __str(method, "session", s);
  if (a !== __state.appid) return {result: 11, error: method + ": no application " + a};
  if (s !== __state.session && s !== __state.signature) return {result: 701, error: method + ": invalid session"};
  return null;
};
var __scripting = __strict("api.dev.scripting", {
  CreateScript: function (a, s, name, type, code) {
    if (arguments.length !== 5) __err("CreateScript(appid, session, name, type, code): " + arguments.length + " arguments");
    var bad = __checkApp("CreateScript", a, s); if (bad) return bad;
    __str("CreateScript", "name", name); __str("CreateScript", "code", code);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) return {result: 1101, error: "CreateScript: invalid name " + name};
    if (type !== "js") __err("CreateScript: type " + type + " is not simulated (js only)");
    if (__state.scripts[name]) return {result: 1102, error: "CreateScript: script " + name + " already exists"};
    __state.scripts[name] = {appid: a, type: type, code: code};
    return {result: 0};
  },
  DeleteScript: function (a, s, name) {
    if (arguments.length !== 3) __err("DeleteScript(appid, session, name): " + arguments.length + " arguments");
    var bad = __checkApp("DeleteScript", a, s); if (bad) return bad;
    __str("DeleteScript", "name", name);
    if (!__state.scripts[name]) return {result: 1103, error: "DeleteScript: script " + name + " not found"};
    delete __state.scripts[name];
    return {result: 0};
  },
  Eval: function (target, s, method, params) {
    if (arguments.length !== 4) __err("Eval(target, session, method, params): " + arguments.length + " arguments");
    if (target !== "appstore" || method !== "GetApps") __err("api.dev.scripting.Eval(" + target + ", " + method + ") is not simulated (appstore GetApps only)");
    __str("Eval", "session", s);
    if (s !== __state.session && s !== __state.signature) return {result: 701, error: "Eval: invalid session"};
    if (!params || typeof params !== "object") __err("GetApps: params must be an object");
    Object.keys(params).forEach(function (k) { if (k !== "targetAppid" && k !== "search") __err("GetApps: parameter " + k + " is not simulated"); });
    var search = params.search || {};
    Object.keys(search).forEach(function (k) {
      if (["appstore", "app_id", "nodeGroup"].indexOf(k) < 0) __err("GetApps: search key " + k + " is not simulated");
    });
    if (params.targetAppid !== __state.appid) return {result: 0, response: {result: 0, apps: []}};
    var idOk = function (id) {
      var want = search.app_id;
      if (want === undefined) return true;
      if (typeof want === "string") return id === want;
      if (want && typeof want.like === "string" && /^[^%]*%?$/.test(want.like)) return id.indexOf(want.like.replace("%", "")) === 0;
      __err("GetApps: app_id filter " + JSON.stringify(want) + " is not simulated");
    };
    var apps = __state.apps.filter(function (app) {
      return idOk(app.app_id) && (search.nodeGroup === undefined || app.nodeGroup === search.nodeGroup);
    });
    return {result: 0, response: {result: 0, apps: JSON.parse(JSON.stringify(apps))}};
  }
});
var __installation = __strict("api.marketplace.installation", {
  ExecuteAction: function (p) {
    if (arguments.length !== 1 || !p || typeof p !== "object") __err("ExecuteAction: pass one object {appid, session, appUniqueName, action}");
    Object.keys(p).forEach(function (k) {
      if (["appid", "session", "appUniqueName", "action", "settingsId", "params", "lang"].indexOf(k) < 0) __err("ExecuteAction: unknown parameter " + k);
    });
    var bad = __checkApp("ExecuteAction", p.appid, p.session); if (bad) return bad;
    __str("ExecuteAction", "appUniqueName", p.appUniqueName); __str("ExecuteAction", "action", p.action);
    if (p.settingsId !== undefined || p.params !== undefined) __err("ExecuteAction with settingsId/params is not simulated");
    var known = __state.apps.some(function (app) { return app.uniqueName === p.appUniqueName && app.isInstalled; });
    if (!known) return {result: 2303, error: "ExecuteAction: no installation " + p.appUniqueName};
    var id = __deferred.length;
    __deferred.push({appUniqueName: p.appUniqueName, action: p.action, session: p.session});
    var marker = {__dbtlsDeferred: id};
    return new Proxy(marker, {
      get: function (t, k) {
        if (k === "__dbtlsDeferred" || k === "toJSON" || typeof k === "symbol") return t[k];
        __notSimulated("reading ExecuteAction's answer inside the script (." + String(k) + ")");
      }
    });
  }
});
var __secureRandom = function () {
  return __strict("java.security.SecureRandom instance", {
    nextInt: function (bound) {
      if (typeof bound !== "number" || bound < 1 || bound > 256 || bound % 1 !== 0) __err("SecureRandom.nextInt(" + bound + ") is not simulated (1..256)");
      var limit = 256 - (256 % bound);
      while (__poolAt < __pool.length) { var b = __pool[__poolAt++]; if (b < limit) return b % bound; }
      __err("SecureRandom: the simulation drew too few random bytes");
    }
  });
};
"""


def state_json(platform: Platform, apps: list[dict[str, Any]], params: dict[str, Any] | None,
               session: str | None) -> str:
    """The JS-side copy of the state: ``session`` is the run's session ("" for a call with none)."""
    return json.dumps({"appid": platform.appid, "host": platform.host,
                       "session": platform.session if session is None else session,
                       "signature": platform.signature, "scripts": platform.scripts, "apps": apps,
                       "params": params or {}, "random": list(secrets.token_bytes(1024))})
