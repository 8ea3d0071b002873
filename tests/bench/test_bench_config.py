"""Benchmark settings and the DISTILL_* environment they give each proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.banking77.config import parse_settings
from bench.harness.settings import RECOMMENDED_CPU, proxy_env
from bench.overhead.targets import proxy_env as overhead_env
from proxy.settings import Settings


def _env(argv: list[str], role: str) -> dict[str, str]:
    s = parse_settings(argv)
    return proxy_env(s, "http://127.0.0.1:1/v1", "sk-t", "admin", role, Path("/models/base"))


def _known(env: dict[str, str]) -> None:
    fields = set(Settings.model_fields)
    unknown = [k for k in env if k.removeprefix("DISTILL_").lower() not in fields]
    assert not unknown, f"settings the proxy does not know: {unknown}"


def test_presets() -> None:
    full, quick = parse_settings([]), parse_settings(["--quick"])
    assert (full.requests, full.retrain_every, full.max_rounds) == (3000, 100, 20)
    assert full.train_min_rows == 180  # the first round: enough answers per label for a closed set
    assert quick.requests <= 100 and quick.max_rounds == 1
    assert quick.out_dir != full.out_dir  # a smoke run never overwrites committed results
    assert parse_settings(["--quick", "--requests", "60"]).requests == 60


def test_learning_env_is_known_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(["--retrain-every", "123", "--set", "train_lora_r=16"], "learning")
    _known(env)
    assert env["DISTILL_TRAIN_EVERY_ROWS"] == "123"
    assert env["DISTILL_TARGET_AGREEMENT"] == "0.8"
    assert "DISTILL_CONFIDENCE_THRESHOLD" not in env  # calibration mode: no static threshold
    assert env["DISTILL_TRAIN_LORA_R"] == "16"
    assert env["DISTILL_STUDENT_BASE_MODEL"] == "/models/base"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = Settings()  # the proxy's own parsing of exactly this environment
    assert loaded.train_every_rows == 123
    assert loaded.teacher_default_price.output == 10.0
    assert loaded.confidence_scorer == "mean_logprob"


def test_static_env_never_retrains_or_calibrates() -> None:
    env = _env(["--scorer", "min_prob"], "static")
    _known(env)
    assert "DISTILL_TRAIN_EVERY_ROWS" not in env and "DISTILL_TRAIN_SCHEDULE" not in env
    assert env["DISTILL_CONFIDENCE_THRESHOLD"] == "0.6"
    assert env["DISTILL_DB"] != _env([], "learning")["DISTILL_DB"]


def test_knobs() -> None:
    assert _env(["--no-soft-labels"], "learning")["DISTILL_TRAIN_KD_ALPHA"] == "0"
    assert "DISTILL_TARGET_AGREEMENT" not in _env(["--target-agreement", "0"], "learning")
    assert (
        _env(["--student-url", "http://x/v1"], "learning")["DISTILL_STUDENT_URL"] == "http://x/v1"
    )


def test_overhead_env_is_known_to_the_proxy(tmp_path: Path) -> None:
    env = overhead_env("http://127.0.0.1:1/v1", tmp_path, "admin", "sk-client")
    _known(env)
    assert float(env["DISTILL_CONFIDENCE_THRESHOLD"]) < -100


def test_recommended_cpu_settings_are_the_readmes() -> None:
    """The benchmark runs with the README's recommended CPU-student settings, verbatim."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- cpu-student:start -->")[1].split("<!-- cpu-student:end -->")[0]
    lines = [ln for ln in block.splitlines() if "=" in ln]
    documented = dict(ln.strip().split("=", 1) for ln in lines)
    assert documented == RECOMMENDED_CPU
    env = _env([], "learning")
    assert {k: env[k] for k in RECOMMENDED_CPU} == RECOMMENDED_CPU
