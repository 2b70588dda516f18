"""Shared fakes for the interpreter tests: a recording NodeRunner and a small environment."""

from __future__ import annotations

import threading
from collections.abc import Callable

from dbtls.jps import CmdResult, Environment, Interpreter, Node, NodeRunner, User
from dbtls.jps.cmdwrap import unwrap


class FakeRunner:
    """Records every cmd as (node id, TEXT inside the engine wrapper, user, sayYes); answers from
    ``reply(node, text)`` (default: exit 0, ``out<id>\\n``)."""

    def __init__(self, reply: Callable[[Node, str], CmdResult] | None = None) -> None:
        self.calls: list[tuple[int, str, str, bool]] = []
        self.payloads: list[str] = []
        self.reply = reply or (lambda node, text: CmdResult(0, f"out{node.id}\n"))
        self.lock = threading.Lock()

    def run(self, node: Node, command_b64: str, user: str) -> CmdResult:
        text, say_yes = unwrap(command_b64)
        with self.lock:
            self.calls.append((node.id, text, user, say_yes))
            self.payloads.append(command_b64)
        return self.reply(node, text)

    def scripts(self, node_id: int) -> list[str]:
        return [s for i, s, _, _ in self.calls if i == node_id]


def make_env(name: str = "env-7") -> Environment:
    return Environment(name, f"{name}.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11", version="15.6"),
        Node(12, "sqldb", "postgres15", False, "10.0.0.12", version="15.6"),
        Node(13, "sqldb", "postgres15", False, "10.0.0.13", version="15.6"),
        Node(21, "pgpool", "pgpool2", True, "10.0.0.21", version="4.3.5"),
    ])


def interp(runner: NodeRunner | None = None, **kw: object) -> Interpreter:
    kw.setdefault("env", make_env())
    env = kw.pop("env")
    return Interpreter(env, runner or FakeRunner(), user=User(email="me@example.org"),  # type: ignore[arg-type]
                       sleep=lambda s: None, seed=1, **kw)  # type: ignore[arg-type]


def manifest(body: str, extra: str = "") -> str:
    """A small update add-on whose onInstall is ``body`` (YAML lines indented by two)."""
    return f"type: update\nid: t\nname: T\n{extra}onInstall:\n{body}"
