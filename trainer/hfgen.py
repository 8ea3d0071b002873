"""Greedy generation with transformers for `HFBackend`: OpenAI-style logprobs from the raw
per-step logits, and closed-set decoding through a prefix trie over the labels' token ids
(what vLLM's choice constraint does, token by token)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from trainer.chat import render


def load_model(base_model: str, adapter: Path | None) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    tokenizer.padding_side = "left"  # decoder-only batch generation
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    if adapter is not None:
        # Merged in memory: same outputs as serving the adapter, faster generation.
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.to(device).eval(), tokenizer


class ChoiceConstraint(LogitsProcessor):
    """Allows only continuations that spell one of the labels, then end-of-turn."""

    def __init__(self, label_ids: Sequence[Sequence[int]], prompt_len: int, stop_id: int) -> None:
        self.prompt_len = prompt_len
        self.stop_id = stop_id
        self.trie: dict[tuple[int, ...], set[int]] = {}
        for ids in label_ids:
            seq = [*ids, stop_id]
            for i in range(len(seq)):
                self.trie.setdefault(tuple(seq[:i]), set()).add(seq[i])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for b, row in enumerate(input_ids[:, self.prompt_len :].tolist()):
            allowed = self.trie.get(tuple(row), {self.stop_id})
            mask[b, list(allowed)] = 0.0
        return scores + mask  # type: ignore[return-value]


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def generate_batch(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, Any]]],
    max_new_tokens: int,
    top_logprobs: int,
    closed_set: list[str] | None,
) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(text, logprobs content, finish_reason) per conversation."""
    texts = [render(tokenizer, list(c), add_generation_prompt=True) for c in conversations]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    prompt_len = enc["input_ids"].shape[1]
    stops = _stop_ids(model, tokenizer)
    processors = LogitsProcessorList()
    if closed_set:
        label_ids = [tokenizer.encode(label, add_special_tokens=False) for label in closed_set]
        processors.append(ChoiceConstraint(label_ids, prompt_len, stops[0]))
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
        output_logits=True,  # raw logits, before the choice constraint
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, generation_config=config, logits_processor=processors)
    steps = torch.stack(out.logits, dim=1).float()  # raw logits (B, T, V)
    results = []
    for b in range(len(conversations)):
        ids = out.sequences[b, prompt_len:].tolist()
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        finish = "length" if end is None else "stop"
        ids = ids if end is None else ids[:end]
        content = _logprobs_content(tokenizer, steps[b, : len(ids)], ids, top_logprobs)
        results.append((tokenizer.decode(ids, skip_special_tokens=True), content, finish))
    return results


def _logprobs_content(
    tokenizer: Any, logits: torch.Tensor, ids: list[int], top_k: int
) -> list[dict[str, Any]]:
    if not ids:
        return []
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(-1, torch.tensor(ids, device=logp.device).unsqueeze(-1)).squeeze(-1)
    top_vals, top_ids = logp.topk(top_k, dim=-1) if top_k else (None, None)
    content = []
    for t, token_id in enumerate(ids):
        entry: dict[str, Any] = {
            "token": tokenizer.decode([token_id]),
            "logprob": float(chosen[t]),
            "top_logprobs": [],
        }
        if top_vals is not None and top_ids is not None:
            entry["top_logprobs"] = [
                {"token": tokenizer.decode([int(i)]), "logprob": float(v)}
                for v, i in zip(top_vals[t].tolist(), top_ids[t].tolist(), strict=True)
            ]
        content.append(entry)
    return content
