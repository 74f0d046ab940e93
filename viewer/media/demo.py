"""The demo study a first start opens until the store exists (issue 2 section 1).

Made of files that ship inside pydicom's wheel, so it needs no download and no patient data.
They were chosen to show what the view does with each kind of image: a CT (HU, presets), an
MR, a 30-frame YBR_FULL_422 JPEG ultrasound cine (multi-frame, colour, cine), a PALETTE COLOR
ultrasound and an MR with a 60xx overlay. They come from different (synthetic) patients, so the
demo shows several patients; that is what such a mixed folder really is.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file

#: pydicom's bundled files that make the demo, in the order they are shown.
DEMO_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "examples_ybr_color.dcm",
    "examples_palette.dcm",
    "examples_overlay.dcm",
)


def demo_paths() -> list[Path]:
    """Paths of the demo files present in this pydicom installation (read-only: do not edit)."""
    paths: list[Path] = []
    for name in DEMO_FILES:
        found = get_testdata_file(name, download=False)
        if isinstance(found, str) and Path(found).is_file():
            paths.append(Path(found))
    return paths
