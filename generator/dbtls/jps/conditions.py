"""A small, safe evaluator for the JavaScript conditions of ``if (...)`` and ``assert``.

The platform substitutes placeholders and then evaluates the text as JavaScript (Cloud Scripting docs,
conditions-and-iterations.md).
We cannot run JavaScript, and ``eval`` of Python is no substitute, so this module parses the subset
generated code needs: literals (numbers, strings, regexes, ``true/false/null/undefined``), bare
objects (``nodes.proxy``, ``response.out``), ``! && || == != === !== < > <= >=``, parentheses,
``.length``, ``.indexOf()``, ``.includes()`` and ``/re/.test()``. Anything else raises
:class:`ConditionError` instead of guessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from dbtls.jps.errors import ConditionError


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||[!<>().,\[\]-])
  | (?P<name>[A-Za-z_$][\w$]*)
""", re.X)
_REGEX_RE = re.compile(r"/((?:[^/\\\n]|\\.)+)/([gimsuy]*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "v": "\v"}
_REGEX_ALLOWED_AFTER = {None, "(", "!", "&&", "||", "==", "!=", "===", "!==", ","}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        prev = tokens[-1][1] if tokens and tokens[-1][0] == "op" else (None if not tokens else "x")
        if text[i] == "/" and prev in _REGEX_ALLOWED_AFTER:
            m = _REGEX_RE.match(text, i)
            if not m:
                raise ConditionError(f"bad regular expression at {text[i:]!r}")
            flags = re.I if "i" in m[2] else 0
            tokens.append(("regex", re.compile(_js_regex(m[1]), flags)))
            i = m.end()
            continue
        m = _TOKEN_RE.match(text, i)
        if not m:
            raise ConditionError(f"unsupported syntax at {text[i:]!r}")
        i = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        value: Any = m.group(kind)
        if kind == "num":
            value = float(value)
        elif kind == "str":
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e[1], e[1]), value[1:-1], flags=re.S)
        tokens.append((kind, value))
    return tokens


def _js_regex(source: str) -> str:
    return source.replace("\\/", "/")


class _Parser:
    """Recursive descent over the token list; evaluates while parsing (no AST needed)."""

    def __init__(self, tokens: list[tuple[str, Any]], lookup: Callable[[str], Any], text: str) -> None:
        self.tokens, self.pos, self.lookup, self.text = tokens, 0, lookup, text

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take_op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ops:
            self.pos += 1
            return tok[1]
        return None

    def expect(self, op: str) -> None:
        if not self.take_op(op):
            raise ConditionError(f"expected {op!r} in {self.text!r}")

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ConditionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.take_op("||"):
            right = self.and_()
            left = left if truthy(left) else right
        return left

    def and_(self) -> Any:
        left = self.equality()
        while self.take_op("&&"):
            right = self.equality()
            left = right if truthy(left) else left
        return left

    def equality(self) -> Any:
        left = self.relational()
        while op := self.take_op("===", "!==", "==", "!="):
            right = self.relational()
            same = strict_eq(left, right) if op in ("===", "!==") else loose_eq(left, right)
            left = same if op in ("===", "==") else not same
        return left

    def relational(self) -> Any:
        left = self.unary()
        while op := self.take_op("<=", ">=", "<", ">"):
            a, b = left, self.unary()
            if not (isinstance(a, str) and isinstance(b, str)):
                a, b = to_number(a), to_number(b)
            left = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        return left

    def unary(self) -> Any:
        if self.take_op("!"):
            return not truthy(self.unary())
        if self.take_op("-"):
            return -to_number(self.unary())
        return self.postfix(self.primary())

    def primary(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise ConditionError(f"unexpected end of {self.text!r}")
        self.pos += 1
        kind, value = tok
        if kind in ("num", "str", "regex"):
            return value
        if kind == "op" and value == "(":
            inner = self.or_()
            self.expect(")")
            return inner
        if kind == "name":
            literals = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}
            if value in literals:
                return literals[value]
            return self.lookup(value)
        raise ConditionError(f"unexpected {value!r} in {self.text!r}")

    def postfix(self, value: Any) -> Any:
        while True:
            if self.take_op("."):
                tok = self.peek()
                if not tok or tok[0] != "name":
                    raise ConditionError(f"expected a property name in {self.text!r}")
                self.pos += 1
                if self.take_op("("):
                    args = [] if self.take_op(")") else self.args()
                    value = call_method(value, tok[1], args)
                else:
                    value = get_property(value, tok[1])
            elif self.take_op("["):
                key = self.or_()
                self.expect("]")
                value = get_property(value, to_text(key))
            else:
                return value

    def args(self) -> list[Any]:
        values = [self.or_()]
        while self.take_op(","):
            values.append(self.or_())
        self.expect(")")
        return values


def get_property(value: Any, name: str) -> Any:
    if value is UNDEFINED or value is None:
        raise ConditionError(f"cannot read property {name!r} of {value!r}")
    if name == "length" and isinstance(value, str | list):
        return float(len(value))
    if isinstance(value, dict):
        return value.get(name, UNDEFINED)
    if isinstance(value, list) and name.isdigit():
        return value[int(name)] if int(name) < len(value) else UNDEFINED
    return UNDEFINED


def call_method(value: Any, name: str, args: list[Any]) -> Any:
    if isinstance(value, re.Pattern) and name == "test" and len(args) == 1:
        return value.search(to_text(args[0])) is not None
    if isinstance(value, str | list) and name in ("indexOf", "includes") and len(args) == 1:
        needle = to_text(args[0]) if isinstance(value, str) else args[0]
        if name == "includes":
            return needle in value
        if isinstance(value, str):
            return float(value.find(needle))
        return float(value.index(needle)) if needle in value else -1.0
    raise ConditionError(f"method .{name}() on {type(value).__name__} is not supported")


def truthy(value: Any) -> bool:
    if value is UNDEFINED or value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, bool | int | float | str):
        return bool(value)
    return True  # objects and arrays, even empty ones, as in JavaScript


def to_number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if value is None:
        return 0.0
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "undefined" if value is UNDEFINED else "null" if value is None else str(value)


def strict_eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def loose_eq(a: Any, b: Any) -> bool:
    nullish = (None, UNDEFINED)
    if a in nullish or b in nullish:
        return a in nullish and b in nullish
    if type(a) is type(b):
        return a == b
    if isinstance(a, str | bool | int | float) and isinstance(b, str | bool | int | float):
        return to_number(a) == to_number(b)
    return False


def evaluate(text: str, lookup: Callable[[str], Any]) -> bool:
    """Evaluate a condition (placeholders already substituted) to a JavaScript truth value.

    ``lookup(name)`` returns the value of a bare identifier (``nodes``, ``settings``...) or
    :data:`UNDEFINED`; unknown identifiers should raise :class:`ConditionError`, as JavaScript
    would throw a ReferenceError.
    """
    return truthy(_Parser(_tokenize(text), lookup, text).parse())
