"""deploy/: every YAML parses, and the contracts the proxy depends on hold in the manifests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
YAML_FILES = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in _docs(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def _setting_names() -> set[str]:
    return {f"DISTILL_{name.upper()}" for name in Settings.model_fields}


def test_there_are_manifests() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"docker-compose.gpu.yml", "k8s/student.yaml", "k8s/proxy.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    assert _docs(path), f"{path} is empty"


def test_compose_student_has_lora_and_gpu_and_proxy_points_at_it() -> None:
    (compose,) = _docs(DEPLOY / "docker-compose.gpu.yml")
    student, proxy = compose["services"]["student"], compose["services"]["proxy"]
    assert student["image"].startswith("vllm/vllm-openai")
    assert "--enable-lora" in student["command"]
    assert student["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    (gpu,) = student["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    assert proxy["build"]["dockerfile"] == "deploy/Dockerfile"
    assert proxy["environment"]["DISTILL_STUDENT_URL"] == "http://student:8000/v1"
    # Adapters are loaded by the path the proxy wrote: same mount point in both.
    assert "distill-data:/data" in proxy["volumes"]
    assert any(v.startswith("distill-data:/data") for v in student["volumes"])
    assert set(proxy["environment"]) <= _setting_names()


def test_k8s_student_requests_a_gpu_and_enables_lora() -> None:
    dep = _k8s("Deployment", "distill-student")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--enable-lora" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert _k8s("Service", "distill-student")["spec"]["ports"][0]["port"] == 8000


def test_k8s_proxy_is_a_single_writer_with_probes() -> None:
    spec = _k8s("Deployment", "distill-proxy")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config = _k8s("ConfigMap", "distill-config")["data"]
    assert set(config) <= _setting_names()
    assert config["DISTILL_STUDENT_URL"].startswith("http://distill-student:8000/v1")
    for claim in ("distill-data", "distill-models"):
        assert _k8s("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_env_example_names_only_real_settings() -> None:
    text = (DEPLOY / ".env.example").read_text()
    names = set(re.findall(r"^#? ?(DISTILL_[A-Z0-9_]+)=", text, flags=re.M))
    assert len(names) > 40
    assert names <= _setting_names(), sorted(names - _setting_names())
    # The ones a deployment must set are active lines, not comments.
    for required in ("DISTILL_TEACHER_API_KEY", "DISTILL_API_KEYS", "DISTILL_ADMIN_KEY"):
        assert re.search(rf"^{required}=", text, flags=re.M)
