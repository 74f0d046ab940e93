"""Network > Reconcile and hand over (issue 13), driven as the clerk does, against a real Orthanc
that is the hospital's RIS (ModalityWorklists plugin) and PACS (Storage Commitment SCP, and
DICOMweb through Debian's plugin): worklist search, the mapping shown and confirmed, the hand-over
with its per-instance states and verdict, the receipt; a node that cannot commit says so."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import Qt

from tests.cli import lightbox
from tests.net import conftest as net
from tests.net import peers
from tests.net.test_outside_study_handover import hospital
from tests.qt.test_network_query import App, configure
from viewer.net.nodes import Node
from viewer.qt.network.handover_dialog import HandoverDialog
from viewer.qt.receipt import ReceiptDialog
from viewer.qt.selection import Selection
from viewer.store import Store, import_paths
from viewer.store.index import handed_over

scp_port = net.scp_port
hospital = hospital  # Orthanc as RIS (worklist) and PACS (commitment, DICOMweb)


def _outside_study(folder: Path, parts: list[tuple[str, str, int]]) -> peers.StudyFiles:
    """A study from another hospital: its own Patient ID (EXT-77) and accession (X1)."""
    return peers.make_study(
        folder,
        patient_name="OUTSIDE^PAT",
        patient_id="EXT-77",
        accession="X1",
        study_date="20240102",
        description="CHEST CT",
        parts=parts,
    )


@pytest.fixture
def outside(tmp_path: Path) -> peers.StudyFiles:
    """The outside patient's study, imported into the store (as from a disc)."""
    study = _outside_study(tmp_path / "cd", [("CT_small.dcm", "CT", 2), ("MR_small.dcm", "MR", 1)])
    imported = lightbox("import", *(str(p) for p in study.files))
    assert imported.returncode == 0, imported.stderr
    return study


def _dialog(qtbot, request, hospital: peers.Orthanc, outside: peers.StudyFiles, scp_port: int):  # type: ignore[no-untyped-def]
    return _dialog_with(
        qtbot,
        request,
        [
            Node("ris", hospital.aet, "127.0.0.1", hospital.dicom_port),
            Node("web", url=f"http://127.0.0.1:{hospital.http_port}/dicom-web"),
        ],
        outside,
        scp_port,
    )


def _dialog_with(qtbot, request, nodes: list[Node], outside: peers.StudyFiles, scp_port: int):  # type: ignore[no-untyped-def]
    configure(scp_port, nodes, service_on=True)
    application = App(qtbot)
    request.addfinalizer(application.service.shutdown)
    chosen = Selection(
        "OUTSIDE, PAT (ID EXT-77) · 2024-01-02 CHEST CT",
        tuple((p, p.name) for p in outside.files),
        outside.study_instance_uid,
        in_store=True,
    )
    application.service.menu.selection = lambda: chosen  # type: ignore[union-attr]
    application.action("network_handover").trigger()
    dialog = application.service.menu.dialogs["handover"]  # type: ignore[union-attr]
    assert isinstance(dialog, HandoverDialog) and dialog.isVisible()
    qtbot.addWidget(dialog)  # a window of its own: closed after the test, not left on top
    return application, dialog


def _wait(qtbot, dialog: HandoverDialog) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: dialog.idle, timeout=60_000)


def _choose_and_map(qtbot, dialog: HandoverDialog) -> None:  # type: ignore[no-untyped-def]
    dialog.worklist_node.setCurrentText("ris")
    qtbot.keyClicks(dialog.wl_id, "LB010")
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert dialog.orders.topLevelItemCount() == 1, dialog.status_label.text()
    dialog.orders.setCurrentItem(dialog.orders.topLevelItem(0))
    assert dialog.fields["patient_id"].text() == "LB010"
    assert dialog.fields["accession_number"].text() == "A100"
    qtbot.mouseClick(dialog.plan_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert dialog.plan is not None, dialog.status_label.text()


def _mapping(dialog: HandoverDialog) -> dict[str, tuple[str, str]]:
    rows = [dialog.mapping.topLevelItem(i) for i in range(dialog.mapping.topLevelItemCount())]
    return {r.text(0): (r.text(1), r.text(2)) for r in rows if r is not None}


def _states(dialog: HandoverDialog) -> list[str]:
    rows = [dialog.instances.topLevelItem(i) for i in range(dialog.instances.topLevelItemCount())]
    return [r.text(2) for r in rows if r is not None]


def test_reconcile_and_hand_over_with_commitment_then_over_dicomweb(  # type: ignore[no-untyped-def]
    qtbot, request, hospital, outside, scp_port
) -> None:
    application, dialog = _dialog(qtbot, request, hospital, outside, scp_port)
    assert dialog.study_label.text() == (
        "Outside study: OUTSIDE, PAT (ID EXT-77) · 2024-01-02 CHEST CT"
    )
    assert not dialog.handover_button.isEnabled()
    _choose_and_map(qtbot, dialog)
    mapping = _mapping(dialog)
    assert mapping["PatientID"] == ("EXT-77", "LB010")
    assert mapping["AccessionNumber"] == ("X1", "A100")
    assert mapping["Other Patient IDs"][0] == "EXT-77"
    # nothing goes before the clerk confirms; a change after confirming clears the mapping
    assert not dialog.handover_button.isEnabled()
    dialog.confirm_box.setChecked(True)
    assert dialog.handover_button.isEnabled()
    qtbot.keyClicks(dialog.fields["patient_name"], "X")
    assert dialog.plan is None and not dialog.confirm_box.isChecked()
    assert dialog.mapping.topLevelItemCount() == 0 and not dialog.handover_button.isEnabled()
    dialog.fields["patient_name"].setText("DOE^JOHN")
    qtbot.mouseClick(dialog.plan_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    dialog.confirm_box.setChecked(True)

    dialog.node_combo.setCurrentText("ris")
    qtbot.mouseClick(dialog.handover_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert dialog.verdict.text().startswith(
        "HANDED OVER to ris (ORTHANC@127.0.0.1:"
        + str(hospital.dicom_port)
        + "): all 3 instance(s) confirmed by "
        "storage commitment, under Patient ID LB010"
    ), dialog.verdict.text() + " / " + dialog.status_label.text()
    assert _states(dialog) == ["committed"] * 3
    # in the PACS under the hospital's ID, the outside ID kept; the store's original unchanged
    found = hospital.rest(
        "POST", "/tools/find", b'{"Level": "Instance", "Query": {"PatientID": "LB010"}}'
    )
    assert len(found) == 3
    url = f"http://127.0.0.1:{hospital.http_port}/instances/{found[0]}/file"
    with urllib.request.urlopen(url, timeout=20) as rsp:
        sent = pydicom.dcmread(io.BytesIO(rsp.read()))
    assert "EXT-77" in [item.PatientID for item in sent.OtherPatientIDsSequence]
    assert sent.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0].PatientID == "EXT-77"
    original = pydicom.dcmread(outside.files[0], stop_before_pixels=True)
    assert original.PatientID == "EXT-77"
    with Store.open() as store:
        assert handed_over(store, outside.study_instance_uid)
    receipt = dialog.show_receipt()
    assert isinstance(receipt, ReceiptDialog)
    assert "COMPLETE" in receipt.html and "LB010" in receipt.html
    receipt.close()

    # the same over DICOMweb: STOW-RS, then each instance found by QIDO-RS
    dialog.node_combo.setCurrentText("web")
    qtbot.mouseClick(dialog.handover_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert dialog.verdict.text().startswith(
        f"HANDED OVER to web (http://127.0.0.1:{hospital.http_port}/dicom-web): all 3 "
        "instance(s) confirmed by QIDO-RS, under Patient ID LB010"
    ), dialog.verdict.text()
    assert _states(dialog) == ["verified"] * 3
    application.service.shutdown()


def test_a_node_without_storage_commitment_is_not_a_hand_over(  # type: ignore[no-untyped-def]
    qtbot, request, hospital, outside, scp_port, tmp_path
) -> None:
    """DCMTK's storescp stores but commits nothing: the verdict says NOT HANDED OVER, and why."""
    plain = peers.start_storescp(tmp_path / "storescp", aet="PLAIN")
    try:
        application, dialog = _dialog(qtbot, request, hospital, outside, scp_port)
        config = application.service.config
        config.nodes["plain"] = Node("plain", "PLAIN", "127.0.0.1", plain.port)
        application.service.save(config)
        _choose_and_map(qtbot, dialog)
        dialog.confirm_box.setChecked(True)
        dialog.node_combo.setCurrentText("plain")
        qtbot.mouseClick(dialog.handover_button, Qt.MouseButton.LeftButton)
        _wait(qtbot, dialog)
        assert dialog.verdict.text().startswith("NOT HANDED OVER"), dialog.verdict.text()
        assert "Storage Commitment" in dialog.verdict.text()
        assert len(plain.files()) == 3  # it was sent, yet nobody took responsibility
        with Store.open() as store:
            assert not handed_over(store, outside.study_instance_uid)
        application.service.shutdown()
    finally:
        plain.stop()


def test_the_browser_names_the_study_to_reconcile(qtbot, store_window, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """From the main window: the store study selected in the browser is the one named (and
    reconciled); an opened disc's study is not offered (import it first)."""
    study = _outside_study(tmp_path / "cd", [("CT_small.dcm", "CT", 1)])
    browser = store_window.browser
    assert browser.store is not None
    assert import_paths(browser.store, study.files).imported
    browser.refresh()
    assert browser.select_study(study.study_instance_uid, open_first=False)
    dialog = store_window.network.menu.show_handover()
    assert isinstance(dialog, HandoverDialog)
    assert dialog.selection.study_instance_uid == study.study_instance_uid
    assert dialog.selection.in_store
    assert (
        dialog.study_label.text() == "Outside study: OUTSIDE, PAT (ID EXT-77) · 2024-01-02 CHEST CT"
    )
    assert dialog.plan_button.isEnabled()
    dialog.set_selection(Selection.of_paths(study.files))  # loose files, no store study
    assert dialog.study_label.text() == "Outside study: (none chosen)"
    assert not dialog.plan_button.isEnabled() and "local store" in dialog.status_label.text()
    dialog.close()


def test_typed_identity_and_cancel_while_waiting_for_commitment(  # type: ignore[no-untyped-def]
    qtbot, request, outside, scp_port, tmp_path
) -> None:
    """No worklist: the identity typed in. The node commits but reports to another port, so the
    wait would last the timeout; Cancel ends it, and the verdict lists every instance missing."""
    deaf = peers.start_orthanc(tmp_path / "deaf", peers.free_port())
    request.addfinalizer(deaf.stop)
    node = Node("deaf", deaf.aet, "127.0.0.1", deaf.dicom_port)
    _application, dialog = _dialog_with(qtbot, request, [node], outside, scp_port)
    qtbot.mouseClick(dialog.plan_button, Qt.MouseButton.LeftButton)
    assert "Patient ID" in dialog.status_label.text()  # nothing typed yet: said, not run
    qtbot.keyClicks(dialog.fields["patient_id"], "H-1")
    qtbot.keyClicks(dialog.fields["birth_date"], "1.1.1960")
    qtbot.mouseClick(dialog.plan_button, Qt.MouseButton.LeftButton)
    assert "YYYYMMDD" in dialog.status_label.text() and dialog.plan is None
    dialog.fields["birth_date"].setText("19600101")
    qtbot.mouseClick(dialog.plan_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert _mapping(dialog)["PatientID"] == ("EXT-77", "H-1")
    dialog.confirm_box.setChecked(True)
    qtbot.mouseClick(dialog.handover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "waiting for the node" in dialog.status_label.text(), timeout=30_000)
    assert dialog.cancel_button.isEnabled() and not dialog.handover_button.isEnabled()
    # what the hand-over was started with cannot change under it
    assert not dialog.new_uids.isEnabled() and not dialog.confirm_box.isEnabled()
    assert not dialog.node_combo.isEnabled() and dialog.fields["patient_id"].isReadOnly()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, dialog)
    assert dialog.verdict.text().startswith("INCOMPLETE: 3 of 3 instance(s) not confirmed"), (
        dialog.verdict.text()
    )
    assert _states(dialog) == ["missing"] * 3
    with Store.open() as store:
        assert not handed_over(store, outside.study_instance_uid)
