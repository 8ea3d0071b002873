"""The span student: a structured-extraction task whose answer is a label and the query's
own words, e.g. ``{"intent": "PlayMusic", "slots": {"artist": "Miles Davis"}}``.

Such a task is *span-shaped* (`span_shape`): every teacher answer is a JSON object with one
string field from a closed set (the label) and one object of strings found verbatim in the
user's message (the spans). The student answers it without generating a token:

- the label by the vote student's nearest-neighbour vote (`trainer/vote.py`) over the
  sentence vectors;
- the spans by a token tagger: a small MLP over each token's encoder state (with its
  neighbours', the sentence vector and the word's casing), BIO tags decoded by Viterbi under
  the BIO rules and the slots seen with the voted label; a span is the query's text between
  its tokens' character offsets, so a value is always words of the request.

Confidence = the label's vote share x the tagged path's probability. NumPy only: the proxy
serves with this module and the fit's out-of-fold pairs come from it, so both answer alike.

On disk (the run's ``classifier/``): the label vote's files, ``spans.json`` (meta),
``spans.npz`` (the MLP) and the encoder's ``tokenizer.json`` (offsets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.encoder import mean_pool
from trainer.vote import VoteIndex, VoteIndexError, normalise

SPANS_META = "spans.json"
SPANS_WEIGHTS = "spans.npz"
TOKENIZER_FILE = "tokenizer.json"
MAX_TOKENS = 256
SHAPE_SCALE = 0.5
MIN_FOUND_SHARE = 0.8
"""A task is span-shaped when at least this share of its span values occur in the query..."""
MIN_SHAPED_SHARE = 0.95
"""... and at least this share of its answers are objects of the shape."""
OUTSIDE = "O"


@dataclass(frozen=True)
class SpanShape:
    label_key: str
    spans_key: str
    label_first: bool = True
    """Key order of the teacher's answers (the student writes them alike)."""


@dataclass(frozen=True)
class SpanMeta:
    shape: SpanShape
    tags: tuple[str, ...]
    """``O``, then ``B-<slot>`` / ``I-<slot>``."""
    allowed: dict[str, tuple[str, ...]]
    """Slots seen with each label (the decoder tags no other)."""


def parse_answer(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def span_shape(answers: Sequence[str], queries: Sequence[str | None]) -> SpanShape | None:
    """The label and spans fields when (nearly) every answer is such an object (see the
    module docstring), else None. A few malformed answers (a truncated JSON) do not turn the
    student off: the fit skips them."""
    parsed = [(p, q) for a, q in zip(answers, queries, strict=True) if (p := parse_answer(a))]
    if not parsed:
        return None
    keys = list(parsed[0][0])
    shaped = [(p, q) for p, q in parsed if len(p) == 2 and set(p) == set(keys)]
    if len(keys) != 2 or len(shaped) < MIN_SHAPED_SHARE * len(answers):
        return None
    objects = [p for p, _ in shaped]
    strings = [k for k in keys if all(isinstance(p[k], str) for p in objects)]
    maps = [k for k in keys if all(_string_map(p[k]) for p in objects)]
    if len(strings) != 1 or len(maps) != 1:
        return None
    label_key, spans_key = strings[0], maps[0]
    if len({p[label_key] for p in objects}) > max(2, len(objects) // 2):
        return None  # a free-text field, not a label the vote can learn
    values = [
        (str(v).strip().lower(), (q or "").lower())
        for p, q in shaped
        for v in p[spans_key].values()
    ]
    if values and sum(1 for v, q in values if v and v in q) < MIN_FOUND_SHARE * len(values):
        return None
    return SpanShape(label_key, spans_key, label_first=keys[0] == label_key)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


# --- tokens and tags -----------------------------------------------------------------------
def load_tokenizer(path: Path) -> Any:
    """The encoder's fast tokenizer (`tokenizers`, no padding): token offsets in the text."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character span of every token the encoder sees ((0, 0) for [CLS] and [SEP])."""
    return [tuple(o) for o in tokenizer.encode(text).offsets]


def locate(text: str, spans: dict[str, str]) -> list[tuple[int, int, str]] | None:
    """Character spans of each value in `text` (case-insensitive, left to right, each after
    the previous when it can be); None when a value is not in the text."""
    low, found, cursor = text.lower(), [], 0
    for name, value in spans.items():
        needle = value.strip().lower()
        if not needle:
            continue
        at = low.find(needle, cursor)
        if at < 0:
            at = low.find(needle)
        if at < 0:
            return None
        found.append((at, at + len(needle), name))
        cursor = at + len(needle)
    return found


def bio_tags(
    spans: Sequence[tuple[int, int, str]], token_offsets: Sequence[tuple[int, int]]
) -> list[str | None]:
    """A tag per token (None for the special tokens)."""
    tags: list[str | None] = []
    for a, b in token_offsets:
        if a == b:
            tags.append(None)
            continue
        tag = OUTSIDE
        for start, end, name in spans:
            if a >= start and b <= end:
                tag = ("B-" if a == start else "I-") + name
        tags.append(tag)
    return tags


def features(states: np.ndarray, text: str, token_offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per token: its state, its neighbours' (unit length), the sentence vector, the word's
    casing (the encoder is uncased: a capital often marks a name)."""
    unit = normalise(states)
    zero = np.zeros((1, unit.shape[1]), dtype=np.float32)
    prev, nxt = np.concatenate([zero, unit[:-1]]), np.concatenate([unit[1:], zero])
    sentence = np.repeat(mean_pool([states]), len(unit), axis=0)
    shape = np.zeros((len(unit), 4), dtype=np.float32)
    for k, (a, b) in enumerate(token_offsets):
        if a != b:
            word = text[a:b]
            glued = a > 0 and not text[a - 1].isspace()
            shape[k] = (word[:1].isupper(), word.isdigit(), glued, a == 0)
    return np.concatenate([unit, prev, nxt, sentence, shape * SHAPE_SCALE], axis=1)


@dataclass(frozen=True)
class Tagged:
    spans: dict[str, str]
    probability: float


class Tagger:
    """The MLP over token features, and its BIO decoder."""

    def __init__(self, weights: dict[str, np.ndarray], tags: Sequence[str]) -> None:
        self.w1, self.b1 = weights["w1"], weights["b1"]
        self.w2, self.b2 = weights["w2"], weights["b2"]
        self.tags = tuple(tags)
        inside = np.array([t.startswith("I-") for t in self.tags])
        # A tag I-x may only follow B-x or I-x.
        self._trans = np.zeros((len(self.tags), len(self.tags)))
        for j, tag in enumerate(self.tags):
            if inside[j]:
                self._trans[
                    [i for i, t in enumerate(self.tags) if t[2:] != tag[2:] or t == OUTSIDE], j
                ] = -np.inf
        self._start = np.where(inside, -np.inf, 0.0)

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        hidden = np.maximum(feats @ self.w1 + self.b1, 0.0)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def tag(
        self,
        text: str,
        feats: np.ndarray,
        token_offsets: Sequence[tuple[int, int]],
        allowed: Sequence[str],
    ) -> Tagged:
        keep = [k for k, (a, b) in enumerate(token_offsets) if a != b]
        if not keep:
            return Tagged({}, 1.0)
        logp = np.log(np.clip(self.probabilities(feats[keep]), 1e-12, 1.0))
        mask = np.array([t == OUTSIDE or t[2:] in allowed for t in self.tags])
        logp = np.where(mask, logp, -np.inf)
        path = self._viterbi(logp)
        probability = float(np.exp(sum(logp[t, p] for t, p in enumerate(path))))
        return Tagged(self._spans(text, [token_offsets[k] for k in keep], path), probability)

    def _viterbi(self, logp: np.ndarray) -> list[int]:
        score = logp[0] + self._start
        back = []
        for t in range(1, len(logp)):
            cand = score[:, None] + self._trans
            best = cand.argmax(axis=0)
            back.append(best)
            score = cand[best, np.arange(len(self.tags))] + logp[t]
        path = [int(score.argmax())]
        for best in reversed(back):
            path.append(int(best[path[-1]]))
        return path[::-1]

    def _spans(
        self, text: str, token_offsets: Sequence[tuple[int, int]], path: Sequence[int]
    ) -> dict[str, str]:
        found: dict[str, list[int]] = {}
        current: list[int] | None = None
        for (a, b), p in zip(token_offsets, path, strict=True):
            tag = self.tags[p]
            if tag == OUTSIDE:
                current = None
            elif tag.startswith("I-") and current is not None:
                current[1] = b
            elif tag[2:] in found:  # a slot tagged twice keeps its first span
                current = None
            else:
                current = found[tag[2:]] = [a, b]
        return {name: text[a:b] for name, (a, b) in found.items()}


@dataclass(frozen=True)
class SpanAnswer:
    text: str
    """The answer as JSON, in the teacher's key order."""
    label: str
    label_share: float
    confidence: float


class SpanStudent:
    """The label vote and the tagger of one version."""

    def __init__(self, vote: VoteIndex, tagger: Tagger, meta: SpanMeta, tokenizer: Any) -> None:
        self.vote, self.tagger, self.meta, self.tokenizer = vote, tagger, meta, tokenizer

    def answer(self, text: str, states: np.ndarray) -> SpanAnswer | None:
        """None when the encoder saw other tokens than the tokenizer (cannot tag)."""
        token_offsets = offsets(self.tokenizer, text)
        if len(token_offsets) != len(states):
            return None
        ballot = self.vote.vote(mean_pool([states])[0])
        allowed = self.meta.allowed.get(ballot.label, ())
        tagged = self.tagger.tag(
            text, features(states, text, token_offsets), token_offsets, allowed
        )
        shape = self.meta.shape
        pairs = [(shape.label_key, ballot.label), (shape.spans_key, tagged.spans)]
        body = dict(pairs if shape.label_first else pairs[::-1])
        confidence = ballot.share * tagged.probability
        return SpanAnswer(
            json.dumps(body, ensure_ascii=False), ballot.label, ballot.share, confidence
        )

    # --- files ---------------------------------------------------------------------------
    def save(self, directory: Path, tokenizer_file: Path) -> Path:
        self.vote.save(directory)
        np.savez(
            directory / SPANS_WEIGHTS,
            w1=self.tagger.w1, b1=self.tagger.b1, w2=self.tagger.w2, b2=self.tagger.b2,
        )  # fmt: skip
        meta = asdict(self.meta)
        (directory / SPANS_META).write_text(json.dumps(meta, indent=2))
        (directory / TOKENIZER_FILE).write_bytes(tokenizer_file.read_bytes())
        return directory

    @classmethod
    def load(cls, directory: Path) -> SpanStudent:
        vote = VoteIndex.load(directory)
        try:
            raw: dict[str, Any] = json.loads((directory / SPANS_META).read_text())
            with np.load(directory / SPANS_WEIGHTS) as data:
                weights = {k: data[k].astype(np.float32) for k in ("w1", "b1", "w2", "b2")}
            meta = SpanMeta(
                SpanShape(**raw["shape"]), tuple(raw["tags"]),
                {k: tuple(v) for k, v in raw["allowed"].items()},
            )  # fmt: skip
            if not (directory / TOKENIZER_FILE).is_file():
                raise OSError(f"no {TOKENIZER_FILE}")
            tokenizer = load_tokenizer(directory / TOKENIZER_FILE)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise VoteIndexError(f"cannot read the span student in {directory}: {exc}") from exc
        return cls(vote, Tagger(weights, meta.tags), meta, tokenizer)


def is_span_dir(path: Path | str | None) -> bool:
    """True when `path` holds a span student (beside its label vote)."""
    return path is not None and (Path(path) / SPANS_META).is_file()
