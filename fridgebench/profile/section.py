"""The profile's part of a results document: per store and operation, plus whether the servers were quiet."""

from __future__ import annotations

from typing import Any

from fridgebench.profile.run import ProfileOptions

WHAT = ("one operation of each kind, alone: the mean of {reps} operations run one at a time after {warmup} "
        "warm-up operations. Round trips and statements / commands are counted on the store's own connections "
        "(a counting relay); 'server' figures are the servers' own counters (PostgreSQL: write transactions = "
        "commits that waited for a WAL flush, WAL bytes, pg_stat_statements calls and execution time; Redis: "
        "INFO commandstats); client CPU is this process's user + system time per operation.")

# background activity (per second) above which a server's counters are not this run's alone. WAL bytes
# are left out: the server's own background work (autovacuum after a run, checkpoints) writes WAL
# without any client; the profile's WAL figures carry the background rate beside them instead.
_QUIET = {"write_transactions": 0.0, "statements": 0.0, "commands": 0.0}


def is_quiet(background_per_s: dict[str, Any]) -> bool:
    return all((background_per_s.get(k) or 0) <= limit for k, limit in _QUIET.items())


def profile_section(profiles: dict[str, dict[str, Any]], opts: ProfileOptions) -> dict[str, Any]:
    warnings: list[str] = []
    for name, p in profiles.items():
        for server, info in p.get("servers", {}).items():
            if "background_per_s" not in info:  # its counters could not be read: nothing to judge
                continue
            info["quiet"] = quiet = is_quiet(info["background_per_s"])
            if not quiet:
                bg = ", ".join(f"{k.replace('_', ' ')} {v:g}/s" for k, v in info["background_per_s"].items() if v)
                warnings.append(f"profile of {name}: the {'PostgreSQL' if server == 'postgres' else 'Redis'} server "
                                f"was not quiet (others' traffic: {bg}); its own counters in the profile include "
                                "that traffic, the round trips and statements do not")
    return {"what": WHAT.format(reps=opts.reps, warmup=opts.warmup), "reps": opts.reps, "warmup": opts.warmup,
            "stores": profiles, "warnings": warnings}
