"""The application-wide network service: our storage SCP wired to the store, and the settings.

One :class:`NetworkService` per application (STYLE.md, threads rule 4). It owns the storage SCP
(:class:`viewer.net.scp.StorageScp`), started at launch when the settings say so and stopped on
quit. An instance pushed to our SCP (by a modality, or by a PACS for our C-MOVE) goes to a
:class:`viewer.store.Receiver`: durable in the store's spool before the sender hears success,
then indexed in batches by the store's atomic import; a C-GET sub-operation goes to the same
receiver (:meth:`receive_instance`). The service then tells the GUI thread which study grew,
through a queued signal, so that the browser refreshes live. A retrieve ends only when what it
received is indexed (:meth:`wait_received`).

The net layer knows nothing of the store (STYLE.md, "Which way the imports run"): this module is
where the two meet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

from viewer.net.nodes import ConfigError, LocalSettings, NetConfig, load_config, save_config
from viewer.net.scp import (
    STATUS_OUT_OF_RESOURCES,
    StorageScp,
    valid_uid,
)
from viewer.net.transfers import TransferJob, TransferQueue
from viewer.store import Receiver, Store, StoreError

log = logging.getLogger(__name__)


class NetworkService(QObject):
    """Settings, the storage SCP and the store import for everything received.

    Signals (always delivered in the GUI thread):

    - ``study_received(str)``: a Study Instance UID that gained instances (once per burst).
    - ``scp_state_changed(bool, str)``: the SCP runs (True) or not, and why in words.
    - ``config_changed()``: the settings or nodes were saved.
    """

    study_received = Signal(str)
    scp_state_changed = Signal(bool, str)
    config_changed = Signal()
    _received = Signal()  # from pynetdicom's threads, queued to _on_received

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        config_path: Path | None = None,
        store_root: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.config_path = config_path
        self.store_root = store_root
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._pending: dict[str, None] = {}
        self._pending_lock = threading.Lock()
        self._scp: StorageScp | None = None
        self._receiver: Receiver | None = None
        self._on_shutdown: list[Callable[[], None]] = []
        #: The Network menu, once installed (:func:`viewer.qt.network.install_network_menu`).
        self.menu: QObject | None = None
        self.scp_message = "the storage service is not running"
        self.config_problem = ""
        self.config = self._load()
        self.transfers: TransferQueue = _Transfers(self)
        self._received.connect(self._on_received, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ settings
    def _load(self) -> NetConfig:
        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            self.config_problem = str(exc)
            log.warning("%s", exc)
            return NetConfig()

    @property
    def local(self) -> LocalSettings:
        return self.config.local

    def save(self, config: NetConfig) -> None:
        """Save settings and nodes (atomic write); restart the SCP if our own AE changed."""
        previous = self.config.local
        save_config(config, self.config_path)
        self.config = config
        self.config_problem = ""
        if self.scp_running() and (config.local != previous or not config.local.start_with_app):
            self.stop_scp()
        if config.local.start_with_app and not self.scp_running():
            self.start_scp()
        self.config_changed.emit()

    # ------------------------------------------------------------------ the storage SCP
    def scp_running(self) -> bool:
        return self._scp is not None

    def start_scp(self) -> bool:
        """Listen on our port (binding is immediate: no network wait on the GUI thread).

        A taken port or bad TLS files are a message in ``scp_state_changed``, never a crash.
        """
        if self._scp is not None:
            return True
        local = self.config.local
        try:
            receiver = self._receiver_for_scp()
        except StoreError as exc:
            self.scp_message = f"the storage service cannot start: {exc}"
            log.warning("%s", self.scp_message)
            self.scp_state_changed.emit(False, self.scp_message)
            return False
        scp = StorageScp(local, receiver)
        try:
            scp.start()
        except (OSError, ConfigError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.scp_message = (
                f"the storage service cannot listen on port {local.scp_port}: {reason} "
                "(another program, perhaps another Lightbox, uses the port; choose another in "
                "Network > Settings)"
            )
            log.warning("%s", self.scp_message)
            self.scp_state_changed.emit(False, self.scp_message)
            return False
        self._scp = scp
        where = local.bind_address or "all addresses"
        self.scp_message = f"receiving as {local.ae_title} on port {scp.port} ({where})"
        self.scp_state_changed.emit(True, self.scp_message)
        return True

    def stop_scp(self) -> None:
        if self._scp is None:
            return
        self._scp.stop()
        self._scp = None
        self.scp_message = "the storage service is stopped"
        self.scp_state_changed.emit(False, self.scp_message)

    @property
    def scp_port(self) -> int | None:
        return self._scp.port if self._scp is not None else None

    def start_if_configured(self) -> None:
        if self.config.local.start_with_app:
            self.start_scp()

    def call_on_shutdown(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the service shuts down (a dialog joining its workers)."""
        self._on_shutdown.append(hook)

    @Slot()
    def shutdown(self) -> None:
        """Stop the SCP and close the store (quit); safe to call twice."""
        hooks, self._on_shutdown = self._on_shutdown, []
        for hook in hooks:  # the dialogs join their workers first: they import into the store
            hook()
        self.stop_scp()
        with self._store_lock:
            receiver, self._receiver = self._receiver, None
        if receiver is not None:  # what it has no time for stays spooled for the next start
            receiver.close(timeout=5.0)
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # ------------------------------------------------------------------ the store
    def store(self) -> Store:
        """The store, opened once (thread-safe: each thread gets its own SQLite connection)."""
        with self._store_lock:
            if self._store is None:
                self._store = Store.open(self.store_root)
            return self._store

    def _receiver_for_scp(self) -> Receiver:
        """The SCP's ``on_instance``: one receiver per store, kept across SCP restarts (it
        also imports what an earlier run left spooled)."""
        store = self.store()
        with self._store_lock:
            if self._receiver is None:
                self._receiver = Receiver(store, on_committed=self._studies_committed)
            return self._receiver

    def receiver(self) -> Receiver:
        """What our storage SCP hands received instances to (the store's receiver): also what
        an SCP started for a while (to hear a storage commitment report) uses."""
        return self._receiver_for_scp()

    def wait_received(self, timeout: float = 60.0) -> bool:
        """Block (a worker, never the GUI thread) until every instance our SCP acknowledged is
        indexed: a C-MOVE is complete for the PACS before its last instances are."""
        receiver = self._receiver
        return True if receiver is None else receiver.wait_idle(timeout)

    def _studies_committed(self, study_uids: list[str]) -> None:
        """The receiver's ``on_committed`` (its thread): queue the studies for the GUI."""
        self._pending_studies([uid for uid in study_uids if valid_uid(uid)])

    def _pending_studies(self, study_uids: list[str]) -> None:
        if not study_uids:
            return
        with self._pending_lock:
            first = not self._pending
            self._pending.update(dict.fromkeys(study_uids))
        if first:
            self._received.emit()

    def is_present(self, sop_instance_uid: str) -> bool:
        """Retrieve's ``is_present``: already in the store, so not fetched again."""
        store = self.store()
        try:
            row = (
                store.connection()
                .execute(
                    "SELECT 1 FROM instances WHERE sop_instance_uid = ? LIMIT 1",
                    (sop_instance_uid,),
                )
                .fetchone()
            )
        finally:
            store.release_connection()  # worker threads come and go: close their connection
        return row is not None

    def receive_instance(self, path: Path, calling_ae: str) -> int | tuple[int, str]:
        """``on_instance`` of retrieves (C-GET sub-operations, or a C-MOVE into an SCP started
        for the retrieve when ours is off): the same :class:`Receiver` as our SCP's, so durable
        in the store's spool before the peer hears success and indexed in batches (a job ends
        after :meth:`wait_received`). Runs in the network library's threads."""
        try:
            receiver = self._receiver_for_scp()
        except StoreError as exc:
            log.warning("%s", exc)
            return STATUS_OUT_OF_RESOURCES
        return receiver(path, calling_ae)

    @Slot()
    def _on_received(self) -> None:
        """GUI thread: one ``study_received`` per study for the instances that arrived since
        the last call (a study of 300 images refreshes the browser a few times, not 300)."""
        with self._pending_lock:
            studies, self._pending = list(self._pending), {}
        for uid in studies:
            self.study_received.emit(uid)


class _Transfers(TransferQueue):
    """The transfer queue, whose jobs end when what they received is indexed: the instances of
    a C-MOVE reach the store through the SCP's receiver, a batch at a time."""

    def __init__(self, service: NetworkService) -> None:
        super().__init__()
        self._service = service

    def run_job(self, job: TransferJob, *args: Any, **kwargs: Any) -> TransferJob:
        done = super().run_job(job, *args, **kwargs)
        if not self._service.wait_received():
            log.warning("received instances are still being indexed after the retrieve ended")
        return done
