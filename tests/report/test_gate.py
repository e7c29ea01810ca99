"""`fridgebench gate` on synthetic runs with known answers (real results documents and HdrHistogram logs).

Each side is a folder of repeats (rank test) or one run (bootstrap over seconds). Latencies are
lognormal around medians the test sets, so the right verdict is known in advance.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fridgebench.errors import ExitStatus
from fridgebench.gate import stats
from fridgebench.gate.judge import GateOptions, judge
from fridgebench.measure.runs import load_runs
from tests.helpers import cli
from tests.report.synth import SCENARIO, SERVERS, lognormal, write_group, write_run

BASE = {("postgres", "get"): 200.0, ("postgres", "add"): 1500.0,
        ("redis-atomic", "get"): 80.0, ("redis-atomic", "add"): 100.0}
SLOW_ADD = {**BASE, ("postgres", "add"): 1500.0 * 1.25}


def _verdicts(res) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.name: r.verdict for r in res.rows}


def test_identical_distributions_are_unchanged_never_a_regression(tmp_path: Path) -> None:
    b = write_group(tmp_path / "b", lognormal(BASE), 5, seed=1)
    c = write_group(tmp_path / "c", lognormal(BASE), 5, seed=2)
    res = judge(load_runs(b), load_runs(c), GateOptions())
    v = _verdicts(res)
    assert len(v) == 8 and "regression" not in v.values()
    assert all(r.method == "mann-whitney" for r in res.rows)
    assert v["postgres get p50"] == "unchanged" and v["redis-atomic get p50"] == "unchanged"
    assert res.exit_status == ExitStatus.OK


def test_a_25_percent_slowdown_of_one_operation_is_a_regression_and_only_there(tmp_path: Path) -> None:
    b = write_group(tmp_path / "b", lognormal(BASE), 5, seed=3)
    c = write_group(tmp_path / "c", lognormal(SLOW_ADD), 5, seed=4)
    res = judge(load_runs(b), load_runs(c), GateOptions())
    v = _verdicts(res)
    assert v["postgres add p50"] == "regression"
    assert [k for k, x in v.items() if x == "regression"] in (["postgres add p50"], ["postgres add p50", "postgres add p99"])
    row = next(r for r in res.rows if r.name == "postgres add p50")
    assert 1.15 < row.ratio < 1.35 and row.ci95[0] > 1.10  # type: ignore[index,operator]
    assert res.exit_status == ExitStatus.GATE_FAILED
    # the same change under a threshold above its size is not a regression (significant but small)
    res30 = judge(load_runs(b), load_runs(c), GateOptions(threshold=0.40))
    assert "regression" not in _verdicts(res30).values()


def test_one_run_per_side_uses_the_bootstrap_over_seconds(tmp_path: Path) -> None:
    b = write_run(tmp_path / "b", lognormal(BASE), seed=5)
    c = write_run(tmp_path / "c", lognormal(SLOW_ADD), seed=6)
    res = judge(load_runs(b), load_runs(c), GateOptions())
    v = _verdicts(res)
    assert v["postgres add p50"] == "regression"
    assert v["postgres get p50"] == "unchanged"
    assert {r.method for r in res.rows} == {"bootstrap"}
    again = judge(load_runs(b), load_runs(c), GateOptions())
    assert [r.to_dict() for r in again.rows] == [r.to_dict() for r in res.rows]  # a rerun gives the same verdicts


def test_heavy_tailed_noise_between_runs_is_inconclusive_not_a_regression(tmp_path: Path) -> None:
    def noisy(seed: int):  # type: ignore[no-untyped-def]
        # each run as a whole is scaled by a heavy-tailed factor (a busy neighbour for the whole run)
        factor = float(np.exp(np.random.default_rng(seed).standard_t(2) * 0.25))
        return lognormal({k: v * factor for k, v in BASE.items()}, sigma=0.8)

    for i in range(4):
        write_run(tmp_path / "b", noisy(10 + i), seed=10 + i)
        write_run(tmp_path / "c", noisy(20 + i), seed=20 + i)
    res = judge(load_runs(tmp_path / "b"), load_runs(tmp_path / "c"), GateOptions())
    v = _verdicts(res)
    assert "regression" not in v.values()
    assert "inconclusive" in v.values()
    noisy_rows = [r for r in res.rows if r.verdict == "inconclusive"]
    assert any("too noisy" in r.why for r in noisy_rows)


def test_too_few_samples_and_too_few_repeats_are_inconclusive(tmp_path: Path) -> None:
    # 20 adds a second for 10 s: 200 operations, enough for p50 but not for p99 (needs 1,000)
    b = write_run(tmp_path / "b", lognormal(BASE), seed=30, per_second={"get": 300, "add": 20})
    c = write_run(tmp_path / "c", lognormal(BASE), seed=31, per_second={"get": 300, "add": 20})
    rows = {r.name: r for r in judge(load_runs(b), load_runs(c), GateOptions()).rows}
    assert rows["postgres add p99"].verdict == "inconclusive" and "too few samples" in rows["postgres add p99"].why
    assert rows["postgres add p50"].verdict != "inconclusive"
    # 2 seconds a side: too short for the bootstrap
    b2 = write_run(tmp_path / "b2", lognormal(BASE), seed=32, seconds=2)
    c2 = write_run(tmp_path / "c2", lognormal(BASE), seed=33, seconds=2)
    res = judge(load_runs(b2), load_runs(c2), GateOptions(percentiles=(50.0,)))
    assert {r.verdict for r in res.rows} == {"inconclusive"} and res.exit_status == ExitStatus.TOO_NOISY
    # 4 runs against 2: the rank test needs 4 a side
    b3 = write_group(tmp_path / "b3", lognormal(BASE), 4, seed=34)
    c3 = write_group(tmp_path / "c3", lognormal(BASE), 2, seed=35)
    res = judge(load_runs(b3), load_runs(c3), GateOptions(percentiles=(50.0,)))
    assert all("too few repeats" in r.why for r in res.rows)


def test_the_rank_test_cannot_be_significant_below_four_runs() -> None:
    est = stats.rank_test([100, 101, 102], [200, 201, 202])
    assert est.ci is None  # no 95% interval exists with 3 + 3 runs
    assert stats.moses_k(4, 4, 0.05) == 1 and stats.moses_k(5, 5, 0.05) == 3


@pytest.mark.parametrize("change, needle", [
    ({"scenario": {**SCENARIO, "load": {**SCENARIO["load"], "rate": 2000.0}}}, "scenario.load.rate"),
    ({"servers": [{**SERVERS[0], "version": "17.2"}, SERVERS[1]]}, "postgres.version"),
    ({"servers": [{**SERVERS[0], "durability": {"fsync": "off", "synchronous_commit": "on"}}, SERVERS[1]]},
     "postgres.durability.fsync"),
    ({"cpu_model": "Another CPU"}, "machine.cpu_model"),
])
def test_incomparable_runs_are_refused_with_the_difference_named(tmp_path: Path, change: dict, needle: str) -> None:
    b = write_run(tmp_path / "b", lognormal(BASE), seed=40)
    c = write_run(tmp_path / "c", lognormal(BASE), seed=41, **change)
    res = judge(load_runs(b), load_runs(c), GateOptions())
    assert res.refused and needle in res.refused[0]
    assert res.rows == [] and res.exit_status == ExitStatus.TOO_NOISY


def test_a_scenario_read_from_another_checkout_is_still_comparable(tmp_path: Path) -> None:
    b = write_run(tmp_path / "b", lognormal(BASE), seed=42)
    c = write_run(tmp_path / "c", lognormal(BASE), seed=43, scenario={**SCENARIO, "source": "/elsewhere/x.toml"})
    assert not judge(load_runs(b), load_runs(c), GateOptions()).refused


def test_a_driver_short_of_cpu_makes_rows_inconclusive(tmp_path: Path) -> None:
    b = write_run(tmp_path / "b", lognormal(BASE), seed=44)
    c = write_run(tmp_path / "c", lognormal(SLOW_ADD), seed=45, driver_lag_p99_us=5000)
    res = judge(load_runs(b), load_runs(c), GateOptions())
    assert {r.verdict for r in res.rows} == {"inconclusive"}
    assert all("driver short of CPU" in r.why for r in res.rows)


# --------------------------------------------------------------------------------------------
# the command: exit codes, GitHub outputs, exports


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-sides")
    return {"base": write_group(root / "base", lognormal(BASE), 4, seed=50),
            "same": write_group(root / "same", lognormal(BASE), 4, seed=51),
            "slow": write_group(root / "slow", lognormal(SLOW_ADD), 4, seed=52),
            "one": write_run(root / "one", lognormal(BASE), seed=53, seconds=2)}


def test_exit_status_0_without_a_regression_and_3_with_one(sides: dict[str, Path]) -> None:
    ok = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["same"]), "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["outcome"] == "pass" and doc["counts"]["regression"] == 0
    bad = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["slow"]))
    assert bad.returncode == 3, bad.stderr
    assert "regression: postgres add p" in bad.stderr and "Traceback" not in bad.stderr


def test_strict_makes_an_inconclusive_row_fail(sides: dict[str, Path]) -> None:
    # p99.9 of 1,200 adds per run: too few samples -> inconclusive; the other rows are judged
    args = ["gate", "--baseline", str(sides["base"]), "--current", str(sides["same"]), "--percentile", "50",
            "--percentile", "99.9"]
    assert cli(*args).returncode == 0
    strict = cli(*args, "--strict")
    assert strict.returncode == 4, strict.stderr


def test_github_format_writes_the_step_summary_and_a_few_annotations(sides: dict[str, Path], tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step output\n")
    res = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["slow"]), "--format", "github",
              env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.returncode == 3, res.stderr
    text = summary.read_text()
    assert text.startswith("earlier step output\n")  # appended, as GitHub expects
    assert "## fridgebench gate: regression" in text and "| store | op |" in text
    assert "<img" not in text and "<svg" not in text  # tables only
    assert len(text.encode()) < 1024 * 1024
    lines = [l for l in res.stdout.splitlines() if l.startswith("::")]
    assert lines and lines[0].startswith("::error title=performance regression%3A postgres add p")
    assert {l.split("::")[1] for l in lines[:2]} == {"error title=performance regression%3A postgres add p50",
                                                      "error title=performance regression%3A postgres add p99"}
    assert len([l for l in lines if l.startswith(("::error", "::warning"))]) <= 5
    assert all("\n" not in l for l in lines)


def test_github_summary_stays_under_the_limit_with_many_rows() -> None:
    from fridgebench.gate.github import summary_markdown
    from fridgebench.gate.judge import GateResult, Row

    res = GateResult(GateOptions(), ["b"], ["c"], rows=[
        Row("postgres", f"op{i}", 50.0, "unchanged" if i else "regression", "x" * 200, 100.0, 101.0, 1.01,
            (0.99, 1.03), 0.5, "mann-whitney", (5, 5)) for i in range(20_000)])
    text = summary_markdown(res, limit=64 * 1024)
    assert len(text.encode()) <= 64 * 1024
    assert "more rows left out" in text
    assert text.index("op0 ") < text.index("op1 ")  # the regression is kept, first


def test_exports_follow_the_documented_formats(sides: dict[str, Path], tmp_path: Path) -> None:
    import jsonschema  # a test dependency (pyproject [test]): the exports are always validated
    gab, bmf = tmp_path / "gab.json", tmp_path / "bmf.json"
    for kind, path in (("github-action-benchmark", gab), ("bencher", bmf)):
        res = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["slow"]), "--export", kind, str(path))
        assert res.returncode == 3, res.stderr
    # github-action-benchmark, customSmallerIsBetter: [{name, unit, value, range?, extra?}]
    jsonschema.validate(json.loads(gab.read_text()), {
        "type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "unit", "value"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "unit": {"type": "string"}, "value": {"type": "number"},
                           "range": {"type": "string"}, "extra": {"type": "string"}}}})
    entries = {e["name"]: e for e in json.loads(gab.read_text())}
    assert set(entries) == {f"{s} {o} p{p}" for s in ("postgres", "redis-atomic") for o in ("get", "add") for p in (50, 99)}
    assert entries["postgres add p50"]["unit"] == "us" and 1700 < entries["postgres add p50"]["value"] < 2100
    # Bencher Metric Format, the JSON schema bencher.dev documents
    bmf_schema = {"type": "object", "patternProperties": {".+": {"type": "object", "patternProperties": {".+": {
        "type": "object", "properties": {"value": {"type": "number"}, "lower_value": {"type": "number"},
                                         "upper_value": {"type": "number"}}, "required": ["value"]}}}}}
    doc = json.loads(bmf.read_text())
    jsonschema.validate(doc, bmf_schema)
    m = doc["postgres/add/p50"]["latency"]  # the built-in latency measure is in nanoseconds
    assert m["lower_value"] <= m["value"] <= m["upper_value"] and 1.7e6 < m["value"] < 2.1e6


@pytest.mark.parametrize("setup, needle", [
    ("missing", "no run at"),
    ("incomplete", "did not finish"),
    ("newer", "newer fridgebench"),
    ("empty", "holds no runs"),
    ("not-compare", "holds no compare results"),
])
def test_bad_input_is_one_line_and_exit_2(sides: dict[str, Path], tmp_path: Path, setup: str, needle: str) -> None:
    target = tmp_path / "target"
    if setup == "incomplete":
        target.mkdir()
        (target / "INCOMPLETE").write_text("x")
    elif setup == "newer":
        target = write_run(tmp_path / "n", lognormal(BASE), seed=60)
        doc = json.loads((target / "results.json").read_text())
        doc["schema_version"] = "fridgebench.results/99"
        (target / "results.json").write_text(json.dumps(doc))
    elif setup == "empty":
        target.mkdir()
    elif setup == "not-compare":
        target = write_run(tmp_path / "t", lognormal(BASE), seed=61)
        doc = json.loads((target / "results.json").read_text())
        doc["command"], doc["sections"] = "ttl", {"ttl": {}}
        (target / "results.json").write_text(json.dumps(doc))
    res = cli("gate", "--baseline", str(sides["base"]), "--current", str(target))
    assert res.returncode == 2, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("args, needle", [
    (["--threshold", "0"], "--threshold"),
    (["--percentile", "100"], "--percentile"),
    (["--format", "gitlab"], "--format"),
    (["--export", "csv", "x.csv"], "export format"),
    (["--stores", "mysql"], "mysql"),
])
def test_bad_options_are_one_line_and_exit_2(sides: dict[str, Path], args: list[str], needle: str) -> None:
    res = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["same"]), *args)
    assert res.returncode == 2, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr


def test_refused_runs_exit_4_and_say_why(sides: dict[str, Path], tmp_path: Path) -> None:
    other = write_run(tmp_path / "o", lognormal(BASE), seed=70, cpu_model="Another CPU")
    res = cli("gate", "--baseline", str(sides["base"]), "--current", str(other), "--format", "github",
              env={"GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")})
    assert res.returncode == 4, res.stderr
    assert "not comparable" in res.stderr and "machine.cpu_model" in res.stderr
    assert res.stdout.startswith("::error title=fridgebench gate refused::")
    assert "Refused" in (tmp_path / "s.md").read_text()


def test_github_format_without_the_variable_still_annotates(sides: dict[str, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    res = cli("gate", "--baseline", str(sides["base"]), "--current", str(sides["slow"]), "--format", "github",
              env={**env, "GITHUB_STEP_SUMMARY": ""})
    assert res.returncode == 3
    assert "GITHUB_STEP_SUMMARY is not set" in res.stderr
    assert res.stdout.startswith("::error")


def test_without_interval_logs_the_gate_uses_per_second_figures_of_results_json(tmp_path: Path) -> None:
    b = write_run(tmp_path / "b", lognormal(BASE), seed=80)
    c = write_run(tmp_path / "c", lognormal(SLOW_ADD), seed=81)
    for run in (b, c):
        for log in run.glob("*.hlog"):
            log.unlink()
    rows = {r.name: r for r in judge(load_runs(b), load_runs(c), GateOptions()).rows}
    assert rows["postgres add p50"].verdict == "regression" and rows["postgres add p50"].method == "bootstrap"
    assert rows["postgres get p50"].verdict == "unchanged"
    # a format-1 document has per-second p50 only: p99 cannot be judged from one run a side
    for run in (b, c):
        doc = json.loads((run / "results.json").read_text())
        doc["schema_version"] = "fridgebench.results/1"
        for st in doc["sections"]["compare"]["stores"].values():
            for iv in st["intervals"]:
                iv.pop("by_op_p99_us"), iv.pop("by_op_count")
        (run / "results.json").write_text(json.dumps(doc))
    rows = {r.name: r for r in judge(load_runs(b), load_runs(c), GateOptions()).rows}
    assert rows["postgres add p50"].verdict == "regression"
    assert rows["postgres add p99"].verdict == "inconclusive" and "format 1" in rows["postgres add p99"].why


# -------------------------------------------------------------------------------------------- a real run, two paths

V2 = Path(__file__).parent / "data" / "v2-compare-paths"  # compare --paths app,server (tests/report/test_sections.py)
APP_STORES = {"postgres-app", "postgres-app-fixed", "redis-app"}


def test_a_real_run_of_both_paths_is_judged_per_store_and_operation() -> None:
    runs = load_runs(V2)
    stores = runs[0].doc.sections["compare"]["stores"]
    assert len(stores) == 5 and APP_STORES <= set(stores)
    res = judge(runs, runs, GateOptions())
    expected = {(s, op, p) for s, v in stores.items() for op in v["ops"] for p in (50.0, 99.0)}
    assert {(r.store, r.op, r.percentile) for r in res.rows} == expected  # every store × op, the app's too
    assert "regression" not in _verdicts(res).values()
    # 6 s a store: too short for a 10% verdict, so a wide threshold shows the rows are judged, not skipped
    wide = judge(runs, runs, GateOptions(threshold=1.0, percentiles=(50.0,)))
    v = _verdicts(wide)
    assert all(v[f"{s} get p50"] == "unchanged" for s in stores)
    assert wide.exit_status == ExitStatus.OK
    res_cli = cli("gate", "--baseline", str(V2), "--current", str(V2), "--threshold", "100", "--percentile", "50",
                  "--json")
    assert res_cli.returncode == 0, res_cli.stderr
    assert {r["store"] for r in json.loads(res_cli.stdout)["rows"]} == set(stores)


def test_a_baseline_from_before_the_app_path_is_compared_on_the_stores_both_ran(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(V2, base)
    doc = json.loads((base / "results.json").read_text())
    for s in APP_STORES:
        del doc["sections"]["compare"]["stores"][s]
        for h in base.glob(f"{s}.*.hlog"):
            h.unlink()
    (base / "results.json").write_text(json.dumps(doc))
    res = judge(load_runs(base), load_runs(V2), GateOptions(threshold=1.0, percentiles=(50.0,)))
    assert {r.store for r in res.rows} == {"postgres", "redis-atomic"}
    assert {n for n in res.notes if "ran on one side only" in n} == {
        f"store {s} ran on one side only: not compared" for s in APP_STORES}
