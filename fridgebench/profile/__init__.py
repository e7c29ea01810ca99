"""Where the time goes: one operation of each kind, on each store, taken apart.

For every operation kind of a scenario, :func:`.run.profile_store` runs a few dozen operations
one at a time on a quiet store and reports, per operation:

* round trips to each server and the statements / commands sent (:mod:`.wire`: a counting relay,
  so only the store's own connections are counted);
* what the servers counted (:mod:`.counters`): statements and their execution time
  (pg_stat_statements), write transactions — commits that waited for a WAL flush — and WAL bytes,
  Redis ``INFO commandstats``;
* the client's CPU time (user + system) and the wall time of one operation alone.

So a reader sees *why* a path is slower (ORM work, N+1 queries, a commit on every read), not only
that it is. ``compare`` runs it after each store's measured run and puts it in the results.
"""
