"""Entry point. Every command is a thin wrapper around a library call.

User errors (:class:`~actionnet_edge.errors.ActionNetError` and click's usage errors) print
one line on stderr and exit with code 2; so does a file-system error (``OSError``: the path and
the errno's meaning). SIGTERM unwinds like Ctrl-C, so temporary files are removed. Nothing else
is caught, so a bug still shows its traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

from .._version import __version__
from ..errors import ActionNetError, unknown_name
from ..fsutil import fs_error, raise_on_sigterm
from ..logs import configure

# command name -> module in this package that defines a click command called `command`
COMMANDS = {
    "profile": "profile",
    "train": "train",
    "data": "data",
    "bench": "bench",
    "evaluate": "evaluate",
    "cam": "cam",
    "demo": "demo",
    "export": "export",
    "quickstart": "quickstart",
    "qat": "qat",
    "import": "import_weights",
    "verify": "verify",
    "recipes": "recipes",
}


class _Group(click.Group):
    """Loads commands lazily (so `--help` is fast) and turns user errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"{__package__}.{COMMANDS[name]}").command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else None
        if name is not None and not name.startswith("-") and name not in COMMANDS:
            raise unknown_name("command", name, COMMANDS)
        return super().resolve_command(ctx, args)

    def main(self, *args, **kwargs):
        """Run the CLI; every user error (ours or click's) is one line on stderr, exit 2."""
        kwargs["standalone_mode"] = False
        raise_on_sigterm()
        try:
            rv = super().main(*args, **kwargs)
        except OSError as e:
            click.echo(f"Error: {fs_error(e)}", err=True)
            sys.exit(2)
        except ActionNetError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: actionnet-edge quickstart --out out/quickstart")
@click.version_option(__version__, "--version", prog_name="actionnet-edge")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """ACTION-Net video action recognition from training to phones.

    Only the toolkit's own lines are shown; converters' and runtimes' output goes to
    actionnet-edge.log in the output folder (-v shows it here as it comes)."""
    configure(verbose, quiet)


if __name__ == "__main__":  # pragma: no cover
    main()
