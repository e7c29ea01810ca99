"""The app path: session stores that behave the way fridge2fork's own code uses the servers.

fridge2fork (github.com/ggorockee/fridge2fork, ``server/app/core/session.py`` and ``database.py``)
reads and writes sessions through SQLAlchemy's async ORM on asyncpg, with its default pool and an
``AsyncSession`` per request; the seed's Redis code goes through ``redis.asyncio.from_url(...,
decode_responses=True)``. These stores reproduce that behaviour (written here, not copied) behind
the :class:`~fridgebench.stores.base.SessionStore` contract:

* :mod:`.models` — the ORM mapping of the fridge2fork tables;
* :mod:`.session_manager` — the application's session functions, statement for statement;
* :mod:`.session_manager_fixed` — the same code with the two cheapest fixes;
* :mod:`.postgres` — ``postgres-app`` and ``postgres-app-fixed``: the app's engine, pool and
  request/transaction boundaries around those functions;
* :mod:`.redis` — ``redis-app``: the seed's GET -> json.loads -> extend -> SETEX on redis.asyncio.
"""
