"""DICOM at the byte level, below everything else in the core: who we are in a File Meta and on
the wire. The Part 10 / element reader that scan, import, DICOMDIR and verify share belongs here.
"""

from __future__ import annotations

from viewer import __version__

IMPLEMENTATION_CLASS_UID = "2.25.193876086383559275422850512442602528774"
"""Lightbox's Implementation Class UID (PS3.7 D.3.3.2; a 2.25 UUID-derived UID, PS3.5 B.2), in
every File Meta we write and every association we take part in."""

IMPLEMENTATION_VERSION_NAME = f"LIGHTBOX_{__version__}"[:16]
"""Implementation Version Name: at most 16 characters (SH)."""
