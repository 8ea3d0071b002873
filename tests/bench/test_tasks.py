"""The benchmark tasks (bench/tasks/): data, splits, replay teachers, scoring."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.harness.examples import Example
from bench.harness.replay_server import ReplayTeacher, TeacherConfig
from bench.harness.task import Task
from bench.harness.tokens import SimpleTokenizer
from bench.tasks import banking77, clinc150, freeform, snips
from bench.tasks.labels import normalise_label

TOKENIZER = SimpleTokenizer()


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {
        "banking77": banking77.task(),
        "clinc150": clinc150.task(),
        "snips": snips.task(),
        "freeform": freeform.task(),
    }


def _answers(task: Task, examples: list[Example], accuracy: float | None = None) -> list[str]:
    answerer = task.answerer(accuracy, 0, TOKENIZER)
    return ["".join(answerer.choice(ex.text, 0, None, f"0|{ex.text}|0")[0]) for ex in examples]


def _records(task: Task, examples: list[Example], answers: list[str]) -> list[dict[str, object]]:
    out = []
    for ex, answer in zip(examples, answers, strict=True):
        s = task.score(answer, ex)
        out.append({"gold": ex.answer, "predicted": s.predicted, "correct": s.correct,
                    "metrics": s.metrics})  # fmt: skip
    return out


def test_shipped_data_loads_with_its_licence() -> None:
    for folder in (clinc150.DEFAULT_DATA_DIR, snips.DEFAULT_DATA_DIR):
        readme = (folder / "README.md").read_text()
        assert "Licence" in readme and "Cite" in readme and "held-out" in readme
    clinc = clinc150.load_examples()
    assert len(clinc) == 3200 and Counter(ex.label for ex in clinc)[clinc150.OOS] == 200
    assert set(clinc150.load_labels()) == {ex.label for ex in clinc}
    rows = snips.load_examples()
    assert len(rows) == 1750 and set(Counter(ex.label for ex in rows).values()) == {250}
    assert len(freeform.load_examples()) == freeform.POOL


@pytest.mark.parametrize("name", ["banking77", "clinc150", "snips", "freeform"])
def test_split_is_deterministic_disjoint_and_complete(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    a, b, other = task.split(7), task.split(7), task.split(8)
    assert a == b and a != other
    train, val = {ex.text for ex in a.train}, {ex.text for ex in a.validation}
    assert not train & val
    assert len(train) + len(val) == len(a.train) + len(a.validation)  # no text twice
    assert {ex.label for ex in a.validation} == {ex.label for ex in a.train}  # stratified
    assert 0.08 < len(val) / (len(train) + len(val)) < 0.13


@pytest.mark.parametrize(("name", "stated"), [("banking77", 0.92), ("clinc150", 0.90)])
def test_label_teachers_answer_at_their_stated_accuracy(
    tasks: dict[str, Task], name: str, stated: float
) -> None:
    task = tasks[name]
    examples = task.split(0).train[:2500]
    records = _records(task, list(examples), _answers(task, list(examples)))
    assert task.default_accuracy == stated
    assert abs(task.quality(records)["accuracy"] - stated) < 0.02  # type: ignore[operator]
    wrong = [r for r in records if not r["correct"]]
    assert wrong and all(r["predicted"] is not None for r in wrong)  # plausible labels


def test_clinc150_teacher_misses_some_out_of_scope_queries(tasks: dict[str, Task]) -> None:
    task = tasks["clinc150"]
    oos = [ex for ex in task.examples() if ex.label == clinc150.OOS]
    quality = task.quality(_records(task, oos, _answers(task, oos)))
    assert 0.8 < quality["oos_recall"] < 0.97  # type: ignore[operator]


def test_snips_teacher_exact_match_and_slot_f1(tasks: dict[str, Task]) -> None:
    task = tasks["snips"]
    examples = list(task.examples())
    quality = task.quality(_records(task, examples, _answers(task, examples)))
    assert abs(quality["exact_match"] - snips.DEFAULT_ACCURACY) < 0.03  # type: ignore[operator]
    assert quality["slot_f1"] > 0.93 and quality["schema_valid"] == 1.0  # type: ignore[operator]
    low = task.quality(_records(task, examples[:800], _answers(task, examples[:800], 0.5)))
    assert abs(low["exact_match"] - 0.5) < 0.05  # type: ignore[operator]


def test_snips_gold_and_teacher_answers_validate_against_the_schema(
    tasks: dict[str, Task],
) -> None:
    task = tasks["snips"]
    assert isinstance(task, snips.SnipsTask)
    body = task.schema()
    examples = list(task.examples())
    for text in [ex.answer for ex in examples] + _answers(task, examples, 0.0):
        assert snips.parse(text, body) is not None, text
    fmt = task.request_options()["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == body


def test_snips_scoring_by_hand() -> None:
    task = snips.SnipsTask(slots={"PlayMusic": ["artist", "track"], "GetWeather": ["city"]},
                           load=list)  # fmt: skip
    gold = snips.answer_json("PlayMusic", {"track": "hey jude", "artist": "the beatles"})
    ex = Example("play hey jude by the beatles", "PlayMusic", target=gold)
    right = task.score(
        '{"slots": {"artist": "The Beatles ", "track": "hey jude"}, "intent": "PlayMusic"}', ex
    )
    assert right.correct and right.metrics == {"valid": 1.0, "tp": 2.0, "fp": 0.0, "fn": 0.0,
                                               "intent_correct": 1.0}  # fmt: skip
    short = task.score('{"intent": "PlayMusic", "slots": {"track": "hey"}}', ex)
    assert (
        not short.correct and (short.metrics or {})["fp"] == 1 and (short.metrics or {})["fn"] == 2
    )
    for bad in ("not json", '{"intent": "PlayMusic"}', '{"intent": "Dance", "slots": {}}',
                '{"intent": "PlayMusic", "slots": {"mood": "x"}}', "[1, 2]"):  # fmt: skip
        scored = task.score(bad, ex)
        assert scored.predicted is None and not scored.correct
        assert scored.metrics == {
            "valid": 0.0,
            "tp": 0.0,
            "fp": 0.0,
            "fn": 2.0,
            "intent_correct": 0.0,
        }
    records = [{"correct": s.correct, "metrics": s.metrics} for s in (right, short)]
    q = task.quality(records)
    assert q["slot_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert q["exact_match"] == 0.5 and q["schema_valid"] == 1.0 and q["quality"] == q["slot_f1"]
    assert snips.slot_f1(0, 0, 0) is None


def test_label_scoring_and_clinc_out_of_scope_metrics() -> None:
    labels = ["card_arrival", "oos"]
    assert normalise_label(" Card Arrival.\nbecause", labels) == "card_arrival"
    assert normalise_label("`oos`", labels) == "oos"
    assert normalise_label("card arrival and more", labels) is None
    task = clinc150.Clinc150Task("c", labels, clinc150.SYSTEM_PROMPT_HEAD, list)
    cases = [("card_arrival", "oos"), ("card_arrival", "card_arrival"), ("oos", "oos"),
             ("oos", "card_arrival"), ("oos", "oos")]  # (gold, answer)  # fmt: skip
    records = []
    for gold, answer in cases:
        s = task.score(answer, Example("q", gold))
        records.append({"gold": gold, "predicted": s.predicted, "correct": s.correct})
    q = task.quality(records)
    assert q["accuracy"] == pytest.approx(3 / 5) and q["in_scope_accuracy"] == 0.5
    assert q["oos_recall"] == pytest.approx(2 / 3) and q["oos_precision"] == pytest.approx(2 / 3)


def test_freeform_replies_vary_and_no_other_text_matches(tasks: dict[str, Task]) -> None:
    task = tasks["freeform"]
    examples = list(task.examples())[:400]
    answers = _answers(task, examples)
    assert answers == [ex.answer for ex in examples]  # the reference is the teacher's reply
    assert len(set(answers)) == len(answers)
    openings = Counter(a.split(",")[0].split(".")[0] for a in answers)
    assert len(openings) >= 5 and max(openings.values()) < 0.3 * len(answers)
    other = freeform.reply(examples[0].text, sample=1)
    assert other != answers[0]
    scored = task.score(other, examples[0])
    assert not scored.correct and 0.2 < (scored.metrics or {})["token_f1"] < 1.0
    assert task.score(answers[0], examples[0]).correct
    assert freeform.token_f1("a b c", "a b d") == pytest.approx(2 / 3)
    assert freeform.token_f1(None, "a") == 0.0


def test_one_teacher_answers_each_task_by_its_prompt(tasks: dict[str, Task]) -> None:
    teacher = ReplayTeacher(
        TeacherConfig(latency_ms=0.0),
        [t.answerer(None, 0, TOKENIZER) for t in tasks.values()],
        TOKENIZER,
    )
    for name, task in tasks.items():
        ex = task.split(0).train[0]
        body = {"model": "m", "messages": task.messages(ex), "logprobs": True, "top_logprobs": 3}
        completion, _ = teacher.complete(body)
        text = completion.choices[0].text
        assert task.score(text, ex).predicted is not None, (name, text)
        if name == "snips":
            assert json.loads(text)["intent"] == ex.label
        lp = completion.choices[0].logprobs or []
        assert "".join(t["token"] for t in lp) == text and all(
            len(t["top_logprobs"]) == 3 for t in lp
        )
