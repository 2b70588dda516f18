"""``dbtls sim install | press | scale-out | uninstall``: the add-on on a simulated environment.

Argument parsing and printing only; the work is in addon.Session. Every command serves the built
manifest and agent over HTTP on the environment's bridge gateway for as long as it runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dbtls.addon.project import repo_root
from dbtls.cli.sim_timeline import traced
from dbtls.jps import JpsError, Node, Result
from dbtls.sim import addon, cluster, platform, scale
from dbtls.sim.errors import NoEnvironment, SimError

err = Console(stderr=True)
out = Console(width=max(160, shutil.get_terminal_size().columns))

EnvOpt = Annotated[str, typer.Option(help="environment name")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="form value key=value (repeatable)")]
TimelineOpt = Annotated[bool, typer.Option("--timeline", help="print the platform calls' critical path "
                                                              "(docs/performance.md)")]


def _maybe_traced(on: bool, label: str, work: Callable[[addon.Session], Any]) -> Callable[[addon.Session], Any]:
    return traced(label, work, lambda text: out.print(text, highlight=False, markup=False)) if on else work


def _run(env: str, work: Callable[[addon.Session], Any]) -> Any:
    """Serve the repo on the env's gateway, open a session, run ``work``, print the node table."""
    try:
        engine = cluster.client()
        platform.require_env(engine, env)
        with platform.serve(repo_root(), platform.gateway(engine, env)) as base_url:
            session = addon.Session(env, base_url)
            result = work(session)
            out.print(node_table(session.rows()))
            return result
    except NoEnvironment as exc:
        raise no_environment(exc) from None
    except (SimError, JpsError, ValueError) as exc:
        err.print(f"[red]dbtls sim: error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def no_environment(exc: NoEnvironment) -> typer.Exit:
    """One plain line for a mistyped ``--env`` (no traceback, no table)."""
    typer.echo(f"dbtls: {exc}", err=True)
    return typer.Exit(1)


def show(layer: str, result: Result | None) -> bool:
    """Print what the dashboard would show for one handler run; True when it succeeded."""
    if result is None:
        out.print(f"[dim]{layer}: no handler for this event[/dim]")
        return True
    for line in result.log:
        out.print(f"[dim]{layer} log:[/dim] {line}", highlight=False)
    if not result.ok:
        failed = next((s for s in reversed(result.steps) if s.exit_code not in (None, 0)), None)
        out.print(f"[red]{layer}: FAILED[/red] {result.error}", highlight=False)
        if failed is not None and failed.err.strip():
            out.print("[red]" + "\n".join(failed.err.strip().splitlines()[-8:]) + "[/red]", highlight=False)
        return False
    colour = {"success": "green", "info": "cyan", "warning": "yellow"}.get(result.message_type, "white")
    status = "stopped" if result.stopped and result.message_type not in ("success", "info") else "ok"
    out.print(f"[{colour}]{layer}: {status}[/{colour}] {result.message or ''}", highlight=False)
    return not result.stopped or result.message_type in ("success", "info")


def node_table(rows: list[addon.NodeRow]) -> Table:
    table = Table("node", "layer", "nodeType", "hostname", "address", "TLS", "server cert CN", "days left",
                  "root sha256")
    for r in rows:
        n = r.node
        table.add_row(f"{n.id}{' (master)' if n.ismaster else ''}", n.group, n.node_type, n.hostname,
                      n.address, r.tls, r.cert, r.days_left, r.root_sha256)
    return table


def register(app: typer.Typer) -> None:
    """Add the add-on commands to ``dbtls sim``."""

    @app.command()
    def install(env: EnvOpt = "pg-cluster", set_: SetOpt = None,
                layer: Annotated[list[str] | None, typer.Option(help="only these layers")] = None,
                timeline: TimelineOpt = False) -> None:
        """Install manifest.jps on the env's layers (database layer first), as the launcher does."""
        results = _run(env, _maybe_traced(timeline, "install",
                                          lambda s: s.install(addon.parse_settings(set_ or []), layer)))
        if not all(show(g, r) for g, r in results):
            raise typer.Exit(1)

    @app.command()
    def press(caption: Annotated[str, typer.Argument(help="button caption, e.g. 'Re-issue certificates'")],
              env: EnvOpt = "pg-cluster", set_: SetOpt = None,
              layer: Annotated[str | None, typer.Option(help="add-on instance (default: database layer)")]
              = None, timeline: TimelineOpt = False) -> None:
        """Click a button of the installed add-on, with its form values from --set."""
        result = _run(env, _maybe_traced(timeline, f"press {caption}",
                                         lambda s: s.press(caption, addon.parse_settings(set_ or []), layer)))
        if not show(layer or "add-on", result):
            raise typer.Exit(1)

    @app.command(name="scale-out")
    def scale_out(group: Annotated[str, typer.Argument(help="layer to grow: sqldb, pgpool or proxy")],
                  env: EnvOpt = "pg-cluster") -> None:
        """Add a node to a layer, then raise the platform's onAfterServiceScaleOut event."""
        try:
            platform.require_env(cluster.client(), env)
            row = scale.scale_out(env, group, progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
        except NoEnvironment as exc:
            raise no_environment(exc) from None
        except SimError as exc:
            err.print(f"[red]dbtls sim: error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

        def fire(session: addon.Session) -> list[tuple[str, Result]]:
            node: Node = next(n for n in session.interp.env.nodes if n.id == row.node_id)
            return session.fire_scale_out(group, node)

        results = _run(env, fire)
        if not results:
            show(group, None)
        if not all(show(g, r) for g, r in results):
            raise typer.Exit(1)

    @app.command()
    def uninstall(env: EnvOpt = "pg-cluster", timeline: TimelineOpt = False) -> None:
        """Uninstall the add-on from every layer (proxies first), restoring the original configs."""
        results = _run(env, _maybe_traced(timeline, "uninstall", lambda s: s.uninstall()))
        if not all(show(g, r) for g, r in results):
            raise typer.Exit(1)
