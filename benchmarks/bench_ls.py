"""``ls_3000``: a disc's contents at once. The whole ``lightbox ls --json`` process on a DICOMDIR
media of 3,000 images vs ``dcmdump DICOMDIR`` on the same disc (both subprocesses, output
discarded), target 5 (issue 10: it was 32 times, every referenced file being opened).

The media is :mod:`bench_dicomdir`'s (3,000 small files indexed by DCMTK ``dcmmkdir``, cached in
``benchmarks/.cache/dicomdir_3000``). ``ls --check`` (every file opened) is reported beside it,
without a target.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench_dicomdir import IMAGES, PATIENTS, SERIES, STUDIES, make_media
from common import interleaved, report

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    dicomdir = make_media()
    media = dicomdir.parent
    if shutil.which("dcmdump") is None:
        raise SystemExit("bench: ls_3000 skipped: dcmdump (DCMTK) is not installed")
    lightbox = [sys.executable, "-m", "viewer", "ls", "--json", str(media)]
    listed = json.loads(subprocess.run(lightbox, capture_output=True, check=True, cwd=ROOT).stdout)
    count = sum(
        se["instances"] for p in listed["patients"] for st in p["studies"] for se in st["series"]
    )
    expected = PATIENTS * STUDIES * SERIES * IMAGES
    if count != expected or listed["problems"]:
        raise SystemExit(f"bench: ls_3000 failed: {count} of {expected} instances listed")

    def run(argv: list[str]) -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)

    def reference() -> None:
        run(["dcmdump", str(dicomdir)])

    ours, ref = interleaved(lambda: run(lightbox), reference, reps=5)
    report("ls_3000", ours, ref, 5.0, note=f"{expected} images, lightbox ls --json vs dcmdump")
    checked, ref = interleaved(lambda: run([*lightbox, "--check"]), reference, reps=5)
    report("ls_3000_check", checked, ref, None, note="ls --json --check: every file opened")


if __name__ == "__main__":
    main()
