"""The shape of the JPS subset an update add-on emits, as a tiny schema language in plain Python.

No jsonschema in the venv and no new dependencies allowed; besides, a few dozen lines give us
messages phrased for manifest authors (``buttons[0].caption: missing``) rather than generic
schema errors. Cross-references (actions, placeholders, selectors) are checked in validate.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One finding, printed as ``yaml.path: message``."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<root>'}: {self.message}{where}"


def join(path: str, key: object) -> str:
    """Extend a path: ``a`` + ``b`` -> ``a.b``; ints become ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Spec:
    """Base: ``accepts`` is a shallow type test, ``check`` reports problems below ``path``."""

    label = "value"

    def accepts(self, value: Any) -> bool:
        return True

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        if not self.accepts(value):
            out.append(Problem(path, f"expected {self.label}, got {_kind(value)}"))


class AnyValue(Spec):
    label = "anything"


class Str(Spec):
    label = "a string"

    def __init__(self, pattern: str | None = None, hint: str = "") -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.hint = hint

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        super().check(value, path, out)
        if self.pattern and isinstance(value, str) and not self.pattern.fullmatch(value):
            out.append(Problem(path, f"{value!r} is not {self.hint or self.pattern.pattern}"))


class Bool(Spec):
    label = "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class Num(Spec):
    label = "a number"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)


class Enum(Spec):
    def __init__(self, *values: str) -> None:
        self.values = values
        self.label = "one of " + ", ".join(values)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        if not self.accepts(value):
            shown = repr(value) if isinstance(value, str) else _kind(value)
            out.append(Problem(path, f"{shown} is not {self.label}"))


class ListOf(Spec):
    def __init__(self, item: Spec) -> None:
        self.item = item
        self.label = "a list"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        super().check(value, path, out)
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.item.check(v, join(path, i), out)


class MapOf(Spec):
    label = "a map"

    def __init__(self, value: Spec) -> None:
        self.value = value

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        super().check(value, path, out)
        if isinstance(value, dict):
            for k, v in value.items():
                self.value.check(v, join(path, k), out)


class Obj(Spec):
    """A map with known keys; ``extra(key)`` may return a spec for dynamic keys (event handlers)."""

    label = "a map"

    def __init__(self, fields: dict[str, Spec], required: tuple[str, ...] = (), open: bool = False,
                 extra: Callable[[str], Spec | None] | None = None) -> None:
        self.fields, self.required, self.open, self.extra = fields, required, open, extra

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        super().check(value, path, out)
        if not isinstance(value, dict):
            return
        for name in self.required:
            if name not in value:
                out.append(Problem(join(path, name), "missing"))
        for key, v in value.items():
            spec = self.fields.get(str(key)) or (self.extra(str(key)) if self.extra else None)
            if spec is not None:
                spec.check(v, join(path, key), out)
            elif not self.open:
                out.append(Problem(join(path, key), "unknown key"))


class AnyOf(Spec):
    """The first alternative whose shallow type fits decides; none fits -> one problem."""

    def __init__(self, *options: Spec) -> None:
        self.options = options
        self.label = " or ".join(o.label for o in options)

    def accepts(self, value: Any) -> bool:
        return any(o.accepts(value) for o in self.options)

    def check(self, value: Any, path: str, out: list[Problem]) -> None:
        for option in self.options:
            if option.accepts(value):
                option.check(value, path, out)
                return
        out.append(Problem(path, f"expected {self.label}, got {_kind(value)}"))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    return {dict: "a map", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


# --- the JPS subset ------------------------------------------------------------------------

FIELD_TYPES = (
    "string", "text", "list", "checkbox", "checkboxlist", "radiolist", "radio-fieldset", "toggle",
    "dockertags", "compositefield", "slider", "envlist", "regionlist", "popupselector",
    "displayfield", "spacer", "markup", "spinner", "numberpicker", "hostpicker", "tooltip", "owner",
    "envname",
)
_FIELD_ATTRS = (
    "caption", "default", "value", "required", "hidden", "hideLabel", "disabled", "inputType",
    "placeholder", "tooltip", "regex", "regexText", "vtype", "vtypeText", "showIf", "cls", "id",
    "itemId", "width", "height", "values", "dependsOn", "multiSelect", "editable", "forceSelection",
    "min", "max", "increment", "delimiter", "valueField", "disableInactive", "filter", "markup",
    "items", "emptyText", "boxLabel", "columns", "description", "defaultMargins", "maxLength",
)
TEXT = AnyOf(Str(), MapOf(Str()))  # plain or localised {en: ..., ru: ...}
FIELD = Obj({"type": Enum(*FIELD_TYPES), "name": Str(r"[A-Za-z_][\w]*", "a plain identifier"),
             **{a: AnyValue() for a in _FIELD_ATTRS}, "caption": TEXT, "required": Bool(),
             "hidden": Bool(), "multiSelect": Bool()})
FORM = Obj({"fields": ListOf(FIELD), "submitUnchanged": Bool(), "prepopulate": Str(),
            "onBeforeInit": AnyValue()})
BUTTON = Obj({a: Str() for a in ("action", "href", "settings", "confirmText", "loadingText",
                                 "successText", "title", "submitButtonText", "logsPath",
                                 "logsNodeGroup", "name")} | {"caption": TEXT},
             required=("caption",))
ACTION_BODY = AnyOf(Str(), ListOf(AnyValue()), Obj({}, open=True))
JS = AnyOf(Str(), ListOf(Str()))
SELECTOR_LIST = AnyOf(Str(), ListOf(Str()))
TARGET_NODES = AnyOf(Str(), Obj({k: SELECTOR_LIST for k in ("nodeType", "nodeGroup", "dockerName",
                                                            "dockerTag", "dockerOs")}))
RESPONSE = Obj({"type": Enum("error", "warning", "info", "success"), "message": TEXT},
               required=("message",))
SUCCESS = AnyOf(Str(), Obj({"text": TEXT, "email": AnyOf(Bool(), TEXT), "en": Str(), "ru": Str()}))
_VERSION = AnyOf(Str(r"\d+(\.\d+)*", "a dotted version"), Num())

TOP_FIELDS: dict[str, Spec] = {
    "type": Enum("install", "update"), "jpsType": Enum("install", "update"),
    "jpsVersion": _VERSION, "version": _VERSION,
    "id": Str(r"[A-Za-z0-9][\w.-]*", "a plain id (letters, digits, - _ .)"),
    "name": TEXT, "description": AnyOf(Str(), Obj({"text": TEXT, "short": TEXT})),
    "logo": Str(), "homepage": Str(r"https?://\S+", "an http(s) URL"), "categories": ListOf(Str()),
    "targetEditions": SELECTOR_LIST, "baseUrl": Str(r"(https?|file)://\S+", "an absolute URL"),
    "targetNodes": TARGET_NODES, "nodeGroupAlias": MapOf(Str()),
    "settings": Obj({}, open=True),  # two shapes; checked in validate.check_settings
    "globals": MapOf(AnyValue()), "onBeforeInit": JS, "onBeforeInstall": JS,
    "buttons": ListOf(BUTTON), "menu": ListOf(BUTTON), "actions": MapOf(ACTION_BODY),
    "success": SUCCESS, "responses": MapOf(RESPONSE), "mixins": ListOf(Str()),
    "addons": ListOf(Obj({}, open=True)), "permanent": Bool(), "skipNodeEmails": Bool(),
    "startPage": Str(), "nodes": AnyValue(), "ssl": Bool(), "region": Str(),
}
