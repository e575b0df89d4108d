"""The `unseen` command: one verb group per area, every error one line.

Each group lives in its own module of this package and is registered here.
"""

from __future__ import annotations

import sys

import typer

from unseen.cli.common import console, state
from unseen.core.errors import UnseenError

app = typer.Typer(
    name="unseen",
    help="Adapt pre-trained models to unseen tasks and domains with zero or few labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")):
    state.debug = debug


def _register() -> None:
    from unseen.cli import assets, data, instruct, pouf, quickstart, scenetext

    app.add_typer(assets.app, name="assets")
    app.add_typer(data.app, name="data")
    app.add_typer(instruct.app, name="instruct")
    app.add_typer(pouf.app, name="pouf")
    app.add_typer(scenetext.app, name="str")
    app.command("quickstart")(quickstart.quickstart)


_register()


def _quiet_libraries() -> None:
    """Our own progress bars and tables say what happens; the libraries' bars only add noise."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr."""
    state.debug = "--debug" in sys.argv
    if not state.debug:
        _quiet_libraries()
    try:
        app()
    except UnseenError as err:
        if state.debug:
            raise
        console.stderr.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.stderr.print("interrupted")
        sys.exit(130)
    except Exception as err:  # a bug of ours: still one line, with the way to see more
        if state.debug:
            raise
        console.stderr.print(
            f"[bold red]internal error:[/] {type(err).__name__}: {err} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
