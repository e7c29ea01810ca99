"""``fridgebench load``: the session workload through Locust, locally or distributed.

Kept apart on purpose: ``import locust`` monkey-patches the whole process with gevent. Only the
modules Locust processes run import it (``locustfile``, ``runner``, ``conductor``, ``plan``'s
pacing); the CLI side (``run``, ``supervisor``, ``settings``, ``manifests``) never does, and
importing this package imports nothing.
"""
