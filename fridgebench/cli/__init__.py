"""The ``fridgebench`` command: a thin Typer layer over the library.

Each command group lives in its own module and registers itself on the Typer application
(:mod:`fridgebench.cli._app`). Commands parse options, call the library inside ``error_boundary()``,
render, and exit.

``main()`` loads only the module of the command being run: Typer builds every registered command's
options (with pydantic adapters) before it parses anything, and each command module imports the library
it drives — for ``fridgebench compare`` that was a third of its start-up (0.2 s of CPU). Without a known
command (``fridgebench``, ``--help``, a typo) every module loads, so the help lists them all and a typo gets
Click's suggestions. ``fridgebench.cli.app`` is the application with every command registered.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from fridgebench.cli._app import app as _app

# command name -> the module that registers it
COMMANDS = {"up": "provision", "status": "provision", "down": "provision", "compare": "compare",
            "migrate": "migrate", "rehearse": "migrate", "ttl": "ttl", "failure": "failure", "load": "load",
            "helm": "helm", "report": "report", "gate": "gate"}
MODULES = tuple(dict.fromkeys(COMMANDS.values()))  # each once, in that order (the root help's)


def _register(modules: tuple[str, ...] = MODULES) -> None:
    for mod in modules:
        importlib.import_module(f"fridgebench.cli.{mod}")


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` runs: its first word that is not one of the root's options (all flags)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole application, e.g. for Typer's test runner
        _register()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    cmd = _command(sys.argv[1:])
    _register((COMMANDS[cmd],) if cmd in COMMANDS else MODULES)
    _app()
