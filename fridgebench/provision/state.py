"""The record ``fridgebench up`` leaves behind so ``status``, ``down`` and later commands find its servers.

``<run root>/up.json``, mode 0600, no passwords: started servers listen on 127.0.0.1 with
no credentials, and external URLs are stored masked (the caller passes them again).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fridgebench.config import mask_url
from fridgebench.provision.base import ServerInfo

STATE_FILE = "up.json"
FORMAT = 1


@dataclass(frozen=True)
class Recorded:
    info: ServerInfo
    url: str  # connection URL of a server we started (no password); masked for external ones
    create_time: float  # process start time, to tell our pid from a reused one


def state_path(root: Path) -> Path:
    return root / STATE_FILE


def write(root: Path, servers: list[Recorded]) -> Path:
    path = state_path(root)
    doc = {
        "format": FORMAT,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "owner_pid": os.getpid(),
        "servers": [{"info": r.info.to_dict(), "url": mask_url(r.url), "create_time": r.create_time}
                    for r in servers],
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def _info(d: dict[str, Any]) -> ServerInfo:
    fields = set(ServerInfo.__dataclass_fields__)
    d = {k: v for k, v in d.items() if k in fields}
    d["notes"] = tuple(d.get("notes", ()))
    return ServerInfo(**d)


def read(root: Path) -> list[Recorded]:
    """Recorded servers (empty when there is no record or it is unreadable)."""
    try:
        doc = json.loads(state_path(root).read_text(encoding="utf-8"))
        return [Recorded(_info(s["info"]), s["url"], float(s.get("create_time", 0))) for s in doc["servers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def clear(root: Path) -> None:
    try:
        state_path(root).unlink()
    except FileNotFoundError:
        pass
