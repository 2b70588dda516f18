"""Validate a JPS add-on manifest: shape (schema.py), cross-references and YAML 1.1 hazards.

``validate`` returns problems instead of raising, so a CLI can print all of them at once; each
prints as ``yaml.path: message``. The cross-checks exist because the platform reports none of these
mistakes: an undefined action, an unset global or a misspelt layer only shows up at run time, on a
customer's database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dbtls.jps import engine_rules, yamlscan
from dbtls.jps.schema import ACTION_BODY, FORM, TOP_FIELDS, Obj, Problem, Spec, join
from dbtls.jps.syntax import (
    ACTION_PARAMS,
    BUILTIN_ACTIONS,
    EVENTS,
    action_items,
    find_placeholders,
    is_api_method,
    parse_action_key,
    parse_event_key,
    split_commas,
    split_default,
)
from dbtls.jps.uses import check_use

#: Standard layer names of the platform (the database and proxy layers plus the usual application layers).
KNOWN_LAYERS = {"sqldb", "nosqldb", "proxy", "pgpool", "cp", "bl", "storage", "build", "vds", "extra",
                "cache"}
_NO_PARAMS = {"log", "setGlobals", "set", "sleep", "assert", "return", "stopEvent", "forEach", "if",
              "elif", "else"}
_JS_KEYS = {"onBeforeInit", "onBeforeInstall"}


def _top_extra(key: str) -> Spec | None:
    return ACTION_BODY if parse_event_key(key) else None


TOP = Obj(TOP_FIELDS, required=("name",), extra=_top_extra)


@dataclass
class _Ctx:
    """Where a walked item sits: custom action, event handler, forEach iterators, script params."""

    action: str | None = None
    handler: str | None = None
    loops: tuple[str, ...] = ()
    in_cmd: bool = False
    script_params: frozenset[str] = frozenset()


@dataclass
class _Use:
    path: str
    token: str
    expr: str
    default: bool
    ctx: _Ctx


@dataclass
class _Facts:
    calls: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # action -> [(path, arg)]
    uses: list[_Use] = field(default_factory=list)
    set_globals: set[str] = field(default_factory=set)
    set_this: dict[str | None, set[str]] = field(default_factory=dict)
    selectors: list[tuple[str, str]] = field(default_factory=list)


def validate(manifest: dict[str, Any] | str) -> list[Problem]:
    """All problems of a manifest given as a parsed dict or as raw YAML/JSON text."""
    problems: list[Problem] = []
    if isinstance(manifest, str):
        problems += yamlscan.scan(manifest)
        if any(p.message.startswith("not valid YAML") for p in problems):
            return problems
        manifest = yaml.safe_load(manifest)
    if not isinstance(manifest, dict):
        return problems + [Problem("", "a manifest must be a mapping")]
    TOP.check(manifest, "", problems)
    if "type" not in manifest and "jpsType" not in manifest:
        problems.append(Problem("type", "missing (install or update)"))
    problems += _check_settings(manifest.get("settings"))
    facts = _Facts()
    actions = manifest.get("actions") if isinstance(manifest.get("actions"), dict) else {}
    for key, body in manifest.items():
        parsed = parse_event_key(str(key))
        if parsed is None or key in _JS_KEYS:
            continue
        if parsed[0] not in EVENTS:
            problems.append(Problem(str(key), f"{parsed[0]!r} is not a platform event"))
        if parsed[1]:
            facts.selectors.append((str(key), parsed[1]))
            _collect_text(parsed[1], str(key), _Ctx(handler=str(key)), facts)
        if isinstance(body, str):  # `onAfterScaleOut[sqldb]: myAction`
            facts.calls.setdefault(body, []).append((str(key), None))
        else:
            _walk(body, str(key), _Ctx(handler=parsed[0]), actions, facts, problems)
    for name, body in actions.items():
        _walk(body, join("actions", name), _Ctx(action=str(name)), actions, facts, problems)
    for field_name in ("globals", "success"):
        if field_name in manifest:
            _collect_value(manifest[field_name], field_name, _Ctx(), facts)
    problems += _check_buttons(manifest, actions, facts)
    problems += _check_calls(actions, facts)
    problems += _check_uses(manifest, actions, facts)
    problems += _check_selectors(manifest, facts)
    problems += engine_rules.check(manifest)
    return problems


def validate_file(path: str | Path) -> list[str]:
    """CLI helper: problems of a manifest file as printable lines (empty list = valid)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror}"]
    return [str(p) for p in validate(text)]


# -- walking action lists --------------------------------------------------------------------

def _walk(body: Any, path: str, ctx: _Ctx, actions: dict[str, Any], facts: _Facts,
          out: list[Problem]) -> None:
    prev: str | None = None
    items = action_items(body)
    base = path if isinstance(body, list) else None
    for i, item in enumerate(items):
        ipath = join(base, i) if base is not None else path
        if isinstance(item, str):
            facts.calls.setdefault(item, []).append((ipath, None))
            prev = "call"
            continue
        if not isinstance(item, dict) or not item:
            out.append(Problem(ipath, "an action item must be a map with one action key"))
            continue
        keyed = [(k, p) for k in item if (p := parse_action_key(str(k))) and
                 (p.name in BUILTIN_ACTIONS or p.name in actions or is_api_method(p.name))]
        if len(keyed) != 1:
            if keyed:
                names = ", ".join(str(k) for k, _ in keyed)
                out.append(Problem(ipath, f"several actions in one item: {names}; make them list items"))
            else:
                first = parse_action_key(str(next(iter(item))))
                name = first.name if first else str(next(iter(item)))
                out.append(Problem(ipath, f"action {name!r} is neither built in nor defined in actions"))
            continue
        raw, key = keyed[0]
        value, params = item[raw], {k: v for k, v in item.items() if k != raw}
        kpath = join(ipath, raw)
        name = key.name
        if name in ("elif", "else") and prev not in ("if", "elif"):
            out.append(Problem(kpath, f"'{name}' must directly follow an 'if' or 'elif' item"))
        prev = name
        if name in actions:
            if params:
                out.append(Problem(kpath, f"custom action call with sibling keys {sorted(params)}; "
                                   "pass parameters as a map under the action"))
            facts.calls.setdefault(name, []).append((kpath, value))
            _collect_value(value, kpath, ctx, facts)
            continue
        allowed = ACTION_PARAMS.get(name)
        bad = set(params) if name in _NO_PARAMS else (set(params) - allowed if allowed is not None else set())
        for b in sorted(bad):
            out.append(Problem(join(ipath, b), f"unknown parameter of {name}"))
        if key.selector is not None:
            facts.selectors.append((kpath, key.selector))
            _collect_text(key.selector, kpath, ctx, facts)
        for p in ("nodeGroup", "nodeType", "nodeId"):
            if p in params and name != "install":
                facts.selectors.append((join(ipath, p), str(params[p])))
        _collect_value(params, ipath, ctx, facts)
        if name in ("if", "elif"):
            _collect_text(key.arg or "", kpath, ctx, facts)
            _walk(value, kpath, ctx, actions, facts, out)
        elif name == "else":
            _walk(value, kpath, ctx, actions, facts, out)
        elif name == "forEach":
            _collect_text(key.arg or "", kpath, ctx, facts)
            m = re.fullmatch(r"\s*(?:(\w+)\s*:)?\s*(.+?)\s*", key.arg or "", re.S)
            loop = (m.group(1) if m and m.group(1) else "i")
            _walk(value, kpath, _Ctx(ctx.action, ctx.handler, (*ctx.loops, loop)), actions, facts, out)
        elif name == "cmd":
            _collect_value(value, kpath, _Ctx(ctx.action, ctx.handler, ctx.loops, in_cmd=True), facts)
            if isinstance(value, dict):
                for b in sorted(set(value) - ACTION_PARAMS["cmd"]):
                    out.append(Problem(join(kpath, b), "unknown parameter of cmd"))
        elif name == "script":
            sp = params.get("params") if isinstance(params.get("params"), dict) else params
            sctx = _Ctx(ctx.action, ctx.handler, ctx.loops, script_params=frozenset(map(str, sp)))
            _collect_value(value, kpath, sctx, facts)
        elif name == "setGlobals" and isinstance(value, dict):
            facts.set_globals.update(map(str, value))
            _collect_value(value, kpath, ctx, facts)
        elif name == "set" and isinstance(value, dict):
            facts.set_this.setdefault(ctx.action, set()).update(map(str, value))
            _collect_value(value, kpath, ctx, facts)
        else:
            _collect_value(value, kpath, ctx, facts)


def _collect_value(value: Any, path: str, ctx: _Ctx, facts: _Facts) -> None:
    if isinstance(value, str):
        _collect_text(value, path, ctx, facts)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect_value(v, join(path, i), ctx, facts)
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect_text(str(k), path, ctx, facts)
            _collect_value(v, join(path, k), ctx, facts)


def _collect_text(text: str, path: str, ctx: _Ctx, facts: _Facts) -> None:
    for ph in find_placeholders(text):
        expr, default = split_default(ph.expr.strip())
        facts.uses.append(_Use(path, text[ph.start:ph.end], expr, default is not None, ctx))
        if default and default.startswith("["):
            _collect_text("${" + default[1:-1] + "}", path, ctx, facts)


# -- cross-checks -----------------------------------------------------------------------------

def _form_fields(settings: Any) -> dict[str, list[Any]]:
    if not isinstance(settings, dict):
        return {}
    if "fields" in settings:
        return {"main": settings.get("fields") or []}
    return {k: v.get("fields") or [] for k, v in settings.items() if isinstance(v, dict)}


def _field_names(fields: Any) -> set[str]:
    names: set[str] = set()
    for f in fields if isinstance(fields, list) else []:
        if isinstance(f, dict):
            if f.get("name"):
                names.add(str(f["name"]))
            for more in (f.get("showIf") or {}).values() if isinstance(f.get("showIf"), dict) else []:
                names |= _field_names(more)
    return names


def _check_settings(settings: Any) -> list[Problem]:
    out: list[Problem] = []
    if settings is None:
        return out
    if not isinstance(settings, dict):
        return [Problem("settings", "expected a map")]
    if "fields" in settings:
        FORM.check(settings, "settings", out)
        forms = {"main": settings}
    else:
        forms = {k: v for k, v in settings.items() if k not in ("submitUnchanged", "prepopulate")}
        for k, v in forms.items():
            FORM.check(v, join("settings", k), out)
    for form_id, form in forms.items():
        base = "settings" if "fields" in settings else join("settings", form_id)
        for i, f in enumerate(form.get("fields") or [] if isinstance(form, dict) else []):
            if isinstance(f, dict) and not f.get("name") and f.get("type", "string") not in (
                    "displayfield", "spacer", "markup", "compositefield", "tooltip"):
                out.append(Problem(join(join(base, "fields"), i), "a value field needs a name"))
    return out


def _check_buttons(manifest: dict[str, Any], actions: dict[str, Any], facts: _Facts) -> list[Problem]:
    out: list[Problem] = []
    forms = _form_fields(manifest.get("settings"))
    for section in ("buttons", "menu"):
        items = manifest.get(section)
        for i, b in enumerate(items if isinstance(items, list) else []):
            path = join(section, i)
            if not isinstance(b, dict):
                continue
            action, href = b.get("action"), b.get("href")
            if not action and not href:
                out.append(Problem(path, "a button needs an action or an href"))
            if action and href:
                out.append(Problem(path, "a button has either an action or an href, not both"))
            if href and b.get("settings"):
                out.append(Problem(join(path, "settings"), "an href button cannot have a settings form"))
            if action:
                if action not in actions:
                    out.append(Problem(join(path, "action"), f"action {action!r} is not defined in actions"))
                facts.calls.setdefault(str(action), []).append((join(path, "action"), "<button>"))
            if b.get("settings") and b["settings"] not in forms:
                out.append(Problem(join(path, "settings"), f"no settings form {b['settings']!r}"))
            _collect_value({k: v for k, v in b.items() if k != "action"}, path, _Ctx(), facts)
    if (manifest.get("buttons") or manifest.get("menu")) and "targetNodes" not in manifest:
        out.append(Problem("targetNodes", "missing: buttons and menu only show with targetNodes"))
    return out


def _check_calls(actions: dict[str, Any], facts: _Facts) -> list[Problem]:
    out = []
    for name, calls in facts.calls.items():
        if name not in actions and name not in BUILTIN_ACTIONS:
            for path, _ in calls:
                out.append(Problem(path, f"action {name!r} is neither built in nor defined in actions"))
    return out


def _check_uses(manifest: dict[str, Any], actions: dict[str, Any], facts: _Facts) -> list[Problem]:
    known_globals = set(map(str, manifest.get("globals") or {})) | facts.set_globals
    settings = set().union(*map(_field_names, _form_fields(manifest.get("settings")).values())) \
        | {"jelastic_email"}
    out: list[Problem] = []
    for use in facts.uses:
        msg = check_use(use.expr, use.token, use.default, use.ctx.in_cmd, use.ctx.loops,
                        use.ctx.action, use.ctx.handler, use.ctx.script_params, known_globals,
                        settings, facts.calls, facts.set_this, _layers(manifest))
        if msg:
            out.append(Problem(use.path, msg))
    return out


def _layers(manifest: dict[str, Any]) -> set[str]:
    layers = set(KNOWN_LAYERS)
    tn = manifest.get("targetNodes")
    if isinstance(tn, dict):
        for k in ("nodeGroup", "nodeType"):
            v = tn.get(k)
            layers |= set(v) if isinstance(v, list) else set(split_commas(str(v))) if v else set()
    elif isinstance(tn, str):
        layers |= set(split_commas(tn))
    alias = manifest.get("nodeGroupAlias")
    if isinstance(alias, dict):
        layers |= set(map(str, alias)) | set(map(str, alias.values()))
    return layers


def _check_selectors(manifest: dict[str, Any], facts: _Facts) -> list[Problem]:
    out = []
    layers = _layers(manifest)
    for path, selector in facts.selectors:
        for token in split_commas(selector):
            if find_placeholders(token) or token == "*" or token.isdigit() or ":" in token:
                continue
            if token not in layers:
                out.append(Problem(path, f"selector {token!r} is neither a known layer nor a targetNodes "
                                   f"nodeType ({', '.join(sorted(KNOWN_LAYERS))})"))
    return out


__all__ = ["Problem", "validate", "validate_file"]
