"""A transfer queue that survives a restart: ``app_home()/transfers.json``.

Each job names its node (a copy, so that editing the node list later does not change a queued
job), the study or series, and the method. A job found ``running`` when the file is loaded was
interrupted (the program quit or crashed): it goes back to ``queued`` and :meth:`run_pending`
resumes it, and :func:`viewer.net.retrieve.retrieve` skips the instances already present.
The file is rewritten atomically (temporary file + rename) after every change.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from viewer.config import app_home, write_text
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node, Tls
from viewer.net.retrieve import IsPresent, RetrieveProgress, retrieve
from viewer.net.scp import OnInstance

State = Literal["queued", "running", "done", "failed", "cancelled"]


@dataclass(slots=True)
class TransferJob:
    node: Node
    study_instance_uid: str
    series_instance_uid: str = ""
    method: Literal["move", "get"] = "move"
    state: State = "queued"
    completed: int = 0
    failed: int = 0
    warning: int = 0
    skipped: int = 0
    message: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["node"] = asdict(self.node)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransferJob:
        raw = dict(data["node"])
        raw["tls"] = Tls(**raw.get("tls", {}))
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["node"] = Node(**raw)
        return cls(**fields)


class TransferQueue:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_home() / "transfers.json"
        self._lock = threading.Lock()
        #: Why the saved queue could not be read, if it could not.
        self.problem = ""
        self._jobs: list[TransferJob] = self._load()

    def _load(self) -> list[TransferJob]:
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            jobs = [TransferJob.from_json(j) for j in raw.get("jobs", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # keep the unreadable file for inspection and start empty rather than crash
            broken = self.path.with_suffix(".broken.json")
            self.path.replace(broken)
            self.problem = f"{self.path}: unreadable transfer queue ({exc}); kept as {broken}"
            return []
        for job in jobs:
            if job.state == "running":
                job.state = "queued"
                job.message = "interrupted; resuming"
        return jobs

    def _save(self) -> None:
        text = json.dumps({"jobs": [j.to_json() for j in self._jobs]}, indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, text)

    def add(
        self,
        node: Node,
        study_instance_uid: str,
        series_instance_uid: str = "",
        method: Literal["move", "get"] | None = None,
    ) -> TransferJob:
        job = TransferJob(
            node, study_instance_uid, series_instance_uid, method or node.retrieve_method
        )
        with self._lock:
            self._jobs.append(job)
            self._save()
        return job

    def jobs(self) -> list[TransferJob]:
        with self._lock:
            return list(self._jobs)

    def pending(self) -> list[TransferJob]:
        return [j for j in self.jobs() if j.state == "queued"]

    def update(self, job: TransferJob) -> None:
        with self._lock:
            self._save()

    def remove_finished(self) -> None:
        with self._lock:
            self._jobs = [j for j in self._jobs if j.state in ("queued", "running")]
            self._save()

    def run_job(
        self,
        job: TransferJob,
        local: LocalSettings,
        *,
        on_instance: OnInstance,
        is_present: IsPresent | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[TransferJob, RetrieveProgress], None] | None = None,
    ) -> TransferJob:
        """Run one job to its end, recording its state at each step."""
        job.state = "running"
        job.message = ""
        self.update(job)

        def report(p: RetrieveProgress) -> None:
            if progress is not None:
                progress(job, p)

        try:
            result = retrieve(
                job.node,
                local,
                job.study_instance_uid,
                job.series_instance_uid or None,
                method=job.method,
                on_instance=on_instance,
                is_present=is_present,
                cancel=cancel,
                progress=report,
            )
        except NetError as exc:
            job.state = "failed"
            job.message = exc.message
        else:
            job.completed, job.failed, job.warning = (
                result.completed,
                result.failed,
                result.warning,
            )
            job.skipped = result.skipped
            if result.cancelled:
                job.state, job.message = "cancelled", "cancelled"
            elif result.failed:
                job.state = "failed"
                job.message = f"{result.failed} instance(s) failed"
            else:
                job.state = "done"
        self.update(job)
        return job

    def run_pending(
        self,
        local: LocalSettings,
        *,
        on_instance: OnInstance,
        is_present: IsPresent | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[TransferJob, RetrieveProgress], None] | None = None,
    ) -> list[TransferJob]:
        """Run every queued job in order (one association at a time)."""
        ran = []
        for job in self.pending():
            if cancel is not None and cancel.is_set():
                break
            ran.append(
                self.run_job(
                    job,
                    local,
                    on_instance=on_instance,
                    is_present=is_present,
                    cancel=cancel,
                    progress=progress,
                )
            )
        return ran

    def retry(self, job: TransferJob) -> None:
        """Put a failed or cancelled job back in the queue."""
        job.state = "queued"
        job.message = ""
        self.update(job)
