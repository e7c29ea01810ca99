"""run_ttl end to end on fridgebench's embedded PostgreSQL 18 + Valkey 9 (the default provisioning)."""

from __future__ import annotations

import pytest
from rich.console import Console

from fridgebench.experiments.ttl import TtlOptions, render_ttl, run_ttl

pytestmark = pytest.mark.embedded


async def test_run_ttl_on_embedded_servers(embedded_endpoints) -> None:  # type: ignore[no-untyped-def]
    opts = TtlOptions(sessions=80, ttl_s=1, ingredients=4, memory_counts=(500,), cleanup_sessions=600,
                      cleanup_every_s=0.1, stores=("postgres", "redis-atomic"))
    res = await run_ttl(embedded_endpoints, opts)
    sec = res.section
    assert "valkey" in sec["servers"]["redis"].lower()
    for name in opts.stores:
        e = sec["expiry"][name]
        assert e["readable_never_gone"] == 0 and e["removed_not_observed"] == 0
        assert e["sliding"]["total_violations"] == 0
        assert sec["memory"][name]["bytes_per_session"] > 0
    assert sec["cleanup"]["variants"][0]["deleted_sessions"] == 300
    claims = {c.key: c for c in res.claims}
    assert claims["auto_expiry"].verdict in ("supported", "partly supported")
    assert claims["memory_use"].verdict in ("supported", "partly supported")
    console = Console(record=True, width=200)
    render_ttl(res, console)
    text = console.export_text()
    assert "redis-atomic" in text and "Bytes per session" in text
