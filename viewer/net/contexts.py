"""Every presentation context Lightbox negotiates, as data (PS3.7 Annex D.3.3.2, PS3.8 7.1.1.13).

The code that associates builds its requests from these lists and nothing else, so that the
conformance statement (PS3.2 Annex A, the 'Presentation Context Table' of each AE) can be
generated from them and cannot drift from what the program really proposes and accepts.

Our implementation identity (PS3.7 D.3.3.2 Implementation Class UID / Version Name) is a fixed
UID under the UUID-derived root 2.25 (PS3.5 B.2), generated once and never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom import uid as _uid
from pynetdicom.presentation import AllStoragePresentationContexts, StoragePresentationContexts

# SOP Class UIDs (PS3.4 Annex A and C.6; PS3.6 Annex A)
Verification = "1.2.840.10008.1.1"
PatientRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.1.1"
PatientRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.1.2"
PatientRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.1.3"
StudyRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.2.1"
StudyRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.2.2"
StudyRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.2.3"
StorageCommitmentPushModel = "1.2.840.10008.1.20.1"
ModalityWorklistInformationModelFind = "1.2.840.10008.5.1.4.31"

#: PS3.8 9.3.1: a single association may carry at most 128 presentation contexts (odd IDs 1-255).
MAX_CONTEXTS = 128

UNCOMPRESSED: tuple[str, ...] = (_uid.ExplicitVRLittleEndian, _uid.ImplicitVRLittleEndian)
"""What every DICOM peer must accept (PS3.5 10.1: Implicit VR LE is the default)."""

SCP_TRANSFER_SYNTAXES: tuple[str, ...] = (
    _uid.ExplicitVRLittleEndian,
    _uid.ImplicitVRLittleEndian,
    _uid.DeflatedExplicitVRLittleEndian,
    _uid.ExplicitVRBigEndian,
    _uid.JPEGBaseline8Bit,
    _uid.JPEGExtended12Bit,
    _uid.JPEGLossless,
    _uid.JPEGLosslessSV1,
    _uid.JPEGLSLossless,
    _uid.JPEGLSNearLossless,
    _uid.JPEG2000Lossless,
    _uid.JPEG2000,
    _uid.RLELossless,
    _uid.HTJ2KLossless,
    _uid.HTJ2KLosslessRPCL,
    _uid.HTJ2K,
)
"""Transfer syntaxes our storage SCP accepts: everything the imaging layer can decode, so that a
received instance is stored exactly as the sender encoded it (no lossy recompression)."""

VERIFICATION: str = Verification

FIND_MODELS: tuple[str, ...] = (
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelFind,
)
"""PS3.4 C.6: Study Root first; Patient Root when the peer only offers that."""

MOVE_MODELS: tuple[str, ...] = (
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelMove,
)
GET_MODELS: tuple[str, ...] = (
    StudyRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelGet,
)

STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    str(cx.abstract_syntax) for cx in AllStoragePresentationContexts
)
"""Every Storage SOP Class (PS3.4 B.5) our storage SCP accepts."""

GET_STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    str(cx.abstract_syntax) for cx in StoragePresentationContexts
)
"""The storage classes proposed with the SCP role on a C-GET association when the classes of the
study are not known in advance (PS3.4 C.4.3.1: the C-STORE sub-operations travel on the same
association, so their contexts must be negotiated up front). 120 classes + the C-GET model fit
within :data:`MAX_CONTEXTS`; when a study's classes are known, only those are proposed and
associations are split if they need more."""

Role = Literal["SCU", "SCP"]

#: Storage Commitment Push Model (PS3.4 J.3) as SCU: the request we send (N-ACTION), and the
#: report (N-EVENT-REPORT) the storage SCP accepts on an association the node opens.
COMMIT_REQUEST = "Commitment request (N-ACTION)"
COMMIT_REPORT = "Commitment report (N-EVENT-REPORT, accepted by the storage SCP)"


@dataclass(frozen=True, slots=True)
class ContextRow:
    """One line of a PS3.2 presentation context table."""

    service: str
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    role: Role
    extended_negotiation: str = "None"


def conformance_rows() -> list[ContextRow]:
    """The presentation context tables of our single AE, from the lists above (PS3.2 A.4)."""
    rows: list[ContextRow] = [
        ContextRow("Verification", VERIFICATION, UNCOMPRESSED, "SCU"),
        ContextRow("Verification", VERIFICATION, UNCOMPRESSED, "SCP"),
    ]
    rows += [ContextRow("Query (C-FIND)", m, UNCOMPRESSED, "SCU") for m in FIND_MODELS]
    rows.append(
        ContextRow("Worklist (C-FIND)", ModalityWorklistInformationModelFind, UNCOMPRESSED, "SCU")
    )
    rows += [ContextRow("Retrieve (C-MOVE)", m, UNCOMPRESSED, "SCU") for m in MOVE_MODELS]
    rows += [ContextRow("Retrieve (C-GET)", m, UNCOMPRESSED, "SCU") for m in GET_MODELS]
    rows += [
        ContextRow(
            "Storage as C-GET destination",
            c,
            SCP_TRANSFER_SYNTAXES,
            "SCP",
            "SCP/SCU Role Selection (PS3.7 D.3.3.4): SCP role",
        )
        for c in GET_STORAGE_SOP_CLASSES
    ]
    rows += [
        ContextRow(
            "Storage (C-STORE send)",
            c,
            ("the file's own transfer syntax", *UNCOMPRESSED),
            "SCU",
        )
        for c in STORAGE_SOP_CLASSES
    ]
    rows += [
        ContextRow("Storage (C-STORE receive)", c, SCP_TRANSFER_SYNTAXES, "SCP")
        for c in STORAGE_SOP_CLASSES
    ]
    rows += [
        ContextRow(
            COMMIT_REQUEST,
            StorageCommitmentPushModel,
            UNCOMPRESSED,
            "SCU",
            "SCP/SCU Role Selection (PS3.7 D.3.3.4): SCU and SCP role (a report on the same "
            "association)",
        ),
        ContextRow(
            COMMIT_REPORT,
            StorageCommitmentPushModel,
            UNCOMPRESSED,
            "SCU",
            "SCP/SCU Role Selection: the node's SCP role accepted",
        ),
    ]
    return rows


def uid_name(uid: str) -> str:
    try:
        return str(_uid.UID(uid).name)
    except Exception:
        return uid
