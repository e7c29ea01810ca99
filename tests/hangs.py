"""What a hung test was waiting for: every asyncio task's stack, printed shortly before pytest-timeout
ends the test.

pytest-timeout prints the threads' stacks, and for an async test that is the event loop sitting in
``select()`` -- it names none of the coroutines that wait. This prints each task's coroutine stack
(found through the garbage collector, so it needs no reference to the loop) into the test's captured
output, which the failure report shows. Diagnostics only: it never changes the outcome of a test.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from typing import Iterator

import pytest

#: seconds before the test's timeout at which the stacks are printed
LEAD_S = 10.0


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    if marker is not None and "timeout" in marker.kwargs:
        return float(marker.kwargs["timeout"])
    return float(item.config.getini("timeout") or 0)


def dump_tasks(out: io.TextIOBase | None = None) -> str:
    buf = io.StringIO()
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    print(f"--- {len(tasks)} pending asyncio task(s), stacks innermost last ---", file=buf)
    for t in tasks:
        print(f"task {t.get_name()}: {t.get_coro()!r}", file=buf)
        try:
            t.print_stack(limit=40, file=buf)
        except Exception as exc:  # the task moved on while being read (another thread runs the loop)
            print(f"  (stack unreadable: {exc!r})", file=buf)
    text = buf.getvalue()
    print(text, file=out or sys.stdout, flush=True)
    return text


@pytest.fixture(autouse=True)
def _print_tasks_before_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    limit = _timeout_of(request.node)
    if limit <= LEAD_S:
        yield
        return
    timer = threading.Timer(limit - LEAD_S, dump_tasks)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
