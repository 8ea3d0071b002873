"""Serving what `student_versions` says after a restart, and keeping it loaded.

`Restorer` is the `Promoter`'s half that reads the stored versions back: the version for
all traffic (rows with no task) into the default slot and, per task, the task's active
row (none: the base model) with the one it would roll back to. Every slot's current and
previous versions stay loaded: vote indexes in this process, adapters on every vLLM
replica (`ensure_loaded` before a restarted embedded vLLM takes traffic,
`reload_missing` for external replicas).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy.loop.lora import LoraAdmin, LoraError
from proxy.loop.store import LoopStore, VersionRow
from proxy.loop.versions import describe
from proxy.serving.student_state import ActiveStudents, StudentVersion
from proxy.settings import Settings
from proxy.upstream.students import StudentPool
from trainer.vote import is_vote_dir

log = logging.getLogger("distill.loop")


class Restorer:
    """Needs the `Promoter`'s settings, slots, store, LoRA admin, pool and adapter paths."""

    _settings: Settings
    _active: ActiveStudents
    _store: LoopStore
    _lora: LoraAdmin
    _pool: StudentPool
    _paths: dict[str, Path]

    async def _load(self, version: StudentVersion, path: Path) -> None:
        raise NotImplementedError

    def version_from_row(self, row: VersionRow) -> StudentVersion:
        version = describe(
            row.name, row.run_id, vote=is_vote_dir(row.adapter_path), closed_set=row.closed_set,
            prompt_prefix=row.prompt_prefix, calibration_mode=self._settings.calibration_mode,
            threshold=row.threshold,
        )  # fmt: skip
        return replace(version, task=row.task)

    def _remember(self, *rows: VersionRow | None) -> None:
        for r in rows:
            if r is not None and r.adapter_path:
                self._paths[r.name] = Path(r.adapter_path)

    async def restore(self) -> StudentVersion | None:
        """Serves the versions stored as active (after a server restart); returns the main
        slot's, None when nothing was stored."""
        row, previous = await self._store.active_and_previous()
        if row is not None:
            self._remember(row, previous)
            self._active.set_default(self.version_from_row(row))
            self._active.default.previous = self.version_from_row(previous) if previous else None
            log.info("restored student version %s (%s)", row.name, row.run_id or "base")
        tasks = await self._store.version_tasks() if self._active.per_task else []
        for task in tasks:  # newest activation last: it becomes the main slot
            await self._restore_task(task)
        followed = await self._follow_thresholds(tasks)
        if row is None and not tasks and not followed:
            return None
        await self.ensure_loaded()
        return self._active.current

    async def _restore_task(self, task: str) -> None:
        row, previous = await self._store.active_and_previous(task)
        base = replace(self._active.default.current, task=task)
        slot = self._active.slot(task)
        slot.own = True
        if row is not None:
            self._remember(row, previous)
            slot.current = self.version_from_row(row)
            slot.previous = self.version_from_row(previous) if previous else base
        else:  # rolled back to the base model: it would roll forward to its newest row
            last = await self._store.last_activated(task)
            self._remember(last)
            slot.current = base
            slot.previous = self.version_from_row(last) if last else None
        self._active.make_main(task)
        log.info("restored task %s: student version %s", task, slot.current.version)

    async def _followed(self, own: list[str]) -> dict[str, float | None]:
        """The stored thresholds of tasks that follow the default slot's version now (a task
        with versions of its own, or a threshold of another version, is not among them)."""
        if not self._active.per_task:
            return {}
        default = self._active.default.current.name
        stored = await self._store.task_thresholds()
        return {
            task: threshold
            for task, (name, threshold) in stored.items()
            if name == default and task not in own
        }

    async def _follow_thresholds(self, own: list[str]) -> bool:
        """Each following task's own threshold, as the leader calibrated it on the task's
        pairs (else a replica would serve it at the threshold for all traffic)."""
        followed = await self._followed(own)
        for task, threshold in followed.items():
            slot = self._active.slot(task)
            if not slot.own:
                slot.update(replace(self._active.default.current, task=task, threshold=threshold))
        return bool(followed)

    async def out_of_date(self) -> bool:
        """Whether the stored active versions differ from those served here (a follower
        of a shared log checks this; the leader changed them)."""
        row, _ = await self._store.active_and_previous()
        if row is not None and self.version_from_row(row) != self._active.default.current:
            return True
        if not self._active.per_task:
            return False
        own = await self._store.version_tasks()
        for task in own:
            row, _ = await self._store.active_and_previous(task)
            serving = self._active.for_task(task).current
            if row is None and serving.version != "base":
                return True
            if row is not None and self.version_from_row(row) != serving:
                return True
        return any(
            self._active.for_task(task).current.threshold != threshold
            for task, threshold in (await self._followed(own)).items()
        )

    def _versions(self) -> list[StudentVersion]:
        """Every slot's current and previous version, each name once."""
        seen: dict[str, StudentVersion] = {}
        for _, slot in self._active.slots():
            for version in (slot.current, slot.previous):
                if version is not None and version.name not in seen:
                    seen[version.name] = version
        return list(seen.values())

    def _wanted(self) -> list[tuple[str, Path]]:
        """The adapters vLLM must hold: every slot's current and previous LoRA versions."""
        return [
            (v.name, self._paths[v.name])
            for v in self._versions()
            if v.kind != "vote" and v.name in self._paths
        ]

    async def _load_votes(self) -> None:
        for version in self._versions():
            path = self._paths.get(version.name)
            if version.kind != "vote" or path is None:
                continue
            try:
                await self._load(version, path)
            except LoraError as exc:
                log.error("could not restore vote index %s: %s", version.name, exc)

    async def ensure_loaded(self) -> None:
        """Loads every slot's current and previous versions: vote indexes here, adapters on
        every replica (idempotent). The embedded supervisor calls it before a (re)started
        vLLM takes traffic."""
        await self._load_votes()
        for url in self._lora.replicas():
            for name, path in self._wanted():
                try:
                    await self._lora.load_on(url, name, path)
                except LoraError as exc:
                    log.error("could not restore adapter %s: %s", name, exc)

    async def reload_missing(self) -> None:
        """For external replicas: re-loads adapters a replica no longer lists (it restarted)."""
        wanted = self._wanted()
        for endpoint in self._pool.endpoints:
            if not endpoint.ready or not endpoint.models:
                continue
            for name, path in wanted:
                if name in endpoint.models:
                    continue
                await self._reload(endpoint, name, path)

    async def _reload(self, endpoint: Any, name: str, path: Path) -> None:
        try:
            if await self._lora.load_on(endpoint.url, name, path):
                log.warning(
                    "replica %s had lost adapter %s (restarted?); re-loaded it",
                    endpoint.url,
                    name,
                )
        except LoraError as exc:
            log.error("could not re-load adapter %s: %s", name, exc)
            return
        # Until the next probe, which will list it (a probe older than the load did not).
        endpoint.models.append(name)
