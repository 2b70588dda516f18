"""Static checks of the engine's execution rules (docs/jps-semantics.md, "dbtls validate").

Each rule is one function below and one sentence in the docs:

- ``forEach`` iterates only documented iterables (conditions-and-iterations.md, ForEach).
- Node objects have only the keys placeholders.md lists under "Node Placeholders" (no ``hostname``).
- ``${response...}`` is read only in the item right after a ``cmd``, ``script`` or custom-action call
  (actions.md, assert: response placeholders are defined only from the previous action).
- No declared ``baseUrl``: it would beat the URL the manifest is imported from (basic-configs.md).
- A button's action (and every custom action it calls) reads only the fields of that button's own
  form in ``${settings.*}``.
- A ``cmd`` text does not end in a heredoc terminator or a comment: the engine appends ``)`` to it.
- Taint: in ``cmd`` text and ``if``/``elif`` conditions, placeholders under ``response``, ``globals``,
  ``settings``, ``event`` and ``this`` end in ``.toBase64()``, except ``${this.X}`` when every caller
  passes X as a literal or as engine data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dbtls.jps.schema import Problem, join
from dbtls.jps.syntax import (
    BUILTIN_ACTIONS,
    ActionKey,
    action_items,
    find_placeholders,
    is_api_method,
    parse_action_key,
    parse_event_key,
    split_default,
)

#: placeholders.md, "Node Placeholders": every documented key (the simulation fills a subset).
DOCUMENTED_NODE_KEYS = frozenset({
    "address", "adminUrl", "canBeExported", "bandwidthLimit", "contextValidatorRegex", "diskIopsLimit",
    "addons", "diskLimit", "endpoints", "fixedCloudlets", "flexibleCloudlets", "id", "intIP", "extIPs",
    "extips", "isClusterSupport", "isExternalIpRequired", "isResetPassword", "isWebAccess", "ismaster",
    "maxchanks", "length", "name", "nodeGroup", "nodeType", "nodemission", "osType", "password", "port",
    "type", "url", "version", "engines", "activeEngine", "packages",
})
_ITERABLE = re.compile(r"env\.nodes|nodes|nodes\.[\w-]+|env\.contexts|env\.extdomains|event\.response\.nodes")
_NODE_ITERABLE = re.compile(r"env\.nodes|nodes|nodes\.[\w-]+|event\.response\.nodes")
_FOREACH = re.compile(r"\s*(?:(\w+)\s*:)?\s*(.+?)\s*", re.S)
_TAINTED_ROOTS = {"response", "globals", "settings", "event", "events", "this"}
#: Engine data a caller may pass into ``${this.X}`` without base64 (node ids, addresses, names).
_ENGINE_DATA = re.compile(r"@\w+\.(?:id|address|intIP)|nodes\.[\w-]+\.master\.id|targetNodes\.nodeGroup"
                          r"|env\.(?:domain|envName)")
_THIS = re.compile(r"this(?:\.(\w+))?")
_RESPONSE_SOURCES = {"cmd", "script", "call"}


@dataclass
class _Item:
    path: str  #: item path (``actions.x[2]``)
    kpath: str  #: key path (``actions.x[2].cmd[sqldb]``)
    key: ActionKey
    value: Any
    params: dict[str, Any]
    owner: str | None  #: custom action the item belongs to
    loops: dict[str, str]  #: iterator name -> iterable expression
    after: str  #: what ran just before: cmd, script, call, start, if, or another action name


@dataclass
class _Facts:
    items: list[_Item] = field(default_factory=list)
    calls: dict[str, list[tuple[str, Any, str | None]]] = field(default_factory=dict)  #: action -> (path, arg, owner)
    sets: dict[str | None, list[tuple[str, Any]]] = field(default_factory=dict)  #: owner -> (key, value) of set


def check(manifest: dict[str, Any]) -> list[Problem]:
    """Every problem of the engine-rule checks, one per line with its YAML path."""
    actions = manifest.get("actions") if isinstance(manifest.get("actions"), dict) else {}
    facts = _Facts()
    for key, body in manifest.items():
        parsed = parse_event_key(str(key))
        if parsed is None or key in ("onBeforeInit", "onBeforeInstall"):
            continue
        if isinstance(body, str):
            facts.calls.setdefault(body, []).append((str(key), None, None))
            continue
        _walk(body, str(key), None, {}, actions, facts)
    for name, body in actions.items():
        _walk(body, join("actions", name), str(name), {}, actions, facts)
    for section in ("buttons", "menu"):
        entries = manifest.get(section)
        for i, button in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(button, dict) and button.get("action"):
                facts.calls.setdefault(str(button["action"]), []).append(
                    (join(join(section, i), "action"), "<button>", None))
    out: list[Problem] = []
    if "baseUrl" in manifest:
        out.append(Problem("baseUrl", "declared baseUrl: it beats the URL the manifest is imported from "
                           "(basic-configs.md, Relative Links); leave it out and ${baseUrl} is the "
                           "imported file's folder"))
    for item in facts.items:
        out += _foreach(item)
        out += _node_keys(item)
        out += _response_reads(item)
        out += _cmd_tail(item)
        out += _taint(item, facts)
    out += _button_settings(manifest, actions, facts)
    return _dedupe(out)


# -- walking ---------------------------------------------------------------------------------

def _walk(body: Any, path: str, owner: str | None, loops: dict[str, str], actions: dict[str, Any],
          facts: _Facts, after: str = "start") -> None:
    items = action_items(body)
    listed = isinstance(body, list)
    for i, raw_item in enumerate(items):
        ipath = join(path, i) if listed else path
        if isinstance(raw_item, str):
            facts.calls.setdefault(raw_item, []).append((ipath, None, owner))
            after = "call"
            continue
        if not isinstance(raw_item, dict):
            continue
        keyed = [(k, p) for k in raw_item if (p := parse_action_key(str(k))) and
                 (p.name in BUILTIN_ACTIONS or p.name in actions or is_api_method(p.name))]
        if len(keyed) != 1:
            after = "other"
            continue
        raw, key = keyed[0]
        value, params = raw_item[raw], {k: v for k, v in raw_item.items() if k != raw}
        kpath = join(ipath, str(raw))
        facts.items.append(_Item(ipath, kpath, key, value, params, owner, dict(loops), after))
        if key.name in actions:
            facts.calls.setdefault(key.name, []).append((kpath, value, owner))
            after = "call"
            continue
        if key.name == "set" and isinstance(value, dict):
            facts.sets.setdefault(owner, []).extend((str(k), v) for k, v in value.items())
        if key.name in ("if", "elif", "else"):
            _walk(value, kpath, owner, loops, actions, facts)
        elif key.name == "forEach":
            m = _FOREACH.fullmatch(key.arg or "")
            name, expr = (m.group(1) or "i", m.group(2)) if m else ("i", "")
            _walk(value, kpath, owner, {**loops, name: expr}, actions, facts)
        after = key.name if key.name in ("cmd", "script") else "other"
        if key.name in ("if", "elif", "else"):
            after = "if"


def _texts(item: _Item) -> list[str]:
    """The text of an item where placeholders are rendered when it runs (not nested bodies)."""
    name = item.key.name
    if name in ("if", "elif", "forEach"):
        return [item.key.arg or ""]
    if name == "else":
        return []
    out: list[str] = [item.key.selector] if item.key.selector else []
    _strings(item.value, out)
    _strings(item.params, out)
    return out


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _strings(v, out)


def _uses(texts: list[str]) -> list[tuple[str, str]]:
    """(token, expr without default) of every placeholder in ``texts``."""
    found = []
    for text in texts:
        for ph in find_placeholders(text):
            expr, _ = split_default(ph.expr.strip())
            found.append((text[ph.start:ph.end], expr.strip()))
    return found


def _segments(expr: str) -> list[str]:
    """``nodes.sqldb[0].id.toBase64()`` -> [nodes, sqldb, 0, id, toBase64()]."""
    return [s for s in re.split(r"\.|\[|\]", expr) if s]


# -- rules -----------------------------------------------------------------------------------

def _foreach(item: _Item) -> list[Problem]:
    if item.key.name != "forEach":
        return []
    m = _FOREACH.fullmatch(item.key.arg or "")
    expr = m.group(2) if m else (item.key.arg or "")
    shape = re.sub(r"\$\{[^{}]*\}", "G", expr)
    if _ITERABLE.fullmatch(shape):
        return []
    return [Problem(item.path, f"forEach over {expr}: not a documented iterable (env.nodes, nodes, "
                    "nodes.<group>, env.contexts, env.extdomains, event.response.nodes)")]


def _node_key(expr: str, loops: dict[str, str]) -> str | None:
    """The node key a placeholder reads, or None when it reads no node object."""
    segs = _segments(expr)
    if not segs:
        return None
    head = segs[0]
    if head.startswith("@") and not head.startswith("@@") and len(head) > 1:
        iterable = loops.get(head[1:])
        if iterable is None or not _NODE_ITERABLE.fullmatch(re.sub(r"\$\{[^{}]*\}", "G", iterable)):
            return None
        return segs[1] if len(segs) > 1 else None
    if head == "nodes" and len(segs) >= 3:
        rest = segs[2:]
        if rest[0] in ("master", "first", "last") or rest[0].isdigit():
            return rest[1] if len(rest) > 1 else None
        return rest[0]  # ``${nodes.sqldb.nodeType}``: a key of the layer's first node
    if segs[:3] == ["event", "response", "nodes"] and len(segs) >= 5 and segs[3].isdigit():
        return segs[4]
    return None


def _node_keys(item: _Item) -> list[Problem]:
    out = []
    for token, expr in _uses(_texts(item)):
        key = _node_key(expr, item.loops)
        if key is None or "(" in key:
            continue
        if key not in DOCUMENTED_NODE_KEYS | {"master", "first", "last", "length"}:
            out.append(Problem(item.kpath, f"{token}: {key!r} is not a node key (placeholders.md, "
                               "Node Placeholders; the stack name is 'name', there is no hostname)"))
    return out


def _response_reads(item: _Item) -> list[Problem]:
    if item.after in _RESPONSE_SOURCES:
        return []
    before = {"start": "nothing (response starts empty here)", "if": "an if/elif item",
              "other": "an action that leaves response empty"}.get(item.after, f"a {item.after} item")
    out = []
    for token, expr in _uses(_texts(item)):
        if _segments(expr)[:1] == ["response"]:
            out.append(Problem(item.kpath, f"{token}: response here is what {before} left; every action "
                               "replaces it, so read it in the item right after the cmd, script or "
                               "custom-action call"))
    return out


def _cmd_value(item: _Item) -> Any:
    if isinstance(item.value, dict):
        return item.value.get("commands")
    return item.value if item.value is not None else item.params.get("commands")


_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")


def _comment_start(line: str) -> bool:
    """Does ``line`` contain a shell comment (``#`` at a word start, outside quotes)?"""
    quote = None
    prev = " "
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and prev in " \t;|&(":
            return True
        prev = ch
    return False


def _cmd_tail(item: _Item) -> list[Problem]:
    if item.key.name != "cmd":
        return []
    value = _cmd_value(item)
    if isinstance(value, list):
        parts = [str(v) for v in value]
        bad = [i for i, v in enumerate(parts) if _comment_start(v)]
        if bad:
            return [Problem(item.kpath, f"command {bad[0]} has a comment: the engine joins the list with ';' "
                            "and wraps it in yes | ( ... ), so the comment swallows what follows")]
        text = parts[-1] if parts else ""
    elif isinstance(value, str):
        text = value
    else:
        return []
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return []
    last = lines[-1]
    terminators = {m.group(2) for m in _HEREDOC.finditer(text)}
    if last.strip() in terminators:
        return [Problem(item.kpath, f"the last line is the heredoc terminator {last.strip()!r}: the engine "
                        "wraps the text in yes | ( ... ), so it becomes "
                        f"'{last.strip()})' and never ends the heredoc")]
    if _comment_start(last):
        return [Problem(item.kpath, "the last line ends in a comment: the engine wraps the text in "
                        "yes | ( ... ), so the closing ')' is commented out")]
    return []


def _taint(item: _Item, facts: _Facts) -> list[Problem]:
    if item.key.name == "cmd":
        texts: list[str] = []
        _strings(_cmd_value(item), texts)
        where = "cmd text"
    elif item.key.name in ("if", "elif"):
        texts, where = [item.key.arg or ""], "a condition"
    else:
        return []
    out = []
    for token, expr in _uses(texts):
        segs = _segments(expr)
        if not segs or segs[0] not in _TAINTED_ROOTS or segs[-1] == "toBase64()":
            continue
        m = _THIS.fullmatch(expr)
        if m and _this_is_clean(item.owner, m.group(1), facts, set()):
            continue
        out.append(Problem(item.kpath, f"{token} in {where}: node output and user input reach a shell or "
                           f"JavaScript only as base64; write ${{{expr}.toBase64()}}"))
    return out


def _this_is_clean(owner: str | None, name: str | None, facts: _Facts, seen: set[tuple[str | None, str | None]]
                   ) -> bool:
    """Does every source of ``${this.name}`` (``${this}`` for None) in ``owner`` pass engine data?"""
    if (owner, name) in seen:
        return True
    seen = seen | {(owner, name)}
    sources: list[tuple[Any, str | None]] = []
    for key, value in facts.sets.get(owner, []):
        if key == name:
            sources.append((value, owner))
    if owner is None:
        return bool(sources) and all(_clean(v, o, facts, seen) for v, o in sources)
    for _path, arg, caller in facts.calls.get(owner, []):
        if arg == "<button>" or arg is None:
            if not any(k == name for k, _ in facts.sets.get(owner, [])):
                return False
            continue
        args = arg if isinstance(arg, list) else [arg]
        for one in args:
            if name is None:
                sources.append((one, caller))
            elif isinstance(one, dict) and name in one:
                sources.append((one[name], caller))
            elif not any(k == name for k, _ in facts.sets.get(owner, [])):
                return False
    return all(_clean(v, o, facts, seen) for v, o in sources)


def _clean(value: Any, owner: str | None, facts: _Facts, seen: set[tuple[str | None, str | None]]) -> bool:
    if isinstance(value, bool | int | float) or value is None:
        return True
    if not isinstance(value, str):
        return False
    for ph in find_placeholders(value):
        expr, default = split_default(ph.expr.strip())
        if default is not None:
            return False
        if _ENGINE_DATA.fullmatch(expr):
            continue
        m = _THIS.fullmatch(expr)
        if m and _this_is_clean(owner, m.group(1), facts, seen):
            continue
        return False
    return True


def _button_settings(manifest: dict[str, Any], actions: dict[str, Any], facts: _Facts) -> list[Problem]:
    forms = _form_fields(manifest.get("settings"))
    reads: dict[str, list[tuple[str, str, str]]] = {}  #: action -> (path, token, field)
    for item in facts.items:
        if item.owner is None:
            continue
        for token, expr in _uses(_texts(item)):
            segs = _segments(expr)
            if segs[:1] == ["settings"] and len(segs) > 1:
                reads.setdefault(item.owner, []).append((item.kpath, token, segs[1]))
    callees: dict[str, set[str]] = {}
    for callee, sites in facts.calls.items():
        for _path, _arg, caller in sites:
            if caller is not None:
                callees.setdefault(caller, set()).add(callee)
    out = []
    for section in ("buttons", "menu"):
        entries = manifest.get(section)
        for i, button in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(button, dict) or not button.get("action"):
                continue
            form = str(button["settings"]) if button.get("settings") else None
            allowed = forms.get(form, set()) if form else set()
            todo, reached = [str(button["action"])], set()
            while todo:
                name = todo.pop()
                if name in reached or name not in actions:
                    continue
                reached.add(name)
                todo += sorted(callees.get(name, ()))
            for name in sorted(reached):
                for path, token, fld in reads.get(name, []):
                    if fld not in allowed:
                        what = f"form {form!r}" if form else "no settings form"
                        out.append(Problem(path, f"{token}: the button at {join(section, i)} runs this with "
                                           f"{what}, so settings.{fld} is not there (a button sees only "
                                           "its own form)"))
    return out


def _form_fields(settings: Any) -> dict[str | None, set[str]]:
    if not isinstance(settings, dict):
        return {}
    forms = {"main": settings} if "fields" in settings else {
        k: v for k, v in settings.items() if isinstance(v, dict)}
    out: dict[str | None, set[str]] = {}
    for form_id, form in forms.items():
        names: set[str] = set()
        _names(form.get("fields"), names)
        out[form_id] = names
    return out


def _names(fields: Any, names: set[str]) -> None:
    for f in fields if isinstance(fields, list) else []:
        if isinstance(f, dict):
            if f.get("name"):
                names.add(str(f["name"]))
            show = f.get("showIf")
            for more in show.values() if isinstance(show, dict) else []:
                _names(more, names)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out
