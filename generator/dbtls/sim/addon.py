"""Install, click, scale and uninstall the built add-on on a simulated environment.

This is the platform's side of the contract: it installs ``manifest.jps`` once per layer (database
layer first, like the marketplace launchers), remembers what is installed, raises events, and reads
each node's state back for the result table. All node work goes through the manifest itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from dbtls.addon.project import repo_root
from dbtls.jps import Interpreter, Node, Result
from dbtls.jps.platformapi import Platform
from dbtls.jps.runners import run_script
from dbtls.sim import cluster, platform
from dbtls.sim.errors import SimError

Progress = Callable[[str], None]
#: Layers in install order: the database layer holds the CA and must offer TLS first.
LAYER_ORDER = ("sqldb", "pgpool", "proxy")


@dataclass
class NodeRow:
    """One line of the per-node result table."""

    node: Node
    tls: str
    cert: str
    days_left: str
    root_sha256: str


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs from ``--set``; ``true``/``false`` become booleans like form toggles."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SimError(f"--set expects key=value, got {pair!r}")
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def _manifest(root: Path) -> Path:
    path = root / "manifest.jps"
    if not path.is_file():
        raise SimError("manifest.jps not found: run 'dbtls build' first")
    return path


class Session:
    """One CLI run against one environment: engine, HTTP server, interpreter, add-on state.

    The manifest is imported from ``<base_url>/manifest.jps`` (the HTTP server on the env's bridge),
    like Marketplace -> Import -> URL, so ``${baseUrl}`` is derived by the same rule as on the
    platform (unless the manifest declares its own).
    """

    def __init__(self, env: str, base_url: str, root: Path | None = None, platform_host: str | None = None) -> None:
        self.env = env
        self.root = root or repo_root()
        _manifest(self.root)
        self.manifest_url = f"{base_url.rstrip('/')}/manifest.jps"
        self.engine: docker.DockerClient = cluster.client()
        self.interp: Interpreter = platform.interpreter(self.engine, env)
        self.installed = platform.load_state(self.engine, env)
        kept = platform.load_platform(self.engine, env)
        if kept is not None:
            self.interp.platform = Platform.from_json(kept)
        if platform_host:
            self.interp.platform.host = platform_host

    def _addon(self, item: platform.Installed) -> Any:
        addon = self.interp.load(self.manifest_url, node_group=item.node_group, settings=item.settings)
        addon.unique_name = item.unique_name
        return addon

    def _keep_platform(self) -> None:
        platform.save_platform(self.engine, self.env, self.interp.platform.to_json())

    def invoke_script(self, name: str, params: dict[str, Any]) -> Any:
        """A request to the platform script ``name`` (what a node's renewal check sent, captured):
        the simulated platform runs it, and any action it starts (interp.executed)."""
        self.interp.addons = [self._addon(item) for item in self.installed]
        try:
            return self.interp.invoke_script(name, params)
        finally:
            self._keep_platform()

    def install(self, settings: dict[str, Any], layers: list[str] | None = None) -> list[tuple[str, Result]]:
        """Install on every supported layer of the env (or ``layers``), database layer first."""
        present = self.interp.env.groups()
        wanted = layers or [g for g in LAYER_ORDER if g in present]
        done = {i.node_group for i in self.installed}
        results = []
        for group in sorted(wanted, key=lambda g: LAYER_ORDER.index(g) if g in LAYER_ORDER else 99):
            if group not in present:
                raise SimError(f"environment {self.env!r} has no layer {group!r} (has {', '.join(present)})")
            if group in done:
                raise SimError(f"the add-on is already installed on {group}; uninstall first")
            _, result = self.interp.install(self.manifest_url, node_group=group, settings=settings)
            results.append((group, result))
            self._keep_platform()
            if not result.ok or result.stopped:
                break
            addon = self.interp.addons[-1]
            self.installed.append(platform.Installed(group, dict(addon.settings), addon.unique_name))
            platform.save_state(self.engine, self.env, self.installed)
        return results

    def _instance(self, layer: str | None) -> platform.Installed:
        if not self.installed:
            raise SimError(f"the add-on is not installed in {self.env!r}; run 'dbtls sim install' first")
        if layer is None:
            return self.installed[0]
        for item in self.installed:
            if item.node_group == layer:
                return item
        raise SimError(f"the add-on is not installed on layer {layer!r}")

    def press(self, caption: str, settings: dict[str, Any], layer: str | None = None) -> Result:
        """Click a button of the add-on instance on ``layer`` (default: the database layer)."""
        item = self._instance(layer)
        self.interp.addons = [self._addon(i) for i in self.installed]
        addon = next(a for a in self.interp.addons if a.node_group == item.node_group)
        try:
            return self.interp.click(addon, caption, settings)
        finally:
            self._keep_platform()

    def fire_scale_out(self, group: str, new_node: Node, order: str = "install",
                       concurrent: bool = False) -> list[tuple[str, Result]]:
        """Raise onAfterServiceScaleOut for ``group`` in the environment: every installed instance
        hears it and runs the handlers whose filter matches (events.md, Events Filtering)."""
        return self.fire("onAfterServiceScaleOut", {"nodeGroup": group, "count": 1}, {"nodes": [new_node]},
                         order=order, concurrent=concurrent)

    def fire(self, event: str, params: dict[str, Any], response: dict[str, Any] | None = None, *,
             order: str = "install", concurrent: bool = False) -> list[tuple[str, Result]]:
        """Raise a platform event: every installed instance hears it, in ``order`` (install or
        reverse) or all at once; returns (layer, result) of the instances whose handlers ran."""
        self.interp.addons = [self._addon(item) for item in self.installed]
        try:
            fired = self.interp.fire_all(event, params=params, response=response or {}, order=order,
                                         concurrent=concurrent)
        finally:
            self._keep_platform()
        return [(a.node_group or "-", r) for a, r in fired]

    def uninstall(self) -> list[tuple[str, Result]]:
        """Uninstall every instance, last installed first (proxies before the database layer)."""
        results = []
        self.interp.addons = [self._addon(i) for i in self.installed]
        for item in list(reversed(self.installed)):
            addon = next(a for a in self.interp.addons if a.node_group == item.node_group)
            result = self.interp.uninstall(addon)
            self._keep_platform()
            results.append((item.node_group, result))
            if not result.ok:
                break
            self.installed.remove(item)
            platform.save_state(self.engine, self.env, self.installed)
        return results

    def rows(self) -> list[NodeRow]:
        """Read each node's state with the agent: its status document, or ``inspect`` where no
        server can be asked (the node's certificates only)."""
        script = ("A=/usr/local/sbin/dbtls-agent; [ -x $A ] || { echo '{}'; exit 0; }; "
                  "{ $A status 2>/dev/null || $A inspect 2>/dev/null || echo '{}'; } | tr -d '\\n'; echo")
        rows = []
        for node in self.interp.env.nodes:
            res = run_script(self.interp.runner, node, script, "root")
            rows.append(_row(node, (res.stdout or "").strip()))
        return rows


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _row(node: Node, out: str) -> NodeRow:
    """One table row from the agent's status document (the fields docs/agent-cli.md lists under
    ``status``: ``enabled``, ``tls``, ``certificates``) or from ``inspect``'s certificates."""
    data = _json_object(out)
    certs = [c for c in data.get("certificates") or [] if isinstance(c, dict)]
    server = next((c for c in certs if c.get("role") == "server"), {})
    root = next((c for c in certs if "root" in str(c.get("role"))), {})
    tls = data.get("tls") if isinstance(data.get("tls"), dict) else {}
    if not data:
        state = "no agent"
    elif tls:
        state = f"ok {tls.get('protocol') or tls.get('check') or ''}" if tls.get("ok") else f"FAIL {tls.get('error') or ''}"
    else:
        state = "enabled" if data.get("enabled") else ("certs only" if server else "off")
    return NodeRow(node, state.strip(), str(server.get("cn", "-")), str(server.get("days_left", "-")),
                   str(root.get("sha256", "-"))[:23])
