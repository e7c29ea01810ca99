"""Whether two sets of runs may be compared at all (pyperf refuses to compare incomparable runs).

A latency measured under a different scenario, against another server version or durability
setting, on another CPU, or through another event loop is not "the same benchmark, slower":
the gate refuses such a comparison and says which setting differs, rather than report a delta.
The fridgebench version is *not* compared: the change under test is often fridgebench's own
store code.
"""

from __future__ import annotations

from typing import Any

from fridgebench.measure.runs import Run

SERVER_FIELDS = ("version", "source", "durability")


def fingerprint(run: Run) -> dict[str, Any]:
    """What must be equal for two runs to be comparable, flattened to dotted keys."""
    d = run.doc
    env = d.environment
    out: dict[str, Any] = {"command": d.command, "seed": d.seed}
    scenario = dict(d.scenario or {})
    scenario.pop("source", None)  # where the file was read from: a checkout path
    scenario.pop("description", None)
    _flatten("scenario", scenario, out)
    out["machine.cpu_model"] = env.cpu_model
    out["machine.cpu_count"] = env.cpu_count
    out["machine.memory_gib"] = round(env.memory_bytes / 2**30)
    out["machine.event_loop"] = env.event_loop.split()[0] if env.event_loop else ""
    for s in env.servers:
        kind = s.get("kind", "?")
        for f in SERVER_FIELDS:
            v = s.get(f)
            if isinstance(v, dict):
                _flatten(f"{kind}.{f}", v, out)
            else:
                out[f"{kind}.{f}"] = v
    return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def differences(a: Run, b: Run) -> list[str]:
    fa, fb = fingerprint(a), fingerprint(b)
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "(absent)"), fb.get(key, "(absent)")
        if va != vb:
            out.append(f"{key}: {va!r} vs {vb!r}")
    return out


def check(baseline: list[Run], current: list[Run]) -> list[str]:
    """Reasons the runs cannot be compared (empty when they can): within each side, then across."""
    reasons: list[str] = []
    ref = baseline[0]
    for side, runs in (("baseline", baseline), ("current", current)):
        first = runs[0]
        for r in runs[1:]:
            diff = differences(first, r)
            if diff:
                reasons.append(f"{side} runs differ among themselves ({first.run_id} vs {r.run_id}): {'; '.join(diff[:3])}")
                break
    diff = differences(ref, current[0])
    if diff:
        more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
        reasons.append(f"baseline and current differ: {'; '.join(diff[:4])}{more}")
    return reasons
