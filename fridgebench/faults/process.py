"""Process faults: crash, restart, pause -- on servers fridgebench started, or through the user's commands.

On a server fridgebench started (a :class:`~fridgebench.provision.fleet.Controlled` with a
process), every signal goes through :mod:`fridgebench.provision.local`, which checks the pid is
still the process it started (pid + start time) before signalling it:

* ``crash`` -- SIGKILL to the server's whole process group (postmaster and backends; Redis and
  any fork), as an OOM kill or a deleted container; healed by starting it again on the same data
  directory, port and settings (PostgreSQL runs crash recovery; Redis loads its AOF / RDB, if any);
* ``crash-backend`` (PostgreSQL) -- SIGKILL to one client backend: the postmaster ends every other
  backend and runs crash recovery itself, without a restart from outside (instantaneous: nothing
  to heal, the recovery is measured);
* ``restart`` -- a clean shutdown (PostgreSQL fast shutdown, Redis SIGTERM: an RDB is saved when
  save points are set), then a start after ``--down``;
* ``pause`` -- SIGSTOP to the process group, SIGCONT after ``--down``: a hung server whose kernel
  still accepts connections.

On an external server fridgebench signals nothing: ``crash`` runs the user's ``--kill-cmd``, then
after ``--down`` their ``--start-cmd`` (e.g. ``kubectl delete pod redis-master-0`` and ``kubectl wait
--for=condition=Ready pod/redis-master-0``), through the shell, each with a time limit; a command
that fails or hangs ends the run with one line saying which and how.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from typing import Any, Awaitable, Callable

from fridgebench.config import mask_text
from fridgebench.faults.base import Fault, FaultError
from fridgebench.provision.fleet import Controlled

PROCESS_FAULTS = ("crash", "crash-backend", "restart", "pause")


class ProcessFault(Fault):
    """A process fault on a server fridgebench started."""

    def __init__(self, name: str, server: Controlled) -> None:
        super().__init__()
        if name not in PROCESS_FAULTS:
            raise ValueError(f"not a process fault: {name}")
        if server.external:
            raise FaultError(f"{name} acts on a server fridgebench started; the {server.kind} server is external")
        self.name = name
        self.target = server.kind
        self.server = server
        self.uses_down = name != "crash-backend"
        self.detail: dict[str, Any] = {}
        self._respawned_at: float | None = None

    async def inject(self) -> float:
        s = self.server
        self.detail["pid"] = s.info.pid
        if self.name == "crash":
            t = await asyncio.to_thread(s.kill)
        elif self.name == "restart":
            t = await asyncio.to_thread(s.shutdown)
        elif self.name == "pause":
            t = s.pause()
        else:  # crash-backend
            t = time.perf_counter()
            self.detail["backend_pid"] = s.kill_backend()
        self.injected = True
        return t

    async def heal(self) -> float:
        s = self.server
        if self.name in ("crash", "restart"):
            t = s.respawn()  # the main thread: the new process is tied to our life like the first
            self._respawned_at = t
            self.detail["new_pid"] = s.info.pid
        elif self.name == "pause":
            t = s.resume()
        else:
            t = time.perf_counter()
        self.healed = True
        return t

    async def recover(self, timeout_s: float) -> dict[str, Any]:
        """Restart / load time: from the start command until the server answers, and until it
        serves commands (Redis done loading; PostgreSQL out of crash recovery)."""
        s = self.server
        if self.name in ("crash", "restart"):
            ready = await asyncio.to_thread(s.wait_ready, timeout_s)
            return {"server_answered_s": ready["answered_s"], "server_ready_s": ready["ready_s"]}
        if self.name == "crash-backend":
            t0 = time.monotonic()
            ok = await _wait_pg_accepts(s.url, timeout_s)
            return {"server_ready_s": round(time.monotonic() - t0, 3) if ok else None,
                    "note": "PostgreSQL restarted its backends and ran crash recovery itself"}
        return {}

    async def emergency_heal(self) -> list[str]:
        s = self.server
        done = []
        try:
            if s.paused:
                s.resume()
                done.append(f"continued the paused {s.kind} server (SIGCONT)")
        except Exception as exc:  # never raise from here
            done.append(f"could not continue the {s.kind} server: {exc}")
        if s.down:
            done.append(f"the {s.kind} server it crashed stays stopped; fridgebench removes it with its run folder")
        return done

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.detail}


async def _wait_pg_accepts(dsn: str, timeout_s: float) -> bool:
    import asyncpg

    deadline = time.monotonic() + timeout_s
    await asyncio.sleep(0.05)  # the postmaster notices the dead backend within milliseconds
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(dsn, timeout=1.0)
        except Exception:
            await asyncio.sleep(0.02)
            continue
        try:
            await conn.fetchval("SELECT 1")
            return True
        except Exception:
            await asyncio.sleep(0.02)
        finally:
            await conn.close()
    return False


# --- external servers: the user's own commands ----------------------------------------------------

async def run_command(cmd: str, *, timeout_s: float, what: str) -> dict[str, Any]:
    """Run ``cmd`` through the shell in its own process group; :class:`FaultError` (one line) when it
    exits non-zero or does not finish within ``timeout_s`` (its whole group is then killed)."""
    t0 = time.perf_counter()
    # output to a file, not a pipe: a server the command daemonizes keeps its inherited stdout open,
    # and reading a pipe to its end would wait for that server to exit
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_shell(cmd, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                                                     stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise FaultError(f"{what} `{mask_text(cmd)}` did not finish within {timeout_s:g} s (stopped it)") from None
        except BaseException:
            _kill_group(proc.pid)
            raise
        out.seek(0)
        text = mask_text(out.read()[-4096:].decode(errors="replace").strip())
    took = round(time.perf_counter() - t0, 3)
    if proc.returncode != 0:
        last = text.splitlines()[-1] if text else "no output"
        raise FaultError(f"{what} `{mask_text(cmd)}` failed (exit {proc.returncode}): {last}")
    return {"command": mask_text(cmd), "seconds": took, "output_tail": text.splitlines()[-3:] if text else []}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # our own shell's group: started above in a session of its own
    except (ProcessLookupError, PermissionError):
        pass


class ExternalCrash(Fault):
    """``crash`` on an external server: ``--kill-cmd``, then ``--start-cmd`` after ``--down``."""

    name = "crash"
    uses_down = True

    def __init__(self, server: Controlled, kill_cmd: str, start_cmd: str, *, timeout_s: float,
                 ready: Callable[[float], Awaitable[float | None]]) -> None:
        super().__init__()
        self.server = server
        self.target = server.kind
        self.kill_cmd = kill_cmd
        self.start_cmd = start_cmd
        self.timeout_s = timeout_s
        self._ready = ready  # waits until the store serves again; seconds it took, None on timeout
        self.detail: dict[str, Any] = {}
        self._started = False

    async def inject(self) -> float:
        t = time.perf_counter()
        self.injected = True
        self.detail["kill"] = await run_command(self.kill_cmd, timeout_s=self.timeout_s, what="--kill-cmd")
        return t

    async def heal(self) -> float:
        t = time.perf_counter()
        self._started = True
        self.detail["start"] = await run_command(self.start_cmd, timeout_s=self.timeout_s, what="--start-cmd")
        self.healed = True
        return t

    async def recover(self, timeout_s: float) -> dict[str, Any]:
        took = await self._ready(timeout_s)
        if took is None:
            raise FaultError(f"the external {self.server.kind} server did not serve again within {timeout_s:g} s "
                             "of --start-cmd")
        return {"server_ready_s": round(took, 3)}

    async def emergency_heal(self) -> list[str]:
        if not self.injected or self._started:
            return []
        self._started = True
        try:
            await run_command(self.start_cmd, timeout_s=self.timeout_s, what="--start-cmd")
            return [f"ran --start-cmd to bring the external {self.server.kind} server back"]
        except BaseException as exc:  # never raise from here (Ctrl-C included)
            return [f"the external {self.server.kind} server may still be down: {exc}; run your start command"]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "external": True, **self.detail}
