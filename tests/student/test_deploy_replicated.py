"""deploy/: the replicated set-up (PostgreSQL log, 2 proxies) in compose and Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from proxy.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAY = DEPLOY / "k8s" / "replicated"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_compose_override_puts_the_log_in_postgres_with_two_workers() -> None:
    (override,) = _docs(DEPLOY / "docker-compose.replicated.yml")
    proxy = override["services"]["proxy"]
    settings = Settings(
        **{k.removeprefix("DISTILL_").lower(): v for k, v in proxy["environment"].items()}
    )
    assert settings.db_is_postgres and settings.workers == 2
    assert proxy["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert override["services"]["postgres"]["image"].startswith("postgres:")


def test_k8s_overlay_runs_two_rolling_replicas_on_postgres() -> None:
    (kustomization,) = _docs(OVERLAY / "kustomization.yaml")
    assert ".." in kustomization["resources"]
    listed = {*kustomization["resources"], *(p["path"] for p in kustomization["patches"])}
    for name in listed - {".."}:
        assert (OVERLAY / name).is_file(), name
    assert "postgres-secret.example.yaml" not in listed  # real keys stay out of the list
    (patch,) = _docs(OVERLAY / "proxy-replicated.yaml")
    assert patch["metadata"]["name"] == "distill-proxy"
    spec = patch["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DISTILL_DB"]["valueFrom"]["secretKeyRef"]["name"] == "distill-postgres"
    (secret,) = _docs(OVERLAY / "postgres-secret.example.yaml")
    assert secret["stringData"]["DISTILL_DB"].startswith("postgresql://")
    kinds = {d["kind"] for d in _docs(OVERLAY / "postgres.yaml")}
    assert kinds == {"StatefulSet", "Service"}
