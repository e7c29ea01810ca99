"""The seed's claims table: merging what several commands measured."""

from __future__ import annotations

import pytest

from fridgebench.experiments.compare import combine_verdicts
from fridgebench.report.claims import SEED_CLAIMS, blank_claims, fill, merge


def _table(**rows: str) -> list:  # type: ignore[type-arg]
    claims = blank_claims()
    for key, verdict in rows.items():
        fill(claims, key, measured=f"{key} measured", verdict=verdict, command="test")
    return list(claims.values())


def test_merge_keeps_every_measured_row_and_all_six_topics() -> None:
    compare = _table(performance="partly supported", install="partly supported")
    ttl = _table(auto_expiry="partly supported", memory_use="partly supported")
    merged = {c.key: c for c in merge(compare, ttl)}
    assert list(merged) == list(SEED_CLAIMS)
    assert {k for k, c in merged.items() if c.verdict != "not measured"} == {
        "performance", "install", "auto_expiry", "memory_use"}
    assert merged["failure_recovery"].measured == "not measured by this command"


def test_a_not_measured_row_never_hides_a_measured_one() -> None:
    first = _table(scalability="inconclusive")
    later = _table()  # measured nothing
    assert {c.key: c for c in merge(first, later)}["scalability"].verdict == "inconclusive"
    assert {c.key: c for c in merge(later, first)}["scalability"].verdict == "inconclusive"


@pytest.mark.parametrize("by_path, verdict", [
    (["supported", "supported"], "supported"),
    (["partly supported", "partly supported"], "partly supported"),
    (["supported", "partly supported"], "partly supported"),  # 10x as the app uses them, not as the servers serve
    (["supported", "contradicted"], "partly supported"),
    (["inconclusive", "partly supported"], "partly supported"),  # the conclusive path speaks
    (["inconclusive", "inconclusive"], "inconclusive"),
    (["contradicted"], "contradicted"),
])
def test_the_performance_row_combines_each_paths_verdict(by_path: list[str], verdict: str) -> None:
    assert combine_verdicts(by_path) == verdict
