"""`compare --repeat N` on fridgebench's own servers: one folder of runs in ABBA order, reported and gated."""

from __future__ import annotations

import json
from pathlib import Path

from fridgebench.measure.results import load_results
from tests.helpers import WITH_REPORT, cli

SHORT = ["--duration", "2", "--warmup", "0.5", "--sessions", "500", "--rate", "400"]


def test_repeat_writes_one_folder_of_runs_in_alternating_order_and_the_gate_reads_it(
        tmp_path: Path, fb_run_root: Path) -> None:
    res = cli("compare", *SHORT, "--repeat", "2", "--stores", "postgres,redis-atomic", "--json",
              "--out", str(tmp_path), "--run-dir", str(fb_run_root), timeout=300, env=WITH_REPORT)
    assert res.returncode == 0, res.stderr[-2000:]
    docs = json.loads(res.stdout)  # --json with repeats: the documents, in order
    assert [d["group"]["index"] for d in docs] == [0, 1]
    groups = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(groups) == 1 and "-compare-x2-" in groups[0].name
    group = groups[0]
    runs = sorted(p for p in group.iterdir() if (p / "results.json").exists())
    assert len(runs) == 2
    orders = [load_results(r).group.order for r in runs]  # type: ignore[union-attr]
    assert orders == [["postgres", "redis-atomic"], ["redis-atomic", "postgres"]]  # A B | B A
    assert all(load_results(r).group.id == group.name for r in runs)  # type: ignore[union-attr]
    # one report for the group, overlaying both repeats
    html = (group / "report.html").read_text()
    assert "postgres · run 1" in html and "postgres · run 2" in html
    assert not (runs[0] / "report.html").exists()
    # warm-up seconds and per-second p99 by operation (results format 2) are recorded
    st = docs[0]["sections"]["compare"]["stores"]["postgres"]
    assert st["warmup_intervals"] and all(iv["t_s"] < 0 for iv in st["warmup_intervals"])
    assert "get" in st["intervals"][0]["by_op_p99_us"]
    # the gate reads the folder; the same runs on both sides are never a regression
    gate = cli("gate", "--baseline", str(group), "--current", str(group), "--json")
    assert gate.returncode in (0, 4), gate.stderr
    assert json.loads(gate.stdout)["counts"]["regression"] == 0


def test_no_report_skips_it_and_bad_repeat_is_a_usage_error(tmp_path: Path, fb_run_root: Path) -> None:
    bad = cli("compare", "--repeat", "0", "--out", str(tmp_path))
    assert bad.returncode == 2 and "--repeat" in bad.stderr
    mixed = cli("compare", "--repeat", "2", "--sweep", "--out", str(tmp_path))
    assert mixed.returncode == 2 and "--sweep" in mixed.stderr
    assert not list(tmp_path.iterdir())
    res = cli("compare", *SHORT, "--stores", "redis-atomic", "--no-report", "--out", str(tmp_path),
              "--run-dir", str(fb_run_root), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next(tmp_path.iterdir())
    assert (run / "results.json").exists() and not (run / "report.html").exists()
