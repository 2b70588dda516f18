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
- ``java.security.MessageDigest.getInstance("SHA-256")`` with ``update(byte)`` and ``digest()`` (a
  Java ``byte[]``: signed elements and ``length`` only): SHA-256 in JavaScript, since the engine
  cannot call into Python while a time limit is set. Any other algorithm, overload or method is not
  simulated.
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
var __state = JSON.parse(__dbtlsPlatform), __deferred = [];
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
var __sha256 = function (bytes) {
  var K = [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
           0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
           0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
           0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
           0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
           0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
           0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
           0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2];
  var H = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  var m = bytes.slice(), bitLen = bytes.length * 8;
  m.push(0x80);
  while (m.length % 64 !== 56) m.push(0);
  for (var s = 56; s >= 0; s -= 8) m.push(s >= 32 ? Math.floor(bitLen / Math.pow(2, s)) & 0xff : (bitLen >>> s) & 0xff);
  var rotr = function (x, n) { return (x >>> n) | (x << (32 - n)); };
  for (var off = 0; off < m.length; off += 64) {
    var w = [];
    for (var t = 0; t < 64; t++) {
      if (t < 16) {
        w[t] = ((m[off + 4 * t] << 24) | (m[off + 4 * t + 1] << 16) | (m[off + 4 * t + 2] << 8) | m[off + 4 * t + 3]) >>> 0;
      } else {
        var s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        var s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
    }
    var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (var r = 0; r < 64; r++) {
      var t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[r] + w[r]) >>> 0;
      var t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H = [H[0] + a, H[1] + b, H[2] + c, H[3] + d, H[4] + e, H[5] + f, H[6] + g, H[7] + h].map(function (x) { return x >>> 0; });
  }
  var out = [];
  H.forEach(function (x) { out.push((x >>> 24) & 0xff, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff); });
  return out;
};
var __javaBytes = function (unsigned) {
  // A Java byte[] as a script sees it: signed elements and length, nothing of a JS array.
  var target = Object.create(null);
  unsigned.forEach(function (b, i) { target[String(i)] = b > 127 ? b - 256 : b; });
  target.length = unsigned.length;
  return __strict("Java byte[]", target);
};
var __messageDigest = __strict("java.security.MessageDigest", {
  getInstance: function (algorithm) {
    if (arguments.length !== 1 || algorithm !== "SHA-256") {
      __notSimulated("java.security.MessageDigest.getInstance with anything but the one argument 'SHA-256'");
    }
    var data = [];
    return __strict("java.security.MessageDigest instance", {
      update: function (b) {
        if (arguments.length !== 1 || typeof b !== "number" || b % 1 !== 0 || b < -128 || b > 127) {
          __notSimulated("MessageDigest.update with anything but one byte value (an integer -128..127)");
        }
        data.push(b & 0xff);
      },
      digest: function () {
        if (arguments.length !== 0) __notSimulated("MessageDigest.digest with arguments");
        var out = __sha256(data);
        data = [];
        return __javaBytes(out);
      }
    });
  }
});
"""


def state_json(platform: Platform, apps: list[dict[str, Any]], params: dict[str, Any] | None,
               session: str | None) -> str:
    """The JS-side copy of the state: ``session`` is the run's session ("" for a call with none)."""
    return json.dumps({"appid": platform.appid, "host": platform.host,
                       "session": platform.session if session is None else session,
                       "signature": platform.signature, "scripts": platform.scripts, "apps": apps,
                       "params": params or {}})
