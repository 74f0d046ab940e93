"""Store benchmarks (issue 3, Speed).

``import_1000``: 1,000 uncompressed 512x512 CT files (synthetic, deterministic, cached in
``benchmarks/.cache/store_ct_1000``) imported from a folder into a fresh store with everything the
import does (copy, both SHA-256s, header parse, fsync, rename, directory fsync, index commit), vs
a plain ``shutil.copy`` of the same files to a folder on the same filesystem. Note that
``shutil.copy`` does not fsync: the ratio includes the price of durability. Each run starts
after ``os.sync()`` (untimed), so neither side pays for the other's deferred writes.

``store_filter_100k``: the study-list filter (a name wildcard plus a modality, the browser's
commonest filter) on an index of 100,000 instances vs on one of 1,000. The rows are built
synthetically through the index API (:func:`viewer.store.add_records`), without files; both
stores have 100 instances per series and 4 series per study.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import cache_dir, interleaved, report
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from viewer.store import (  # noqa: E402
    InstanceRecord,
    Store,
    StudyFilter,
    add_records,
    import_paths,
    list_studies,
)

FILES = 1000


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["lightbox-bench-store", *map(str, parts)])


def _ct_file(path: Path, index: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = _uid("sop", index)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = f"BENCH^PATIENT{index // 250:02d}"
    ds.PatientID = f"BENCH{index // 250:03d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = _uid("study", index // 250)
    ds.StudyDate = "20240102"
    ds.StudyTime = "120000"
    ds.AccessionNumber = f"A{index // 250:04d}"
    ds.StudyDescription = "BENCH CT"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = _uid("series", index // 125)
    ds.SeriesNumber = index // 125 % 2 + 1
    ds.InstanceNumber = index % 125 + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index % 125)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    rng = np.random.default_rng(index)
    ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _ct_folder() -> Path:
    folder = cache_dir("store_ct_1000")
    done = folder / ".complete"
    if not done.exists():
        for i in range(FILES):
            _ct_file(folder / f"CT{i:04d}.dcm", i)
        done.write_text("ok\n")
    return folder


def bench_import() -> None:
    source = _ct_folder()
    files = sorted(source.glob("CT*.dcm"))
    work = Path(tempfile.mkdtemp(prefix="lightbox-bench-", dir=cache_dir("work")))
    state = {"run": 0}

    def setup() -> None:
        state["run"] += 1
        for child in work.iterdir():
            shutil.rmtree(child)
        # Start each run with no dirty pages: otherwise the data the previous run left for the
        # kernel to write (shutil.copy never waits for it) is flushed by the import's fsyncs
        # (ext4 data=ordered commits it with the journal), and the import pays for both.
        if hasattr(os, "sync"):
            os.sync()

    def ours() -> None:
        with Store.open(work / f"store{state['run']}") as store:
            result = import_paths(store, [source])
        assert len(result.imported) == FILES, (len(result.imported), result.rejected[:3])

    def reference() -> None:
        target = work / f"copy{state['run']}"
        target.mkdir()
        for f in files:
            shutil.copy(f, target / f.name)

    try:
        t_ours, t_ref = interleaved(ours, reference, reps=5, setup=setup)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("import_1000", t_ours, t_ref, 2, "shutil.copy does not fsync; the import does")


def _records(instances: int) -> list[InstanceRecord]:
    records = []
    per_series, per_study = 100, 4
    for i in range(instances):
        series = i // per_series
        study = series // per_study
        patient = study // 2
        sha = f"{i:064x}"
        records.append(
            InstanceRecord(
                sop_instance_uid=f"1.2.826.0.1.3680043.10.1.{i}",
                study_instance_uid=f"1.2.826.0.1.3680043.10.2.{study}",
                series_instance_uid=f"1.2.826.0.1.3680043.10.3.{series}",
                path=f"files/{sha[:2]}/{sha}.dcm",
                size=526_000,
                meta_sha256=sha,
                dataset_sha256=sha,
                patient_id=f"P{patient:06d}",
                patient_name=f"PATIENT{patient % 97:02d}^NAME{patient}",
                study_date=f"2024{1 + study % 12:02d}{1 + study % 28:02d}",
                modality=("CT", "MR", "PT", "CR")[series % 4],
                series_number=series % per_study + 1,
                instance_number=i % per_series + 1,
            )
        )
    return records


def bench_filter() -> None:
    work = Path(tempfile.mkdtemp(prefix="lightbox-bench-", dir=cache_dir("work")))
    try:
        big = Store.open(work / "big")
        small = Store.open(work / "small")
        add_records(big, _records(100_000))
        add_records(small, _records(1_000))
        where = StudyFilter(patient_name="patient0*", modality="MR")

        def run(store: Store) -> None:
            for _ in range(20):
                list_studies(store, where)

        t_big, t_small = interleaved(lambda: run(big), lambda: run(small), reps=5)
        n_big, n_small = len(list_studies(big, where)), len(list_studies(small, where))
        big.close()
        small.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(
        "store_filter_100k",
        t_big / 20,
        t_small / 20,
        None,
        f"per query; {n_big} of 250 studies vs {n_small} of 3 match",
    )


if __name__ == "__main__":
    bench_import()
    bench_filter()
