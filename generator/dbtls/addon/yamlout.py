"""YAML output the platform reads the way we mean it.

The engine parses YAML 1.1 (SnakeYAML), where ``on``/``off``/``yes``/``no`` are booleans. PyYAML's
resolver is YAML 1.1 too, so its emitter already quotes those strings; this module adds what makes
manifests readable and diff-friendly: block scalars (``|-``) for scripts, insertion key order, no
line folding, and a check that the text reads back to the same data.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper with block scalars for multi-line strings and indented lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


#: YAML 1.1 lists y/n as booleans too; PyYAML and SnakeYAML do not, but other readers might.
_ALSO_QUOTE = {"y", "n"}


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if value.lower() in _ALSO_QUOTE:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any], header: str = "") -> str:
    """Serialise ``data``; raise if the text would not read back (YAML 1.1) to the same data."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100000,
                     default_flow_style=False)
    if yaml.safe_load(text) != data:
        raise ValueError("YAML output does not read back to the same data")
    return header + text
