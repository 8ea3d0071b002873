"""Soft-label alignment on SmolLM2's real tokenizer: which teacher positions become targets."""

from __future__ import annotations

import math
from typing import Any

from trainer.align import TokenMapper, align_soft_labels, student_boundaries
from trainer.chat import tokenize_row


def completion_ids(tok: Any, text: str) -> list[int]:
    """The student's completion tokens exactly as training builds them (chat template)."""
    ids, start = tokenize_row(tok, [{"role": "user", "content": "q"}], text)
    return ids[start:]


def teacher_like_student(tok: Any, text: str, alternatives: int = 2) -> list[dict[str, Any]]:
    """Teacher logprobs tokenised like the student, each with a few single-token candidates."""
    content = []
    for token_id in tok.encode(text, add_special_tokens=False):
        token = tok.decode([token_id])
        top = [{"token": token, "logprob": -0.1}]
        top += [
            {"token": alt, "logprob": -3.0 - k}
            for k, alt in enumerate([" the", " a", " and"][:alternatives])
            if alt != token
        ]
        content.append({"token": token, "logprob": -0.1, "top_logprobs": top})
    return content


def test_identical_tokenisation_aligns_every_teacher_position(smol_tokenizer: Any) -> None:
    text = "The capital of France is Paris."
    ids = completion_ids(smol_tokenizer, text)
    teacher = teacher_like_student(smol_tokenizer, text)
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    assert targets.used == len(teacher) and not targets.skipped
    assert targets.positions == list(range(len(teacher)))
    # The chosen token of each position is the student's label there, and a candidate.
    for pos, cands in zip(targets.positions, targets.candidate_ids, strict=True):
        assert ids[pos] in cands
    # The end-of-turn tokens of the chat template have no teacher counterpart.
    assert len(ids) > len(teacher)
    assert smol_tokenizer.decode(ids[len(teacher) :]).startswith("<|im_end|>")


def test_merged_and_split_tokens_are_skipped_as_boundary(smol_tokenizer: Any) -> None:
    text = "The capital of France is Paris."
    ids = completion_ids(smol_tokenizer, text)
    # Teacher merges " capital of" into one token and splits " Paris" into " Par" + "is".
    pieces = ["The", " capital of", " France", " is", " Par", "is", "."]
    assert "".join(pieces) == text
    teacher = [
        {"token": p, "logprob": -0.1, "top_logprobs": [{"token": p, "logprob": -0.1}]}
        for p in pieces
    ]
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    used_text = [smol_tokenizer.decode([ids[p]]) for p in targets.positions]
    assert used_text == ["The", " France", " is", "."]
    # " capital of" spans two student tokens; " Par" ends inside " Paris"; "is" starts inside.
    assert targets.skipped["boundary"] == 3


def test_multi_token_candidate_skips_the_position(smol_tokenizer: Any) -> None:
    text = "Yes, it is."
    ids = completion_ids(smol_tokenizer, text)
    teacher = teacher_like_student(smol_tokenizer, text)
    teacher[0]["top_logprobs"].append({"token": " antidisestablishmentarianism", "logprob": -5})
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    assert targets.skipped == {"multi_token_candidate": 1}
    assert targets.positions == list(range(1, len(teacher)))


def test_text_mismatch_poisons_the_rest(smol_tokenizer: Any) -> None:
    text = "Paris is lovely."
    ids = completion_ids(smol_tokenizer, text)
    teacher = teacher_like_student(smol_tokenizer, "Paris was lovely.")
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    # "Paris" lines up; from " was" on, the teacher's prefix is not the student's any more.
    assert targets.positions == [0]
    assert targets.skipped["text_mismatch"] == len(teacher) - 1


def test_no_top_logprobs_and_duplicate_candidates(smol_tokenizer: Any) -> None:
    text = "Paris."
    ids = completion_ids(smol_tokenizer, text)
    teacher = teacher_like_student(smol_tokenizer, text)
    teacher[1]["top_logprobs"] = []
    teacher[0]["top_logprobs"] = [
        {"token": "Paris", "logprob": math.log(0.5)},
        {"token": "Paris", "logprob": math.log(0.25)},  # a byte-variant spelled the same
        {"token": "London", "logprob": math.log(0.25)},
    ]
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    assert targets.skipped == {"no_top_logprobs": 1}
    assert targets.positions == [0]
    merged = dict(zip(targets.candidate_ids[0], targets.candidate_logprobs[0], strict=True))
    assert len(merged) == 2
    assert math.isclose(merged[ids[0]], math.log(0.75))


def test_token_mismatch_when_same_span_is_another_token(smol_tokenizer: Any) -> None:
    class Remapped(TokenMapper):
        def single_id(self, text: str) -> int | None:
            return 0 if text == "Paris" else super().single_id(text)

    text = "Paris."
    ids = completion_ids(smol_tokenizer, text)
    teacher = teacher_like_student(smol_tokenizer, text)
    targets = align_soft_labels(Remapped(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    assert targets.skipped == {"token_mismatch": 1}


def test_multibyte_characters(smol_tokenizer: Any) -> None:
    text = "Café crème"
    ids = completion_ids(smol_tokenizer, text)
    starts = student_boundaries(smol_tokenizer, ids, text)
    assert starts[0] == 0 and len(text) in starts
    # Every boundary is a real character offset of the text.
    assert all(0 <= offset <= len(text) for offset in starts)
    teacher = teacher_like_student(smol_tokenizer, text)
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    assert targets.used + sum(targets.skipped.values()) == len(teacher)
    assert targets.used >= 1


def test_student_byte_pieces_never_align(smol_tokenizer: Any) -> None:
    text = "日本語の"
    ids = completion_ids(smol_tokenizer, text)
    # The student spells 日 and 語 with two byte-level tokens each, 本 and の with one.
    teacher = [
        {"token": ch, "logprob": -0.1, "top_logprobs": [{"token": ch, "logprob": -0.1}]}
        for ch in text
    ]
    targets = align_soft_labels(TokenMapper(smol_tokenizer), smol_tokenizer, ids, text, teacher)
    used = [smol_tokenizer.decode([ids[p]]) for p in targets.positions]
    assert used == ["本", "の"]
    assert targets.skipped == {"boundary": 2}
