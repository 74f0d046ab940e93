"""Measurements kept in the store's index (table ``measurements``, schema version 3).

Keyed by SOP Instance UID and frame number, not by a managed file: measurements drawn on a disc
that was never imported are kept too, and show again when the disc, or the study imported from
it, is opened. Each row holds one shape in :func:`viewer.imaging.measure.to_dict`'s form; a row
that does not parse (a damaged or hand-edited index) is skipped with a problem, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from viewer.imaging import measure
from viewer.model import Problem
from viewer.store.schema import write_transaction
from viewer.store.store import Store

#: SQLite's limit of bound parameters per statement is 32,766 (999 before 3.32): stay below.
_CHUNK = 900
#: Shapes read back per image at most (a reader draws a handful; a damaged or crafted index
#: with millions of rows for one image must not fill memory or the screen).
MAX_PER_IMAGE = 500


def save_image(
    store: Store, sop_instance_uid: str, frame_number: int, shapes: Sequence[measure.Shape]
) -> None:
    """The shapes of one image replace what the store kept for it (none: it is cleared)."""
    store.require_writable()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [
        (
            sop_instance_uid,
            frame_number,
            position,
            json.dumps(measure.to_dict(measure.Measurement(shape, sop_instance_uid, frame_number))),
            now,
        )
        for position, shape in enumerate(shapes)
    ]
    with write_transaction(store.connection()) as conn:
        conn.execute(
            "DELETE FROM measurements WHERE sop_instance_uid = ? AND frame_number = ?",
            (sop_instance_uid, frame_number),
        )
        conn.executemany("INSERT INTO measurements VALUES (?, ?, ?, ?, ?)", rows)


def load(
    store: Store, sop_instance_uids: Iterable[str]
) -> tuple[list[measure.Measurement], list[Problem]]:
    """The measurements kept for these images, in the order drawn (at most
    :data:`MAX_PER_IMAGE` per image), and the rows that could not be read."""
    uids = sorted(set(sop_instance_uids))
    found: list[measure.Measurement] = []
    problems: list[Problem] = []
    conn = store.connection()
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT sop_instance_uid, frame_number, position, data FROM ("
            "  SELECT *, ROW_NUMBER() OVER ("
            "    PARTITION BY sop_instance_uid, frame_number ORDER BY position) AS n"
            f"  FROM measurements WHERE sop_instance_uid IN ({marks})"
            ") WHERE n <= ? ORDER BY sop_instance_uid, frame_number, position",
            [*chunk, MAX_PER_IMAGE + 1],
        ).fetchall()
        counts: dict[tuple[str, int], int] = {}
        for uid, frame, position, data in rows:
            counts[(uid, frame)] = counts.get((uid, frame), 0) + 1
            if counts[(uid, frame)] > MAX_PER_IMAGE:
                problems.append(
                    Problem(
                        f"{store.db_path} measurements of {uid} frame {frame}",
                        f"more than {MAX_PER_IMAGE}: the first {MAX_PER_IMAGE} are shown",
                    )
                )
                continue
            try:
                item = measure.from_dict(json.loads(data))
                if (item.sop_instance_uid, item.frame_number) != (uid, frame):
                    raise ValueError("it names another image than its row")
            except (ValueError, TypeError, RecursionError) as exc:
                problems.append(
                    Problem(
                        f"{store.db_path} measurement {position + 1} of {uid} frame {frame}",
                        f"cannot be read ({exc}): skipped",
                    )
                )
                continue
            found.append(item)
    return found, problems
