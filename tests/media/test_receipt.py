"""The import and hand-over receipt (viewer.media.receipt, issue 13): counts from the DICOMDIR,
SHA-256 of every file, escaping of what files say, the INCOMPLETE banner; and
``lightbox import --receipt``."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pydicom

from tests.cli import lightbox
from tests.conftest import copy_pydicom_dicomdir_media
from tests.store.dicomfiles import make_dataset, write
from viewer.media import receipt as rc
from viewer.media.scan import scan
from viewer.store import Store, has_instance, import_paths

HOSTILE = "<script>alert('x')</script>^\"Bobby\" & <b>"


def _receipt(source: Path) -> tuple[rc.Receipt, str]:
    with Store.open() as store:
        report = import_paths(store, [source])
        listed, how = rc.listed_items(source)
        receipt = rc.import_receipt(
            str(source),
            listed,
            report,
            listed_from=how,
            in_store=lambda uid: has_instance(store, uid),
        )
    return receipt, rc.render_html(receipt)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_disc_imported_whole(tmp_path: Path) -> None:
    disc = copy_pydicom_dicomdir_media(tmp_path / "disc")
    receipt, page = _receipt(disc)
    assert receipt.complete and receipt.count(rc.STORED) == 31
    assert "2 patient(s), 6 study(ies), 13 series, 31 instance(s)." in page
    assert 'id="incomplete"' not in page and "COMPLETE: all 31 instance(s) stored" in page
    assert "Doe^Archibald" in page and "Doe^Peter" in page
    for item in receipt.items:
        assert item.sha256 == _sha(Path(item.path))
        assert item.sha256 in page and item.sop_instance_uid in page
    # self-contained: no script, no external resource
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "@media print" in page


def test_imported_again_counts_as_already_in_the_store(tmp_path: Path) -> None:
    disc = copy_pydicom_dicomdir_media(tmp_path / "disc")
    _receipt(disc)
    receipt, _ = _receipt(disc)
    assert receipt.complete and receipt.count(rc.DUPLICATE) == 31


def test_a_file_the_dicomdir_lists_but_the_disc_lacks_is_incomplete(tmp_path: Path) -> None:
    disc = copy_pydicom_dicomdir_media(tmp_path / "disc")
    listed = scan(disc, headers=False)
    gone = Path(listed.patients[0].studies[0].series[0].instances[0].path)
    gone.unlink()
    receipt, page = _receipt(disc)
    assert not receipt.complete
    assert 'id="incomplete"' in page and "INCOMPLETE" in page
    bad = [i for i in receipt.items if not i.good]
    assert len(bad) == 1 and bad[0].path == str(gone) and bad[0].sha256 == ""
    assert bad[0].reason == "listed by the DICOMDIR, missing from the disc"
    assert "31 instance(s)" in page
    assert receipt.count(rc.STORED) == 30
    assert "(file not readable)" in page


def test_a_rejected_file_is_incomplete_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder / "a.dcm", make_dataset(instance=1))
    broken = folder / "b.dcm"
    data = (folder / "a.dcm").read_bytes()
    write(broken, make_dataset(instance=2))
    broken.write_bytes(broken.read_bytes()[: len(data) // 2])  # cut in the pixel data
    receipt, page = _receipt(folder)
    assert not receipt.complete
    assert 'id="incomplete"' in page
    reasons = [p.problem for p in receipt.problems] + [
        i.reason for i in receipt.items if not i.good
    ]
    assert reasons, page
    for reason in reasons:
        assert html.escape(reason) in page


def test_a_hostile_patient_name_is_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    ds = make_dataset(instance=1, patient=HOSTILE)
    ds.StudyDescription = "<img src=x onerror=alert(1)>"
    write(folder / "a.dcm", ds)
    assert str(pydicom.dcmread(folder / "a.dcm").PatientName) == HOSTILE
    receipt, page = _receipt(folder)
    assert receipt.complete
    assert "<script" not in page and "<b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&quot;Bobby&quot; &amp; &lt;b&gt;" in page


def test_handover_receipt_states() -> None:
    items = [
        rc.ReceiptItem(f"1.2.3.{n}", sha256="ab" * 32, patient_name="DOE^JOHN") for n in range(3)
    ]
    receipt = rc.handover_receipt(
        "PACS@127.0.0.1:104",
        items,
        {"1.2.3.0": (rc.COMMITTED, ""), "1.2.3.1": (rc.FAILED, "0x0112 no such object instance")},
        transaction_uid="2.25.99",
    )
    page = rc.render_html(receipt)
    assert [i.state for i in receipt.items] == [rc.COMMITTED, rc.FAILED, rc.MISSING]
    assert not receipt.complete and 'id="incomplete"' in page and "2.25.99" in page
    assert "2 item(s) not committed" in page
    done = rc.handover_receipt("P", items[:1], {"1.2.3.0": (rc.COMMITTED, "")})
    assert done.complete and 'id="incomplete"' not in rc.render_html(done)


def test_cli_import_receipt(tmp_path: Path) -> None:
    disc = copy_pydicom_dicomdir_media(tmp_path / "disc")
    target = tmp_path / "receipt.html"
    run = lightbox("import", str(disc), "--receipt", str(target))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "receipt:" in run.stdout and "INCOMPLETE" not in run.stdout
    page = target.read_text(encoding="utf-8")
    assert len(re.findall(r"[0-9a-f]{64}", page)) == 31
    assert "Doe^Archibald" not in run.stdout + run.stderr  # names only in the receipt
    other = copy_pydicom_dicomdir_media(tmp_path / "other")
    listed = scan(other, headers=False)
    Path(listed.patients[1].studies[0].series[0].instances[0].path).unlink()
    home = tmp_path / "home"  # a store that does not hold the instance yet
    again = lightbox("import", str(other), "--receipt", str(target), home=home)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "(INCOMPLETE)" in again.stdout
    assert 'id="incomplete"' in target.read_text(encoding="utf-8")
