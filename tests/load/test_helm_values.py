"""helm-values/ rendered offline with the real chart templates, every manifest validated against Kubernetes' schemas.

The charts' sources are vendored in tests/load/charts/ (unmodified templates, with their licenses);
helm-python-sdk renders them with Helm's own Go engine, kubernetes-validate checks each object.
"""

from __future__ import annotations

import base64
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.load.helpers import fb

ROOT = Path(__file__).resolve().parents[2]
CHARTS = Path(__file__).resolve().parent / "charts"
K8S_VERSION = "1.30"
RELEASES = {"redis": "fridgebench-redis", "postgresql": "fridgebench-postgresql", "locust": "fridgebench-locust"}


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The charts as `helm install` sees them: bitnami/common copied into each Bitnami chart's charts/."""
    root = tmp_path_factory.mktemp("charts")
    for src, name in (("bitnami/redis", "redis"), ("bitnami/postgresql", "postgresql"), ("deliveryhero/locust", "locust")):
        shutil.copytree(CHARTS / src, root / name)
        if src.startswith("bitnami"):
            shutil.copytree(CHARTS / "bitnami/common", root / name / "charts" / "common")
    return root


def _values(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "helm-values" / f"{name}.yaml").read_text(encoding="utf-8"))


def _render(charts: Path, name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm_python.Chart.load(charts / name) as chart:
        chart.validate_schema(values)  # the chart's own values.schema.json, where it has one
        rendered = chart.render(values, name=RELEASES[name], namespace="default", is_install=True)
    docs = [d for path, text in rendered.items() if path.endswith((".yaml", ".yml"))
            for d in yaml.safe_load_all(text) if d]
    assert docs, f"{name}: nothing rendered"
    return docs


def _validate(docs: list[dict[str, Any]]) -> None:
    for d in docs:
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{d['kind']} {d['metadata']['name']}: {err.message} at {'.'.join(map(str, err.path))}")


def _containers(docs: list[dict[str, Any]], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] == kind:
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield d["metadata"]["name"], c


@pytest.mark.parametrize("name", ["redis", "postgresql", "locust"])
def test_values_render_with_the_real_chart_and_every_manifest_is_valid(charts: Path, name: str) -> None:
    docs = _render(charts, name, _values(name))
    _validate(docs)
    for _, c in [*_containers(docs, "StatefulSet"), *_containers(docs, "Deployment")]:
        limits = (c.get("resources") or {}).get("limits") or {}
        assert "cpu" not in limits, (name, c["name"], limits)  # a CPU quota would be what a benchmark measures
        assert c.get("resources", {}).get("requests"), (name, c["name"])


def test_redis_is_the_seeds_standalone_session_store(charts: Path) -> None:
    docs = _render(charts, "redis", _values("redis"))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("StatefulSet", "fridgebench-redis-master") in kinds
    assert not any("replicas" in n for _, n in kinds)  # standalone: no replica set
    (_, c), = list(_containers(docs, "StatefulSet"))
    assert c["image"] == "docker.io/bitnamilegacy/redis:8.2.1-debian-12-r0"
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}  # the seed's requests
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["ALLOW_EMPTY_PASSWORD"] == "yes"  # auth off, as the seed's development values
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert not sts["spec"].get("volumeClaimTemplates")  # no persistence
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "fridgebench-redis-configuration")
    redis_conf = conf["data"]["redis.conf"]
    assert "appendonly no" in redis_conf and "appendonly yes" not in redis_conf
    assert "maxmemory-policy noeviction" in redis_conf


def test_postgresql_holds_the_fridge2fork_database_durably(charts: Path) -> None:
    docs = _render(charts, "postgresql", _values("postgresql"))
    (_, c), = list(_containers(docs, "StatefulSet"))
    assert c["image"] == "docker.io/bitnamilegacy/postgresql:17.6.0-debian-12-r4"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["POSTGRES_USER"] == "fridge2fork" and env["POSTGRES_DATABASE"] == "fridge2fork"
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and "extended" in d["metadata"]["name"])
    text = next(iter(conf["data"].values()))
    for line in ("fsync = on", "synchronous_commit = on", "max_connections = 500"):
        assert line in text
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"


def test_locust_runs_fridgebench_headless_with_a_probe_that_works_headless(charts: Path, tmp_path: Path) -> None:
    values = _values("locust")
    docs = _render(charts, "locust", values)
    by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    master = by_name["fridgebench-locust-master"]["spec"]["template"]["spec"]
    (mc,) = master["containers"]
    assert "--headless" in mc["args"] and "--master" in mc["args"]
    probe = mc["readinessProbe"]
    assert probe["tcpSocket"] == {"port": 5557} and "httpGet" not in probe  # the web UI's / is absent headless
    assert {"name": "results", "mountPath": "/results"} in mc["volumeMounts"]
    worker = by_name["fridgebench-locust-worker"]
    expect = next(a for a in mc["args"] if a.startswith("--expect-workers="))
    assert int(expect.split("=")[1]) == worker["spec"]["replicas"]
    (wc,) = worker["spec"]["template"]["spec"]["containers"]
    for c in (mc, wc):
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["LOCUST_LOCUSTFILE"] == "/mnt/locust/main.py"
        assert env["FRIDGEBENCH_SCENARIO"] == "/mnt/locust/lib/scenario.toml"
        assert {"secretRef": {"name": "fridgebench-stores"}} in c["envFrom"]
    # the ConfigMaps and Secret the values name are exactly what `fridgebench helm` writes
    res = fb("helm", "read-heavy", "--out", str(tmp_path / "k8s"), "--postgres-dsn",
             "postgresql://app:s3cret@db:5432/fridge2fork", "--redis-url", "redis://cache:6379/0")
    assert res.returncode == 0, res.stderr
    assert "s3cret" not in res.stderr
    written = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in (tmp_path / "k8s").iterdir()}
    _validate(list(written.values()))
    names = {d["metadata"]["name"] for d in written.values()}
    assert {values["loadtest"]["locust_locustfile_configmap"], values["loadtest"]["locust_lib_configmap"]} <= names
    assert values["loadtest"]["environment_load_from_secrets"] == ["fridgebench-stores"] and "fridgebench-stores" in names
    secret_file = tmp_path / "k8s" / "fridgebench-stores.secret.yaml"
    assert secret_file.stat().st_mode & 0o077 == 0  # the store URLs: readable by their owner only
    lib = written["fridgebench-lib.configmap.yaml"]
    assert 'name = "read-heavy"' in lib["data"]["scenario.toml"] or "read-heavy" in lib["data"]["scenario.toml"]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(lib["binaryData"]["fridgebench.zip"]))) as z:
        files = set(z.namelist())
    assert {"fridgebench/load/locustfile.py", "fridgebench/stores/add_ingredients.lua",
            "fridgebench/data/ingredients.tsv"} <= files
    main = written["fridgebench-locustfile.configmap.yaml"]["data"][values["loadtest"]["locust_locustfile"]]
    assert main == (ROOT / "fridgebench/load/locustfile.py").read_text(encoding="utf-8")
    # written twice from the same version: identical (no pointless rollout of the pods)
    again = fb("helm", "read-heavy", "--out", str(tmp_path / "k8s2"), "--postgres-dsn",
               "postgresql://app:s3cret@db:5432/fridge2fork", "--redis-url", "redis://cache:6379/0")
    assert again.returncode == 0
    assert (tmp_path / "k8s2" / "fridgebench-lib.configmap.yaml").read_bytes() == \
        (tmp_path / "k8s" / "fridgebench-lib.configmap.yaml").read_bytes()


def test_a_broken_value_fails_validation(charts: Path) -> None:
    """The checks can fail: a probe left with two handlers, and a misspelt field, are caught."""
    values = _values("locust")
    values["master"]["readinessProbe"].pop("httpGet")  # Helm then merges the chart's httpGet back in
    docs = _render(charts, "locust", values)
    (mc,) = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "fridgebench-locust-master"
                 )["spec"]["template"]["spec"]["containers"]
    assert "httpGet" in mc["readinessProbe"] and "tcpSocket" in mc["readinessProbe"]
    bad = _values("redis")
    bad["master"]["resources"]["limit"] = bad["master"]["resources"].pop("limits")  # a typo Kubernetes would reject
    with pytest.raises(pytest.fail.Exception, match="limit"):
        _validate(_render(charts, "redis", bad))
