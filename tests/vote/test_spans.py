"""The span student's pieces on synthetic states: which tasks are span-shaped (and get it),
how teacher answers become BIO tags, how the decoder keeps to the BIO rules and the label's
slots, that a saved student answers the same after loading, and how the encoder is asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxy.settings import Settings
from proxy.student.encoder import encoder_tokenizer
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection
from trainer.encoder import mean_pool, parse_states, pooling_body, pooling_url
from trainer.rows import TrainRow
from trainer.run import _encoder_student, _shape
from trainer.spans import (
    OUTSIDE,
    SpanMeta,
    SpanShape,
    SpanStudent,
    Tagger,
    bio_tags,
    is_span_dir,
    load_tokenizer,
    locate,
    offsets,
    span_shape,
)
from trainer.vote import VoteIndex

QUERIES = ["play jazz by Miles Davis", "add this song to my party mix", "play some Adele"]
ANSWERS = [
    '{"intent": "PlayMusic", "slots": {"genre": "jazz", "artist": "Miles Davis"}}',
    '{"intent": "AddToPlaylist", "slots": {"music_item": "song", "playlist": "party mix"}}',
    '{"intent": "PlayMusic", "slots": {"artist": "Adele"}}',
]


def test_label_and_query_words_make_a_span_shaped_task() -> None:
    assert span_shape(ANSWERS, QUERIES) == SpanShape("intent", "slots", label_first=True)
    flipped = ['{"slots": {"artist": "Adele"}, "intent": "PlayMusic"}']
    assert span_shape(flipped, ["play some Adele"]) == SpanShape("intent", "slots", False)


@pytest.mark.parametrize(
    "answers",
    [
        ["PlayMusic", "AddToPlaylist", "PlayMusic"],  # labels, not JSON: the vote student's
        [a.replace('"intent": ', '"n": 3, "intent": ') for a in ANSWERS],  # a third field
        ['{"intent": "PlayMusic", "slots": {"artist": "Nina Simone"}}'] * 3,  # not in queries
        ['{"intent": "PlayMusic", "slots": {"year": 1999}}'] * 3,  # a value that is no string
    ],
)
def test_other_answers_are_not_span_shaped(answers: list[str]) -> None:
    assert span_shape(answers, QUERIES) is None


def test_values_are_located_left_to_right_without_case() -> None:
    text = "play the song The Song"
    assert locate(text, {"music_item": "song", "track": "the song"}) == [
        (9, 13, "music_item"),
        (14, 22, "track"),
    ]
    assert locate(text, {"artist": "Adele"}) is None


def test_tags_mark_the_first_token_of_a_value_b_and_the_rest_i() -> None:
    token_offsets = [(0, 0), (0, 4), (5, 9), (10, 12), (13, 18), (19, 24), (0, 0)]
    spans = locate("play jazz by Miles Davis", {"genre": "jazz", "artist": "Miles Davis"})
    assert spans is not None
    assert bio_tags(spans, token_offsets) == [
        None, OUTSIDE, "B-genre", OUTSIDE, "B-artist", "I-artist", None,
    ]  # fmt: skip


TAGS = (OUTSIDE, "B-artist", "I-artist", "B-genre")


def _tagger(logits: np.ndarray) -> Tagger:
    """A tagger whose MLP returns `logits` row by row: identity features, identity layers."""
    n, tags = logits.shape
    weights = {
        "w1": np.eye(n, dtype=np.float32), "b1": np.zeros(n, dtype=np.float32),
        "w2": logits.astype(np.float32), "b2": np.zeros(tags, dtype=np.float32),
    }  # fmt: skip
    return Tagger(weights, TAGS)


def test_the_decoder_never_starts_a_value_inside() -> None:
    # Token 2 prefers I-artist, but after O an I- tag is not allowed: B-artist is best.
    logits = np.array([[5, 0, 0, 0], [5, 0, 0, 0], [0, 2, 4, 0]], dtype=np.float32)
    text, token_offsets = "play some Adele", [(0, 4), (5, 9), (10, 15)]
    tagged = _tagger(logits).tag(text, np.eye(3), token_offsets, ["artist", "genre"])
    assert tagged.spans == {"artist": "Adele"}
    assert 0 < tagged.probability < 1


def test_the_decoder_tags_only_slots_of_the_label() -> None:
    logits = np.array([[0, 0, 0, 6], [6, 0, 0, 0]], dtype=np.float32)
    text, token_offsets = "jazz please", [(0, 4), (5, 11)]
    assert _tagger(logits).tag(text, np.eye(2), token_offsets, ["genre"]).spans == {"genre": "jazz"}
    assert _tagger(logits).tag(text, np.eye(2), token_offsets, ["artist"]).spans == {}


def test_a_saved_span_student_answers_the_same_after_loading(tmp_path: Path) -> None:
    tokenizer_file = encoder_tokenizer(Settings())
    if tokenizer_file is None:
        pytest.skip("the encoder directory is not extracted (make setup does it)")
    tokenizer = load_tokenizer(tokenizer_file)
    text = "play some Adele"
    n = len(offsets(tokenizer, text))
    rng = np.random.default_rng(0)
    states = rng.normal(size=(n, 8)).astype(np.float32)
    vote = VoteIndex.fit(
        rng.normal(size=(2, 8)), ["PlayMusic", "AddToPlaylist"], ["AddToPlaylist", "PlayMusic"],
        k=2, power=1.0, encoder="minilm",
    )  # fmt: skip
    feats = 8 * 4 + 4
    weights = {
        "w1": rng.normal(size=(feats, 16)).astype(np.float32),
        "b1": np.zeros(16, dtype=np.float32),
        "w2": rng.normal(size=(16, len(TAGS))).astype(np.float32),
        "b2": np.zeros(len(TAGS), dtype=np.float32),
    }
    meta = SpanMeta(
        SpanShape("intent", "slots"), TAGS,
        {"PlayMusic": ("artist", "genre"), "AddToPlaylist": ()},
    )  # fmt: skip
    student = SpanStudent(vote, Tagger(weights, TAGS), meta, tokenizer)
    student.save(tmp_path / "classifier", tokenizer_file)
    assert is_span_dir(tmp_path / "classifier")
    loaded = SpanStudent.load(tmp_path / "classifier")
    before, after = student.answer(text, states), loaded.answer(text, states)
    assert before is not None and after is not None
    assert after.text == before.text
    assert after.confidence == pytest.approx(before.confidence, rel=1e-3)
    body = json.loads(after.text)
    assert list(body) == ["intent", "slots"] and body["intent"] in ("PlayMusic", "AddToPlaylist")
    for value in body["slots"].values():
        assert value in text  # a span is always the request's own words
    assert student.answer(text, states[:-1]) is None  # the encoder saw other tokens


def test_the_encoder_is_asked_for_raw_token_states_at_the_server_root() -> None:
    assert pooling_url("http://enc:8001/v1") == "http://enc:8001/pooling"
    assert pooling_url("http://enc:8001/") == "http://enc:8001/pooling"
    assert pooling_body("minilm", ["a"]) == {
        "model": "minilm", "input": ["a"], "use_activation": False,
    }  # fmt: skip


def test_sentence_vectors_are_the_unit_mean_of_the_token_states() -> None:
    second, first = {"index": 1, "data": [[3.0, 0.0]]}, {"index": 0, "data": [[1, 1], [1, 3]]}
    payload = {"data": [second, first]}
    states = parse_states(payload)
    assert [s.shape for s in states] == [(2, 2), (1, 2)]  # back in input order
    # Means (1, 2) and (3, 0), scaled to unit length.
    expected = [[1 / 5**0.5, 2 / 5**0.5], [1.0, 0.0]]
    np.testing.assert_allclose(mean_pool(states), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "payload",
    [{"data": [{"index": 0, "data": [0.1, 0.2]}]}, {"data": [{"index": 0}]}, {"error": "x"}],
)
def test_a_sentence_pooler_or_a_broken_payload_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_states(payload)


def _selection(answers: list[str], queries: list[str]) -> DatasetSelection:
    rows = [
        TrainRow(f"r{i}", f"{i:08x}", None, ({"role": "user", "content": q},), a, None, False)
        for i, (a, q) in enumerate(zip(answers, queries, strict=True))
    ]
    return DatasetSelection(train=rows, eval=[], counts={})


def test_a_run_picks_the_span_student_for_a_span_shaped_task_only() -> None:
    selection = _selection(ANSWERS, QUERIES)
    assert _encoder_student(selection, TrainConfig(), _shape(selection)) == "spans"
    assert (
        _encoder_student(selection, TrainConfig(extraction_student="lora"), _shape(selection))
        is None
    )
    free = _selection(["Sure, here it is.", "I added it.", "Playing now."], QUERIES)
    assert _encoder_student(free, TrainConfig(), _shape(free)) is None
    labels = _selection(["a", "b", "a"], QUERIES)
    labels.closed_set = ["a", "b"]
    assert _encoder_student(labels, TrainConfig(), _shape(labels)) == "vote"


def test_a_few_malformed_answers_keep_the_task_span_shaped() -> None:
    answers = [ANSWERS[i % 3] for i in range(40)]
    queries = [QUERIES[i % 3] for i in range(40)]
    answers[5] = '{"intent": "PlayMusic", "slots": {"art'  # a truncated teacher answer
    assert span_shape(answers, queries) == SpanShape("intent", "slots")
    answers[:4] = ["not json"] * 4  # 5 of 40 malformed: no longer nearly every answer
    assert span_shape(answers, queries) is None


def test_a_free_text_field_is_no_label() -> None:
    answers = [
        json.dumps({"summary": f"the user wants song {i}", "slots": {"n": str(i)}})
        for i in range(10)
    ]
    assert span_shape(answers, [f"play song {i}" for i in range(10)]) is None
