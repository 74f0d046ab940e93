"""stow_300: STOW-RS of 300 uncompressed 512x512 CT slices to Orthanc vs C-STORE of the same.

Data: the synthetic CT phantom of ``_data.py`` (explicit VR little endian, 300 x 512 KiB, made
once and cached in benchmarks/.cache/ct512).

- ours = :func:`viewer.net.dicomweb.send` (STOW-RS in batches, the request bodies streamed from
  the files, each answer's Referenced SOP Sequence checked) to Orthanc 1.10 with Debian's
  DICOMweb plugin;
- reference = :func:`viewer.net.send.send` (our C-STORE SCU, fast path) to the same Orthanc.

Orthanc runs with ``TCP_NODELAY=1`` (its DICOM server is DCMTK's: otherwise the reference
would be slowed by Nagle's algorithm). Orthanc is emptied before each run (REST
``DELETE /patients/...``), so each run stores all 300. Medians of 5 interleaved runs.
Target 1.5: the web protocol may cost half again what DIMSE does, not more.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _data
from common import interleaved, report

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def main() -> None:
    if shutil.which("Orthanc") is None or not PLUGIN.is_file():
        print("bench: stow_300 skipped: Orthanc or its DICOMweb plugin is not installed")
        return
    files = _data.files(_data.series("EVRLE", 300))
    assert len(files) == 300
    work = Path(tempfile.mkdtemp(prefix="bench-stow-"))
    os.environ["LIGHTBOX_HOME"] = str(work / "home")
    # Orthanc's DICOM server is DCMTK's, which leaves Nagle on unless TCP_NODELAY is set in its
    # environment (PEERS.md): without it each C-STORE answer waited ~45 ms (15 s for 300).
    os.environ["TCP_NODELAY"] = "1"

    from tests.net import peers
    from viewer.net import dicomweb
    from viewer.net.nodes import LocalSettings, Node
    from viewer.net.send import send

    orthanc = peers.start_orthanc(
        work / "orthanc",
        peers.free_port(),
        extra={"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}},
        plugins=("OrthancDicomWeb",),
    )
    try:
        local = LocalSettings(ae_title="LIGHTBOX")
        web = Node("web", url=f"http://127.0.0.1:{orthanc.http_port}/dicom-web")
        dimse = Node("dimse", orthanc.aet, "127.0.0.1", orthanc.dicom_port)

        def stow() -> None:
            result = dicomweb.send(web, local, files)  # as `lightbox send` does (resume check too)
            assert result.sent == 300, [i.message for i in result.failed[:3]]

        def cstore() -> None:
            result = send(dimse, local, files)
            assert result.sent == 300, [i.message for i in result.failed[:3]]

        def setup() -> None:
            orthanc.reset()
            assert orthanc.statistics()["CountInstances"] == 0

        ours, ref = interleaved(stow, cstore, setup=setup)
        report("stow_300", ours, ref, 1.5, "300 CT 512x512 to Orthanc: STOW-RS vs our C-STORE")
    finally:
        orthanc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
