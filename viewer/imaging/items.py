"""Reading sequences of an untrusted data set without surprises (no Qt).

A damaged file's sequence may be kept as bytes (the reader keeps what pydicom cannot convert,
:mod:`viewer.imaging.decode`), hold things that are no data sets, or raise when pydicom converts
it on first access. Readers of reports, waveforms and the like take a sequence's items through
here: a list of the items that are data sets, empty for anything else.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def items(ds: Dataset, keyword: str) -> list[Dataset]:
    """The items of sequence ``keyword`` that are data sets ([] when absent or not a sequence)."""
    try:
        value = ds.get(keyword)
    except Exception:  # pydicom converting a damaged value: nothing to read
        return []
    if not isinstance(value, Sequence):
        return []
    return [item for item in value if isinstance(item, Dataset)]


def first(ds: Dataset, keyword: str) -> Dataset | None:
    """The first item of sequence ``keyword`` that is a data set, or None."""
    found = items(ds, keyword)
    return found[0] if found else None
