"""What every command shares: consoles, the error boundary, exit codes.

Human output goes to stderr (``console``); ``--json`` output alone goes to stdout (``emit_json``).
Expected errors (:class:`FridgebenchError`) become one line and their exit status; anything
else is a bug and still becomes one line unless ``--debug`` is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Coroutine, Iterator, TypeVar

import typer
from rich.console import Console

from fridgebench.config import mask_text
from fridgebench.connection_errors import from_targets
from fridgebench.errors import ExitStatus, FridgebenchError

# Piped or logged (CI), Rich would assume 80 columns and truncate the tables: use 120 unless told.
console = Console(stderr=True, highlight=False,
                  width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 120)
T = TypeVar("T")


class _State:
    debug: bool = bool(os.environ.get("FRIDGEBENCH_DEBUG"))
    # store kind -> (URL, flag) the command was given: connection errors name them (cli._options)
    targets: dict[str, tuple[str, str]] = {}
    from_env: set[str] = set()  # URL options whose value came from their environment variable


state = _State()


def emit_json(doc: Any) -> None:
    """Machine output: the document alone on stdout."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def announce_wait(seconds: float, what: str) -> None:
    """For a run that waits longer than a minute: say how long, and when it is expected to end."""
    if seconds <= 60:
        return
    from datetime import datetime, timedelta

    from fridgebench.experiments.ttl.common import human_duration

    try:
        end = datetime.now().astimezone() + timedelta(seconds=seconds)
    except OverflowError:  # beyond year 9999
        console.print(f"{what} takes about {human_duration(seconds)}; Ctrl-C stops it cleanly", soft_wrap=True)
        return
    fmt = "%H:%M:%S" if seconds < 86400 else "%Y-%m-%d %H:%M:%S"
    console.print(f"{what} takes about {human_duration(seconds)}: expected to end around {end.strftime(fmt)} "
                  f"({end.strftime('%Z')}); Ctrl-C stops it cleanly", soft_wrap=True)


def fail(message: str, status: ExitStatus = ExitStatus.ERROR) -> typer.Exit:
    console.print(f"[bold red]error:[/] {mask_text(message)}", soft_wrap=True)
    return typer.Exit(int(status))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so every ``finally`` (server shutdown) runs.

    A KeyboardInterrupt subclass on purpose: asyncio re-raises KeyboardInterrupt out of any
    task it lands in, so it reaches this boundary whichever coroutine was running.
    """


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with SIGTERM handled like Ctrl-C: the main task is cancelled (so every
    ``async with`` closes its connections in order) and then :class:`_Terminated` is raised."""
    previous = signal.getsignal(signal.SIGTERM)
    terminated = False
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        task: asyncio.Task[T] | None = None

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        async def main() -> T:
            nonlocal task
            task = asyncio.current_task()
            return await coro

        try:
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
        try:
            return runner.run(main())
        except asyncio.CancelledError:
            if terminated:
                raise _Terminated() from None
            raise
        finally:
            try:
                loop.remove_signal_handler(signal.SIGTERM)
            except (NotImplementedError, RuntimeError):
                pass
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)


def _ignore_unraisable(_: Any) -> None:
    return None


@contextmanager
def error_boundary() -> Iterator[None]:
    """Run a command body: map errors to one line + exit status; SIGTERM behaves like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    state.targets.clear()  # filled by this command's URL options (cli._options)
    try:
        yield
    except typer.Exit:
        raise
    except FridgebenchError as err:
        if state.debug:
            console.print_exception()
        raise fail(str(err), err.exit_status) from None
    except KeyboardInterrupt:
        if state.debug:
            console.print_exception()
        else:
            # an interrupt can land while an event loop is closing (asyncio.run's teardown); the loop is then
            # collected at exit and its __del__ prints "Exception ignored in ... Traceback" — noise after the
            # line below, which --debug keeps
            sys.unraisablehook = _ignore_unraisable
        console.print("[yellow]interrupted:[/] stopped cleanly; anything fridgebench started was stopped")
        raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
    except OSError as err:
        if state.debug:
            console.print_exception()
        mapped = from_targets(err, state.targets)  # a client library's "connection refused", "timed out"
        if mapped is not None:
            raise fail(str(mapped), mapped.exit_status) from None
        if err.errno == 28:  # ENOSPC
            raise fail(f"disk full while writing {err.filename or 'results'} — free space and run again") from None
        if err.errno == 27:  # EFBIG: the filesystem's or `ulimit -f`'s largest file
            raise fail(f"file too large while writing {err.filename or 'results'} — raise `ulimit -f` or "
                       "use another --out") from None
        raise fail(f"{err.strerror or err} ({err.filename})" if err.filename else str(err)) from None
    except Exception as err:
        if state.debug:
            console.print_exception()
        mapped = from_targets(err, state.targets)  # a store unreachable, gone, refusing us: one clear line
        if mapped is not None:
            raise fail(str(mapped), mapped.exit_status) from None
        # a bug: still one line, traceback with --debug
        raise fail(f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_run(path: Any, no_report: bool) -> None:
    """The one hook every command that writes a run calls: report.html / report.md into its folder."""
    if no_report:
        return
    from fridgebench.report.build import report_after_run

    report_after_run(path, lambda line: console.print(f"[dim]{mask_text(line)}[/]"))


def fail_if_inconclusive(claims: list[Any]) -> None:
    """``--strict``: a claim the run measured but could not judge exits 4 (ExitStatus.TOO_NOISY) —
    after its results and report were written: the run measured, only its verdict is in doubt."""
    from fridgebench.report.claims import inconclusive

    found = inconclusive(claims)
    if not found:
        return
    topics = ", ".join(dict.fromkeys(c.topic for c in found))
    console.print(f"[yellow]inconclusive:[/] {topics} (the claims above say why) — exit "
                  f"{int(ExitStatus.TOO_NOISY)} (--strict)", soft_wrap=True)
    raise typer.Exit(int(ExitStatus.TOO_NOISY))
