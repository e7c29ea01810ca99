"""The gate's machine-speed adjustment, on synthetic runs with known answers.

A shared runner makes whole runs faster or slower — every operation of every store alike. Here
each run's latencies are scaled by a factor the test sets (a 2.5× spread, as bench_gate measured on
2-core VMs), on top of per-operation noise; the gate should see through the factor to the change
of one operation, and show a change of the whole store in its "all operations" row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fridgebench.errors import ExitStatus
from fridgebench.gate.judge import ALL_OPS, GateOptions, judge
from fridgebench.measure.runs import load_runs
from tests.helpers import cli
from tests.report.synth import lognormal, write_run

OPS = {"get": 300, "add": 100, "remove": 40, "extend": 50, "create": 30, "delete": 15}  # per second, 10 s a run
BASE = {("postgres", "get"): 600.0, ("postgres", "add"): 1500.0, ("postgres", "remove"): 1400.0,
        ("postgres", "extend"): 1100.0, ("postgres", "create"): 1200.0, ("postgres", "delete"): 1300.0,
        ("redis-atomic", "get"): 500.0, ("redis-atomic", "add"): 650.0, ("redis-atomic", "remove"): 600.0,
        ("redis-atomic", "extend"): 550.0, ("redis-atomic", "create"): 500.0, ("redis-atomic", "delete"): 600.0}
# each run's machine speed: the sides interleave, so the raw values of one side overlap the other's
BASE_SPEED = [1.0, 1.6, 0.8, 1.3, 2.0]
CUR_SPEED = [1.9, 0.8, 1.5, 1.0, 1.2]


def _sides(tmp_path: Path, change: dict[tuple[str, str], float]) -> tuple[Path, Path]:
    for side, speeds, seed0, medians in (("b", BASE_SPEED, 100, BASE),
                                         ("c", CUR_SPEED, 200, {k: v * change.get(k, 1.0) for k, v in BASE.items()})):
        for i, f in enumerate(speeds):
            write_run(tmp_path / side, lognormal({k: v * f for k, v in medians.items()}, sigma=0.3),
                      seed=seed0 + i, per_second=OPS)
    return tmp_path / "b", tmp_path / "c"


def _rows(res):  # type: ignore[no-untyped-def]
    return {r.name: r for r in res.rows}


def test_a_25_percent_slowdown_of_one_operation_is_caught_through_2x_swings_of_the_machine(tmp_path: Path) -> None:
    b, c = _sides(tmp_path, {("postgres", "add"): 1.25})
    res = judge(load_runs(b), load_runs(c), GateOptions())
    rows = _rows(res)
    add = rows["postgres add p50"]
    assert add.verdict == "regression", add.why
    assert 1.15 < add.ratio < 1.35 and "relative to the store's other operations" in add.why  # type: ignore[operator]
    assert add.method == "mann-whitney, speed-adjusted" and add.raw_ratio is not None
    assert [n for n, r in rows.items() if r.verdict == "regression"] == ["postgres add p50"]
    assert res.exit_status == ExitStatus.GATE_FAILED
    # each store's speed factor is a row of its own, over the operations with enough samples
    whole = rows[f"postgres {ALL_OPS} p50"]
    assert whole.verdict != "regression" and "get, add, remove, extend, create, delete" in whole.why
    assert whole.baseline_us is None  # factors, not microseconds
    # without the adjustment the machine's swings hide the change: not significant
    raw = _rows(judge(load_runs(b), load_runs(c), GateOptions(adjust=False)))
    assert raw["postgres add p50"].verdict == "inconclusive" and "too noisy" in raw["postgres add p50"].why
    assert not any(ALL_OPS in n for n in raw)


def test_the_same_swings_without_a_change_flag_nothing(tmp_path: Path) -> None:
    b, c = _sides(tmp_path, {})
    res = judge(load_runs(b), load_runs(c), GateOptions())
    v = {n: r.verdict for n, r in _rows(res).items()}
    assert "regression" not in v.values() and "improvement" not in v.values(), v
    # the whole store's speed is what the swings are: too noisy to call; each operation kept pace with
    # its store, which is a claim the adjusted values can make, and says where the rest is
    assert v[f"postgres {ALL_OPS} p50"] == "inconclusive"
    add = _rows(res)["postgres add p50"]
    assert add.verdict == "unchanged" and f"the store as a whole: inconclusive, see {ALL_OPS}" in add.why
    assert res.exit_status == ExitStatus.OK
    raw = {n: r.verdict for n, r in _rows(judge(load_runs(b), load_runs(c), GateOptions(adjust=False))).items()}
    assert raw["postgres add p50"] == "inconclusive"  # the raw values cannot rule out a regression


def test_a_slower_store_shows_in_its_all_operations_row(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet"  # a quiet machine this time: no swings
    for side, seed0, ch in (("b", 300, 1.0), ("c", 400, 1.6)):
        for i in range(5):
            med = {k: v * (ch if k[0] == "postgres" else 1.0) for k, v in BASE.items()}
            write_run(quiet / side, lognormal(med, sigma=0.3), seed=seed0 + i, per_second=OPS)
    res = judge(load_runs(quiet / "b"), load_runs(quiet / "c"), GateOptions())
    rows = _rows(res)
    assert rows[f"postgres {ALL_OPS} p50"].verdict == "regression"
    assert rows[f"postgres {ALL_OPS} p50"].ratio == pytest.approx(1.6, rel=0.1)
    # no operation moved relative to the others, but none is called unchanged while its store slowed
    assert rows["postgres add p50"].verdict == "inconclusive" and "store as a whole is regression" in \
        rows["postgres add p50"].why
    assert rows[f"redis-atomic {ALL_OPS} p50"].verdict == "unchanged"
    assert rows["redis-atomic add p50"].verdict == "unchanged"
    assert res.exit_status == ExitStatus.GATE_FAILED


def _quiet(tmp_path: Path, store_change: float, flush: tuple[float, float], cpu: tuple[float, float] = (1.0, 1.0)):  # type: ignore[no-untyped-def]
    """A quiet machine, postgres ``store_change`` slower as a whole on the current side; the machine probe's
    flush and CPU times per side (× 100 µs / 1000 µs, with a little noise of their own)."""
    for side, seed0, ch, (f, c) in (("b", 700, 1.0, (flush[0], cpu[0])), ("c", 800, store_change, (flush[1], cpu[1]))):
        for i in range(5):
            med = {k: v * (ch if k[0] == "postgres" else 1.0) for k, v in BASE.items()}
            jitter = 1 + 0.03 * ((i * 7) % 5 - 2)
            write_run(tmp_path / side, lognormal(med, sigma=0.3), seed=seed0 + i, per_second=OPS,
                      machine={"cpu_us": 1000.0 * c * jitter, "flush_us": 100.0 * f / jitter})
    return load_runs(tmp_path / "b"), load_runs(tmp_path / "c")


@pytest.mark.parametrize("adjust", [True, False], ids=["all-operations-row", "absolute"])
def test_a_store_slower_as_much_as_the_machine_is_not_claimed(tmp_path: Path, adjust: bool) -> None:
    # bench_gate's one A/A false alarm: postgres +61% as a whole when the machine (its disk) was slower minutes later
    b, c = _quiet(tmp_path, 1.6, flush=(1.0, 1.6))
    res = judge(b, c, GateOptions(adjust=adjust))
    rows = _rows(res)
    name = f"postgres {ALL_OPS} p50" if adjust else "postgres add p50"
    assert rows[name].verdict == "inconclusive", rows[name].why
    assert "the machine moved between the sides too — disk flush +6" in rows[name].why
    assert "regression" not in {r.verdict for r in res.rows}
    assert res.exit_status == ExitStatus.OK
    # a machine that moved the other way, or not at all, explains nothing: the store's change stands
    for flush in ((1.0, 0.8), (1.0, 1.0)):
        rows = _rows(judge(*_quiet(tmp_path / f"{flush[1]}", 1.6, flush=flush), GateOptions(adjust=adjust)))
        assert rows[name].verdict == "regression", rows[name].why
        assert "the machine held still: CPU" in rows[name].why and "disk flush" in rows[name].why
    # the CPU counts as well as the disk
    rows = _rows(judge(*_quiet(tmp_path / "cpu", 1.6, flush=(1.0, 1.0), cpu=(1.0, 1.7)), GateOptions(adjust=adjust)))
    assert rows[name].verdict == "inconclusive" and "CPU +" in rows[name].why


def test_a_relative_slowdown_against_the_stores_own_speed_up_is_not_claimed(tmp_path: Path) -> None:
    # five of postgres's six operations 30% faster, get as it was: relative to the others, get looks slower
    faster = {k: 0.7 for k in BASE if k[0] == "postgres" and k[1] != "get"}
    quiet = tmp_path / "quiet"
    for side, seed0, ch in (("b", 500, {}), ("c", 600, faster)):
        for i in range(5):
            write_run(quiet / side, lognormal({k: v * ch.get(k, 1.0) for k, v in BASE.items()}, sigma=0.3),
                      seed=seed0 + i, per_second=OPS)
    res = judge(load_runs(quiet / "b"), load_runs(quiet / "c"), GateOptions())
    rows = _rows(res)
    assert rows[f"postgres {ALL_OPS} p50"].verdict == "improvement"
    get = rows["postgres get p50"]
    assert get.ratio > 1.3 and get.raw_ratio == pytest.approx(1.0, abs=0.1)  # type: ignore[operator]
    assert get.verdict == "inconclusive" and "the store as a whole sped up" in get.why
    assert "regression" not in {r.verdict for r in res.rows}
    assert res.exit_status == ExitStatus.OK


def test_the_cli_judges_relative_by_default_and_absolute_on_request(tmp_path: Path) -> None:
    b, c = _sides(tmp_path, {("postgres", "add"): 1.25})
    res = cli("gate", "--baseline", str(b), "--current", str(c), "--json")
    assert res.returncode == 3, res.stderr[-2000:]
    rows = {f"{r['store']} {r['op']} p{r['percentile']:g}": r for r in json.loads(res.stdout)["rows"]}
    assert rows["postgres add p50"]["verdict"] == "regression" and rows["postgres add p50"]["raw_ratio"] > 0
    assert f"postgres {ALL_OPS} p50" in rows
    res = cli("gate", "--baseline", str(b), "--current", str(c), "--json", "--absolute")
    assert res.returncode == 4, res.stderr[-2000:]  # every row too noisy: nothing could be judged
    rows = {f"{r['store']} {r['op']} p{r['percentile']:g}": r for r in json.loads(res.stdout)["rows"]}
    assert rows["postgres add p50"]["verdict"] == "inconclusive" and f"postgres {ALL_OPS} p50" not in rows


def _moved(tmp_path: Path, whole: float, extra: dict[str, float]) -> tuple[list, list]:  # type: ignore[type-arg]
    """A quiet machine; on the current side postgres is ``whole`` slower as a whole, and the operations in
    ``extra`` that much more again (the machine held still: its probe is the same on both sides)."""
    for side, seed0, w, ex in (("b", 900, 1.0, {}), ("c", 1000, whole, extra)):
        for i in range(5):
            med = {k: v * (w * ex.get(k[1], 1.0) if k[0] == "postgres" else 1.0) for k, v in BASE.items()}
            write_run(tmp_path / side, lognormal(med, sigma=0.3), seed=seed0 + i, per_second=OPS,
                      machine={"cpu_us": 1000.0, "flush_us": 100.0})
    return load_runs(tmp_path / "b"), load_runs(tmp_path / "c")


def test_a_relative_change_within_the_unevenness_of_a_store_that_moved_is_not_claimed(tmp_path: Path) -> None:
    # bench_gate's A/A false alarms: postgres +46% / +135% as a whole between two times, and in the same pairs
    # delete +15% and get +11.5% relative to the other operations — the operations did not move alike
    res = judge(*_moved(tmp_path / "uneven", 1.5, {"get": 1.18, "delete": 1.16}), GateOptions())
    rows = _rows(res)
    for op in ("get", "delete"):
        r = rows[f"postgres {op} p50"]
        assert r.verdict == "inconclusive", r.why
        assert r.ratio > 1.1 and "did not move alike" in r.why  # type: ignore[operator]
        assert "the store as a whole moved +" in r.why
    assert rows[f"postgres {ALL_OPS} p50"].verdict == "regression"  # the store's own move is claimed where it shows
    # one operation far beyond the others' unevenness is still its own change
    rows = _rows(judge(*_moved(tmp_path / "one", 1.5, {"add": 1.6, "get": 1.08}), GateOptions()))
    assert rows["postgres add p50"].verdict == "regression", rows["postgres add p50"].why
    # a store that held still: a relative change of that size is claimed as before
    rows = _rows(judge(*_moved(tmp_path / "still", 1.0, {"get": 1.18}), GateOptions()))
    assert rows["postgres get p50"].verdict == "regression", rows["postgres get p50"].why


def test_a_raw_tail_row_is_checked_against_the_stores_own_speed(tmp_path: Path) -> None:
    # at p99 only get and add have the 1,000 operations a run the speed factor needs: those rows are raw.
    # The store 50% slower as a whole (the machine's probe still): get's p99 moved with it, not on its own
    res = judge(*_moved(tmp_path / "whole", 1.5, {}), GateOptions())
    get99 = _rows(res)["postgres get p99"]
    assert get99.raw_ratio is None and get99.ratio > 1.3, get99  # type: ignore[operator]
    assert get99.verdict == "inconclusive" and "the store as a whole (its p50 speed over" in get99.why, get99.why
    # get alone 50% slower: the store's p50 speed (a median over six operations) held, and get's p99 is its own
    rows = _rows(judge(*_moved(tmp_path / "get", 1.0, {"get": 1.5}), GateOptions()))
    assert rows["postgres get p99"].verdict == "regression", rows["postgres get p99"].why
    assert "against the store as a whole (its p50 speed" in rows["postgres get p99"].why
    # --absolute judges the raw values only, as it says
    raw = _rows(judge(*_moved(tmp_path / "abs", 1.5, {}), GateOptions(adjust=False)))
    assert raw["postgres get p99"].verdict == "regression"
