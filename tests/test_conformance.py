"""The conformance statement's tables are the code's: regenerated in memory, they must match.

``docs/conformance.md`` (PS3.2) carries generated sections between marker comments; when a
presentation context, a transfer syntax, the implementation identity or a media profile changes
in the code, this test fails until ``python -m viewer.conformance --write docs/conformance.md``
is run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer import conformance, dicom
from viewer.media import profiles
from viewer.net import contexts

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"


def test_document_matches_the_code() -> None:
    current = DOC.read_text(encoding="utf-8")
    fresh = conformance.render(current)
    assert fresh == current, (
        "docs/conformance.md drifted from the code: run "
        "`python -m viewer.conformance --write docs/conformance.md`"
    )


def test_a_changed_context_list_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: drop JPEG Lossless from the SCP's list and it differs."""
    current = DOC.read_text(encoding="utf-8")
    fewer = tuple(ts for ts in contexts.SCP_TRANSFER_SYNTAXES if ts != "1.2.840.10008.1.2.4.70")
    monkeypatch.setattr(contexts, "SCP_TRANSFER_SYNTAXES", fewer)
    assert conformance.render(current) != current


def test_the_statement_names_what_the_code_uses() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert dicom.IMPLEMENTATION_CLASS_UID in text
    assert dicom.IMPLEMENTATION_VERSION_NAME in text
    for uid in (
        contexts.VERIFICATION,
        *contexts.FIND_MODELS,
        *contexts.MOVE_MODELS,
        *contexts.GET_MODELS,
        *contexts.STORAGE_SOP_CLASSES,
        *contexts.SCP_TRANSFER_SYNTAXES,
    ):
        assert f"| {uid} |" in text, uid
    for profile in profiles.PROFILES:
        assert profile.name in text
    for heading in ("Implementation model", "AE specifications", "Character sets", "Security"):
        assert heading in text
    assert "BCP 195" in text


def test_the_scp_table_is_checked_against_the_running_ae(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class documented as accepted that the SCP's AE does not support is an error."""
    real = contexts.conformance_rows

    def more() -> list[contexts.ContextRow]:
        extra = contexts.ContextRow("Storage (C-STORE receive)", "1.2.3.4.5.6.7", (), "SCP")
        return [*real(), extra]

    monkeypatch.setattr(contexts, "conformance_rows", more)
    with pytest.raises(conformance.ConformanceError, match="other SOP classes"):
        conformance.scp_contexts()


def test_missing_or_unknown_markers_are_refused() -> None:
    with pytest.raises(conformance.ConformanceError, match="lacks the generated sections"):
        conformance.render("# nothing generated here\n")
    bogus = "<!-- BEGIN GENERATED: nonsense -->\n<!-- END GENERATED: nonsense -->\n"
    with pytest.raises(conformance.ConformanceError, match="unknown generated section"):
        conformance.render(bogus)


def test_command_line_check_and_write(tmp_path: Path) -> None:
    stale = tmp_path / "conformance.md"
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- BEGIN GENERATED: identity -->\n") + len(
        "<!-- BEGIN GENERATED: identity -->\n"
    )
    stale.write_text(text[:start] + "stale\n" + text[text.index("<!-- END GENERATED: identity") :])
    assert conformance.main(["--check", str(stale)]) == 1
    assert conformance.main(["--write", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == text
    assert conformance.main(["--check", str(stale)]) == 0
