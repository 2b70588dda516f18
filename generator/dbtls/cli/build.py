"""``dbtls build`` and ``dbtls validate``: parse arguments, call dbtls.addon / dbtls.jps, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dbtls.addon import DEFAULT_BASE_URL, BuildError, build_outputs, drift, write_outputs
from dbtls.addon.project import repo_root
from dbtls.jps.validate import validate_file

err = Console(stderr=True)


def build(
    base_url: Annotated[str | None, typer.Option(
        help="declare this baseUrl in the manifests (pins where nodes download the agent from); by default "
             "none is declared and the platform uses the folder the manifest was imported from")]
    = DEFAULT_BASE_URL,
    check: Annotated[bool, typer.Option("--check", help="rebuild in memory; fail if committed files differ")]
    = False,
    root: Annotated[Path | None, typer.Option(help="repository root (default: this checkout)")] = None,
) -> None:
    """Write manifest.jps, marketplace/*.jps and node-scripts/dist/dbtls-agent.pyz (reproducibly)."""
    where = root or repo_root()
    try:
        outputs = build_outputs(where, base_url)
    except BuildError as exc:
        err.print(f"[red]dbtls build: error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if check:
        stale = drift(where, outputs)
        for path in stale:
            typer.echo(f"{path}: differs from a fresh build (run: dbtls build)")
        if stale:
            raise typer.Exit(1)
        typer.echo(f"up to date: {', '.join(o.path for o in outputs)}")
        return
    changed = write_outputs(where, outputs)
    for out in outputs:
        typer.echo(f"{'wrote    ' if out.path in changed else 'unchanged'} {out.path}")


def validate(file: Annotated[Path, typer.Argument(help="manifest (.jps, YAML or JSON)")]) -> None:
    """Check a manifest; print one line per problem (YAML path: message), exit 1 if any."""
    problems = validate_file(file)
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{file}: ok")
