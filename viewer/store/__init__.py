"""The local store: an SQLite index plus a folder of managed files (issue 3 section 2).

No Qt here. The CLI and the GUI's workers call these functions; each blocks, and the long ones
take a ``cancel`` event and a ``progress(done, total)`` callback.
"""

from viewer.store.check import CheckReport, check
from viewer.store.importer import (
    ImportReport,
    import_bytes,
    import_dataset,
    import_paths,
)
from viewer.store.index import (
    DeleteResult,
    InstanceRecord,
    SeriesRow,
    StudyFilter,
    StudyRow,
    add_records,
    delete_uid,
    has_instance,
    instance_paths,
    list_series,
    list_studies,
    series_instances,
    store_tree,
    study_instance_paths,
)
from viewer.store.receiver import Receiver
from viewer.store.store import Store, StoreError

__all__ = [
    "CheckReport",
    "DeleteResult",
    "ImportReport",
    "InstanceRecord",
    "Receiver",
    "SeriesRow",
    "Store",
    "StoreError",
    "StudyFilter",
    "StudyRow",
    "add_records",
    "check",
    "delete_uid",
    "has_instance",
    "import_bytes",
    "import_dataset",
    "import_paths",
    "instance_paths",
    "list_series",
    "list_studies",
    "series_instances",
    "store_tree",
    "study_instance_paths",
]
