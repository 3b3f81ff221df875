"""The `hetc` command line. Subcommands load lazily so `hetc --help` and `--version` stay fast.

Exit codes: 0 ok, 1 internal error, 2 user error, 3 SLA infeasible, 4 a CI gate (--max-cost,
--max-regression) failed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from hetc import __version__
from hetc.errors import EXIT_INTERNAL, HetcError

# name -> (module, attribute, one-line help); the module is imported only when the command runs
COMMANDS = {
    "compile": ("hetc.cli.compile", "compile_cmd", "Compile an agent spec into a deployment bundle."),
    "validate": ("hetc.cli.compile", "validate_cmd", "Check an agent spec and report every error."),
    "opt": ("hetc.cli.compile", "opt_cmd", "Run passes on textual IR, like mlir-opt."),
    "hw": ("hetc.cli.hw", "hw", "List and show devices of the hardware database."),
    "estimate": ("hetc.cli.hw", "estimate", "Estimate one LLM deployment: TTFT, TBT, throughput, cost."),
    "calibrate": ("hetc.cli.hw", "calibrate", "Fit efficiency factors to measurements; write an hwdb overlay."),
    "deploy": ("hetc.cli.deploy", "deploy_command", "Export a bundle's plan to Kubernetes or Ray Serve."),
    "simulate": ("hetc.cli.deploy", "simulate_command", "Simulate a bundle's plan under load and check the SLA."),
    "schema": ("hetc.cli.deploy", "schema_group", "Print a JSON Schema (plan)."),
    "serve": ("hetc.runtime.cli", "serve_command", "Run a bundle's agent (Ray Serve, or in-process with --local)."),
    "sweep": ("hetc.cli.study", "sweep", "Compile every combination of options; table and report."),
    "diff": ("hetc.cli.study", "diff", "Compare two plans: what moved, cost and latency deltas."),
    "uncertainty": ("hetc.cli.uncertainty", "uncertainty", "Monte Carlo: win probabilities, regret, the robust plan."),
    "replan": ("hetc.cli.replan", "replan_command", "Re-plan a bundle from observed load; write a migration."),
    "import": ("hetc.importers.cli", "import_group", "Write a spec from a framework's agent graph (LangGraph)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module))

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError:
            return None

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="hetc")
def cli() -> None:
    """hetc: place an AI agent graph on heterogeneous hardware at minimum TCO under its SLA,
    and write what to deploy.

    \b
    Shell completion, in ~/.bashrc: eval "$(_HETC_COMPLETE=bash_source hetc)"
    (zsh: zsh_source, fish: fish_source; see README.md)
    """


def report_error(exc: HetcError) -> None:
    for diag in exc.diagnostics:
        click.echo(str(diag), err=True)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="hetc", standalone_mode=False)
    except HetcError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in hetc: say so without a traceback unless asked
        if os.environ.get("HETC_DEBUG"):
            raise
        click.echo(f"hetc: internal error: {type(exc).__name__}: {exc} (set HETC_DEBUG=1 for a traceback)",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)

