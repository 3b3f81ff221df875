"""`hetc import langgraph MODULE:ATTR -o SPEC`: write a hetc spec from an agent graph written in a framework."""

from __future__ import annotations

from pathlib import Path

import click

from hetc.errors import printable


@click.group("import")
def import_group() -> None:
    """Write a hetc spec from an agent graph written in a framework."""


@import_group.command("langgraph")
@click.argument("target", metavar="MODULE:ATTR")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Spec file to write (YAML).")
@click.option("--from-trace", "trace", type=click.Path(dir_okay=False),
              help="JSON trace of real runs (LangSmith run export or OpenTelemetry-style spans): token counts, "
                   "tool latencies, branch probabilities and loop bounds from what was observed.")
@click.option("--name", help="The spec's name (default: ATTR, or MODULE when ATTR is graph, app, agent, ...).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def langgraph_cmd(target, output, trace, name, quiet):
    """Import the LangGraph graph MODULE:ATTR (a compiled graph or a StateGraph builder) into OUTPUT.

    The module is imported (its code runs) from the current directory or the Python path. What the graph
    cannot say (token counts, tool latencies, request rate, SLO, hardware) gets a documented default,
    listed as TODO in the spec and here.
    """
    from hetc.importers.langgraph import import_graph, load_target

    graph = load_target(target)
    imported = import_graph(graph, trace=trace, name=name or _default_name(target), source=target)
    imported.write(output)
    if not quiet:
        click.echo(printable(f"wrote {Path(output)} ({imported.name}); validate with: hetc validate {output}"))
        click.echo(f"TODO ({len(imported.todos)} defaults to replace with measured values):")
        for todo in imported.todos:
            click.echo(printable(f"  - {todo}"))


def _default_name(target: str) -> str:
    """The attribute's name, or the module's when the attribute has a generic one (`agent:graph` -> agent)."""
    module, attr = target.split(":", 1)
    attr = attr.rsplit(".", 1)[-1]
    return module.rsplit(".", 1)[-1] if attr in ("graph", "app", "agent", "workflow", "builder", "compiled") else attr
