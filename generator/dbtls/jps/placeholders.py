"""The ``${...}`` placeholder engine (Cloud Scripting docs, placeholders.md).

Substitution is one textual pass per action: a value that itself contains ``${`` is not scanned
again, because the real engine's behaviour there is unverified and the generator must not rely on
it. A placeholder that does not resolve stays literal, as on the engine (placeholders.md: "the
placeholder will be unresolved and displayed in the text as is"); :class:`Scope` records every
such token in ``unresolved`` so the caller can decide (a condition treats it as an error, a
``cmd`` records it on its Step and lets bash fail on it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

from dbtls.jps.errors import PlaceholderError, UnsupportedFeature
from dbtls.jps.model import Environment, Node
from dbtls.jps.syntax import PLACEHOLDER_ROOTS, find_placeholders, split_default


class NodeList(list):
    """A layer as ``${nodes.<g>}`` sees it: a list of node dicts with ``first/last/master``."""

    def attr(self, name: str) -> Any:
        if name == "first":
            return self[0] if self else _MISSING
        if name == "last":
            return self[-1] if self else _MISSING
        if name == "master":
            return next((n for n in self if n.get("ismaster")), _MISSING)
        if name == "length":
            return len(self)
        # ``${nodes.sqldb.nodeType}`` without an index: the first node's field.
        return self[0].get(name, _MISSING) if self else _MISSING


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def nodes_view(env: Environment) -> dict[str, NodeList]:
    """``${nodes.*}``: by nodeGroup, and also by nodeType when that name is not a group."""
    ordered = sorted(env.nodes, key=lambda n: n.id)
    view = {g: NodeList(n.placeholder_fields() for n in ordered if n.group == g) for g in env.groups()}
    for ntype in dict.fromkeys(n.node_type for n in ordered):
        view.setdefault(ntype, NodeList(n.placeholder_fields() for n in ordered if n.node_type == ntype))
    return view


def node_dicts(nodes: list[Node] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event payloads as the manifest sees them: node dicts with exactly the documented keys."""
    out = []
    for n in nodes:
        if not isinstance(n, Node):
            raise PlaceholderError(f"event nodes must be Node objects, got {type(n).__name__}")
        out.append(n.placeholder_fields())
    return out


@dataclass
class Loop:
    """One active ``forEach`` level: iterator name (``i`` by default), element and index."""

    name: str
    element: Any
    index: int


@dataclass
class Scope:
    """Everything a placeholder can see at one point of a run."""

    roots: dict[str, Any]
    loops: list[Loop] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    unresolved: list[str] = field(default_factory=list)  #: tokens left literal, in order

    def child(self, **overrides: Any) -> Scope:
        """A copy with some roots replaced (``this`` in a custom action), sharing the rest."""
        return Scope({**self.roots, **overrides}, list(self.loops), self.rng)

    # -- rendering ---------------------------------------------------------------------------

    def render(self, text: str) -> str:
        """Substitute every placeholder in ``text`` once."""
        out: list[str] = []
        pos = 0
        for ph in find_placeholders(text):
            out.append(text[pos:ph.start])
            out.append(self._render_one(ph.expr, text[ph.start:ph.end]))
            pos = ph.end
        out.append(text[pos:])
        return "".join(out)

    def render_value(self, value: Any) -> Any:
        """Render strings inside nested dicts/lists (keys too), leaving other scalars alone."""
        if isinstance(value, str):
            return self.render(value)
        if isinstance(value, list):
            return [self.render_value(v) for v in value]
        if isinstance(value, dict):
            return {self.render(k) if isinstance(k, str) else k: self.render_value(v)
                    for k, v in value.items()}
        return value

    def _render_one(self, expr: str, token: str) -> str:
        path, default = split_default(expr)
        root = _root_of(path)
        value = _MISSING
        if root in PLACEHOLDER_ROOTS or root.startswith("@"):
            try:
                value = self.lookup(path)
            except PlaceholderError:  # not a path at all (``${x y}``): the engine leaves it as is
                value = _MISSING
        if value is _MISSING and default is not None:
            value = self._default(default)
        if value is _MISSING:
            self.unresolved.append(token)
            return token
        return to_text(value)

    def _default(self, default: str) -> Any:
        if default.startswith("[") and default.endswith("]"):
            return self.lookup(default[1:-1])
        return default

    # -- lookup ------------------------------------------------------------------------------

    def lookup(self, path: str) -> Any:
        """Resolve a dotted path (no ``${}``); returns the internal missing marker if unresolved."""
        segments = _segments(path.strip())
        if not segments:
            return _MISSING
        head, _ = segments[0]
        if head == "fn":
            return self._fn(segments[1:])
        if head.startswith("@"):
            value = self._loop_value(head)
        else:
            value = self.roots.get(head, _MISSING)
        for name, args in segments[1:]:
            if value is _MISSING:
                # placeholders.md, Data Processing: ``${globals.unknown.toBase64()}`` is ''.
                if args is not None and name in _EMPTY_ON_MISSING:
                    value = _EMPTY_ON_MISSING[name]
                    continue
                return _MISSING
            value = self._step(value, name, args)
        return value

    def _loop_value(self, head: str) -> Any:
        if head == "@":
            return self.loops[-1].index if self.loops else _MISSING
        if head.startswith("@@"):
            return next((lp.index for lp in reversed(self.loops) if lp.name == head[2:]), _MISSING)
        return next((lp.element for lp in reversed(self.loops) if lp.name == head[1:]), _MISSING)

    def _arg(self, text: str) -> str:
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            value = self.lookup(text[1:-1])
            if value is _MISSING:
                raise _Unresolvable
            return to_text(value)
        return text

    def _step(self, value: Any, name: str, raw: str | None) -> Any:
        if raw is not None:
            try:
                return self._method(value, name, raw)
            except _Unresolvable:
                return _MISSING
        if isinstance(value, NodeList):
            return value[int(name)] if name.isdigit() and int(name) < len(value) else value.attr(name)
        if isinstance(value, dict):
            return value.get(name, _MISSING)
        if isinstance(value, list):
            if name.isdigit():
                return value[int(name)] if int(name) < len(value) else _MISSING
            if name == "length":
                return len(value)
            if name in ("first", "last"):
                return (value[0] if name == "first" else value[-1]) if value else _MISSING
            return _MISSING
        if isinstance(value, str) and name == "length":
            return len(value)
        return _MISSING

    def _method(self, value: Any, name: str, raw: str) -> Any:
        if name == "join":
            # join(key,sep) on objects, join(sep) on scalars; an empty separator means ","
            # (``join(id,)`` is upstream's way to get "11,12").
            if not isinstance(value, list):
                return _MISSING
            if value and all(isinstance(v, dict) for v in value):
                key, _, sep = raw.partition(",")
                return (sep or ",").join(to_text(v.get(key.strip(), "")) for v in value)
            return raw.join(to_text(v) for v in value)  # ``join()`` concatenates (placeholders.md)
        args = [self._arg(a) for a in _split_args(raw)]
        text = to_text(value)
        if name == "toBase64":
            return base64.b64encode(text.encode("utf-8")).decode("ascii")
        if name == "fromBase64":
            try:
                return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
            except (ValueError, UnicodeError):
                return _MISSING  # not base64 of UTF-8 text: left unresolved
        if name == "md5":
            return hashlib.md5(text.encode("utf-8")).hexdigest()
        if name == "toJSON":
            return json.dumps(value)
        if name == "contains":
            return bool(args) and args[0] in (value if isinstance(value, list) else text)
        raise UnsupportedFeature(f"placeholder method .{name}() is not simulated")

    def _fn(self, segments: list[tuple[str, str | None]]) -> Any:
        if len(segments) != 1:
            return _MISSING
        name, raw = segments[0]
        try:
            args = [self._arg(a) for a in _split_args(raw or "")]
        except _Unresolvable:
            return _MISSING
        if name == "password":
            size = int(args[0]) if args and args[0] else 10
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(size))
        if name == "random":  # default: 7 digits; (max) and (min,max) inclusive
            lo, hi = ((1_000_000, 9_999_999) if not args else (0, int(args[0])) if len(args) == 1
                      else (int(args[0]), int(args[1])))
            return self.rng.randint(lo, hi)
        if name == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if name == "base64" and args:
            return base64.b64encode(args[0].encode()).decode()
        if name == "md5" and args:
            return hashlib.md5(args[0].encode()).hexdigest()
        raise UnsupportedFeature(f"placeholder function fn.{name} is not simulated")


def to_text(value: Any) -> str:
    """How a value reads once substituted into text: JS-like booleans, lists comma-joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(to_text(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None or value is _MISSING:
        return ""
    return str(value)


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _root_of(path: str) -> str:
    m = re.match(r"@*\w*", path.strip())
    return m.group(0) if m else ""


class _Unresolvable(Exception):
    """A bracketed argument (``fn.md5([globals.x])``) does not resolve."""


#: Data-processing methods on an unresolved value (placeholders.md examples with ``globals.unknown``).
_EMPTY_ON_MISSING: dict[str, Any] = {"toBase64": "", "fromBase64": "", "md5": "", "contains": False}


_SEG_RE = re.compile(r"\s*(@{0,2}[\w-]*)")


def _segments(path: str) -> list[tuple[str, str | None]]:
    """``a.b[0].join(id,)`` -> [(a, None), (b, None), (0, None), (join, 'id,')]."""
    segs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(path):
        if path[i] == ".":
            i += 1
            continue
        if path[i] == "[":
            close = path.index("]", i)
            segs.append((path[i + 1:close].strip().strip("'\""), None))
            i = close + 1
            continue
        m = _SEG_RE.match(path, i)
        name = m.group(1) if m else ""
        if not name:
            raise PlaceholderError(f"cannot parse placeholder path {path!r}")
        i = m.end()
        if i < len(path) and path[i] == "(":
            depth, j = 0, i
            while j < len(path):
                depth += {"(": 1, ")": -1}.get(path[j], 0)
                if depth == 0:
                    break
                j += 1
            segs.append((name, path[i + 1:j]))
            i = j + 1
        else:
            segs.append((name, None))
    return segs


def _split_args(text: str) -> list[str]:
    if not text:
        return []
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur)
            cur = ""
        else:
            cur += ch
    args.append(cur)
    return args
