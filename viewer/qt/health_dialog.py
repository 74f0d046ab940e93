"""The media health report in a dialog: what the DICOMDIR promises against what the disc holds.

The report itself (:func:`viewer.media.health.check_media`) is made on a worker by the browser;
this dialog only lists it, one branch per kind of finding, each file or problem a line, so that a
person can tell the sender of a disc exactly what is missing or wrong.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.media.health import HealthReport
from viewer.model import Problem

#: Branches in the order they are shown: (title, attribute of HealthReport, explanation).
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Missing", "missing", "referenced by the DICOMDIR but not on the media"),
    ("Unreferenced", "unreferenced", "DICOM files no DICOMDIR record references"),
    ("Unreadable", "unreadable", "files that cannot be read as DICOM"),
    (
        "Suspicious preambles",
        "suspicious_preambles",
        "an executable header in the 128-byte preamble (CVE-2019-11687)",
    ),
    ("UID mismatches", "mismatches", "records whose UIDs disagree with their files (PS3.3 F.5)"),
    ("Refused paths", "refused", "references leaving the media root: not followed"),
    ("Other problems", "problems", "what else the reader noticed"),
    ("Referenced", "referenced", "files the DICOMDIR references"),
    ("Present", "present", "referenced files found on the media"),
    ("Other files", "other_files", "files that are not DICOM (not a problem)"),
)


def _line(item: Path | Problem, root: Path) -> str:
    if isinstance(item, Problem):
        return str(item)
    try:
        return str(item.relative_to(root))
    except ValueError:
        return str(item)


class HealthDialog(QDialog):
    """Lists a :class:`HealthReport`; sections with findings are expanded."""

    def __init__(self, report: HealthReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("health_dialog")
        self.setWindowTitle(f"Media health: {report.root}")
        self.resize(760, 520)
        self.report = report
        counts = {attribute: len(getattr(report, attribute)) for _, attribute, _ in SECTIONS}
        trouble = sum(counts[a] for a in ("missing", "unreadable", "suspicious_preambles"))
        trouble += counts["mismatches"] + counts["refused"] + counts["unreferenced"]
        where = f"DICOMDIR: {report.dicomdir}" if report.dicomdir else "no DICOMDIR"
        summary = (
            f"{report.root} ({where}): {counts['referenced']} referenced, "
            f"{counts['present']} present, {counts['missing']} missing, "
            f"{counts['unreferenced']} unreferenced, {counts['unreadable']} unreadable."
        )
        if report.cancelled:
            summary += " The check was cancelled: the lists are incomplete."
        elif trouble == 0:
            summary += " Nothing is wrong with this media."
        self.summary_label = QLabel(summary)
        self.summary_label.setObjectName("health_summary")
        self.summary_label.setWordWrap(True)

        self.tree = QTreeWidget()
        self.tree.setObjectName("health_tree")
        self.tree.setHeaderLabels(["Finding"])
        self.tree.setUniformRowHeights(True)
        for title, attribute, explanation in SECTIONS:
            entries = getattr(report, attribute)
            branch = QTreeWidgetItem([f"{title} ({len(entries)}): {explanation}"])
            branch.setData(0, 256, attribute)  # Qt.UserRole: which list this is
            for entry in entries:
                branch.addChild(QTreeWidgetItem([_line(entry, report.root)]))
            self.tree.addTopLevelItem(branch)
            problem_section = attribute not in ("referenced", "present", "other_files")
            branch.setExpanded(problem_section and 0 < len(entries) <= 200)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)

    def section(self, attribute: str) -> list[str]:
        """The lines listed under one section (``"missing"``, ``"unreferenced"``, ...)."""
        for index in range(self.tree.topLevelItemCount()):
            branch = self.tree.topLevelItem(index)
            if branch is not None and branch.data(0, 256) == attribute:
                children = (branch.child(k) for k in range(branch.childCount()))
                return [child.text(0) for child in children if child is not None]
        raise KeyError(attribute)
