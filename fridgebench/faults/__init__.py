"""Fault injection: the TCP fault proxy, process faults through provisioning, Redis memory pressure,
and the durability modes the faults are measured under.

* :mod:`.proxy` -- latency, reset, blackhole, refuse between the clients and a store;
* :mod:`.process` -- crash (SIGKILL), restart, pause (SIGSTOP) of servers fridgebench started
  (through :mod:`fridgebench.provision`, the only owner of server processes), and of external
  servers through the user's own ``--kill-cmd`` / ``--start-cmd``;
* :mod:`.memory` -- Redis ``maxmemory`` lowered below the data set under a ``maxmemory-policy``;
* :mod:`.durability` -- the modes (Redis none / aof-everysec / aof-always / rdb, PostgreSQL sync /
  async), their settings and what each promises, with the sources.
"""
