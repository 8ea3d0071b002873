"""Chat-template rendering and prompt/completion tokenisation, shared by training and local
generation so both see the student's input exactly as vLLM renders it (chat template as
text, then tokenised without adding special tokens). Needs a tokenizer, not torch."""

from __future__ import annotations

from typing import Any


def render(tokenizer: Any, messages: list[dict[str, Any]], **kw: Any) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, **kw)
    if not isinstance(text, str):
        raise TypeError("apply_chat_template(tokenize=False) did not return text")
    return text


def tokenize_row(
    tokenizer: Any, prompt: list[dict[str, Any]], completion: str
) -> tuple[list[int], int]:
    """Token ids of prompt + answer and the index where the answer starts (where the
    tokenised prompt and prompt + answer diverge, as TRL does)."""
    prompt_text = render(tokenizer, prompt, add_generation_prompt=True)
    full_text = render(tokenizer, [*prompt, {"role": "assistant", "content": completion}])
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    start = 0
    for a, b in zip(prompt_ids, full_ids, strict=False):
        if a != b:
            break
        start += 1
    return list(full_ids), start
