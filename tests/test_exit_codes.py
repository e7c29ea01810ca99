"""The README's exit-code table and the code agree, and every (code, command) it documents happens.

The table under "### Exit codes" is parsed: its codes must be exactly ``ExitStatus``'s values, and
each (code, command) pair of its "returned by" column must have a witness — a CLI test that makes
that command return that code. Witnesses elsewhere in the suite are referenced by node id (checked
to exist, not run twice); the ones no other test covered are here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from fridgebench.errors import ExitStatus
from fridgebench.measure.results import load_results
from tests import servers
from tests.helpers import cli

ROOT = Path(__file__).resolve().parent.parent
EVERY = "every command"


def readme_exit_codes() -> dict[int, tuple[str, list[str]]]:
    """code -> (meaning, the commands of its "returned by" cell: backticked names, or EVERY)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Exit codes", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows: dict[int, tuple[str, list[str]]] = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*`(\d+)`\s*\|(.*)\|(.*)\|\s*$", line)
        if not m:
            continue
        code, meaning, by = int(m.group(1)), m.group(2).strip(), m.group(3).strip()
        assert code not in rows, f"code {code} appears twice in the README's exit-code table"
        # the commands are the backticked names outside parentheses (those say when, and may name flags)
        commands = [EVERY] if by.startswith(EVERY) else re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", by))
        assert commands, f"code {code}: its 'returned by' cell names no command: {by!r}"
        rows[code] = (meaning, commands)
    assert rows, "no exit-code table under '### Exit codes' in README.md"
    return rows


# (code, command as the README names it) -> tests that make that command return that code
WITNESSES: dict[tuple[int, str], list[str]] = {
    (0, EVERY): ["tests/test_compare.py::test_compare_on_embedded_servers_writes_a_complete_results_document",
                 "tests/test_provision.py::test_up_status_down",
                 "tests/test_external_safety.py::test_a_run_with_no_significant_ratio_is_inconclusive",
                 "tests/test_exit_codes.py::test_compare_strict_passes_a_run_without_an_inconclusive_verdict"],
    (1, EVERY): ["tests/test_bad_input.py::test_connection_errors_read_the_same_in_every_command",
                 "tests/test_provision.py::test_up_status_down",  # status: a recorded server is gone
                 "tests/test_bad_input.py::test_verify_exits_5_for_differences_and_1_when_it_cannot_compare"],
    (2, EVERY): ["tests/test_bad_input.py::test_a_malformed_redis_url_is_a_usage_error",
                 "tests/test_reuse_reset.py::test_reuse_with_reset_is_one_usage_line_before_anything_starts",
                 "tests/test_external_safety.py::test_redis_holding_foreign_sessions_is_refused_by_compare_and_ttl",
                 "tests/report/test_gate.py::test_bad_options_are_one_line_and_exit_2"],
    (3, "gate"): ["tests/report/test_gate.py::test_exit_status_0_without_a_regression_and_3_with_one"],
    (4, "gate"): ["tests/report/test_gate.py::test_strict_makes_an_inconclusive_row_fail",
                  "tests/report/test_gate.py::test_refused_runs_exit_4_and_say_why"],
    (4, "compare --strict"): ["tests/test_exit_codes.py::test_compare_strict_exits_4_on_an_inconclusive_verdict"],
    (5, "migrate verify"): ["tests/test_bad_input.py::test_verify_exits_5_for_differences_and_1_when_it_cannot_compare"],
    (130, EVERY): ["tests/test_signals.py::test_ctrl_c_during_compare", "tests/test_signals.py::test_ctrl_c_during_ttl",
                   "tests/test_signals.py::test_ctrl_c_during_up_leaves_nothing_recorded",
                   "tests/test_external_safety.py::test_an_interrupted_reuse_run_deletes_what_it_wrote_and_nothing_else"],
}


def test_the_readme_lists_exactly_the_exit_statuses_the_code_has() -> None:
    documented = set(readme_exit_codes())
    assert documented == {int(s) for s in ExitStatus}, (
        f"README only: {sorted(documented - {int(s) for s in ExitStatus})}; "
        f"ExitStatus only: {sorted({int(s) for s in ExitStatus} - documented)}")


def test_every_documented_code_and_command_has_a_witness_test_that_exists() -> None:
    pairs = {(code, cmd) for code, (_m, cmds) in readme_exit_codes().items() for cmd in cmds}
    assert pairs == set(WITNESSES), (f"documented without a witness: {sorted(pairs - set(WITNESSES))}; "
                                     f"witnessed but not documented: {sorted(set(WITNESSES) - pairs)}")
    for pair, nodes in WITNESSES.items():
        for node in nodes:
            path, name = node.split("::")
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert name in defined, f"{pair}: witness {node} does not exist"


def test_the_commands_help_agrees_with_the_table() -> None:
    """The two commands whose docstrings list their exit statuses say the same as the README."""
    gate = cli("gate", "--help")
    assert gate.returncode == 0 and "3 regression" in gate.stdout and "4 refused" in gate.stdout
    compare = cli("compare", "--help")
    assert compare.returncode == 0 and "--strict" in compare.stdout and "4 with --strict" in compare.stdout
    verify = cli("migrate", "verify", "--help")
    assert "5 differences found" in " ".join(verify.stdout.split())


# --- compare --strict: the witnesses no other test covered -----------------------------------------

SHORT = ["--warmup", "0.3", "--sessions", "300", "--rate", "300", "--no-profile", "--no-report"]


def test_compare_strict_exits_4_on_an_inconclusive_verdict(tmp_path: Path) -> None:
    """Two measured seconds give no 95% interval: the performance verdict is inconclusive. Plain
    `compare` exits 0 on it (tests/test_external_safety.py); with --strict it exits 4 — after its
    complete results were written."""
    with servers.machine_database() as dsn, servers.machine_redis_db(servers.REDIS_DB_SAFETY) as url:
        res = cli("compare", "--duration", "2", *SHORT, "--stores", "postgres,redis-atomic", "--strict", "--json",
                  "--postgres-dsn", dsn, "--redis-url", url, "--out", str(tmp_path))
    assert res.returncode == int(ExitStatus.TOO_NOISY) == 4, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    doc = json.loads(res.stdout)  # --json still prints the document
    perf = next(c for c in doc["claims"] if c["key"] == "performance")
    assert perf["verdict"] == "inconclusive", perf
    assert "not significant" in perf["measured"]
    flat = " ".join(res.stderr.split())
    assert "inconclusive: performance (the claims above say why) — exit 4 (--strict)" in flat
    run = load_results(next(p for p in tmp_path.iterdir() if p.is_dir()))  # complete, not a partial
    assert run.complete and run.run_id == doc["run_id"]


def test_compare_strict_passes_a_run_without_an_inconclusive_verdict(tmp_path: Path) -> None:
    """--strict fails only an inconclusive verdict: a run that judged nothing (one kind of store:
    "not measured") is not one."""
    with servers.machine_redis_db(servers.REDIS_DB_SAFETY) as url:
        res = cli("compare", "--duration", "1", *SHORT, "--stores", "redis-atomic", "--strict", "--json",
                  "--redis-url", url, "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert {c["verdict"] for c in doc["claims"]} == {"not measured"}
    assert "exit 4" not in res.stderr


@pytest.mark.parametrize("flags", [["--strict", "--repeat", "0"], ["--strict", "--repeat", "2", "--sweep"]])
def test_strict_does_not_hide_a_usage_error(flags: list[str], tmp_path: Path) -> None:
    res = cli("compare", *flags, "--out", str(tmp_path))
    assert res.returncode == 2, res.stderr
