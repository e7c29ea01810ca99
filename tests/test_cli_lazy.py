"""`fridgebench CMD` loads only CMD's module (Typer builds every registered command before parsing);
without a known command every command is there: the root help lists them all, a typo gets Click's
suggestion, and ``fridgebench.cli.app`` (what Typer's test runner takes) has them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fridgebench.cli as cli

PROBE = """
import sys
import fridgebench.cli as c
sys.argv = ["fridgebench", *sys.argv[1:]]
try:
    c.main()
except SystemExit:
    pass
print("LOADED", ",".join(sorted(m.rsplit(".", 1)[1] for m in sys.modules
                               if m.startswith("fridgebench.cli.") and not m.rsplit(".", 1)[1].startswith("_"))))
"""


def _run(*args: str) -> tuple[set[str], str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    line = next(x for x in res.stdout.splitlines() if x.startswith("LOADED"))
    return set(line.split(" ", 1)[1].split(",")) - {""}, res.stdout + res.stderr


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    app = cli.app  # every module registered
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | \
            {g.name for g in app.registered_groups}  # type: ignore[union-attr]
    assert names == set(cli.COMMANDS), names ^ set(cli.COMMANDS)
    for c in app.registered_commands:
        name = c.name or c.callback.__name__  # type: ignore[union-attr]
        assert c.callback.__module__ == f"fridgebench.cli.{cli.COMMANDS[name]}", name  # type: ignore[union-attr]


@pytest.mark.parametrize("args,module", [(("gate", "--help"), "gate"), (("--debug", "status", "--help"), "provision"),
                                         (("rehearse", "fill", "--help"), "migrate")])
def test_a_command_loads_only_its_own_module(args: tuple[str, ...], module: str) -> None:
    loaded, out = _run(*args)
    assert loaded == {module}, out
    assert "Usage:" in out


def test_without_a_known_command_every_command_is_there() -> None:
    loaded, out = _run("--help")
    assert loaded == set(cli.MODULES), out
    for name in ("compare", "migrate", "rehearse", "gate", "up"):
        assert name in out
    loaded, out = _run("compar")
    assert loaded == set(cli.MODULES) and "No such command" in out and "compare" in out, out
