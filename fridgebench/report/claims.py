"""The seed document's comparison table (PostgreSQL vs Redis) and helpers to fill its rows."""

from __future__ import annotations

from fridgebench.measure.results import Claim

# key -> (topic, seed says of PostgreSQL, seed says of Redis)   (the seed is in Korean; translated)
SEED_CLAIMS: dict[str, tuple[str, str, str]] = {
    "performance": ("performance", "slow (disk I/O)", "fast (memory); '10x+ faster'"),
    "install": ("install", "nothing to install", "simple with the Helm chart"),
    "auto_expiry": ("auto-expiry", "manual cleanup needed", "automatic TTL"),
    "memory_use": ("memory use", "low", "high"),
    "scalability": ("scalability", "limited", "excellent"),
    "failure_recovery": ("failure recovery", "data kept", "sessions lost"),
    # the seed's text, not its table: "장애 격리: Redis 장애 시에도 PostgreSQL은 정상 동작", and its Phase 2 fallback
    "fault_isolation": ("fault isolation", "keeps working when Redis fails",
                        "a failure is isolated: the app falls back to PostgreSQL"),
}

# what fills a row that a run left "not measured" (printed beside it, so the reader knows the next step)
MEASURED_BY: dict[str, str] = {
    "performance": "fridgebench compare",
    "install": "fridgebench compare",
    "auto_expiry": "fridgebench ttl (or compare --full)",
    "memory_use": "fridgebench ttl (or compare --full)",
    "scalability": "fridgebench compare --sweep (or --full)",
    "failure_recovery": "fridgebench failure (or compare --full)",
    "fault_isolation": "fridgebench failure (or compare --full)",
}


NOT_MEASURED: str = Claim.model_fields["measured"].default  # a blank row's text


def blank_claims() -> dict[str, Claim]:
    return {
        key: Claim(key=key, topic=t, seed_postgres=pg, seed_redis=rd)  # type: ignore[arg-type]
        for key, (t, pg, rd) in SEED_CLAIMS.items()
    }


def fill(claims: dict[str, Claim], key: str, *, measured: str, verdict: str, figures: dict | None = None,
         command: str) -> None:
    claims[key] = claims[key].model_copy(update=dict(measured=measured, verdict=verdict,
                                                     figures=figures or {}, command=command))


def explained(claim: Claim) -> bool:
    """A row left "not measured" with a reason (e.g. a scenario without session reads), not blank."""
    return claim.verdict == "not measured" and claim.measured != NOT_MEASURED


def merge(*tables: list[Claim]) -> list[Claim]:
    """Combine claims from several results documents, in the seed's order: a measured row wins over
    "not measured" whatever the order (the later of two measured rows wins); a "not measured" row
    that says why wins over a blank one."""
    out = blank_claims()
    for table in tables:
        for c in table:
            if c.verdict != "not measured" or (explained(c) and out[c.key].verdict == "not measured"):
                out[c.key] = c
    return list(out.values())


def inconclusive(claims: list[Claim]) -> list[Claim]:
    """The rows a run measured but could not judge (too noisy, nothing significant, a driver's
    ceiling, expiry that could not be observed): what ``compare --strict`` exits 4 on."""
    return [c for c in claims if c.verdict == "inconclusive"]
