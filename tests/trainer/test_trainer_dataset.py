"""Dataset selection on hand-built log rows (Parquet snapshots like the log store exports)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from tests.trainer.trainer_rows import T0, RowFactory, SnapshotWriter, build_row
from trainer.config import TrainConfig
from trainer.dataset import NotEnoughData, is_eval, parse_since, select_dataset

LABELS_PROMPT = (
    "Classify the banking query into one of these intents: "
    + ", ".join(f"intent_{k}" for k in range(40))
    + ". Answer with the label only."
)


def cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = {"min_rows": 2, "min_eval_rows": 1, "eval_fraction": 0.3}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def ids(rows: list) -> set[str]:
    return {r.id for r in rows}


def test_light_modules_do_not_import_torch() -> None:
    # The proxy imports these; torch/transformers must stay out of its process.
    modules = [
        "trainer.config",
        "trainer.dataset",
        "trainer.agreement",
        "trainer.task",
        "trainer.evaluate",
        "trainer.compare",
        "trainer.backends",
        "trainer.run",
        "proxy.commands.train",
        "trainer.align",
        "trainer.chat",
        "trainer.runfiles",
    ]
    code = (
        f"import sys, {', '.join(modules)}; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; "
        "sys.exit(str(heavy) if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr or done.stdout


def test_keeps_successful_teacher_answers_and_counts(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(30)]
    sel = select_dataset(snapshot(rows), cfg())
    assert sel.counts["total"] == 30 and sel.counts["selected"] == 30
    assert len(sel.train) + len(sel.eval) + len(sel.calibration) == 30
    assert ids(sel.train).isdisjoint(ids(sel.eval))
    assert ids(sel.calibration).isdisjoint(ids(sel.train) | ids(sel.eval))
    manifest = sel.manifest()
    assert {m["id"] for m in manifest["train"]} == ids(sel.train)
    assert all(len(m["prompt_hash"]) == 64 for m in manifest["eval"])


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"store": False}, "store_false"),
        ({"teacher_text": None, "route": "student"}, "no_teacher_answer"),
        ({"teacher_text": "   "}, "no_teacher_answer"),
        ({"status_code": 502, "error": "teacher down"}, "error"),
        ({"error": "stream broken"}, "error"),
        ({"teacher_finish_reason": "length"}, "finish_reason"),
        ({"teacher_finish_reason": "content_filter"}, "finish_reason"),
        ({"teacher_text": "I'm sorry, but I can't help with that."}, "refusal"),
        ({"teacher_text": "I cannot assist with this request."}, "refusal"),
        (
            {
                "request_json": json.dumps(
                    {
                        "messages": [{"role": "user", "content": "x"}],
                        "tools": [{"type": "function"}],
                    }
                )
            },
            "unsupported_request",
        ),
        (
            {
                "request_json": json.dumps(
                    {
                        "messages": [
                            {
                                "role": "user",
                                "content": [{"type": "image_url", "image_url": {"url": "data:"}}],
                            }
                        ]
                    }
                )
            },
            "unsupported_request",
        ),
        ({"request_json": json.dumps({"prompt": "legacy completions"})}, "unsupported_request"),
    ],
)
def test_each_filter_drops_and_counts(
    snapshot: SnapshotWriter, override: dict, reason: str
) -> None:
    good = [build_row(i) for i in range(20)]
    bad = build_row(99, **override)
    sel = select_dataset(snapshot([*good, bad]), cfg())
    assert "req-00099" not in ids(sel.train) | ids(sel.eval)
    assert sel.counts[reason] == 1
    assert sel.counts["selected"] == 20 and sel.counts["total"] == 21


def test_length_accepted_when_configured(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, teacher_finish_reason="length") for i in range(10)]
    sel = select_dataset(snapshot(rows), cfg(finish_reasons=("stop", "length")))
    assert sel.counts["selected"] == 10


def test_shadow_pairs_count_as_teacher_answers(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, route="student", reason="confident", shadow=True) for i in range(10)]
    sel = select_dataset(snapshot(rows), cfg())
    assert sel.counts["selected"] == 10
    assert all(r.shadow for r in sel.train + sel.eval + sel.calibration)


def test_refusal_patterns_are_configurable(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(10)] + [build_row(50, answer="NOPE: policy")]
    sel = select_dataset(snapshot(rows), cfg(refusal_patterns=(r"^NOPE",)))
    assert sel.counts["refusal"] == 1
    default = select_dataset(snapshot(rows), cfg())
    assert default.counts["refusal"] == 0


def test_dedup_keeps_newest(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(10)]
    old = build_row(100, question="same prompt", answer="old answer", created_at=T0)
    new = build_row(
        101, question="same prompt", answer="new answer", created_at=T0 + timedelta(days=3)
    )
    sel = select_dataset(snapshot([old, *rows, new]), cfg())
    everything = sel.train + sel.eval + sel.calibration
    kept = [r for r in everything if r.prompt_hash == old["prompt_hash"]]
    assert [r.completion for r in kept] == ["new answer"]
    assert sel.counts["duplicate"] == 1


def test_dedup_prefers_a_valid_older_answer_over_a_rejected_newer(
    snapshot: SnapshotWriter,
) -> None:
    rows = [build_row(i) for i in range(10)]
    old = build_row(100, question="same prompt", answer="good", created_at=T0)
    new = build_row(
        101, question="same prompt", answer="x", store=False, created_at=T0 + timedelta(days=3)
    )
    sel = select_dataset(snapshot([old, *rows, new]), cfg())
    everything = sel.train + sel.eval + sel.calibration
    assert [r.completion for r in everything if r.id == "req-00100"] == ["good"]


def test_split_is_a_function_of_the_prompt_hash(snapshot: SnapshotWriter) -> None:
    first = [build_row(i) for i in range(60)]
    sel1 = select_dataset(snapshot(first), cfg())
    # New traffic arrives and the answers of old prompts are refreshed: nothing moves.
    refreshed = [
        build_row(i, id=f"new-{i}", created_at=T0 + timedelta(days=9, minutes=i))
        for i in range(0, 60, 3)
    ]
    more = [build_row(i) for i in range(60, 200)]
    sel2 = select_dataset(snapshot(first + refreshed + more), cfg())
    train1 = {r.prompt_hash for r in sel1.train}
    eval1 = {r.prompt_hash for r in sel1.eval}
    train2 = {r.prompt_hash for r in sel2.train}
    eval2 = {r.prompt_hash for r in sel2.eval}
    assert train1 <= train2 and eval1 <= eval2
    assert train2.isdisjoint(eval2)
    assert eval1 and train1  # the test means something only if both splits are populated
    assert all(is_eval(h, 0.3) for h in eval2) and not any(is_eval(h, 0.3) for h in train2)


def test_eval_fraction_is_roughly_respected(snapshot: SnapshotWriter) -> None:
    sel = select_dataset(snapshot([build_row(i) for i in range(400)]), cfg(eval_fraction=0.1))
    assert 20 <= len(sel.eval) <= 60


def test_eval_cap_does_not_leak_into_train(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(200)]
    full = select_dataset(snapshot(rows), cfg())
    capped = select_dataset(snapshot(rows), cfg(eval_max_rows=5))
    assert len(capped.eval) == 5 and capped.eval_held_back == len(full.eval) - 5
    assert ids(capped.train) == ids(full.train)


def test_max_rows_caps_train_to_the_newest(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(80)]
    full = select_dataset(snapshot(rows), cfg())
    sel = select_dataset(snapshot(rows), cfg(max_rows=20))
    newest_train = sorted(ids(full.train), reverse=True)[:20]
    assert ids(sel.train) == set(newest_train)
    assert sel.counts["over_max_rows"] == len(full.train) - 20
    # The held-out sides are not capped by max_rows: their evidence keeps growing.
    assert ids(sel.eval) == ids(full.eval) and ids(sel.calibration) == ids(full.calibration)


def test_calibration_side_is_held_out_for_good(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(400)]
    sel = select_dataset(snapshot(rows), cfg(eval_fraction=0.1, calibration_fraction=0.2))
    assert 40 < len(sel.calibration) < 120  # about 20 % of 400
    assert ids(sel.calibration).isdisjoint(ids(sel.train) | ids(sel.eval))
    # The same prompt stays on the same side when more traffic arrives.
    more = select_dataset(snapshot(rows + [build_row(i) for i in range(400, 600)]), cfg(
        eval_fraction=0.1, calibration_fraction=0.2))  # fmt: skip
    assert ids(sel.calibration) <= ids(more.calibration)
    assert ids(more.calibration).isdisjoint(ids(more.train))
    assert "calibration" in sel.manifest() and sel.summary()["calibration_rows"] == len(
        sel.calibration)  # fmt: skip
    none = select_dataset(snapshot(rows), cfg(calibration_fraction=0.0))
    assert none.calibration == []


def test_scope_by_model_and_tag(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, tag="intent") for i in range(10)]
    rows += [build_row(i, requested_model="other", tag="intent") for i in range(10, 20)]
    rows += [build_row(i) for i in range(20, 30)]
    by_model = select_dataset(snapshot(rows), cfg(scope_model="gpt-4o-mini"))
    assert by_model.counts["selected"] == 20 and by_model.counts["out_of_scope"] == 10
    by_tag = select_dataset(snapshot(rows), cfg(scope_tag="intent"))
    assert by_tag.counts["selected"] == 20
    both = select_dataset(snapshot(rows), cfg(scope_model="gpt-4o-mini", scope_tag="intent"))
    kept = ids(both.train) | ids(both.eval) | ids(both.calibration)
    assert kept == {f"req-{i:05d}" for i in range(10)}


def test_a_per_task_run_selects_its_task_only(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, task="alpha") for i in range(10)]
    rows += [build_row(i, task="beta") for i in range(10, 25)]
    sel = select_dataset(snapshot(rows), cfg(task="alpha"))
    assert sel.counts["selected"] == 10 and sel.counts["out_of_scope"] == 15
    assert ids(sel.train) | ids(sel.eval) | ids(sel.calibration) == {
        f"req-{i:05d}" for i in range(10)
    }
    assert select_dataset(snapshot(rows), cfg()).counts["selected"] == 25


def test_since(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(30)]
    sel = select_dataset(snapshot(rows), cfg(), since=T0 + timedelta(minutes=20))
    assert sel.counts["selected"] == 10 and sel.counts["before_since"] == 20


def test_parse_since() -> None:
    now = datetime(2025, 5, 10, 12, 0)
    assert parse_since("7d", now=now) == datetime(2025, 5, 3, 12, 0)
    assert parse_since("12h", now=now) == datetime(2025, 5, 10, 0, 0)
    assert parse_since("2025-05-01") == datetime(2025, 5, 1)
    assert parse_since("2025-05-01T10:00:00+02:00") == datetime(2025, 5, 1, 8, 0)
    assert parse_since(None) is None
    with pytest.raises(ValueError, match="since"):
        parse_since("last tuesday")


def test_not_enough_data_is_clear(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(5)] + [build_row(i, store=False) for i in range(5, 9)]
    with pytest.raises(NotEnoughData, match=r"only 5 usable .* at least 50.*store_false.: 4"):
        select_dataset(snapshot(rows), cfg(min_rows=50, max_rows=100))


def test_not_enough_eval_rows(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(10)]
    with pytest.raises(NotEnoughData, match="eval rows"):
        select_dataset(snapshot(rows), cfg(min_eval_rows=9))


def test_missing_snapshot_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        select_dataset(tmp_path / "nope.parquet", cfg())


def test_prompt_pruning_detected_and_applied(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, system=LABELS_PROMPT) for i in range(19)]
    rows.append(build_row(19, system="short other system prompt"))
    pruned = select_dataset(snapshot(rows), cfg(prune_prompt=True))
    prefix = pruned.prompt_prefix
    assert prefix is not None and prefix.pruned and prefix.text == LABELS_PROMPT
    assert len(prefix.sha256) == 64 and prefix.share == pytest.approx(0.95)
    for row in pruned.train + pruned.eval:
        student = pruned.student_messages(row)
        if row.id == "req-00019":
            assert student[0]["content"] == "short other system prompt"
        else:
            assert [m["role"] for m in student] == ["user"]
    unpruned = select_dataset(snapshot(rows), cfg(prune_prompt=False))
    assert unpruned.prompt_prefix is not None and not unpruned.prompt_prefix.pruned
    row = unpruned.train[0]
    assert unpruned.student_messages(row) == list(row.messages)
    assert any("train_prune_prompt" in n for n in unpruned.notes)


def test_no_pruning_below_share_or_length(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i, system=LABELS_PROMPT) for i in range(8)]
    rows += [build_row(i) for i in range(8, 10)]
    assert select_dataset(snapshot(rows), cfg(prune_prompt=True)).prompt_prefix is None
    short = [build_row(i, system="Be brief.") for i in range(10)]
    assert select_dataset(snapshot(short), cfg(prune_prompt=True)).prompt_prefix is None


def test_closed_set_detected(snapshot: SnapshotWriter) -> None:
    labels = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
    rows = [build_row(i, answer=labels[i % 3]) for i in range(30)]
    rows.append(build_row(30, answer=" card_arrival\n"))
    sel = select_dataset(snapshot(rows), cfg())
    assert sel.closed_set == sorted(labels)
    assert select_dataset(snapshot(rows), cfg(closed_set_max=2)).closed_set is None
    assert select_dataset(snapshot(rows), cfg(closed_set_max=0)).closed_set is None


def test_many_labels_seen_once_or_twice_are_a_closed_set(snapshot: SnapshotWriter) -> None:
    # 200 rows of a 151-intent task (CLINC150): about 1.3 rows a label, most seen twice.
    rng = random.Random(7)
    answers = [f"intent_{rng.randrange(151)}" for _ in range(200)]
    sel = select_dataset(snapshot([build_row(i, answer=a) for i, a in enumerate(answers)]), cfg())
    assert sel.closed_set is not None and len(sel.closed_set) > 100
    # Mostly distinct short answers stay free text even with a few repeats.
    mostly_distinct = [build_row(i, answer=f"reply {i if i % 4 else 0}") for i in range(40)]
    assert select_dataset(snapshot(mostly_distinct), cfg()).closed_set is None


def test_free_text_is_not_a_closed_set(snapshot: SnapshotWriter) -> None:
    rows = [build_row(i) for i in range(30)]  # 30 distinct short answers
    assert select_dataset(snapshot(rows), cfg()).closed_set is None
    prose = [build_row(i, answer="a long answer " * 5 + ("x" if i % 2 else "y")) for i in range(30)]
    assert select_dataset(snapshot(prose), cfg()).closed_set is None


def test_soft_labels_parsed(snapshot: SnapshotWriter) -> None:
    top = [{"token": "Paris", "logprob": -0.1}]
    lp = [{"token": "Paris", "logprob": -0.1, "top_logprobs": top}]
    rows = [build_row(i, teacher_logprobs_json=json.dumps(lp)) for i in range(10)]
    rows.append(build_row(10, teacher_logprobs_json=json.dumps({"bad": 1})))
    sel = select_dataset(snapshot(rows), cfg())
    with_lp = [r for r in sel.train + sel.eval + sel.calibration if r.teacher_logprobs]
    assert len(with_lp) == 10
    assert with_lp[0].teacher_logprobs is not None
    assert with_lp[0].teacher_logprobs[0]["token"] == "Paris"


def test_text_parts_are_joined(snapshot: SnapshotWriter) -> None:
    content = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    request = json.dumps({"messages": [{"role": "user", "content": content}]})
    rows = [build_row(i, request_json=request, prompt_hash=f"h{i}") for i in range(10)]
    sel = select_dataset(snapshot(rows), cfg())
    assert sel.train[0].messages[0]["content"] == "part one\npart two"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="finish_reasons"):
        TrainConfig(finish_reasons=("stop", "tool_calls"))
    with pytest.raises(ValueError, match="regex"):
        TrainConfig(refusal_patterns=("([",))
    with pytest.raises(ValueError, match="kd_alpha"):
        TrainConfig(kd_alpha=1.5)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epochs": 1, "epoch": 2})
    c = TrainConfig(epochs=1.5, finish_reasons=("stop", "length"))
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_config_from_settings() -> None:
    from proxy.loop.train_config import train_config_from_settings
    from proxy.settings import Settings

    s = Settings(
        train_finish_reasons="stop, length",
        train_kd_alpha=0.0,
        train_min_rows=7,
        train_refusal_patterns=["^no"],
    )
    c = train_config_from_settings(s, epochs=1.0)
    assert c.finish_reasons == ("stop", "length") and c.kd_alpha == 0.0 and c.min_rows == 7
    assert c.refusal_patterns == ("^no",) and c.epochs == 1.0


def test_row_factory_fixture(make_row: RowFactory) -> None:
    assert make_row(3)["id"] == "req-00003"
