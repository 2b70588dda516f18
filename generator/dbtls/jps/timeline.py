"""A timeline of the actions that would each be one platform API call, and its critical path.

On the platform every ``cmd``, ``script``, ``install``, ``api``, ``writeFile`` ... is a request to
the platform's API with its own round trip; a ``cmd`` on a whole layer is one request however many
nodes it reaches. Engine-local actions (``setGlobals``, ``if``, ``forEach``, ``log`` ...) are not
requests. So an operation costs roughly its measured work plus one latency per call made one after
another: :func:`summarise` counts those calls and :func:`modelled_seconds` adds the latency.

The interpreter holds an optional :class:`Recorder` (``Interpreter.recorder``, ``None`` by default);
``Run.dispatch`` wraps each platform call in :meth:`Recorder.call`. Nothing is recorded otherwise.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dbtls.jps.model import Environment
from dbtls.jps.syntax import is_api_method, split_commas

#: Built-in actions that are each one request to the platform's API (actions.md); the API methods
#: used as action keys (``env.control.AddContainerEnvVars``) are requests too.
PLATFORM_CALLS: frozenset[str] = frozenset({
    "cmd", "script", "install", "installAddon", "api", "writeFile", "appendFile", "createFile",
    "createDirectory", "replaceInFile", "upload", "unpack", "restartNodes", "restartNode",
    "restartServices", "restartContainers", "setNodeDisplayName", "setNodeCount", "setExtIpEnabled",
    "addNodes",
})

#: The per-call latency used when none is given, in seconds. It is an assumption, not a
#: measurement: docs/performance.md says why 1 s and shows 0.5 s and 2 s beside it.
DEFAULT_LATENCY = 1.0

_HANDLER_RE = re.compile(r"^(?:actions\.)?([^.\[]+)")


def is_platform_call(name: str) -> bool:
    """True for an action that the platform runs as one API request."""
    return name in PLATFORM_CALLS or is_api_method(name)


def handler_of(path: str) -> str:
    """The custom action, event or entry that issued an action, from its YAML path:
    ``actions.issue[2].forEach(n)[0]`` -> ``issue``, ``onInstall[3]`` -> ``onInstall``."""
    m = _HANDLER_RE.match(path)
    return m.group(1) if m else path


def target_text(selector: str | None, params: dict[str, object], render: Callable[[str], str]) -> str:
    """What a call targets, rendered: the bracket selector, else nodeId/nodeGroup/nodeType."""
    if selector is not None:
        return render(selector)
    parts = [render(str(params[k])) for k in ("nodeId", "nodeGroup", "nodeType") if params.get(k) is not None]
    return ",".join(parts)


def target_nodes(env: Environment, target: str, aliases: dict[str, str] | None = None) -> tuple[int, ...]:
    """Node ids a target resolves to (lenient: unknown tokens resolve to nothing)."""
    ids: set[int] = set()
    for token in split_commas(target):
        token = (aliases or {}).get(token, token)
        if token == "*":
            ids.update(n.id for n in env.nodes)
        elif token.isdigit():
            ids.add(int(token))
        else:
            ids.update(n.id for n in env.nodes if n.group == token or n.node_type == token)
    return tuple(sorted(ids))


@dataclass
class Call:
    """One platform call: what it was, who issued it, what it targeted, when (monotonic seconds)."""

    kind: str  #: ``cmd``, ``script``, ``install``, an API method ...
    handler: str  #: custom action / event / entry that issued it (see :func:`handler_of`)
    path: str  #: YAML path of the action item
    operation: str  #: what the caller was doing: ``install sqldb``, ``press Re-issue ...``
    target: str  #: the rendered selector or nodeGroup/nodeId ("" when the action has none)
    node_ids: tuple[int, ...]  #: nodes the target resolved to (empty for script/install)
    start: float
    end: float = 0.0
    addon: str = ""  #: the add-on instance that issued it: ``<id>@<nodeGroup>``
    depth: int = 0  #: nesting: calls made inside a nested ``install`` are one deeper
    children: int = 0  #: calls made while this one ran (only ``install`` has any)
    child_time: float = 0.0  #: their total duration

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def self_time(self) -> float:
        """Duration less the nested calls' (an ``install`` spends most of its time in them)."""
        return max(0.0, self.duration - self.child_time)


@dataclass
class Recorder:
    """Collects :class:`Call` records; thread-safe (events may run add-ons in parallel)."""

    clock: Callable[[], float] = time.monotonic
    calls: list[Call] = field(default_factory=list)
    operations: list[tuple[str, float, float]] = field(default_factory=list)  #: (name, start, end)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def _stack(self) -> list[Call]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Label the calls made inside (``install sqldb``) and time the whole operation."""
        previous = getattr(self._local, "operation", "")
        self._local.operation = name
        start = self.clock()
        try:
            yield
        finally:
            self._local.operation = previous
            with self._lock:
                self.operations.append((name, start, self.clock()))

    @contextmanager
    def call(self, kind: str, path: str, target: str = "", node_ids: tuple[int, ...] = (),
             addon: str = "") -> Iterator[Call]:
        """Time one platform call; calls started inside it (nested install) count as its children."""
        stack = self._stack()
        record = Call(kind, handler_of(path), path, getattr(self._local, "operation", ""), target,
                      tuple(node_ids), self.clock(), addon=addon, depth=len(stack))
        with self._lock:
            self.calls.append(record)
        stack.append(record)
        try:
            yield record
        finally:
            stack.pop()
            record.end = self.clock()
            if stack:
                stack[-1].children += 1 + record.children
                stack[-1].child_time += record.duration - record.child_time


@dataclass(frozen=True)
class Summary:
    """The figures ``dbtls sim install --timeline`` prints for one operation (or all of them)."""

    calls: int  #: platform calls made
    sequential: int  #: calls on the critical path (one after another)
    wall: float  #: measured seconds from the first call's start to the last one's end (or the operation's)
    call_time: float  #: seconds spent inside calls (self time, nested calls not counted twice)
    by_handler: list[tuple[str, int, float]]  #: (handler, calls, self seconds), most time first
    by_kind: list[tuple[str, int, float]]  #: (kind, calls, self seconds), most time first
    by_addon: list[tuple[str, int, float]]  #: (add-on instance, calls, self seconds)


def critical_path(calls: list[Call]) -> int:
    """The most calls that ran one after another: the longest chain where each call starts after
    the previous one ended. A call with nested calls (``install``) counts as its request only: it
    occupies the instant it started, and its children follow it."""
    spans = sorted(((c.start, c.start if c.children else c.end) for c in calls), key=lambda s: (s[1], s[0]))
    best: list[int] = []
    for i, (start, _end) in enumerate(spans):
        before = [best[j] for j in range(i) if spans[j][1] <= start]
        best.append(1 + max(before, default=0))
    return max(best, default=0)


def _totals(calls: list[Call], key: Callable[[Call], str]) -> list[tuple[str, int, float]]:
    counts: dict[str, list[float]] = {}
    for c in calls:
        entry = counts.setdefault(key(c), [0, 0.0])
        entry[0] += 1
        entry[1] += c.self_time
    return sorted(((k, int(v[0]), v[1]) for k, v in counts.items()), key=lambda t: (-t[2], t[0]))


def summarise(recorder: Recorder, operation: str | None = None) -> Summary:
    """Figures for one operation (``None``: everything recorded)."""
    calls = [c for c in recorder.calls if operation is None or c.operation == operation]
    spans = [(s, e) for name, s, e in recorder.operations if operation is None or name == operation]
    if spans:
        wall = sum(e - s for s, e in spans)
    elif calls:
        wall = max(c.end for c in calls) - min(c.start for c in calls)
    else:
        wall = 0.0
    return Summary(len(calls), critical_path(calls), wall, sum(c.self_time for c in calls),
                   _totals(calls, lambda c: c.handler), _totals(calls, lambda c: c.kind),
                   _totals(calls, lambda c: c.addon))


def modelled_seconds(summary: Summary, latency: float = DEFAULT_LATENCY) -> float:
    """Measured work plus one platform round trip per sequential call."""
    return summary.wall + summary.sequential * latency


def report(recorder: Recorder, latencies: tuple[float, ...] = (0.5, DEFAULT_LATENCY, 2.0), top: int = 8) -> str:
    """Plain-text report: per operation, then the top handlers and kinds over everything."""
    lines = [f"{'operation':<34} {'calls':>5} {'sequential':>10} {'measured s':>10} "
             + " ".join(f"{f'@{lat:g}s':>8}" for lat in latencies)]
    names = list(dict.fromkeys(name for name, _, _ in recorder.operations)) or [None]
    for name in [*names, None] if len(names) > 1 else names:
        s = summarise(recorder, name)
        label = name if name is not None else "total"
        lines.append(f"{label:<34} {s.calls:>5} {s.sequential:>10} {s.wall:>10.1f} "
                     + " ".join(f"{modelled_seconds(s, lat):>8.1f}" for lat in latencies))
    whole = summarise(recorder)
    lines.append("")
    lines.append("where the time went (self time of the calls; modelled = self + latency per call)")
    for title, rows in (("add-on instance", whole.by_addon), ("handler", whole.by_handler[:top]),
                        ("kind", whole.by_kind)):
        lines.append(f"  {title:<32} {'calls':>5} {'self s':>8} {f'@{DEFAULT_LATENCY:g}s':>8}")
        for key, count, secs in rows:
            lines.append(f"  {key:<32} {count:>5} {secs:>8.1f} {secs + count * DEFAULT_LATENCY:>8.1f}")
    return "\n".join(lines)
