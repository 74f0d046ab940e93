"""IHE PDI Web Content option: INDEX.HTM in the root and its pages and JPEG previews in IHE_PDI/.

IHE RAD TF-3 4.47.4.1.2.3 (Web Content): plain XHTML readable in any browser, no scripts,
nothing from the network, names ISO 9660 Level 1 (PS3.12 F.3.2), no non-DICOM file in the DICOM
folders. Previews are one JPEG per series (its middle instance), rendered by the same imaging
pipeline the viewer uses (``viewer.imaging.decode`` and ``display.FrameRenderer``); they are for
orientation, not diagnosis, and the pages say so.
"""

from __future__ import annotations

import hashlib
import html
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from viewer import __version__
from viewer.media import dicomdir_writer as ddw
from viewer.media.plan import display_text
from viewer.text import escape, person_name, show_date

if TYPE_CHECKING:
    from PIL.Image import Image

    from viewer.media.plan import DiscResult, PlannedStudy, WrittenFile

PREVIEW_SIZE = (256, 256)
WEB_DIR = "IHE_PDI"

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#111;background:#fff}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;"
    "vertical-align:top;text-align:left}img{background:#000}.note{color:#555}"
)


def _h(text: str) -> str:
    """A name or value from the files for the pages: HTML-escaped (markup, quotes) and with
    control and invisible formatting characters shown as escapes (:func:`viewer.text.escape`):
    they are not valid in HTML text and would act on a terminal showing the file."""
    return html.escape(escape(text))


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_h(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _preview(path: Path) -> Image | None:
    """A JPEG-ready preview of one file's middle frame, or None when it has no pixels we can
    show. The one place that touches pixels (imaging contracts in docs/architecture.md)."""
    try:
        import numpy as np
        from PIL import Image as PILImage

        from viewer.imaging import decode, display

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dicom = decode.read_file(path)
            ds = dicom.dataset
            if "PixelData" not in ds and "FloatPixelData" not in ds:
                return None
            frames = decode.frame_count(ds)
            index = frames // 2
            pixels = decode.decode_frame(ds, index)
            renderer = display.FrameRenderer(ds, index, pixels)
            image = renderer.render_scaled(size=PREVIEW_SIZE)
        array = np.ascontiguousarray(image)
        return PILImage.fromarray(array, "RGB" if array.ndim == 3 else "L")
    except Exception:
        return None


def write_web(root: Path, disc: list[PlannedStudy], result: DiscResult) -> dict[str, str]:
    """Write INDEX.HTM and IHE_PDI/; returns relative path -> SHA-256 of every file written."""
    written: dict[str, str] = {}
    web_dir = root / WEB_DIR
    web_dir.mkdir(exist_ok=True)

    def put(rel: str, data: bytes) -> None:
        (root / rel).write_bytes(data)
        written[rel] = hashlib.sha256(data).hexdigest()

    by_source = {f.source: f for f in result.files}
    rows: list[str] = []
    current_patient = None
    for s_no, study in enumerate(disc, start=1):
        files = [f for f in study.files if str(f.path) in by_source]
        if not files:
            continue
        header = files[0].header
        if study.patient_key != current_patient:
            current_patient = study.patient_key
            name = person_name(display_text(header, ddw.PATIENT_NAME)) or "(no name)"
            birth = (
                show_date(header.text(ddw.PATIENT_BIRTH_DATE)) or "(no date)"
                if header.has(ddw.PATIENT_BIRTH_DATE)
                else ""
            )
            rows.append(
                f'<tr><th colspan="4">{_h(name)}'
                f"{' &#8211; born ' + _h(birth) if birth else ''}</th></tr>"
            )
        page = f"S{s_no:04d}.HTM"
        date = files[0].fills.get(ddw.STUDY_DATE) or header.text(ddw.STUDY_DATE)
        description = display_text(header, ddw.STUDY_DESCRIPTION) or "(no description)"
        modalities = sorted(
            {f.fills.get(ddw.MODALITY) or f.header.text(ddw.MODALITY) or "OT" for f in files}
        )
        rows.append(
            f"<tr><td>{_h(show_date(date) or '(no date)')}</td>"
            f'<td><a href="{WEB_DIR}/{page}">{_h(description)}</a></td>'
            f"<td>{_h('/'.join(modalities))}</td>"
            f"<td>{len(study.series)} series, {len(files)} files</td></tr>"
        )
        put(f"{WEB_DIR}/{page}", _study_page(root, s_no, study, by_source, put).encode("utf-8"))
    body = (
        "<h1>DICOM images: study list</h1>\n"
        f"<p>Disc {result.index} of {result.count}. Made with Lightbox {_h(__version__)}."
        " Open a study to see a preview of each series. Previews are reduced pictures for"
        " orientation, <strong>not for diagnosis</strong>: open the disc in a DICOM viewer for"
        ' the images themselves (see <a href="README.TXT">README.TXT</a>).</p>\n'
        "<table><tr><th>Date</th><th>Study</th><th>Modality</th><th>Content</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )
    put("INDEX.HTM", _page("DICOM images: study list", body).encode("utf-8"))
    return written


def _study_page(
    root: Path,
    s_no: int,
    study: PlannedStudy,
    by_source: dict[str, WrittenFile],
    put: Callable[[str, bytes], None],
) -> str:
    header = study.files[0].header
    title = display_text(header, ddw.STUDY_DESCRIPTION) or "Study"
    date = study.files[0].fills.get(ddw.STUDY_DATE) or header.text(ddw.STUDY_DATE)
    rows: list[str] = []
    for r_no, series in enumerate(study.series.values(), start=1):
        files = [f for f in series.files if str(f.path) in by_source]
        if not files:
            continue
        middle = by_source[str(files[len(files) // 2].path)]
        image = _preview(root.joinpath(*middle.file_id))
        cell = "(no preview)"
        if image is not None:
            name = f"P{s_no:04d}{r_no % 1000:03d}.JPG"
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            put(f"{WEB_DIR}/{name}", buffer.getvalue())
            cell = (
                f'<img src="{name}" width="{image.width}" height="{image.height}" '
                f'alt="preview of series {r_no}">'
            )
        sh = files[0].header
        number = files[0].fills.get(ddw.SERIES_NUMBER) or sh.text(ddw.SERIES_NUMBER)
        modality = files[0].fills.get(ddw.MODALITY) or sh.text(ddw.MODALITY) or "OT"
        description = display_text(sh, ddw.SERIES_DESCRIPTION)
        rows.append(
            f"<tr><td>{_h(number)}</td><td>{_h(modality)}</td>"
            f"<td>{_h(description)}</td><td>{len(files)}</td><td>{cell}</td></tr>"
        )
    body = (
        f'<p><a href="../INDEX.HTM">&#8592; study list</a></p>\n'
        f"<h1>{_h(title)} &#8211; {_h(show_date(date) or '(no date)')}</h1>\n"
        '<p class="note">Previews are reduced pictures, not for diagnosis.</p>\n'
        "<table><tr><th>Series</th><th>Modality</th><th>Description</th><th>Files</th>"
        "<th>Preview</th></tr>\n" + "\n".join(rows) + "\n</table>"
    )
    return _page(title, body)
