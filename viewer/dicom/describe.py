"""One description of a data set: what the patient > study > series > instance tree, the store's
index and the browser need of one header (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.6.1-3, C.12.1).

Scan (media opened without importing) and import (the store's index) read the same fields the
same way, so a disc shows the same patient, study and series before and after it is imported.
Values are text as the file holds them (stripped of padding and NULs; several values joined by a
backslash); malformed numbers are None, never an exception. ASCII-only VRs are read from the raw
bytes without pydicom's conversion, which costs as much as the rest of an import.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue


@dataclass(frozen=True, slots=True)
class Description:
    """One header, described; small and picklable (worker processes send it back)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    patient_name: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_id: str
    accession_number: str
    study_description: str
    modality: str
    series_number: int | None
    series_description: str
    series_date: str
    series_time: str
    body_part_examined: str
    instance_number: int | None
    number_of_frames: int
    rows: int
    columns: int
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None
    acquisition_time: str

    def into(self, cls: type[T], **given: Any) -> T:
        """A ``cls`` (a dataclass: :class:`viewer.model.Instance`, the store's index record)
        with every field it shares with this description, ``given`` ones as given."""
        shared = {
            f.name: getattr(self, f.name)
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name not in given and f.name in _FIELDS
        }
        return cls(**shared, **given)


T = TypeVar("T")


def describe(ds: pydicom.Dataset) -> Description:
    """The description of ``ds``; the SOP Class and Instance UIDs fall back to the File Meta's
    Media Storage ones when the data set lacks them."""
    meta = getattr(ds, "file_meta", None)

    def meta_text(keyword: str) -> str:
        try:
            return str(meta.get(keyword, "") or "").strip() if meta is not None else ""
        except Exception:
            return ""

    frames = integer(ds, "NumberOfFrames")
    position, orientation = _geometry(ds)
    return Description(
        sop_class_uid=text(ds, "SOPClassUID") or meta_text("MediaStorageSOPClassUID"),
        sop_instance_uid=text(ds, "SOPInstanceUID") or meta_text("MediaStorageSOPInstanceUID"),
        study_instance_uid=text(ds, "StudyInstanceUID"),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        transfer_syntax_uid=meta_text("TransferSyntaxUID"),
        patient_id=text(ds, "PatientID") or None,
        patient_name=text(ds, "PatientName"),
        birth_date=text(ds, "PatientBirthDate"),
        sex=text(ds, "PatientSex"),
        study_date=text(ds, "StudyDate"),
        study_time=text(ds, "StudyTime"),
        study_id=text(ds, "StudyID"),
        accession_number=text(ds, "AccessionNumber"),
        study_description=text(ds, "StudyDescription"),
        modality=text(ds, "Modality"),
        series_number=integer(ds, "SeriesNumber"),
        series_description=text(ds, "SeriesDescription"),
        series_date=text(ds, "SeriesDate"),
        series_time=text(ds, "SeriesTime"),
        body_part_examined=text(ds, "BodyPartExamined"),
        instance_number=integer(ds, "InstanceNumber"),
        number_of_frames=frames if frames is not None and frames > 0 else 1,
        rows=integer(ds, "Rows") or 0,
        columns=integer(ds, "Columns") or 0,
        image_position=_floats(position, 3),  # type: ignore[arg-type]
        image_orientation=_floats(orientation, 6),  # type: ignore[arg-type]
        acquisition_time=text(ds, "AcquisitionTime"),
    )


#: VRs whose values use only the default repertoire (PS3.5 section 6.2), so their raw bytes can
#: be read without pydicom's conversion.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})


def _ascii(ds: pydicom.Dataset, keyword: str) -> str | None:
    """The value of an ASCII-only element as text, or None when the element is not a raw
    element of such a VR (then :func:`text` converts it normally)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    try:
        elem = ds.get_item(tag)
    except Exception:
        return None
    if elem is None:
        return ""
    if not isinstance(elem, RawDataElement) or not isinstance(elem.value, bytes):
        return None
    vr = elem.VR or dictionary_VR(tag)
    if vr not in _ASCII_VRS:
        return None
    return elem.value.decode("ascii", "replace").replace("\x00", "").strip()


def _value(ds: pydicom.Dataset, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:  # a malformed value: treat as absent
        return None


def text(ds: pydicom.Dataset, keyword: str) -> str:
    """An element's value as text ("" when absent or unreadable)."""
    fast = _ascii(ds, keyword)
    if fast is not None:
        return fast
    value = _value(ds, keyword)
    if value is None:
        return ""
    try:
        joined = "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value)
    except Exception:
        return ""
    return joined.replace("\x00", "").strip()


def integer(ds: pydicom.Dataset, keyword: str) -> int | None:
    """The first value of an IS/US element as an int (``"1.0"`` too), None when malformed."""
    first = text(ds, keyword).split("\\")[0].strip()
    if not first:
        return None
    try:
        number = int(float(first))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None


def _geometry(ds: pydicom.Dataset) -> tuple[Any, Any]:
    """Image Position/Orientation (PS3.3 C.7.6.2) as text, or from the shared functional
    groups of an enhanced multi-frame object (PS3.3 C.7.6.16.2.3) when the top level has none."""
    position = text(ds, "ImagePositionPatient").split("\\")
    orientation = text(ds, "ImageOrientationPatient").split("\\")
    if orientation == [""]:
        shared = _value(ds, "SharedFunctionalGroupsSequence")
        try:
            if shared:
                plane = shared[0].get("PlaneOrientationSequence")
                if plane:
                    orientation = text(plane[0], "ImageOrientationPatient").split("\\")
        except (AttributeError, IndexError, TypeError):
            pass
    return position, orientation


def _floats(values: list[str], count: int) -> tuple[float, ...] | None:
    if len(values) != count:
        return None
    try:
        numbers = tuple(float(v) for v in values)
    except ValueError:
        return None
    if not all(n == n and abs(n) != float("inf") for n in numbers):
        return None  # NaN or infinite: no geometry
    return numbers


_FIELDS = frozenset(f.name for f in fields(Description))
