"""What a simulated run returns: every executed step, the outcome, and the text the user would see."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Step:
    """One executed action (one per node for ``cmd``), in execution order."""

    action: str  #: ``cmd``, ``log``, ``setGlobals``, ``install``, ``call:<custom action>`` ...
    addon: str = ""  #: which add-on instance ran it: ``<id>@<nodeGroup>``
    node_ids: tuple[int, ...] = ()
    exit_code: int | None = None
    out: str = ""
    err: str = ""
    detail: str = ""  #: rendered script, message or parameters (never secrets from the runner)
    user: str | None = None
    path: str = ""  #: YAML path of the action item (``actions.issue[2]``)
    unresolved: tuple[str, ...] = ()  #: placeholders left literal in ``detail`` (as the engine does)


@dataclass
class Result:
    """Outcome of one handler run (install, button, event, uninstall).

    ``ok`` is false when an action failed (non-zero exit, error return, failed assert); the
    handler stopped there, as on the platform. ``stopped`` is true when ``return``/``stopEvent``
    ended it early on purpose. ``message`` is what the dashboard would show: the return or
    stopEvent message, else the success text / button ``successText``.
    """

    steps: list[Step] = field(default_factory=list)
    ok: bool = True
    error: str | None = None
    stopped: bool = False
    message: str | None = None
    message_type: str = "success"
    log: list[str] = field(default_factory=list)

    def cmd_steps(self) -> list[Step]:
        return [s for s in self.steps if s.action == "cmd"]


class Stop(Exception):
    """Internal: unwinds the handler on ``return``, ``stopEvent`` or a failed action."""

    def __init__(self, kind: str, message: str | None, message_type: str) -> None:
        super().__init__(message or kind)
        self.kind = kind  #: ``return``, ``stopEvent`` or ``error``
        self.message = message
        self.message_type = message_type
