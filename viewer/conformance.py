"""The generated parts of the DICOM Conformance Statement (PS3.2), from the lists the code uses.

``docs/conformance.md`` is written by hand around marker comments::

    <!-- BEGIN GENERATED: scu-contexts -->
    ...
    <!-- END GENERATED: scu-contexts -->

and everything between a pair is produced here from :mod:`viewer.net.contexts` (the presentation
contexts the associations are built from), the storage SCP's own AE (what it really accepts) and
:mod:`viewer.media.profiles` (what the media writer lets onto each profile). The test
``tests/test_conformance.py`` regenerates the document in memory and fails when it differs
from the file, so the statement cannot drift from the code.

``python -m viewer.conformance --write docs/conformance.md`` regenerates it;
``--check`` exits 1 when it is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from viewer import dicom
from viewer.media import profiles
from viewer.net import contexts, guard, scp
from viewer.net.contexts import ContextRow
from viewer.net.find import MAX_MATCHES
from viewer.net.nodes import (
    DEFAULT_AE_TITLE,
    DEFAULT_MAX_PDU,
    DEFAULT_SCP_IDLE_TIMEOUT,
    DEFAULT_SCP_MAX_PER_HOST,
    DEFAULT_SCP_PORT,
    LocalSettings,
    Timeouts,
)

_MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)

#: Names of the transfer syntax lists the tables refer to (a table of 150 storage classes that
#: repeated 16 syntaxes on every row would be unreadable; PS3.2 A.4 allows a reference).
TS_UNCOMPRESSED = "TS-U"
TS_SCP = "TS-S"
TS_SEND = "TS-F"


class ConformanceError(ValueError):
    """The document lacks a marker the generator fills, or has one it does not know."""


def _uid_name(uid: str) -> str:
    name = contexts.uid_name(uid)
    return name if name != uid else "(unnamed)"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _ts_list_name(syntaxes: tuple[str, ...]) -> str:
    if syntaxes == contexts.UNCOMPRESSED:
        return TS_UNCOMPRESSED
    if syntaxes == contexts.SCP_TRANSFER_SYNTAXES:
        return TS_SCP
    if syntaxes == ("the file's own transfer syntax", *contexts.UNCOMPRESSED):
        return TS_SEND
    raise ConformanceError(f"no named transfer syntax list for {syntaxes!r}")


def _scp_ae_facts() -> tuple[int, set[str]]:
    """The storage SCP's AE as :class:`viewer.net.scp.StorageScp` builds it: its association
    limit and the abstract syntaxes it supports (so the SCP table is checked against the AE)."""
    server = scp.StorageScp.__new__(
        scp.StorageScp
    )  # _ae() reads only .local; no spool folder is made
    server.local = LocalSettings()
    ae = server._ae()
    supported = {str(cx.abstract_syntax) for cx in ae.supported_contexts}
    return int(ae.maximum_associations), supported


def transfer_syntax_lists() -> str:
    """The named transfer syntax lists (PS3.2 A.4.x 'Transfer Syntax' column)."""
    out = []
    lists: list[tuple[str, str, Sequence[str]]] = [
        (TS_UNCOMPRESSED, "Uncompressed (every non-storage service)", contexts.UNCOMPRESSED),
        (
            TS_SCP,
            "Accepted by the storage SCP and proposed as C-GET destination",
            contexts.SCP_TRANSFER_SYNTAXES,
        ),
    ]
    for key, title, syntaxes in lists:
        out.append(f"**{key}**: {title}\n\n")
        out.append(_table(("Transfer Syntax", "UID"), ((_uid_name(ts), ts) for ts in syntaxes)))
        out.append("\n")
    out.append(
        f"**{TS_SEND}**: C-STORE as SCU. Each file is offered in its own transfer syntax (one "
        "presentation context per SOP class and compressed syntax) and in:\n\n"
    )
    out.append(
        _table(("Transfer Syntax", "UID"), ((_uid_name(ts), ts) for ts in contexts.UNCOMPRESSED))
    )
    out.append(
        "\nWhen the peer accepts only the uncompressed syntaxes, a compressed file is "
        "decompressed before sending (the SOP Instance UID is kept).\n"
    )
    return "".join(out)


def _context_rows(rows: Iterable[ContextRow], storage: bool) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for row in rows:
        is_storage = row.service.startswith("Storage")
        if is_storage != storage:
            continue
        out.append(
            (
                row.service,
                _uid_name(row.abstract_syntax),
                row.abstract_syntax,
                _ts_list_name(row.transfer_syntaxes),
                row.role,
                row.extended_negotiation,
            )
        )
    return out


_HEADER = ("Service", "Abstract Syntax", "SOP Class UID", "Transfer Syntaxes", "Role", "Ext. Neg.")


def scu_contexts() -> str:
    """PS3.2 A.4.2.x: the contexts proposed when Lightbox initiates an association."""
    rows = contexts.conformance_rows()
    initiated = [
        r
        for r in rows
        if (r.role == "SCU" and r.service != contexts.COMMIT_REPORT)
        or r.service == "Storage as C-GET destination"
    ]
    text = _table(_HEADER, _context_rows(initiated, storage=False))
    storage = [r for r in initiated if r.service.startswith("Storage")]
    services = sorted(
        {
            (r.service, _ts_list_name(r.transfer_syntaxes), r.role, r.extended_negotiation)
            for r in storage
        }
    )
    text += (
        "\nStorage contexts proposed by Lightbox (the classes of the Storage SOP Classes "
        "table):\n\n"
    )
    text += _table(
        ("Service", "SOP Classes", "Transfer Syntaxes", "Role", "Ext. Neg."),
        (
            (service, f"{sum(1 for r in storage if r.service == service)} classes", ts, role, ext)
            for service, ts, role, ext in services
        ),
    )
    return text


def scp_contexts() -> str:
    """PS3.2 A.4.2.x: the contexts accepted by the storage/verification SCP."""
    rows = [
        r
        for r in contexts.conformance_rows()
        if (r.role == "SCP" and r.service != "Storage as C-GET destination")
        or r.service == contexts.COMMIT_REPORT
    ]
    _, supported = _scp_ae_facts()
    documented = {r.abstract_syntax for r in rows}
    if documented != supported:
        raise ConformanceError(
            "the storage SCP's AE supports other SOP classes than contexts.conformance_rows() "
            f"lists: {sorted(documented ^ supported)}"
        )
    text = _table(_HEADER, _context_rows(rows, storage=False))
    storage = [r for r in rows if r.service.startswith("Storage")]
    text += "\nStorage contexts accepted (every class of the Storage SOP Classes table):\n\n"
    text += _table(
        ("Service", "SOP Classes", "Transfer Syntaxes", "Role", "Ext. Neg."),
        [
            (
                storage[0].service,
                f"{len(storage)} classes",
                _ts_list_name(storage[0].transfer_syntaxes),
                "SCP",
                storage[0].extended_negotiation,
            )
        ]
        if storage
        else [],
    )
    return text


def storage_sop_classes() -> str:
    """Every Storage SOP Class (PS3.4 B.5), with the roles in which Lightbox uses it."""
    send = set(contexts.STORAGE_SOP_CLASSES)
    _, receive = _scp_ae_facts()
    get_default = set(contexts.GET_STORAGE_SOP_CLASSES)
    rows = []
    for uid in contexts.STORAGE_SOP_CLASSES:
        rows.append(
            (
                _uid_name(uid),
                uid,
                "yes" if uid in send else "no",
                "yes" if uid in receive else "no",
                "yes" if uid in get_default else "when named by C-FIND",
            )
        )
    return _table(
        (
            "SOP Class",
            "UID",
            "SCU (send)",
            "SCP (receive)",
            "C-GET destination (study classes unknown)",
        ),
        rows,
    )


def identity() -> str:
    """PS3.2 A.4.2 'Association Policies': identity, PDU size, associations."""
    max_assoc, _ = _scp_ae_facts()
    return _table(
        ("Item", "Value"),
        (
            ("Implementation Class UID", dicom.IMPLEMENTATION_CLASS_UID),
            ("Implementation Version Name", dicom.IMPLEMENTATION_VERSION_NAME),
            ("Application Context Name", "1.2.840.10008.3.1.1.1"),
            ("Default AE title", DEFAULT_AE_TITLE),
            ("Default storage SCP port", str(DEFAULT_SCP_PORT)),
            (
                "Maximum PDU size received (default, configurable; 0 = the ceiling below)",
                str(DEFAULT_MAX_PDU),
            ),
            ("Maximum PDU size received, ceiling", str(guard.MAX_PDU_CEILING)),
            ("A-ASSOCIATE-RQ / -AC accepted (at most, bytes)", str(guard.MAX_REQUEST_PDU)),
            ("Presentation contexts per association (at most)", str(contexts.MAX_CONTEXTS)),
            ("Simultaneous associations accepted by the storage SCP", str(max_assoc)),
            (
                "Associations accepted from one calling address (default, configurable)",
                str(DEFAULT_SCP_MAX_PER_HOST),
            ),
            (
                "ARTIM: association request expected within (s, default = ACSE timeout)",
                f"{Timeouts().acse:g}",
            ),
            (
                "Storage SCP idle/read timeout (s, default, configurable)",
                f"{DEFAULT_SCP_IDLE_TIMEOUT:g}",
            ),
            (
                "C-STORE data set held in memory before it is written to the spool (bytes)",
                str(guard.SPILL_AT),
            ),
            ("Command set (at most, bytes; longer: A-ABORT)", str(guard.MAX_COMMAND_SET)),
            ("C-FIND matches kept (at most; then C-CANCEL)", str(MAX_MATCHES)),
            (
                "Associations initiated per operation",
                "1 (C-GET of a study with many SOP classes: one after another, each within "
                f"{contexts.MAX_CONTEXTS} contexts)",
            ),
        ),
    )


def media_profiles() -> str:
    """PS3.2 A.6 / PS3.11: media application profiles, roles and transfer syntaxes."""
    rows = []
    for profile in profiles.PROFILES:
        syntaxes = ", ".join(f"{_uid_name(ts)} ({ts})" for ts in sorted(profile.transfer_syntaxes))
        rows.append((profile.name, "FSC, FSR", syntaxes, f"dcmmkdir {profile.dcmmkdir_option}"))
    text = _table(
        ("Application Profile", "Roles", "Transfer Syntaxes written", "Checked with"), rows
    )
    text += (
        "\nA source file in another transfer syntax is written as Explicit VR Little Endian: "
        "uncompressed encodings are re-encoded, compressed pixel data the profile does not allow "
        "is decoded (never re-compressed lossily).\n"
    )
    return text


SECTIONS: dict[str, Callable[[], str]] = {
    "identity": identity,
    "scu-contexts": scu_contexts,
    "scp-contexts": scp_contexts,
    "transfer-syntaxes": transfer_syntax_lists,
    "storage-sop-classes": storage_sop_classes,
    "media-profiles": media_profiles,
}


def render(document: str) -> str:
    """``document`` with every generated section replaced by what the code says now."""
    seen: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in SECTIONS:
            raise ConformanceError(f"unknown generated section {name!r}")
        seen.add(name)
        return f"{match.group(1)}{SECTIONS[name]()}{match.group(4)}"

    out = _MARKER.sub(fill, document)
    absent = sorted(set(SECTIONS) - seen)
    if absent:
        raise ConformanceError(f"the document lacks the generated sections {', '.join(absent)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m viewer.conformance",
        description="Regenerate the tables of the DICOM conformance statement from the code.",
    )
    parser.add_argument("document", type=Path, nargs="?", default=Path("docs/conformance.md"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="rewrite FILE in place")
    group.add_argument("--check", action="store_true", help="exit 1 when the document drifted")
    args = parser.parse_args(argv)
    path: Path = args.write or args.document
    try:
        current = path.read_text(encoding="utf-8")
        fresh = render(current)
    except (OSError, ConformanceError) as exc:
        print(f"conformance: {path}: {exc}", file=sys.stderr)
        return 2
    if args.write:
        if fresh != current:
            path.write_text(fresh, encoding="utf-8")
        return 0
    if args.check:
        if fresh != current:
            print(f"conformance: {path} is out of date; run --write {path}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
