"""Measurements as a DICOM Structured Report, and back, without Qt.

:func:`measurements_sr` writes a Comprehensive SR (PS3.3 A.35.3) whose content follows TID 1500
"Measurement Report" (PS3.16): the root container (126000, DCM, "Imaging Measurement Report")
with its language (TID 1204), the device observer (TID 1001/1004), the procedure reported, an
Image Library (TID 1600) of the measured images, and under (126010, DCM, "Imaging
Measurements") one Measurement Group (125007, DCM) per measurement:

- an ROI (rectangle, ellipse, freehand) as TID 1410 "Planar ROI Measurements": Tracking
  Identifier and Tracking Unique Identifier, the Finding, the outline as an SCOORD (111030, DCM,
  "Image Region") SELECTED FROM the IMAGE it lies on, then its area and its statistics as NUM
  items (Mean, Standard Deviation, Minimum, Maximum; SNOMED CT);
- a distance, an angle or a bidirectional as TID 1501 "Measurement and Qualitative Evaluation
  Group": the same identifiers and Finding, NUM items (Length, Angle, Long Axis, Short Axis)
  each INFERRED FROM its SCOORD (TID 320), SELECTED FROM the IMAGE.

The Finding is a code of the private scheme ``99LIGHTBOX`` (PS3.16 8.2: "99" schemes are
local), one per kind of shape (``distance``, ``angle``, ``rectangle``, ``ellipse``,
``freehand``, ``bidirectional``), declared in Coding Scheme Identification Sequence: a reader
of ours gets the shape back exactly (:func:`read_measurements_sr`), another reader sees a coded
finding with a plain meaning.

Coordinates. SCOORD Graphic Data is (column, row) pairs with the top left corner of the top
left pixel at 0.0\\0.0 (PS3.3 C.18.6.1.2, the convention of C.10.5.1.2); a point of
:mod:`viewer.imaging.measure` is (row, column) with pixel centres at integers, so
``x = column + 0.5``, ``y = row + 0.5``. Graphic Data is FL (32-bit): coordinates survive
the round trip to about 1e-5 pixel on frames up to 1024 pixels (exactly for multiples of 1/256
there). A rectangle and a freehand ROI are closed POLYLINEs (the first point repeated last,
C.18.6.1.2); an ellipse is an ELLIPSE of four points, the major axis first.

Units are UCUM (PS3.16 CID 7181 and friends): ``mm``, ``mm2``, ``deg``, ``[hnsf'U]`` for HU,
``Bq/mL``, ``1`` for no unit; a shape measured in pixels (no calibration) is in ``{pixels}``
and ``{pixels}2``. Values are the :class:`~viewer.imaging.measure.Result` of the measurement
(given, or measured here from the source data set), in full precision as Floating Point Value
(FD) beside the Numeric Value (DS, 16 characters); an undefined value (the SD of one pixel) is
a NUM with an empty Measured Value Sequence and the qualifier (114000, DCM, "Not a number").
Pixel counts and the channels of colour ROIs are not written (no code says what they are).
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from viewer import __version__
from viewer.dicom import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.imaging import measure as m
from viewer.imaging.decode import DecodeError, decode_frame, read_file
from viewer.text import escape

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
_READABLE = frozenset({COMPREHENSIVE_SR, ENHANCED_SR, COMPREHENSIVE_3D_SR})

PRIVATE_SCHEME = "99LIGHTBOX"
SERIES_NUMBER = 9901
"""Series Number of the reports written (a high number keeps them after the images)."""

MAX_GROUPS = 10_000
"""Measurement groups read back from one report."""

Code = tuple[str, str, str]
"""(Code Value, Coding Scheme Designator, Code Meaning)."""

REPORT = ("126000", "DCM", "Imaging Measurement Report")
LANGUAGE = ("121049", "DCM", "Language of Content Item and Descendants")
ENGLISH = ("en-US", "RFC5646", "English (United States)")
OBSERVER_TYPE = ("121005", "DCM", "Observer Type")
DEVICE = ("121007", "DCM", "Device")
DEVICE_UID = ("121012", "DCM", "Device Observer UID")
DEVICE_NAME = ("121013", "DCM", "Device Observer Name")
DEVICE_MANUFACTURER = ("121014", "DCM", "Device Observer Manufacturer")
PROCEDURE_REPORTED = ("121058", "DCM", "Procedure reported")
IMAGING_PROCEDURE = ("363679005", "SCT", "Imaging procedure")
IMAGE_LIBRARY = ("111028", "DCM", "Image Library")
IMAGE_LIBRARY_GROUP = ("126200", "DCM", "Image Library Group")
IMAGING_MEASUREMENTS = ("126010", "DCM", "Imaging Measurements")
MEASUREMENT_GROUP = ("125007", "DCM", "Measurement Group")
TRACKING_ID = ("112039", "DCM", "Tracking Identifier")
TRACKING_UID = ("112040", "DCM", "Tracking Unique Identifier")
FINDING = ("121071", "DCM", "Finding")
IMAGE_REGION = ("111030", "DCM", "Image Region")
NOT_A_NUMBER = ("114000", "DCM", "Not a number")

#: Result quantities (:class:`viewer.imaging.measure.Value`) and their concept names.
QUANTITIES: dict[str, Code] = {
    "length": ("410668003", "SCT", "Length"),
    "angle": ("1483009", "SCT", "Angle"),
    "long axis": ("103339001", "SCT", "Long Axis"),
    "short axis": ("103340004", "SCT", "Short Axis"),
    "area": ("42798000", "SCT", "Area"),
    "mean": ("373098007", "SCT", "Mean"),
    "SD": ("386136009", "SCT", "Standard Deviation"),
    "min": ("255605001", "SCT", "Minimum"),
    "max": ("56851009", "SCT", "Maximum"),
}

#: Units of :mod:`viewer.imaging.measure` as UCUM codes (Code Value, Code Meaning).
UNITS: dict[str, tuple[str, str]] = {
    "mm": ("mm", "millimeter"),
    "mm²": ("mm2", "square millimeter"),
    "px": ("{pixels}", "pixels"),
    "px²": ("{pixels}2", "square pixels"),
    "°": ("deg", "degree"),
    "HU": ("[hnsf'U]", "Hounsfield unit"),
    "Bq/ml": ("Bq/mL", "Becquerels/milliliter"),
    "%": ("%", "Percent"),
    "": ("1", "no units"),
}
_UNITS_BACK = {code: unit for unit, (code, _) in UNITS.items()}

_KIND_MEANINGS = {
    "distance": "Distance measured with Lightbox",
    "angle": "Angle measured with Lightbox",
    "rectangle": "Rectangular region measured with Lightbox",
    "ellipse": "Elliptical region measured with Lightbox",
    "freehand": "Freehand region measured with Lightbox",
    "bidirectional": "Bidirectional (RECIST) measured with Lightbox",
}


class SrError(ValueError):
    """Measurements that cannot be written as asked, or a report that cannot be read back."""


# -- content items -----------------------------------------------------------------------------


def _code_item(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _item(relationship: str, value_type: str, concept: Code | None = None) -> Dataset:
    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    item.ValueType = value_type
    if concept is not None:
        item.ConceptNameCodeSequence = DicomSequence([_code_item(concept)])
    return item


def _children(item: Dataset, children: Iterable[Dataset]) -> Dataset:
    item.ContentSequence = DicomSequence(list(children))
    return item


def _code(relationship: str, concept: Code, value: Code) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = DicomSequence([_code_item(value)])
    return item


def _text(relationship: str, concept: Code, value: str) -> Dataset:
    item = _item(relationship, "TEXT", concept)
    item.TextValue = value
    return item


def _uidref(relationship: str, concept: Code, value: str) -> Dataset:
    item = _item(relationship, "UIDREF", concept)
    item.UID = value
    return item


def _container(relationship: str, concept: Code) -> Dataset:
    item = _item(relationship, "CONTAINER", concept)
    item.ContinuityOfContent = "SEPARATE"
    return item


def _image(relationship: str, ds: Dataset, frame_number: int) -> Dataset:
    item = _item(relationship, "IMAGE")
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    if _frames(ds) > 1:
        ref.ReferencedFrameNumber = frame_number
    item.ReferencedSOPSequence = DicomSequence([ref])
    return item


def _frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _graphic_data(points: Sequence[m.RowCol]) -> list[float]:
    """(row, column), centres at integers -> C.18.6.1.2 (column, row), corner at 0\\0."""
    out: list[float] = []
    for row, column in points:
        out += [column + 0.5, row + 0.5]
    return out


def _scoord(
    relationship: str,
    concept: Code | None,
    graphic_type: str,
    points: Sequence[m.RowCol],
    ds: Dataset,
    frame_number: int,
) -> Dataset:
    item = _item(relationship, "SCOORD", concept)
    item.GraphicType = graphic_type
    item.GraphicData = _graphic_data(points)
    return _children(item, [_image("SELECTED FROM", ds, frame_number)])


def _unit(unit: str) -> Code:
    code, meaning = UNITS.get(unit, (unit, unit))
    return (code, "UCUM", meaning)


def _num(value: m.Value, children: Sequence[Dataset] = ()) -> Dataset:
    concept = QUANTITIES[value.quantity]
    item = _item("CONTAINS", "NUM", concept)
    if value.value is None or not math.isfinite(value.value):
        item.MeasuredValueSequence = DicomSequence([])
        item.NumericValueQualifierCodeSequence = DicomSequence([_code_item(NOT_A_NUMBER)])
    else:
        measured = Dataset()
        measured.MeasurementUnitsCodeSequence = DicomSequence([_code_item(_unit(value.unit))])
        measured.NumericValue = format_number_as_ds(float(value.value))
        measured.FloatingPointValue = float(value.value)
        item.MeasuredValueSequence = DicomSequence([measured])
    if children:
        _children(item, children)
    return item


def _ellipse_points(shape: m.EllipseROI) -> list[m.RowCol]:
    """Major axis endpoints, then minor (C.18.6.1.2), of the ellipse inscribed in p0-p1."""
    (r0, c0), (r1, c1) = shape.p0, shape.p1
    rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
    horizontal = [(rc, min(c0, c1)), (rc, max(c0, c1))]
    vertical = [(min(r0, r1), cc), (max(r0, r1), cc)]
    if abs(c1 - c0) >= abs(r1 - r0):
        return horizontal + vertical
    return vertical + horizontal


def _group(
    number: int, measurement: m.Measurement, result: m.Result, ds: Dataset
) -> tuple[Dataset, list[str]]:
    shape = measurement.shape
    frame = measurement.frame_number
    skipped: list[str] = []
    group = _container("CONTAINS", MEASUREMENT_GROUP)
    items = [
        _text("HAS OBS CONTEXT", TRACKING_ID, f"{shape.kind} {number}"),
        _uidref("HAS OBS CONTEXT", TRACKING_UID, generate_uid(prefix=None)),
        _code("CONTAINS", FINDING, (shape.kind, PRIVATE_SCHEME, _KIND_MEANINGS[shape.kind])),
    ]
    values = [v for v in result.values if v.quantity in QUANTITIES]
    skipped = [v.quantity for v in result.values if v.quantity not in QUANTITIES]
    if isinstance(shape, m.RectROI | m.EllipseROI | m.FreehandROI):
        if isinstance(shape, m.EllipseROI):
            outline = _scoord(
                "CONTAINS", IMAGE_REGION, "ELLIPSE", _ellipse_points(shape), ds, frame
            )
        else:
            corners = m.handles(shape) if isinstance(shape, m.RectROI) else shape.vertices
            closed = [*corners, corners[0]]
            outline = _scoord("CONTAINS", IMAGE_REGION, "POLYLINE", closed, ds, frame)
        items.append(outline)
        items += [_num(v) for v in values]
    else:
        lines: dict[str, Sequence[m.RowCol]]
        if isinstance(shape, m.Bidirectional):
            lines = {"long axis": (shape.p0, shape.p1), "short axis": (shape.q0, shape.q1)}
        else:
            lines = {values[0].quantity: m.points_of(shape)} if values else {}
        for value in values:
            scoord = _scoord("INFERRED FROM", None, "POLYLINE", lines[value.quantity], ds, frame)
            items.append(_num(value, [scoord]))
    return _children(group, items), skipped


# -- the document ------------------------------------------------------------------------------

_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


@dataclass(frozen=True)
class Written:
    """What :func:`measurements_sr` wrote."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    notes: tuple[str, ...] = ()


def _result_of(measurement: m.Measurement, ds: Dataset) -> m.Result:
    """Measure on the source data set (its pixels when it holds them, else geometry only)."""
    index = measurement.frame_number - 1
    calibration = m.Calibration.from_dataset(ds, index)
    frame = None
    if "PixelData" in ds and isinstance(
        measurement.shape, m.RectROI | m.EllipseROI | m.FreehandROI
    ):
        try:
            frame = m.FrameValues.from_frame(ds, index, decode_frame(ds, index))
        except (DecodeError, ValueError) as exc:
            raise SrError(f"frame {measurement.frame_number} not decoded: {exc}") from exc
    return m.measure(measurement.shape, calibration, frame)


def measurements_sr(
    measurements: Sequence[m.Measurement],
    source_datasets: Iterable[Dataset] | Mapping[str, Dataset],
    *,
    out_path: str | os.PathLike[str],
    results: Sequence[m.Result] | None = None,
    complete: bool = True,
    now: datetime.datetime | None = None,
) -> Written:
    """Write ``measurements`` as a TID 1500 Comprehensive SR to ``out_path`` (see the module
    docstring) and return what was written.

    ``source_datasets`` are the measured images (at least their headers), found by SOP Instance
    UID; they must all belong to one study, which the report joins (same Study Instance UID,
    Patient and Study modules copied, new Series and SOP Instance UIDs). ``results`` are the
    values shown to the user, one per measurement; without them each measurement is measured
    here from its data set. ``complete`` False writes Completion Flag PARTIAL.
    """
    if isinstance(source_datasets, Mapping):
        sources = dict(source_datasets)
    else:
        sources = {str(ds.SOPInstanceUID): ds for ds in source_datasets}
    if not measurements:
        raise SrError("no measurements to write")
    if results is not None and len(results) != len(measurements):
        raise SrError(f"{len(results)} results for {len(measurements)} measurements")
    datasets = []
    for measurement in measurements:
        ds = sources.get(measurement.sop_instance_uid)
        if ds is None:
            raise SrError(f"no data set of image {escape(measurement.sop_instance_uid)}")
        if not 1 <= measurement.frame_number <= _frames(ds):
            raise SrError(
                f"image {measurement.sop_instance_uid} has no frame {measurement.frame_number}"
            )
        datasets.append(ds)
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in datasets}
    if len(studies) != 1 or "" in studies:
        raise SrError("the measured images must belong to one study (a report joins its study)")
    first = datasets[0]
    when = now or datetime.datetime.now()
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")

    sr = Dataset()
    if "SpecificCharacterSet" in first:
        sr.SpecificCharacterSet = first.SpecificCharacterSet
    sr.SOPClassUID = COMPREHENSIVE_SR
    sr.SOPInstanceUID = generate_uid(prefix=None)
    sr.InstanceCreationDate, sr.InstanceCreationTime = date, time
    for keyword in _PATIENT_STUDY:
        if keyword in first:
            setattr(sr, keyword, first.data_element(keyword).value)
        elif keyword in _TYPE2:
            setattr(sr, keyword, "")
    sr.Modality = "SR"
    sr.SeriesInstanceUID = generate_uid(prefix=None)
    sr.SeriesNumber = SERIES_NUMBER
    sr.SeriesDate, sr.SeriesTime = date, time
    sr.SeriesDescription = "Lightbox measurements"
    sr.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    sr.Manufacturer = "Lightbox"
    sr.SoftwareVersions = __version__
    sr.InstanceNumber = 1
    sr.CompletionFlag = "COMPLETE" if complete else "PARTIAL"
    sr.VerificationFlag = "UNVERIFIED"
    sr.ContentDate, sr.ContentTime = date, time
    sr.PerformedProcedureCodeSequence = DicomSequence([])

    # Current Requested Procedure Evidence: every referenced image once, by series
    series: dict[str, dict[str, Dataset]] = {}
    for ds in datasets:
        series.setdefault(str(ds.SeriesInstanceUID), {})[str(ds.SOPInstanceUID)] = ds
    study_item = Dataset()
    study_item.StudyInstanceUID = first.StudyInstanceUID
    study_item.ReferencedSeriesSequence = DicomSequence()
    for series_uid, images in series.items():
        series_item = Dataset()
        series_item.SeriesInstanceUID = series_uid
        series_item.ReferencedSOPSequence = DicomSequence()
        for ds in images.values():
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            series_item.ReferencedSOPSequence.append(ref)
        study_item.ReferencedSeriesSequence.append(series_item)
    sr.CurrentRequestedProcedureEvidenceSequence = DicomSequence([study_item])

    scheme = Dataset()
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = "Lightbox measurement kinds"
    scheme.CodingSchemeResponsibleOrganization = "Lightbox"
    sr.CodingSchemeIdentificationSequence = DicomSequence([scheme])

    # the content tree (TID 1500)
    sr.ValueType = "CONTAINER"
    sr.ConceptNameCodeSequence = DicomSequence([_code_item(REPORT)])
    sr.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "1500"
    sr.ContentTemplateSequence = DicomSequence([template])

    library_group = _container("CONTAINS", IMAGE_LIBRARY_GROUP)
    seen: set[str] = set()
    entries = []
    for ds in datasets:
        if str(ds.SOPInstanceUID) not in seen:
            seen.add(str(ds.SOPInstanceUID))
            entries.append(_image("CONTAINS", ds, 1) if _frames(ds) == 1 else _library_image(ds))
    _children(library_group, entries)

    notes: list[str] = []
    groups = []
    for number, (measurement, ds) in enumerate(zip(measurements, datasets, strict=True), 1):
        result = results[number - 1] if results is not None else _result_of(measurement, ds)
        if result.kind != measurement.shape.kind:
            raise SrError(f"result {number} is of a {result.kind}, not a {measurement.shape.kind}")
        group, skipped = _group(number, measurement, result, ds)
        groups.append(group)
        skipped = [q for q in skipped if q != "pixels"]
        if skipped:
            notes.append(f"{measurement.shape.kind} {number}: {', '.join(skipped)} not written")
        if result.calibration not in (m.MM, m.PX):
            notes.append(
                f"{measurement.shape.kind} {number}: written in mm, measured {result.calibration}"
            )

    _children(
        sr,
        [
            _code("HAS CONCEPT MOD", LANGUAGE, ENGLISH),
            _code("HAS OBS CONTEXT", OBSERVER_TYPE, DEVICE),
            _uidref("HAS OBS CONTEXT", DEVICE_UID, IMPLEMENTATION_CLASS_UID),
            _text("HAS OBS CONTEXT", DEVICE_NAME, "Lightbox"),
            _text("HAS OBS CONTEXT", DEVICE_MANUFACTURER, "Lightbox"),
            _code("HAS CONCEPT MOD", PROCEDURE_REPORTED, IMAGING_PROCEDURE),
            _children(_container("CONTAINS", IMAGE_LIBRARY), [library_group]),
            _children(_container("CONTAINS", IMAGING_MEASUREMENTS), groups),
        ],
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sr.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    sr.file_meta = meta

    target = Path(out_path)
    fd, temporary = tempfile.mkstemp(prefix=".sr-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            sr.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Written(target, str(sr.SOPInstanceUID), str(sr.SeriesInstanceUID), tuple(notes))


def _library_image(ds: Dataset) -> Dataset:
    """An Image Library entry of a multi-frame image: the whole image (no frame)."""
    item = _item("CONTAINS", "IMAGE")
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.ReferencedSOPSequence = DicomSequence([ref])
    return item


# -- reading back ------------------------------------------------------------------------------


def _concept(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    seq = item.get(keyword)
    if not seq:
        return ("", "")
    return (
        str(seq[0].get("CodeValue", "") or "").strip(),
        str(seq[0].get("CodingSchemeDesignator", "") or "").strip(),
    )


def _content(item: Dataset) -> list[Dataset]:
    return [c for c in (item.get("ContentSequence") or []) if isinstance(c, Dataset)]


@dataclass(frozen=True)
class _Scoord:
    graphic_type: str
    points: tuple[m.RowCol, ...]
    sop_instance_uid: str
    frame_number: int


def _read_scoord(item: Dataset) -> _Scoord | None:
    graphic_type = str(item.get("GraphicType", "") or "").strip().upper()
    data = item.get("GraphicData")
    try:
        numbers = [float(v) for v in (data if data is not None else [])]
    except (TypeError, ValueError):
        return None
    if not numbers or len(numbers) % 2 or len(numbers) > 2 * (m.MAX_VERTICES + 1):
        return None
    if not all(math.isfinite(n) and abs(n) <= m.MAX_COORDINATE for n in numbers):
        return None
    points = tuple((numbers[i + 1] - 0.5, numbers[i] - 0.5) for i in range(0, len(numbers), 2))
    for child in _content(item):
        if str(child.get("ValueType", "")).upper() != "IMAGE":
            continue
        refs = child.get("ReferencedSOPSequence") or []
        if not refs:
            continue
        uid = str(refs[0].get("ReferencedSOPInstanceUID", "") or "").strip()
        frames = refs[0].get("ReferencedFrameNumber")
        try:
            frame = int(
                frames[0] if isinstance(frames, Sequence | list) and frames else frames or 1
            )
        except (TypeError, ValueError):
            frame = 1
        return _Scoord(graphic_type, points, uid, max(frame, 1))
    return None


def _shape(kind: str, scoords: list[tuple[str, _Scoord]]) -> m.Shape | None:
    by_quantity = dict(scoords)
    if not scoords:
        return None
    first = scoords[0][1]
    pts = first.points
    closed = len(pts) > 2 and pts[0] == pts[-1]
    if not kind:  # another writer's report: guess from the geometry
        if first.graphic_type == "ELLIPSE":
            kind = "ellipse"
        elif "long axis" in by_quantity and "short axis" in by_quantity:
            kind = "bidirectional"
        elif closed:
            kind = "freehand"
        elif len(pts) == 2:
            kind = "distance"
        elif len(pts) == 3:
            kind = "angle"
        else:
            return None
    if kind == "bidirectional":
        long_axis, short_axis = by_quantity.get("long axis"), by_quantity.get("short axis")
        if long_axis is None or short_axis is None:
            return None
        return m.Bidirectional(*long_axis.points[:2], *short_axis.points[:2])
    if kind == "ellipse":
        if first.graphic_type != "ELLIPSE" or len(pts) != 4:
            return None
        rows, cols = [p[0] for p in pts], [p[1] for p in pts]
        return m.EllipseROI((min(rows), min(cols)), (max(rows), max(cols)))
    if kind == "rectangle":
        if len(pts) != 5:
            return None
        return m.RectROI(pts[0], pts[2])
    if kind == "freehand":
        return m.FreehandROI(pts[:-1] if closed else pts)
    return m.shape_from_points(kind, list(pts))


def read_measurements_sr(path: str | os.PathLike[str]) -> list[m.Measurement]:
    """The measurements of a TID 1500 report, shapes as :func:`measurements_sr` wrote them
    (another writer's groups guessed from their SCOORDs; a group that is no shape we know is
    left out). :class:`SrError` for a file that is no SR."""
    try:
        ds = read_file(path).dataset
    except DecodeError as exc:
        raise SrError(str(exc)) from exc
    try:
        return _measurements_of(ds)
    except SrError:
        raise
    except Exception as exc:  # a damaged value, whatever pydicom raised for it
        raise SrError(f"{escape(os.fspath(path))}: {escape(str(exc)[:200])}") from exc


def _measurements_of(ds: Dataset) -> list[m.Measurement]:
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class not in _READABLE:
        raise SrError(f"not a Comprehensive or Enhanced SR (SOP Class {escape(sop_class[:64])})")
    out: list[m.Measurement] = []
    for container in _content(ds):
        if _concept(container) != IMAGING_MEASUREMENTS[:2]:
            continue
        for group in _content(container)[:MAX_GROUPS]:
            if _concept(group) != MEASUREMENT_GROUP[:2]:
                continue
            kind = ""
            scoords: list[tuple[str, _Scoord]] = []
            for item in _content(group):
                value_type = str(item.get("ValueType", "") or "").upper()
                concept = _concept(item)
                if value_type == "CODE" and concept == FINDING[:2]:
                    code = _concept(item, "ConceptCodeSequence")
                    if code[1] == PRIVATE_SCHEME and code[0] in _KIND_MEANINGS:
                        kind = code[0]
                elif value_type == "SCOORD":
                    scoord = _read_scoord(item)
                    if scoord is not None:
                        scoords.append(("region", scoord))
                elif value_type == "NUM":
                    quantity = next((q for q, c in QUANTITIES.items() if c[:2] == concept), "")
                    for child in _content(item):
                        if str(child.get("ValueType", "")).upper() == "SCOORD":
                            scoord = _read_scoord(child)
                            if scoord is not None:
                                scoords.append((quantity, scoord))
            try:
                shape = _shape(kind, scoords)
            except ValueError:
                shape = None
            if shape is None or not scoords:
                continue
            reference = scoords[0][1]
            try:
                out.append(m.Measurement(shape, reference.sop_instance_uid, reference.frame_number))
            except ValueError:
                continue
    return out


def values_of(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every NUM of the report's measurement groups: ``{"quantity", "value", "unit"}`` in
    document order (value None for an undefined one); for tests and the CSV of a report."""
    ds = read_file(path).dataset
    found: list[dict[str, Any]] = []

    def walk(item: Dataset, depth: int) -> None:
        if depth > 16:
            return
        for child in _content(item):
            if str(child.get("ValueType", "")).upper() == "NUM":
                concept = _concept(child)
                quantity = next((q for q, c in QUANTITIES.items() if c[:2] == concept), "")
                measured = child.get("MeasuredValueSequence") or []
                value: float | None = None
                unit = ""
                if measured:
                    fp = measured[0].get("FloatingPointValue")
                    value = float(fp if fp is not None else measured[0].NumericValue)
                    code = _concept(measured[0], "MeasurementUnitsCodeSequence")[0]
                    unit = _UNITS_BACK.get(code, code)
                found.append({"quantity": quantity, "value": value, "unit": unit})
            walk(child, depth + 1)

    walk(ds, 0)
    return found
