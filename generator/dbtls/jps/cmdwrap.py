"""How the engine turns a ``cmd`` value into what a node runs (actions.md, ``cmd``).

The engine joins a list of commands with ``;``, trims the text, wraps it as ``yes | (TEXT)``
(``(TEXT)`` with ``sayYes: false``), base64-encodes that and runs ``echo B64 | base64 -d | su USER``
on the node. The wrapping is what makes a script whose last line is a heredoc terminator or a
``#`` comment break (the closing ``)`` lands on that line), and what makes an unresolved
``${...}`` a bash "bad substitution" that aborts the whole group. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import re


def command_text(value: str | list[str]) -> str:
    """The script text of a ``cmd`` value: a list is joined with ``;``, then trimmed."""
    text = ";".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text.strip()


def wrap(text: str, say_yes: bool = True) -> str:
    """``yes | (TEXT)`` or ``(TEXT)``: the shell line the engine builds around the commands."""
    return f"yes | ({text})" if say_yes else f"({text})"


def encode(wrapped: str) -> str:
    """Base64 (UTF-8) of the wrapped command, as the engine hands it to the node."""
    return base64.b64encode(wrapped.encode("utf-8")).decode("ascii")


def engine_payload(value: str | list[str], say_yes: bool = True) -> str:
    """``cmd`` value -> the base64 text a :class:`~dbtls.jps.model.NodeRunner` receives."""
    return encode(wrap(command_text(value), say_yes))


_WRAPPED = re.compile(r"\A(?P<yes>yes \| )?\((?P<text>.*)\)\Z", re.S)


def unwrap(command_b64: str) -> tuple[str, bool]:
    """Inverse of :func:`engine_payload` (for fake runners in tests): ``(TEXT, say_yes)``."""
    wrapped = base64.b64decode(command_b64).decode("utf-8")
    m = _WRAPPED.match(wrapped)
    if not m:
        raise ValueError(f"not an engine-wrapped command: {wrapped[:60]!r}")
    return m["text"], m["yes"] is not None
