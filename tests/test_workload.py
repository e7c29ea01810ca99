"""Scenario files and the deterministic operation stream."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fridgebench.cli import app
from fridgebench.errors import ScenarioError
from fridgebench.workload.generator import Workload
from fridgebench.workload.model import list_scenarios, load_scenario

REQUIRED = {"session-lifecycle", "read-heavy", "write-heavy", "recipe-cache"}


def test_every_shipped_scenario_loads() -> None:
    names = set(list_scenarios())
    assert REQUIRED <= names
    for name in names:
        sc = load_scenario(name)
        assert sc.name == name
        assert sum(sc.mix.weights().values()) > 0


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = '[mix]\nget = 1\n[load]\nrate = 100\n'


@pytest.mark.parametrize("text, field, allowed", [
    (BASE + "[keys]\ndistribution = 'pareto'\n", "keys.distribution", "uniform"),
    (BASE.replace("rate = 100", "rate = -5"), "load.rate", "greater than 0"),
    ("[mix]\nget = 1\n[load]\nmodel = 'open'\n", "load", "rate"),
    (BASE + "[population]\nsesions = 10\n", "population.sesions", "sessions"),
    ("[mix]\nget = 0\n[load]\nrate = 10\n", "mix", "at least one weight"),
    (BASE + "[ingredients]\nper_add = [3, 1]\n", "ingredients", "min <= max"),
    ("[mix\nget = 1", "not valid TOML", ""),
])
def test_invalid_scenario_names_file_field_and_what_is_allowed(tmp_path: Path, text: str, field: str, allowed: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(str(path))
    msg = str(exc.value)
    assert str(path) in msg and field in msg and allowed in msg
    assert "\n" not in msg


def test_invalid_scenario_on_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("rate = 100", "rate = 'fast'"))
    res = CliRunner().invoke(app, ["compare", str(path)])
    assert res.exit_code == 2
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "load.rate" in lines[0] and str(path.name) in lines[0]
    assert "Traceback" not in res.output


def test_unknown_scenario_lists_known_ones() -> None:
    res = CliRunner().invoke(app, ["compare", "no-such-scenario"])
    assert res.exit_code == 2
    assert "session-lifecycle" in res.output


def _take(sc, n=3000, salt=0):  # type: ignore[no-untyped-def]
    wl = Workload.from_catalogue(sc, id_salt=salt)
    pop = wl.population()
    return pop, list(itertools.islice(wl.ops(pop), n))


def test_same_seed_same_operations_different_seed_different() -> None:
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": 500})
    pop1, a = _take(sc)
    pop2, b = _take(sc)
    assert pop1 == pop2 and a == b
    _, c = _take(sc.with_overrides(seed=7))
    assert a != c


def test_the_id_salt_changes_the_ids_and_nothing_else() -> None:
    """Each run salts its ids (no collision with sessions already in a store); the seed fixes the rest."""
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": 500})
    pop_a, a = _take(sc, salt=0)
    pop_b, b = _take(sc, salt=0x5A17)
    assert [names for _, names in pop_a] == [names for _, names in pop_b]
    rename = {sa: sb for (sa, _), (sb, _) in zip(pop_a, pop_b)}
    for x, y in zip(a, b):
        if x.kind == "create":
            rename[x.session_id] = y.session_id
    assert {s for s, _ in pop_a}.isdisjoint(s for s, _ in pop_b)
    assert [dataclasses.replace(op, session_id=rename.get(op.session_id, op.session_id)) for op in a] == b
    assert len(set(rename.values())) == len(rename)  # still one id per session
    # without an explicit salt every Workload draws its own: two runs never share an id
    assert Workload.from_catalogue(sc).population()[0][0] != Workload.from_catalogue(sc).population()[0][0]


def test_op_mix_follows_weights() -> None:
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": 500})
    _, ops = _take(sc, 20_000)
    counts = Counter(op.kind for op in ops)
    weights = sc.mix.weights()
    total = sum(weights.values())
    for kind, w in weights.items():
        assert abs(counts[kind] / len(ops) - w / total) < 0.02, kind


def test_key_popularity_zipfian_is_skewed_uniform_is_not() -> None:
    base = load_scenario("read-heavy").with_overrides(**{"population.sessions": 2000, "mix.add": 0, "mix.extend": 0})

    def top_share(sc) -> float:  # type: ignore[no-untyped-def]
        _, ops = _take(sc, 20_000)
        c = Counter(op.session_id for op in ops)
        return sum(n for _, n in c.most_common(20)) / len(ops)  # top 1% of keys

    assert top_share(base.with_overrides(**{"keys.distribution": "zipfian"})) > 0.3
    assert top_share(base.with_overrides(**{"keys.distribution": "uniform"})) < 0.05


def test_latest_distribution_favours_newest_sessions() -> None:
    sc = load_scenario("read-heavy").with_overrides(**{"population.sessions": 2000, "keys.distribution": "latest",
                                                        "mix.add": 0, "mix.extend": 0})
    pop, ops = _take(sc, 10_000)
    newest = {sid for sid, _ in pop[-20:]}
    assert sum(op.session_id in newest for op in ops) / len(ops) > 0.3


def test_removals_name_ingredients_the_session_holds() -> None:
    sc = load_scenario("write-heavy").with_overrides(**{"population.sessions": 300})
    pop, ops = _take(sc, 5000)
    held = {sid: set(names) for sid, names in pop}
    checked = 0
    for op in ops:
        h = held.setdefault(op.session_id, set())
        if op.kind == "add":
            assert not (set(op.names) & h), "adds pick ingredients not already held"
            h.update(op.names)
        elif op.kind == "remove" and h:
            assert set(op.names) <= h
            h.difference_update(op.names)
            checked += 1
        elif op.kind in ("delete", "create"):
            h.clear()
    assert checked > 100
