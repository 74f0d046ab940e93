"""Screenshots of the reading tools for the README, from synthetic data (no patient's images).

    xvfb-run -a python -m tests.qt.screenshot_tools OUT_DIR

writes ``compare.png`` (a 2 × 2 layout: the current study's two series and a prior beside them,
linked by position, reference lines, a distance and an ROI) and ``mpr.png`` (axial, coronal and
sagittal reformats with the crosshair lines) into OUT_DIR. The phantom is a body with lungs, a
spine and a lesion whose size changes between the studies.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

SIZE, SLICES = 256, 60
SPACING, STEP = 1.4, 3.0


def phantom(k: int, lesion_mm: float, rng: np.random.Generator) -> np.ndarray:
    y, x = (np.mgrid[0:SIZE, 0:SIZE] - SIZE / 2) * SPACING
    z = k * STEP
    hu = np.full((SIZE, SIZE), -1000.0)
    body = (x / 160) ** 2 + (y / 115) ** 2 < 1
    hu[body] = 40
    lung = 1 - abs(z - 90) / 110
    for side in (-1, 1):
        hu[((x - side * 70) / (45 * lung)) ** 2 + ((y + 5) / (70 * lung)) ** 2 < 1] = -850
    hu[(x / 14) ** 2 + ((y - 70) / 14) ** 2 < 1] = 700  # vertebra
    hu[((x - 60) ** 2 + (y + 10) ** 2 + (z - 90) ** 2) < (lesion_mm / 2) ** 2] = 30
    hu += rng.normal(0, 8, hu.shape)
    return np.clip(hu + 1024, 0, 4095).astype(np.uint16)


def write_study(root: Path, date: str, lesion_mm: float, series: list[str]) -> Path:
    rng = np.random.default_rng(int(date))
    study, frame_of_reference = generate_uid(), generate_uid()
    for number, description in enumerate(series, start=1):
        folder = root / f"{date}-{number}"
        folder.mkdir(parents=True)
        series_uid = generate_uid()
        for k in range(SLICES):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientName, ds.PatientID = "Phantom^Demo", "DEMO-0001"
            ds.PatientSex, ds.PatientBirthDate = "O", "19700101"
            ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, date, "101500"
            ds.StudyDescription = "CT CHEST (synthetic)"
            ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number
            ds.SeriesDescription, ds.Modality = description, "CT"
            ds.FrameOfReferenceUID = frame_of_reference
            ds.InstanceNumber = k + 1
            ds.Rows = ds.Columns = SIZE
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            window = (-600, 1500) if "Lung" in description else (40, 400)
            ds.WindowCenter, ds.WindowWidth = window
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-SIZE / 2 * SPACING, -SIZE / 2 * SPACING, k * STEP]
            ds.PixelSpacing = [SPACING, SPACING]
            ds.SliceThickness = STEP
            ds.PixelData = phantom(k, lesion_mm, rng).tobytes()
            ds.save_as(folder / f"IM{k:03d}.dcm", enforce_file_format=True)
    return root


def main(argv: list[str]) -> int:
    from PySide6.QtCore import QTimer

    from viewer.imaging import measure
    from viewer.qt.app import application
    from viewer.qt.main_window import MainWindow
    from viewer.store import Store, import_paths

    out = Path(argv[0] if argv else ".")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lightbox-shots-"))
    now = write_study(work / "now", "20261120", 24.0, ["Soft tissue", "Lung"])
    prior = write_study(work / "prior", "20260515", 16.0, ["Soft tissue"])
    app = application()
    store = Store.open(work / "store")
    import_paths(store, [prior])
    window = MainWindow(store=store, volume_source=list)
    window.resize(1400, 900)
    window.show()
    steps: list[tuple[int, object]] = []

    def later(ms: int, what: object) -> None:
        steps.append((ms, what))

    def run_steps() -> None:
        total = 0
        for ms, what in steps:
            total += ms
            QTimer.singleShot(total, what)  # type: ignore[arg-type]

    def open_now() -> None:
        window.open_paths([now])

    def layout() -> None:
        window.set_layout(2, 2)
        window.browser.show_store()

    def compare() -> None:
        browser = window.browser
        browser.table.selectRow(0)
        browser.compare_selected()
        window.browser_dock.hide()

    def link() -> None:
        grid = window.grid
        for viewport in grid.viewports:
            if viewport.source is not None:
                viewport.view.set_position(30)
        grid.set_active(grid.viewports[0])
        window.linker.link_here()
        window.actions_by_name["reference_lines"].trigger()
        first = grid.viewports[0]
        board = window.board
        key = first.view.measurement_key()
        if key is not None:
            board.add(key, measure.Distance((118.0, 160.0), (118.0, 178.0)))
            board.add(key, measure.EllipseROI((60.0, 108.0), (90.0, 148.0)))
        first.view.update()

    def shot_compare() -> None:
        window.grab().save(str(out / "compare.png"))
        window.set_layout(1, 1)
        window.show_stack(0)

    def start_mpr() -> None:
        window.mpr.start(window.grid.active)

    def shot_mpr() -> None:
        window.grab().save(str(out / "mpr.png"))
        app.quit()

    later(100, open_now)
    later(6000, layout)
    later(2000, compare)
    later(4000, link)
    later(1500, shot_compare)
    later(5000, start_mpr)
    later(4000, shot_mpr)
    run_steps()
    app.exec()
    window.close()
    store.close()
    return 0 if (out / "mpr.png").exists() else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
