"""De-identification for research and teaching exports (never the default).

PS3.15 Annex E, Basic Application Level Confidentiality Profile, with these options of Table
E.1-1 (codes from CID 7050, PS3.16):

====================================  ========  ==================================================
option                                code      here
====================================  ========  ==================================================
Basic Application Confidentiality     113100    always
Retain Longitudinal Temporal Info     113106    ``keep_dates``: dates and times kept
  with Full Dates
Retain Longitudinal Temporal Info     113107    ``shift_dates=DAYS``: every date moved by the same
  with Modified Dates                           number of days across the export; times kept
Retain Patient Characteristics        113108    ``keep_characteristics``
Retain Device Identity                113109    ``keep_device``
Retain UIDs                           113110    ``keep_uids``
====================================  ========  ==================================================

Why not a library (both fetched with ``pip download`` and read, November 2026): dicognito 0.19
replaces names and IDs with invented ones and shifts every date by a random offset, but follows
its own list of elements, not Table E.1-1, and has none of the Retain Patient Characteristics /
Device Identity / UIDs options nor the CID 7050 codes; deid 0.4.13 ships pixel-cleaning filters
(``deid.dicom``: regions to black out per scanner model) and leaves the header actions to recipes
written by hand, and pulls in matplotlib. pydicom does not ship the table. So the action table
below is derived from PS3.15 Table E.1-1 (read in the machine-readable form of the standard
published by Innolitics, ``confidentiality_profile_attributes.json``), one entry per attribute:
tag, Basic Profile action, and which of our options keep (or, for Modified Dates, shift) it.

Actions (PS3.15 E.1.1): ``X`` remove, ``Z`` zero length (or a dummy), ``D`` dummy value, ``U``
a new UID (one per original UID across the whole export, so references in other files and in
sequences still match), ``K`` keep. Compound actions keep the attribute when the IOD may need it:
``X/Z`` -> Z, ``X/D``, ``Z/D`` and ``X/Z/D`` -> D, ``X/Z/U*`` -> the sequence is kept and its
UIDs replaced. A sequence given ``D`` (Content Sequence, Verifying Observer Sequence...) keeps its
structure and codes, while every name, free text, date and UID inside it is replaced.

Beyond the table, as PS3.15 E.1.1 allows for attributes "likely to contain identifying
information": private attributes (odd groups) are removed (the Basic Profile's rule); curves
(50xx) and overlays (60xx: Overlay Data and Comments are ``X``, the rest of the group is useless
without them) are removed; every other person name gets a dummy; every other date, time and
date-time follows the temporal option (kept, shifted, or a dummy); every other UID is replaced
unless it names a class or a coding scheme (SOP Class UIDs and the like, and the
``1.2.840.10008`` root, identify no one). The options of the table whose action is ``C`` (clean:
Allergies, Patient State, Pre-Medication, Special Needs) cannot be cleaned automatically: they are
removed as in the Basic Profile.

Patient ID gets a pseudonym (``ANON`` + 10 hex digits, the same for every file of the original
patient: the DICOMDIR needs a non-empty Patient ID, PS3.3 F.5), Patient's Name the same pseudonym;
Study Date / Study Time (``Z``, type 1 DICOMDIR keys) get a dummy ``19000101`` / ``000000`` unless
the dates are kept or shifted. Every file gets Patient Identity Removed ``YES``, De-identification
Method (0012,0063), De-identification Method Code Sequence (0012,0064) and Longitudinal Temporal
Information Modified (0028,0303), PS3.3 C.7.1.1 and C.7.6.1.

Pixel data are not touched: Burned In Annotation ``YES``, ultrasound and secondary capture images
(which often carry names in their pixels) give a warning (the Clean Pixel Data option is not
offered).

One deviation from the table as read: Treatment Machine Name (300A,00B2) is ``X`` there but Type 2
in the RT Beams Module (PS3.3 C.8.8.14), so an RT Plan without it fails ``dciodvfy``: it gets
``X/Z`` (emptied, not removed).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import os
import re
import secrets
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from viewer import __version__
from viewer.media.plan import Cancelled

# Table E.1-1: tag, Basic Profile action, options that retain it: T = Retain Longitudinal
# Temporal Information (K with Full Dates, C = shifted with Modified Dates), U = Retain UIDs,
# P = Retain Patient Characteristics, D = Retain Device Identity. Alphabetical as in the table.
_TABLE_E1_1 = """
00080050 Z;00184000 X;00400555 X/Z;00080022 X/Z T;0008002A X/Z/D T;00181400 X/D;001811BB D
00189424 X;00080032 X/Z T;00404035 X;001021B0 X;0040A353 X;00380010 X;00380020 X T;00081084 X
00081080 X;00380021 X T;00001000 X U;00102110 X;40000010 X;0040A078 X;22000005 X/Z;300A00C3 X
300A00DD X;00101081 X;0016004D X;00181007 X D;00120060 Z;00120082 X;00120081 D;00120020 D
00120021 Z;00120072 X;00120071 X;00120030 Z;00120031 Z;00120010 D;00120040 D;00120042 D
00120051 X;00120050 Z;00400310 X;00400280 X;300A02EB X;00209161 U U;3010000F Z;30100017 Z
30100006 U U;00403001 X;30100013 U U;0008009C Z;0008009D X;0050001B X;0040051A X;00400512 D
00700086 X;00700084 Z/D;00080023 Z/D T;0040A730 D;00080033 Z/D T;00180010 Z/D;0018A003 X
00102150 X;0040A307 X;00380300 X;00080025 X T;00080035 X T;0040A07C X;FFFCFFFC X;0018937F X
00082111 X;0018700A X/D D;3010001B Z;00500020 X D;3010002D D D;00181000 X/Z/D D;0016004B X
00181002 U UD;FFFAFFFA X;04000100 U;00209164 U U;00380040 X;4008011A X;40080119 X;300A0016 X
300A0013 U U;3010006E U U;00189517 X/D T;30100037 X;30100035 D;30100038 D;30100036 X
300A0676 X;00102160 X P;00404011 X T;00080058 U U;0070031A U U;00402017 Z;30080054 X/D T
300A0196 X;00340002 D;00340001 D;3010007F Z;300A0072 X;00209158 X;00200052 U U;00340007 D T
00181008 X D;00181005 X D;00160076 X;00160075 X;0016008C X;0016008D X T;00160088 X;00160087 X
0016008A X;00160089 X;00160084 X;00160083 X;00160086 X;00160085 X;0016008E X;0016007B X
00160081 X;00160080 X;00160072 X;00160071 X;00160074 X;00160073 X;00160082 X;0016007A X
0016008B X;00160078 X;0016007D X;0016007C X;00160079 X;00160077 X;0016007F X;0016007E X
00160070 X;00700001 D;00404037 X;00404036 X;00880200 X;00084000 X;00204000 X;00284000 X
00402400 X;003A0314 D T;40080300 X;00080015 X T;00080014 U U;04000600 X;00080081 X;00081040 X
00081041 X;00080082 X/Z/D;00080080 X/Z/D;00101050 X;3010004D X/D T;3010004C X/D T;00401011 X
300A0741 D T;300A0742 D;300A0783 D;40080111 X;4008010C X;40080115 X;40080202 X;40080102 X
4008010B X;4008010A X;00083010 U U;00380011 X;00380014 X;00100021 X;00380061 X;00380064 X
00400513 Z;00400562 Z;22000002 X/Z;00281214 U U;001021D0 X T;0016004F X D;00160050 X D
00160051 X D;0016004E X D;00500021 X;04000404 X;0016002B X;0018100B U UD;30100043 Z D
00020003 U U;00102000 X;00101090 X;00101080 X;04000550 X;00203406 X;00203401 X;30080056 X/D T
0018937B X;003A0310 U U;00081060 X;00401010 X;04000551 X;04000552 X;0040A192 X T;0040A402 U U
0040A193 X T;0040A171 U U;00102180 X;00081072 X/D;00081070 X/Z/D;00402010 X;00402011 X
00402008 X;00402009 X;04000561 X;00101000 X;00101002 X;00101001 X;00080024 X T;00080034 X T
300A0760 D T;00281199 U U;0040A07A X;00101040 X;00101010 X P;00100030 Z;00101005 X;00100032 X
00380400 X;00100050 X;00101060 X;00100010 Z;00100101 X;00100102 X;001021F0 X;00100040 Z P
00102203 X/Z P;00101020 X P;00102155 X;00102154 X;00101030 X P;00104000 X;00100020 Z
300A0650 U U;00380500 X;00401004 X;00400243 X;00400254 X;00400250 X T;00404051 X T
00400251 X T;00400253 X;00400244 X T;00404050 X T;00400245 X T;00400241 X D;00404030 X D
00400242 X D;00404028 X D;00081050 X;00081052 X;00401102 X;00401104 X;00401103 X;00401101 D
0040A123 D;00081048 X;00081049 X;00081062 X;40080114 X;00402016 Z;00181004 X D;001021C0 X P
00400012 X;300A000E X;3010007B Z;30100081 Z;00701101 U U;00701102 U U;30100061 X;00404052 X T
00181030 X/D;300A0619 D;300A0623 D;300A067D Z;300A067C D;300C0113 X;0040100A X;00321030 X
3010005C Z;00402001 X;00401002 X;00321066 X;00321067 X;300A073A D T;3010000B U U;04000402 X
300A0083 U U;3010006F U U;30100031 U U;30060024 U U;00404023 U U;00081140 X/Z/U* U
0040A172 U U;00380004 X;00101100 X;00081120 X;00081111 X/Z/D U;04000403 X;00081155 U U
00041511 U U;00081110 X/Z U;00080092 X;00080090 Z;00080094 X;00080096 X;00102152 X
300600C2 U U;00400275 X;00321070 X;00401400 X;00321060 X/Z;00401001 X;00401005 X;00189937 X
00001001 U U;00321032 X;00321033 X;00189185 X;00102299 X;00102297 X;40084000 X;40080118 X
40080042 X;300E0008 X/Z;30060028 X;30060038 X;300600A6 Z;30060026 Z;30060088 X;30060085 X
300A0615 Z;300A0611 Z;3010005A Z;300A0006 X/D T;300A0004 X;300A0002 D;300A0003 X
300A0007 X/D T;30100054 D;300A062A D;30100056 X/D;3010003B U U;00404034 X;0038001E X
00400006 X;0040000B X;00400007 X;00400004 X T;00400005 X T;00404008 X T;00400009 X
00400011 X D;00404010 X T;00400002 X T;00404005 X T;00400003 X T;00400001 X D;00404027 X D
00400010 X D;00404025 X D;00321020 X D;00321021 X D;00080021 X/D T;0008103E X;0020000E U U
00080031 X/D T;00380062 X;00380060 X;300A01B2 X;300A01A6 X;004006FA X;001021A0 X P
00080018 U U;30100015 U U;0018936A D T;00340005 D;00082112 X/Z/U* U;300A0216 X D
30080105 X/Z D;00189369 D T;00380050 X;0040050A X;00400602 X;00400551 D;00400610 Z;00400600 X
00400554 U U;00189516 X/D T;00081010 X/Z/D D;00880140 U U;30060008 Z T;30060006 X;30060002 D
30060004 X;30060009 X/D T;00324000 X;00080020 Z T;00081030 X;00200010 Z;00320012 X
0020000D U U;00080030 Z T;00200200 U U;00182042 U U;0040A354 X;0040DB0D U U;0040DB0C U U
40004000 X;20300020 X;00080201 X T;00880910 X;00880912 X;00880906 X;00880904 X;00620021 U U
00081195 U U;00185011 X D;30080250 X/D T;300A00B2 X/Z D;300A0608 D;300A0609 U U;300A0700 U U
30100077 D;3010007A Z;30080251 X/D T;300A0736 D T;300A0734 D;0018100A X D;0040A124 U
00181009 X D;30100033 D;30100034 D;0040A352 X;0040A358 X;0040A088 Z;0040A075 D;0040A073 D
0040A027 D;00384000 X;00189371 D D;00189373 X D;00189367 D D
"""


@dataclass(frozen=True, slots=True)
class _Rule:
    action: str
    """One of X, Z, D, U, K (compound actions of the table resolved, see the module doc) or
    ``U*`` (keep the sequence, replace the UIDs inside)."""
    retain: frozenset[str]


def _resolve(action: str) -> str:
    if action == "X/Z/U*":
        return "U*"
    if "D" in action.split("/"):
        return "D"
    if action == "X/Z":
        return "Z"
    return action


def _parse_table(text: str) -> dict[int, _Rule]:
    rules: dict[int, _Rule] = {}
    for entry in re.split(r"[;\n]", text):
        parts = entry.split()
        if not parts:
            continue
        tag = int(parts[0], 16)
        retain = frozenset(parts[2]) if len(parts) > 2 else frozenset()
        if tag in rules:
            raise ValueError(f"Table E.1-1 entry ({parts[0]}) twice")
        rules[tag] = _Rule(_resolve(parts[1]), retain)
    return rules


TABLE: dict[int, _Rule] = _parse_table(_TABLE_E1_1)
"""Tag -> rule, from PS3.15 Table E.1-1 (curves, overlays and private attributes by group)."""

DUMMY_DATE = "19000101"
DUMMY_TIME = "000000"
DUMMY_DATETIME = "19000101000000"
DUMMY_NAME = "ANONYMOUS"
DUMMY_TEXT = "ANONYMIZED"

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
STUDY_DATE = 0x00080020
STUDY_TIME = 0x00080030
CONTENT_SEQUENCE = 0x0040A730
TEXT_VALUE = 0x0040A160

_FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
"""Inside a sequence replaced with ``D``, values of these VRs may name someone: dummies."""
_KEEP_UID_KEYWORDS = frozenset(
    {
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "MappingResourceUID",
        "PrivateInformationCreatorUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "CodingSchemeRegistry",
    }
)
DICOM_ROOT = "1.2.840.10008."
_CODED_KEYWORDS = frozenset(
    {
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "URNCodeValue",
        "MappingResource",
        "ContextIdentifier",
        "TemplateIdentifier",
        "RelationshipType",
        "ValueType",
        "ContinuityOfContent",
        "CompletionFlag",
        "VerificationFlag",
    }
)
"""Inside a sequence replaced with ``D``: coded values and SR structure, kept."""

# CID 7050 (PS3.16): De-identification Method.
METHOD_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "keep_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "shift_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "keep_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "keep_device": ("113109", "Retain Device Identity Option"),
    "keep_uids": ("113110", "Retain UIDs Option"),
}

_US_SC_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.6.",  # Ultrasound Image Storage (and retired)
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (and the multi-frame ones)
)


class DeidentifyError(Exception):
    """A file cannot be de-identified (unreadable, not DICOM): the message names it."""


@dataclass(frozen=True, slots=True)
class DeidentifyOptions:
    """The options of the profile (PS3.15 E.3): all off = the Basic Profile alone."""

    keep_dates: bool = False
    shift_dates: int | None = None
    """Days added to every date (negative: earlier), consistently across the export."""
    keep_characteristics: bool = False
    keep_device: bool = False
    keep_uids: bool = False

    def __post_init__(self) -> None:
        if self.keep_dates and self.shift_dates is not None:
            raise ValueError(
                "keep_dates and shift_dates exclude each other: keep the dates or shift them"
            )

    @property
    def option_names(self) -> list[str]:
        names = [
            n
            for n in ("keep_dates", "keep_characteristics", "keep_device", "keep_uids")
            if getattr(self, n)
        ]
        if self.shift_dates is not None:
            names.insert(0, "shift_dates")
        return names

    def describe(self) -> str:
        """One line for reports and README.TXT: the profile and its options."""
        parts = [METHOD_CODES[n][1] for n in ["basic", *self.option_names]]
        if self.shift_dates is not None:
            parts[parts.index(METHOD_CODES["shift_dates"][1])] += f" ({self.shift_dates:+d} days)"
        return "; ".join(parts)


@dataclass(slots=True)
class DeidentifyReport:
    """What a run did, per file: warnings for pixels that may carry identity, refused files."""

    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """De-identified copy -> original path."""


class Deidentifier:
    """One export: the same original UID becomes the same new UID in every file, the same
    patient the same pseudonym, every date moves by the same number of days.

    ``secret`` seeds the pseudonyms; by default a new random one per export, so that two exports
    cannot be linked through their pseudonyms. Not thread-safe: one export, one thread.
    """

    def __init__(
        self, options: DeidentifyOptions | None = None, *, secret: bytes | None = None
    ) -> None:
        self.options = options or DeidentifyOptions()
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._uids: dict[str, str] = {}
        self._patients: dict[tuple[str, ...], str] = {}
        self.warnings: list[str] = []

    # --- mappings ------------------------------------------------------------------------

    @property
    def uid_map(self) -> dict[str, str]:
        """Original UID -> new UID, for every UID replaced so far (a copy)."""
        return dict(self._uids)

    def new_uid(self, uid: str) -> str:
        """The 2.25 UID (PS3.5 B.2) standing for ``uid`` in this export."""
        uid = uid.strip("\x00 ")
        if not uid:
            return uid
        mapped = self._uids.get(uid)
        if mapped is None:
            mapped = self._uids[uid] = f"2.25.{uuid.uuid4().int}"
        return mapped

    def pseudonym(self, patient_id: str, name: str = "", birth_date: str = "") -> str:
        """``ANON`` + 10 hex digits: the same for the same original patient in this export.
        Without a Patient ID the patient is told apart by name and birth date, as the writer
        does (its NOID policy)."""
        key = (patient_id,) if patient_id else ("", name, birth_date)
        found = self._patients.get(key)
        if found is None:
            digest = hmac.new(self._secret, "\x1f".join(key).encode(), hashlib.sha256)
            found = "ANON" + digest.hexdigest()[:10].upper()
            while found in self._patients.values():  # a 40-bit collision: next one
                digest = hmac.new(self._secret, digest.digest(), hashlib.sha256)
                found = "ANON" + digest.hexdigest()[:10].upper()
            self._patients[key] = found
        return found

    # --- one dataset ---------------------------------------------------------------------

    def deidentify(self, ds: Dataset, source: str = "") -> list[str]:
        """De-identify ``ds`` in place; returns the warnings for this file (also kept in
        :attr:`warnings`). ``source`` names the file in the warnings."""
        name = source or "dataset"
        found: list[str] = []
        burned = str(ds.get("BurnedInAnnotation", "")).strip().upper()
        modality = str(ds.get("Modality", "")).strip().upper()
        sop_class = str(ds.get("SOPClassUID", ""))
        if burned == "YES":
            found.append(
                f"{name}: Burned In Annotation is YES: the pixels show identifying text that "
                "de-identification does not remove"
            )
        elif modality in ("US", "SC") or sop_class.startswith(_US_SC_CLASSES):
            what = (
                "an ultrasound"
                if modality == "US" or ".1.1.6" in sop_class
                else ("a secondary capture")
            )
            found.append(
                f"{name}: {what} image: its pixels may show the patient's name or other "
                "identifying text, which de-identification does not remove; check the images"
            )
        patient_id = str(ds.get("PatientID", "") or "").strip()
        patient_name = str(ds.get("PatientName", "") or "").strip()
        birth = str(ds.get("PatientBirthDate", "") or "").strip()
        pseudonym = self.pseudonym(patient_id, patient_name, birth)

        self._dataset(ds, strict=False)

        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        if "PatientBirthDate" not in ds:
            ds.PatientBirthDate = ""
        if "PatientSex" not in ds:
            ds.PatientSex = ""
        opts = self.options
        if not opts.keep_dates and opts.shift_dates is None:
            ds.StudyDate = DUMMY_DATE
            ds.StudyTime = DUMMY_TIME
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [
            "PS3.15 E Basic Application Confidentiality Profile",
            *(
                (
                    f"{METHOD_CODES[n][1]} ({opts.shift_dates:+d} days)"
                    if n == "shift_dates"
                    else METHOD_CODES[n][1]
                )[:64]
                for n in opts.option_names
            ),
            f"Lightbox {__version__}"[:64],
        ]
        codes = DicomSequence()
        for option in ["basic", *opts.option_names]:
            value, meaning = METHOD_CODES[option]
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = codes
        ds.LongitudinalTemporalInformationModified = (
            "UNMODIFIED"
            if opts.keep_dates
            else "MODIFIED"
            if opts.shift_dates is not None
            else "REMOVED"
        )
        meta = getattr(ds, "file_meta", None)
        if isinstance(meta, FileMetaDataset) and "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        self.warnings.extend(found)
        return found

    def _dataset(self, ds: Dataset, *, strict: bool) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            group = tag >> 16
            if group % 2 == 1:
                del ds[elem.tag]  # private attributes, and their creators (Basic Profile: X)
                continue
            if 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E:
                del ds[elem.tag]  # curves, overlays (Table E.1-1 X)
                continue
            if group == 0x0002:
                continue
            if tag & 0xFFFF == 0:
                del ds[elem.tag]  # a retired group length: wrong once elements are removed
                continue
            self._element(ds, elem, strict=strict)

    def _element(self, ds: Dataset, elem: DataElement, *, strict: bool) -> None:
        rule = TABLE.get(int(elem.tag))
        opts = self.options
        vr = elem.VR
        if rule is None:
            self._untabled(ds, elem, strict=strict)
            return
        action = rule.action
        dates = "T" in rule.retain
        if (
            (dates and opts.keep_dates)
            or ("U" in rule.retain and opts.keep_uids)
            or ("P" in rule.retain and opts.keep_characteristics)
            or ("D" in rule.retain and opts.keep_device)
        ):
            action = "K"
        elif dates and opts.shift_dates is not None:
            self._shift(elem)
            return
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = DicomSequence() if vr == "SQ" else (b"" if _binary(vr) else "")
        elif action == "D":
            self._dummy(elem)
        elif action == "U":
            self._uid(elem)
        elif vr == "SQ":  # K or U*: kept, its items still de-identified
            for item in elem.value or []:
                self._dataset(item, strict=strict)

    def _untabled(self, ds: Dataset, elem: DataElement, *, strict: bool) -> None:
        """Attributes Table E.1-1 does not name: kept, but for names, dates and UIDs (see the
        module doc) and free text inside a sequence replaced with dummies."""
        vr = elem.VR
        opts = self.options
        if vr == "SQ":
            for item in elem.value or []:
                self._dataset(item, strict=strict)
        elif vr in ("DA", "DT", "TM"):
            if opts.keep_dates:
                return
            if opts.shift_dates is not None:
                self._shift(elem)
            elif not _empty(elem):
                self._dummy(elem)
        elif vr == "PN":
            if not _empty(elem):
                self._dummy(elem)
        elif vr == "UI":
            keyword = elem.keyword
            if opts.keep_uids or keyword.endswith("ClassUID") or keyword in _KEEP_UID_KEYWORDS:
                return
            self._uid(elem)
        elif (
            strict
            and (vr in _FREE_TEXT_VRS or int(elem.tag) == TEXT_VALUE)
            and elem.keyword not in _CODED_KEYWORDS
            and not _empty(elem)
        ):
            self._dummy(elem)

    # --- values --------------------------------------------------------------------------

    def _dummy(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value or []:
                self._dataset(item, strict=True)
            return
        if vr == "UI":
            self._uid(elem)
            return
        if _binary(vr):
            elem.value = b""
            return
        dummy: object
        if vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
            dummy = 0
        else:
            dummy = {
                "PN": DUMMY_NAME,
                "DA": DUMMY_DATE,
                "TM": DUMMY_TIME,
                "DT": DUMMY_DATETIME,
                "AS": "000Y",
                "IS": "0",
                "DS": "0",
                "AE": DUMMY_NAME,
            }.get(vr, DUMMY_TEXT)
        elem.value = dummy

    def _uid(self, elem: DataElement) -> None:
        if self.options.keep_uids:
            return
        values = _values(elem)
        if not values:
            return
        new = [v if str(v).startswith(DICOM_ROOT) else self.new_uid(str(v)) for v in values]
        elem.value = new if elem.VM > 1 else new[0]

    def _shift(self, elem: DataElement) -> None:
        """Modified Dates option: every DA and the date part of every DT moved by the same
        number of days; TM unchanged (a whole number of days does not move a time)."""
        days = self.options.shift_dates or 0
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value or []:
                self._dataset(item, strict=False)
            return
        if vr not in ("DA", "DT"):
            return
        values = _values(elem)
        if not values:
            return
        shifted = [_shift_value(str(v), days, vr) for v in values]
        elem.value = shifted if elem.VM > 1 else shifted[0]


def _binary(vr: str) -> bool:
    return vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN")


def _empty(elem: DataElement) -> bool:
    value = elem.value
    return (
        value is None
        or value == ""
        or value == b""
        or (isinstance(value, (list, tuple)) and not any(str(v) for v in value))
    )


def _values(elem: DataElement) -> list[object]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _shift_value(value: str, days: int, vr: str) -> str:
    text = value.strip()
    if not text:
        return text
    if vr == "DA" and "-" in text:  # a range (queries only, but be safe)
        return "-".join(_shift_value(p, days, vr) for p in text.split("-"))
    digits = text[:8]
    try:
        day = _dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        if re.fullmatch(r"\d{4}(\d{2})?", digits):  # DT with year (and month) only
            moved = _dt.date(int(digits[:4]), int(digits[4:6] or 1), 1) + _dt.timedelta(days)
            return moved.strftime("%Y%m")[: len(digits)] + text[len(digits) :]
        return DUMMY_DATE if vr == "DA" else DUMMY_DATETIME
    moved = day + _dt.timedelta(days=days)
    return moved.strftime("%Y%m%d") + text[8:]


# --- files -------------------------------------------------------------------------------


def _inferred_transfer_syntax(ds: Dataset) -> str:
    implicit, little = ds.original_encoding
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2"


def deidentify_file(
    path: str | os.PathLike[str], out: str | os.PathLike[str], deidentifier: Deidentifier
) -> list[str]:
    """Read ``path``, de-identify it, write it to ``out`` in its own transfer syntax (pixel
    data untouched, compressed or not). Returns the warnings. Raises :class:`DeidentifyError`."""
    source = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source, force=True)
            for elem in ds.iterall():  # parse every value in the encoding it was read with
                _ = elem.value
    except Exception as exc:
        raise DeidentifyError(f"{source}: cannot be read as DICOM ({exc})") from None
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise DeidentifyError(f"{source}: refused: no SOP Class / SOP Instance UID")
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), Dataset) else None
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    ts = ts or _inferred_transfer_syntax(ds)
    found = deidentifier.deidentify(ds, str(source))
    new_meta = FileMetaDataset()
    new_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    new_meta.TransferSyntaxUID = UID(ts)
    ds.file_meta = new_meta
    ds.preamble = b"\x00" * 128
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise DeidentifyError(f"{source}: cannot be written de-identified ({exc})") from None
    return found


def deidentify_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    deidentifier: Deidentifier,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidentifyReport:
    """De-identified copies of ``paths`` in ``out_dir`` (``00000001.dcm``...): the writer then
    builds the media (DICOMDIR, README, web pages) from the copies alone, so nothing of the
    originals reaches any file of the media. Unreadable files are listed in ``skipped``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = DeidentifyReport()
    total = len(paths)
    for number, raw in enumerate(paths, start=1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while de-identifying: nothing was written")
        out = folder / f"{number:08d}.dcm"
        try:
            report.warnings.extend(deidentify_file(raw, out, deidentifier))
            report.files[str(out)] = str(raw)
        except DeidentifyError as exc:
            report.skipped.append(str(exc))
        if progress is not None:
            progress(number, total)
    return report


def original_values(paths: Iterable[str | os.PathLike[str]]) -> dict[str, set[str]]:
    """Identifying values of the originals, by kind (names, ids, birth_dates, dates, uids):
    what de-identified media must not contain. For tests and for a check after export."""
    found: dict[str, set[str]] = {
        k: set() for k in ("names", "ids", "birth_dates", "dates", "uids")
    }
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
        for elem in ds.iterall():
            if elem.value is None or elem.value == "" or int(elem.tag) >> 16 == 2:
                continue
            values = [str(v).strip() for v in _values(elem)]
            if elem.VR == "PN":
                found["names"].update(v for v in values if v)
            elif elem.keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID"):
                found["ids"].update(v for v in values if v)
            elif elem.keyword == "PatientBirthDate":
                found["birth_dates"].update(v for v in values if v)
            elif elem.VR in ("DA", "DT"):
                found["dates"].update(v[:8] for v in values if len(v) >= 8)
            elif elem.VR == "UI":
                keep = elem.keyword.endswith("ClassUID") or elem.keyword in _KEEP_UID_KEYWORDS
                found["uids"].update(
                    v for v in values if v and not keep and not v.startswith(DICOM_ROOT)
                )
    return found
