"""Media application profiles: which transfer syntaxes each profile lets onto the media.

PS3.11 Annex D (STD-GEN-CD, General Purpose CD-R Interchange), Annex H/J (STD-GEN-DVD-JPEG,
STD-GEN-USB-JPEG and their relatives): a file-set written for a profile may only hold files in the
transfer syntaxes that profile names. Everything else is decoded to Explicit VR Little Endian
(losslessly: decoding is never a loss; lossy sources stay as lossy as they were, they are never
re-encoded lossily) or refused, saying which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"

JPEG_KEPT = frozenset({JPEG_LOSSLESS_SV1, JPEG_BASELINE, JPEG_EXTENDED})


class Action(Enum):
    """What the writer does with a source file's encoding for a profile."""

    KEEP = "keep"
    """The body is written as the source held it (only the File Meta is regenerated)."""
    REENCODE = "reencode"
    """Native pixels, other encoding (implicit VR, big endian, deflate): re-written as
    Explicit VR Little Endian, pixel values unchanged."""
    DECODE = "decode"
    """Compressed pixels the profile does not allow: decoded to Explicit VR Little Endian."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One PS3.11 general-purpose application profile."""

    name: str
    """The profile's identifier in PS3.11, e.g. ``STD-GEN-CD``."""
    short: str
    """The command-line name: ``cd``, ``dvd-jpeg``, ``usb-jpeg``."""
    transfer_syntaxes: frozenset[str]
    """Transfer syntaxes allowed on the media."""
    dcmmkdir_option: str
    """DCMTK ``dcmmkdir`` option that checks this profile (for tests and the conformance text)."""
    default_medium: str
    """The medium whose capacity limits one file-set of this profile (see :data:`MEDIA`)."""

    def action(self, transfer_syntax_uid: str) -> Action:
        """How a file in ``transfer_syntax_uid`` is written for this profile (PS3.11 D.2, J.2)."""
        if transfer_syntax_uid in self.transfer_syntaxes:
            return Action.KEEP
        if transfer_syntax_uid in (IMPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE):
            return Action.REENCODE
        return Action.DECODE


STD_GEN_CD = Profile("STD-GEN-CD", "cd", frozenset({EXPLICIT_VR_LE}), "-Pgp", "cd")
STD_GEN_DVD_JPEG = Profile(
    "STD-GEN-DVD-JPEG", "dvd-jpeg", frozenset({EXPLICIT_VR_LE}) | JPEG_KEPT, "-Pdv", "dvd"
)
STD_GEN_USB_JPEG = Profile(
    "STD-GEN-USB-JPEG", "usb-jpeg", frozenset({EXPLICIT_VR_LE}) | JPEG_KEPT, "-Pfl", "usb"
)

PROFILES: tuple[Profile, ...] = (STD_GEN_CD, STD_GEN_DVD_JPEG, STD_GEN_USB_JPEG)
"""From the most widely readable to the most permissive."""


def get_profile(name: str | Profile | None) -> Profile:
    """The profile named ``name`` (``cd``, ``STD-GEN-CD``..., any case); None: STD-GEN-CD."""
    if name is None:
        return STD_GEN_CD
    if isinstance(name, Profile):
        return name
    wanted = name.strip().lower()
    for profile in PROFILES:
        if wanted in (profile.short, profile.name.lower()):
            return profile
    known = ", ".join(p.short for p in PROFILES)
    raise ValueError(f"unknown media profile {name!r} (known: {known})")


@dataclass(frozen=True, slots=True)
class Medium:
    """A recordable medium and the bytes one file-set may fill on it."""

    name: str
    label: str
    capacity: int | None
    """Usable bytes of the ISO 9660 image; None for a USB stick or folder (no limit known)."""


MEDIA: dict[str, Medium] = {
    # 360,000 sectors of 2,048 bytes: the usual 80-minute CD-R.
    "cd": Medium("cd", "CD-R (700 MB)", 360_000 * 2048),
    # 2,295,104 sectors: DVD±R single layer, "4.7 GB".
    "dvd": Medium("dvd", "DVD±R (4.7 GB)", 2_295_104 * 2048),
    # 4,171,712 sectors: DVD+R DL, "8.5 GB".
    "dvd-dl": Medium("dvd-dl", "DVD±R DL (8.5 GB)", 4_171_712 * 2048),
    "usb": Medium("usb", "USB stick or folder", None),
}

DISC_MEDIA: tuple[Medium, ...] = (MEDIA["cd"], MEDIA["dvd"], MEDIA["dvd-dl"])


def get_medium(name: str | Medium | None, profile: Profile) -> Medium:
    """The medium named ``name``; None: the profile's default medium."""
    if isinstance(name, Medium):
        return name
    key = (name or profile.default_medium).strip().lower()
    if key not in MEDIA:
        raise ValueError(f"unknown medium {name!r} (known: {', '.join(MEDIA)})")
    return MEDIA[key]


def smallest_medium_for(size: int) -> Medium | None:
    """The smallest disc that holds ``size`` bytes, or None when no disc does."""
    for medium in DISC_MEDIA:
        if medium.capacity is not None and size <= medium.capacity:
            return medium
    return None
