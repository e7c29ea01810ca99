"""The shipped ingredient / recipe catalogue: unique, referentially intact, skewed."""

from __future__ import annotations

from collections import Counter

from fridgebench.stores import schema


def test_ingredients_unique_and_dense_ids() -> None:
    ings = schema.ingredients()
    assert 250 <= len(ings) <= 500
    assert [i.id for i in ings] == list(range(1, len(ings) + 1))
    names = [i.name for i in ings]
    assert len(set(names)) == len(names), [n for n, c in Counter(names).items() if c > 1]
    assert all(n and n == n.strip() and "," not in n and "\t" not in n for n in names)
    for staple in ("김치", "두부", "대파", "돼지고기", "양파", "마늘", "계란", "고추장", "된장", "소고기 양지"):
        assert staple in schema.ingredient_ids()
    assert len({i.category for i in ings}) >= 10
    assert any(i.is_common for i in ings) and not all(i.is_common for i in ings)
    assert all(i.weight > 0 for i in ings)


def test_recipes_reference_existing_ingredients() -> None:
    ids = schema.ingredient_ids()
    recs = schema.recipes()
    assert 120 <= len(recs) <= 300
    assert [r.id for r in recs] == list(range(1, len(recs) + 1))
    assert len({r.name for r in recs}) == len(recs)
    for r in recs:
        assert 3 <= len(r.ingredients) <= 12, r.name
        assert len(set(r.ingredients)) == len(r.ingredients), r.name
        missing = [n for n in r.ingredients if n not in ids]
        assert not missing, (r.name, missing)
        assert r.weight > 0


def _top_share(weights: list[float], fraction: float) -> float:
    ws = sorted(weights, reverse=True)
    k = max(1, int(len(ws) * fraction))
    return sum(ws[:k]) / sum(ws)


def test_popularity_is_skewed() -> None:
    assert _top_share([i.weight for i in schema.ingredients()], 0.10) > 0.40
    assert _top_share([r.weight for r in schema.recipes()], 0.10) > 0.30
    # staples come first
    assert schema.ingredients()[0].weight == max(i.weight for i in schema.ingredients())
