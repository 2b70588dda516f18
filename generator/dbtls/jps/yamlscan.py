"""Hazards only visible in the raw YAML text, before it becomes Python objects.

The platform parses manifests as YAML 1.1 (SnakeYAML): an unquoted ``on`` becomes ``true``, ``0755``
becomes 493, ``1.10`` becomes 1.1, and a repeated key silently replaces the first. Once loaded, the
damage is invisible, so these checks walk PyYAML's node tree, which still knows whether a scalar was
quoted and where it was.
"""

from __future__ import annotations

import re

import yaml

from dbtls.jps.schema import Problem, join

_YAML11_BOOLS = {"y", "n", "yes", "no", "on", "off"}
_SEXAGESIMAL = re.compile(r"[-+]?\d+(:[0-5]?\d)+(\.\d*)?")
_OCTAL = re.compile(r"[-+]?0[0-7_]+")


def scan(text: str) -> list[Problem]:
    """Report YAML 1.1 hazards; a YAML syntax error is reported as one problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                        mark.line + 1 if mark else None)]
    out: list[Problem] = []
    if root is not None:
        _walk(root, "", None, out)
    return out


def _walk(node: yaml.Node, path: str, key: str | None, out: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            kval = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "<complex key>"
            if isinstance(knode, yaml.ScalarNode):
                _scalar(knode, join(path, kval), None, out, is_key=True)
            if kval in seen:
                out.append(Problem(join(path, kval), f"duplicate key (first at line {seen[kval]}); "
                                   "YAML keeps only the last one", knode.start_mark.line + 1))
            seen[kval] = knode.start_mark.line + 1
            _walk(vnode, join(path, kval), kval, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, join(path, i), None, out)
    elif isinstance(node, yaml.ScalarNode):
        _scalar(node, path, key, out)


def _scalar(node: yaml.ScalarNode, path: str, key: str | None, out: list[Problem],
            is_key: bool = False) -> None:
    if node.style is not None:  # quoted or block scalar: read as text
        return
    value, line = node.value, node.start_mark.line + 1
    what = "key" if is_key else "value"
    if value.lower() in _YAML11_BOOLS:
        out.append(Problem(path, f"unquoted {what} {value!r} is a boolean in YAML 1.1 (the platform's "
                           f"parser); write \"{value}\" or true/false", line))
    elif node.tag.endswith(":int") and _OCTAL.fullmatch(value):
        out.append(Problem(path, f"unquoted {value!r} is an octal number in YAML 1.1 "
                           f"({int(value, 8)}); quote it", line))
    elif _SEXAGESIMAL.fullmatch(value):
        out.append(Problem(path, f"unquoted {value!r} is a base-60 number in YAML 1.1; quote it", line))
    elif key and "version" in key.lower() and node.tag.endswith(":float"):
        out.append(Problem(path, f"unquoted version {value!r} is read as a float "
                           f"({float(value)!r}); quote it", line))
