"""The Kubernetes objects the Locust Helm chart needs to run fridgebench's locustfile.

The deliveryhero/locust chart mounts two ConfigMaps — the locustfile at ``/mnt/locust`` and a
"lib" folder at ``/mnt/locust/lib`` — and can load environment variables from a Secret.
:func:`manifests` builds all three from this installation, so nothing is copied by hand:

* ``fridgebench-locustfile``: ``main.py`` = ``fridgebench/load/locustfile.py``, verbatim;
* ``fridgebench-lib``: ``fridgebench.zip`` (this fridgebench package, imported from the zip by the
  locustfile when fridgebench is not installed in the pod) and ``scenario.toml`` (the chosen
  scenario, verbatim);
* ``fridgebench-stores`` (Secret): ``FRIDGEBENCH_POSTGRES_DSN`` and ``FRIDGEBENCH_REDIS_URL``.

The zip is reproducible (sorted entries, fixed timestamps), so writing the manifests again from
the same version changes nothing and the chart's checksum annotations do not roll the pods.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import yaml

from fridgebench import __version__
from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL
from fridgebench.errors import UsageError

LOCUSTFILE_CONFIGMAP = "fridgebench-locustfile"
LIB_CONFIGMAP = "fridgebench-lib"
STORES_SECRET = "fridgebench-stores"
# the services helm-values/postgresql.yaml and redis.yaml create under these release names
DEFAULT_POSTGRES_DSN = "postgresql://fridge2fork:fridge2fork-dev@fridgebench-postgresql:5432/fridge2fork"
DEFAULT_REDIS_URL = "redis://fridgebench-redis-master:6379/0"
CONFIGMAP_LIMIT = 1_000_000  # bytes: Kubernetes stores an object in etcd, ~1 MiB at most
_PACKAGE_FILES = (".py", ".tsv", ".lua", ".sql")
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def package_root() -> Path:
    import fridgebench

    return Path(fridgebench.__file__).resolve().parent


def package_zip() -> bytes:
    """This fridgebench package (sources and data), as a reproducible zip importable by ``zipimport``."""
    root = package_root()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in _PACKAGE_FILES and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(str(Path("fridgebench") / path.relative_to(root)), date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, path.read_bytes())
    return buf.getvalue()


def _meta(name: str, namespace: str | None, extra: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "fridgebench",
                                                      "app.kubernetes.io/version": __version__}}
    if namespace:
        meta["namespace"] = namespace
    if extra:
        meta["annotations"] = extra
    return meta


def manifests(scenario_path: Path, *, postgres_dsn: str, redis_url: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The ConfigMaps and the Secret, as Kubernetes objects (dicts)."""
    if not postgres_dsn.startswith(("postgres://", "postgresql://")):
        raise UsageError("--postgres-dsn: not a PostgreSQL URL", hint="use postgresql://user:password@host:5432/dbname")
    if not redis_url.startswith(("redis://", "rediss://")):
        raise UsageError("--redis-url: not a Redis URL", hint="use redis://host:6379/0 or rediss://... (TLS)")
    locustfile = (package_root() / "load" / "locustfile.py").read_text(encoding="utf-8")
    zipped = package_zip()
    scenario_text = scenario_path.read_text(encoding="utf-8")
    lib_bytes = len(base64.b64encode(zipped)) + len(scenario_text.encode())
    if lib_bytes > CONFIGMAP_LIMIT:
        raise UsageError(f"the lib ConfigMap would hold {lib_bytes:,} bytes, over Kubernetes' ~1 MiB object limit")
    digest = hashlib.sha256(zipped).hexdigest()[:16]
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta(LOCUSTFILE_CONFIGMAP, namespace, {"fridgebench/source": "fridgebench/load/locustfile.py"}),
         "data": {"main.py": locustfile}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta(LIB_CONFIGMAP, namespace, {"fridgebench/scenario": scenario_path.name,
                                                      "fridgebench/zip-sha256": digest}),
         "data": {"scenario.toml": scenario_text},
         "binaryData": {"fridgebench.zip": base64.b64encode(zipped).decode("ascii")}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": _meta(STORES_SECRET, namespace),
         "stringData": {ENV_POSTGRES_DSN: postgres_dsn, ENV_REDIS_URL: redis_url}},
    ]


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=120)


def write(out: Path, docs: list[dict[str, Any]]) -> list[Path]:
    """One file per object; the Secret's is readable by its owner only (it holds the store URLs)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in docs:
        path = out / f"{doc['metadata']['name']}.{doc['kind'].lower()}.yaml"
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if doc["kind"] == "Secret" else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(to_yaml(doc))
        os.replace(tmp, path)
        paths.append(path)
    return paths
