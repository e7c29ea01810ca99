"""``fridgebench ttl``: expiry accuracy, sliding expiry, PostgreSQL cleanup cost, bytes per session.

One command, five modules: :mod:`.run` (options, the composition, claims, the terminal view),
:mod:`.expiry`, :mod:`.cleanup`, :mod:`.memory` (the three measurements) and :mod:`.common`
(what they share). Callers import from this package.
"""

from fridgebench.experiments.ttl.run import (MAX_TTL_S, TTL_STORE_NAMES, TtlOptions, TtlResult, build_claims, estimate_memory_bytes,
                                             expected_wait_s, render_ttl, run_ttl, validate)

__all__ = ["MAX_TTL_S", "TTL_STORE_NAMES", "TtlOptions", "TtlResult", "build_claims", "estimate_memory_bytes", "expected_wait_s",
           "render_ttl", "run_ttl", "validate"]
