"""Gated promotion of a trained adapter into the running vLLM, rollback, and restore.

A candidate is loaded into vLLM under a NEW name (``distill-<run id>``), must answer, then is
measured against the incumbent on the run's held-out rows through vLLM (and on the optional
regression set). It is promoted only when its agreement with the teacher is at least the
incumbent's plus ``promotion_margin`` and it does not answer fewer regression items
correctly. Promotion is one assignment on `ActiveStudent` (requests in flight finish on the
version they read); the previous version stays loaded for `rollback`. A rejected candidate is
unloaded and stays on disk with the reason in its run.

The active version is stored in `student_versions` and restored at start-up; its adapter
(and the previous one) are re-loaded whenever a vLLM replica comes back (`ensure_loaded`,
`proxy.loop.restore`).

Per task (``loop_scope = task``) a run's candidate competes with its task's incumbent and
is swapped into that task's slot only: other tasks' adapters stay loaded and serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from proxy.logstore.backend import LogStoreUnavailable
from proxy.loop.artifacts import RunArtifacts, load_regression_set
from proxy.loop.calibrator import Calibrator, save_eval_pairs
from proxy.loop.evaluate import (
    EvalResult,
    EvalSettings,
    EvaluationError,
    check_answers,
    evaluate,
    gold_accuracy,
)
from proxy.loop.evaluate_vote import evaluate_vote
from proxy.loop.lora import LoraAdmin, LoraError
from proxy.loop.restore import Restorer
from proxy.loop.store import LoopStore, VersionRow, utcnow
from proxy.loop.versions import adapter_name, describe, vote_name
from proxy.serving.student_state import ActiveStudent, ActiveStudents, StudentVersion
from proxy.serving.vote_student import VoteStudent
from proxy.settings import Settings
from proxy.upstream.students import StudentPool
from trainer.vote import VoteIndexError, is_vote_dir

log = logging.getLogger("distill.loop")


class NothingToRollBack(RuntimeError):
    pass


@dataclass
class Outcome:
    promoted: bool
    reason: str
    version: StudentVersion
    metrics: dict[str, Any] = field(default_factory=dict)


def gate(
    candidate: float, incumbent: float, margin: float, regression: tuple[int, int] | None = None
) -> tuple[bool, str]:
    """(promote?, reason). `regression` is (candidate correct, incumbent correct)."""
    need = incumbent + margin
    if candidate < need:
        return False, (
            f"candidate agreement {candidate:.3f} < incumbent {incumbent:.3f} + margin {margin:.3f}"
        )
    if regression is not None and regression[0] < regression[1]:
        return False, (
            f"candidate loses on the regression set: {regression[0]} < {regression[1]} correct"
        )
    return True, (
        f"candidate agreement {candidate:.3f} >= incumbent {incumbent:.3f} + margin {margin:.3f}"
    )


class Promoter(Restorer):
    def __init__(
        self,
        settings: Settings,
        active: ActiveStudent | ActiveStudents,
        pool: StudentPool,
        lora: LoraAdmin,
        store: LoopStore,
        calibrator: Calibrator,
        vote: VoteStudent | None = None,
    ) -> None:
        self._settings = settings
        self._vote = vote
        self._active = ActiveStudents.of(active)
        self._pool = pool
        self._lora = lora
        self._store = store
        self._calibrator = calibrator
        self._swap_lock = asyncio.Lock()
        self._paths: dict[str, Path] = {}
        """Adapter directory per loaded adapter name (to re-load after a vLLM restart)."""

    def adapter_path(self, name: str) -> Path | None:
        return self._paths.get(name)

    # --- candidate ------------------------------------------------------------------------
    def candidate(
        self, run_id: str, artifacts: RunArtifacts, task: str | None = None
    ) -> StudentVersion:
        vote = artifacts.is_vote
        version = describe(
            vote_name(run_id) if vote else adapter_name(run_id), run_id, vote=vote,
            closed_set=artifacts.closed_set(), prompt_prefix=artifacts.prompt_prefix(),
            calibration_mode=self._settings.calibration_mode,
        )  # fmt: skip
        return replace(version, task=task)

    def _eval_settings(self, version: StudentVersion) -> EvalSettings:
        s = self._settings
        return EvalSettings(
            scorer=version.scorer or s.confidence_scorer,
            top_logprobs=s.student_top_logprobs,
            timeout=s.student_timeout * 4,
            concurrency=s.promotion_eval_concurrency,
        )

    async def _measure(self, version: StudentVersion, rows: list[Any]) -> EvalResult:
        if version.kind == "vote":
            index = self._vote.index(version.name) if self._vote else None
            if self._vote is None or index is None:
                raise EvaluationError(f"the vote index of {version.name} is not loaded")
            timeout = self._settings.encoder_timeout * 4
            return await evaluate_vote(self._vote, index, version, rows, timeout)
        return await evaluate(self._pool, version, rows, self._eval_settings(version))

    async def _load(self, version: StudentVersion, path: Path) -> None:
        """Loads a version where it is served: an index in this process, an adapter in vLLM."""
        if version.kind == "vote":
            if self._vote is None:
                raise LoraError("a vote student needs the encoder (closed_set_student = vote)")
            try:
                await asyncio.to_thread(self._vote.load, version.name, path)
            except VoteIndexError as exc:
                raise LoraError(str(exc)) from exc
        else:
            await self._lora.load(version.name, path)
        self._paths[version.name] = path.resolve()

    async def consider(
        self, run_id: str, artifacts: RunArtifacts, task: str | None = None
    ) -> Outcome:
        """Loads, checks and measures the run's adapter against the incumbent of its task
        (None: of all traffic); promotes it or unloads it.

        Raises `LoraError`, `EvaluationError` or `ArtifactError` when it cannot be judged.
        """
        artifacts.check_adapter()
        candidate = self.candidate(run_id, artifacts, task)
        incumbent = self._active.slot(task).current
        await self._load(candidate, artifacts.model_dir)
        promoted = False
        try:
            outcome = await self._judge(candidate, incumbent, artifacts)
            if outcome.promoted:
                outcome = await self._promote(outcome, incumbent, artifacts)
            promoted = outcome.promoted
        finally:
            if not promoted:
                await self._drop(candidate.name)
        (artifacts.run_dir / "promotion.json").write_text(
            json.dumps(
                {"promoted": outcome.promoted, "reason": outcome.reason, **outcome.metrics},
                indent=2,
                default=str,
            )
        )
        return outcome

    async def _judge(
        self, candidate: StudentVersion, incumbent: StudentVersion, artifacts: RunArtifacts
    ) -> Outcome:
        if candidate.kind != "vote":
            await check_answers(self._pool, candidate, self._settings.student_timeout * 4)
        rows = await asyncio.to_thread(artifacts.eval_rows)
        cand = await self._measure(candidate, rows)
        inc = await self._measure(incumbent, rows)
        # The threshold's evidence: the calibration set, never trained on nor used by the
        # gate (runs without one fall back to the eval split). A vote index holds its
        # calibration rows: their evidence is its leave-one-out votes (`trainer/vote_fit.py`).
        vote = candidate.kind == "vote"
        cal_rows = [] if vote else await asyncio.to_thread(artifacts.calibration_rows)
        cal = await self._measure(candidate, cal_rows) if cal_rows else cand
        split = "calibration" if cal_rows or vote else "eval"
        pairs = [] if vote else cal.pairs()
        save_eval_pairs(artifacts.run_dir, pairs, split, cal_rows or rows, cal.items)
        metrics: dict[str, Any] = {
            "candidate": cand.summary(),
            "incumbent": inc.summary(),
            "calibration_set": cal.summary() if cal_rows else None,
            # Gold rows are held out first (`gold_holdout_fraction`): both splits pooled.
            "gold": gold_accuracy([*rows, *cal_rows], [*cand.items, *cal.items]),
            "margin": self._margin(candidate, incumbent),
            "trainer_report": artifacts.trainer_summary(),
        }
        metrics["weak_spots"] = await self._weak_spots(candidate)
        regression = await self._regression(candidate, incumbent, metrics)
        ok, reason = gate(
            cand.agreement, inc.agreement, self._margin(candidate, incumbent), regression
        )
        log.info("run %s: %s", candidate.version, reason)
        return Outcome(ok, reason, candidate, metrics)

    def _margin(self, candidate: StudentVersion, incumbent: StudentVersion) -> float:
        """A vote index refitted over a vote incumbent holds the incumbent's rows and newer
        ones: a tie on a small eval split is noise, not a regression, so it only has to be
        as good. Everything else must beat the incumbent by `promotion_margin`."""
        if candidate.kind == incumbent.kind == "vote":
            return min(0.0, self._settings.promotion_margin)
        return self._settings.promotion_margin

    async def _weak_spots(self, candidate: StudentVersion) -> dict[str, Any]:
        """For the run report: the traffic so far per label (closed-set task) or per tag."""
        by = "label" if candidate.closed_set else "tag"
        try:
            return await self._store.weak_spots(by)
        except (duckdb.Error, LogStoreUnavailable) as exc:
            # Informational: an unreadable log must not fail the run.
            return {"by": by, "error": f"{type(exc).__name__}: {exc}"}

    async def _regression(
        self, candidate: StudentVersion, incumbent: StudentVersion, metrics: dict[str, Any]
    ) -> tuple[int, int] | None:
        path = self._settings.regression_set
        if path is None:
            return None
        rows = await asyncio.to_thread(load_regression_set, path)
        cand = await self._measure(candidate, rows)
        inc = await self._measure(incumbent, rows)
        metrics["regression"] = {"candidate": cand.summary(), "incumbent": inc.summary()}
        return cand.agreed, inc.agreed

    async def _promote(
        self, outcome: Outcome, incumbent: StudentVersion, artifacts: RunArtifacts
    ) -> Outcome:
        candidate = outcome.version
        slot = self._active.slot(candidate.task)
        if self._calibrator.enabled:
            calibration = await self._calibrator.calibrate(candidate)
            candidate = replace(candidate, threshold=calibration.threshold)
            outcome.metrics["calibration"] = calibration.to_dict()
            if candidate.threshold is None and slot.current.threshold is not None:
                # Swapping now would stop all serving until the candidate's own pairs come
                # in; the next run, with a larger calibration split, tries again.
                reason = (
                    f"{outcome.reason}, but it is not calibrated yet "
                    f"({calibration.status}) while the incumbent serves: kept the incumbent"
                )
                return Outcome(False, reason, candidate, outcome.metrics)
        async with self._swap_lock:
            live = slot.current
            if (live.name, live.version) != (incumbent.name, incumbent.version):
                return Outcome(
                    False,
                    "the serving version changed during evaluation; "
                    "compared against a stale incumbent",
                    candidate,
                    outcome.metrics,
                )
            stale = slot.previous
            await self._ensure_row(incumbent)
            row = self._row(candidate, artifacts.model_dir)
            await self._store.save_version(
                replace(row, calibration=outcome.metrics.get("calibration"))
            )
            await self._store.activate(candidate.name)
            self._active.put(candidate.task, candidate)
        log.info(
            "promoted %s (run %s, task %s) over %s; threshold %s",
            candidate.name,
            candidate.version,
            candidate.task or "all",
            incumbent.name,
            candidate.threshold,
        )
        if (
            stale is not None
            and stale.version != "base"
            and stale.name not in (candidate.name, incumbent.name)
            and not self._active.in_use(stale.name)  # another task's slot still holds it
        ):
            await self._drop(stale.name)
        return replace(outcome, version=candidate)

    def _row(self, version: StudentVersion, adapter: Path | None) -> VersionRow:
        return VersionRow(
            name=version.name, run_id=None if version.version == "base" else version.version,
            adapter_path=str(adapter.resolve()) if adapter else None, activated_at=None,
            active=False, threshold=version.threshold, calibration=None,
            closed_set=version.closed_set, prompt_prefix=version.prompt_prefix,
            task=version.task,
        )  # fmt: skip

    async def _ensure_row(self, version: StudentVersion) -> None:
        """The incumbent gets a row (with an activation time) so it can be rolled back to.
        A task's base model has none (its name is one row for all): a task with no
        active row serves the base model."""
        if version.task is not None and version.version == "base":
            return
        if not version.name or await self._store.get_version(version.name) is not None:
            return
        row = self._row(version, self._paths.get(version.name))
        await self._store.save_version(replace(row, activated_at=utcnow(), active=True))

    async def _drop(self, name: str) -> None:
        path = self._paths.pop(name, None)
        if self._vote is not None and (is_vote_dir(path) or name in self._vote.loaded()):
            self._vote.unload(name)
            return
        await self._lora.unload(name)

    # --- rollback ---------------------------------------------------------------------------
    async def rollback(self, task: str | None = None) -> tuple[StudentVersion, StudentVersion]:
        """Serves the previous version of `task` (None: of the main slot) again; returns
        (now serving, rolled back)."""
        async with self._swap_lock:
            if task is None:
                task = self._active.main_task
            elif not self._active.has_slot(task):
                raise NothingToRollBack(f"task {task!r} has no student version of its own")
            slot = self._active.slot(task)
            previous = slot.previous
            if previous is None:
                raise NothingToRollBack("there is no previous student version to roll back to")
            path = self._paths.get(previous.name)
            if path is not None:
                await self._load(previous, path)  # no-op when still loaded
            current = slot.current
            await self._ensure_row(current)
            await self._ensure_row(previous)
            await self._activate_previous(task, previous)
            self._active.put(task, previous)
        log.warning("rolled back from %s to %s (task %s)", current.name, previous.name, task)
        return previous, current

    async def _activate_previous(self, task: str | None, previous: StudentVersion) -> None:
        """A task rolling back to a version that is not its own (the base model, or the
        version for all traffic it followed) keeps no active row."""
        row = None if previous.version == "base" else await self._store.get_version(previous.name)
        if task is not None and (row is None or row.task != task):
            await self._store.deactivate_task(task)
        else:
            await self._store.activate(previous.name)
