"""``fridgebench helm``: the ConfigMaps and Secret that run fridgebench's locustfile in Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli._common import console, error_boundary
from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL


@app.command()
def helm(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see scenarios/) or path to a .toml file.")] = "session-lifecycle",
    out: Annotated[Path, typer.Option("--out", help="Folder to write the manifests to.")] = Path("k8s"),
    postgres_dsn: Annotated[Optional[str], typer.Option("--postgres-dsn", envvar=ENV_POSTGRES_DSN, show_envvar=True,
        help="PostgreSQL as the pods reach it (default: helm-values/postgresql.yaml's service).")] = None,
    redis_url: Annotated[Optional[str], typer.Option("--redis-url", envvar=ENV_REDIS_URL, show_envvar=True,
        help="Redis as the pods reach it (default: helm-values/redis.yaml's service).")] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n", help="Namespace to put in the manifests.")] = None,
) -> None:
    """Write the manifests the Locust Helm chart needs to run `fridgebench load`'s workload.

    Three files for `kubectl apply -f`: ConfigMap fridgebench-locustfile (the locustfile), ConfigMap
    fridgebench-lib (fridgebench itself as fridgebench.zip, and the scenario), and Secret
    fridgebench-stores (FRIDGEBENCH_POSTGRES_DSN, FRIDGEBENCH_REDIS_URL; its file is readable by
    you only). helm-values/locust.yaml names them. Nothing is installed or contacted.

    Examples:

      fridgebench helm --out k8s/ && kubectl apply -f k8s/

      fridgebench helm read-heavy --redis-url redis://:PASSWORD@redis-master.cache:6379/0 -n loadtest
    """
    with error_boundary():
        from fridgebench.config import mask_url
        from fridgebench.load import manifests as mf
        from fridgebench.workload.model import load_scenario, resolve

        load_scenario(scenario)  # a bad scenario is refused here, not in the pods
        dsn, url = postgres_dsn or mf.DEFAULT_POSTGRES_DSN, redis_url or mf.DEFAULT_REDIS_URL
        docs = mf.manifests(resolve(scenario), postgres_dsn=dsn, redis_url=url, namespace=namespace)
        for path in mf.write(out, docs):
            console.print(f"wrote {path}")
        console.print(f"[dim]stores: {mask_url(dsn)} and {mask_url(url)}[/]")
        console.print("next: kubectl apply -f " + str(out) + "  &&  helm install fridgebench-locust "
                      "oci://ghcr.io/deliveryhero/helm-charts/locust --version 0.35.0 -f helm-values/locust.yaml "
                      "(README: Beyond one machine)")
