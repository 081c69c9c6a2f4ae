"""The photo library: a person's own photos, identified once, searchable by similarity and species.

One module per job, each importing only those above it in this list:

- errors.py: what goes wrong with a library file (LibraryError and its kinds)
- schema.py: the tables, each version's migration, the names rows use (LibraryPhoto, NOT_A_BIRD)
- scan.py: finding the photos in the folders, pairing RAW files with their JPEGs, fingerprints
- places.py: where a photo was taken, for the range prior
- export.py: the library as a CSV file
- database.py: opening the file (read-only where it must), and SQLite's damage as LibraryDamaged
- library.py: `Library`, every question asked of the file and every change a person makes to it
- rows.py: writing what indexing found (store_rows), and refreshing the range prior's answers
- labels.py: what a typed species name means among the library's species; labels kept and put back (Undo)
- rebuild.py: a damaged library set aside and started again
- lock.py: one indexer per library at a time (IndexLock)
- index_job.py: the indexing pipeline (IndexJob): plan, decode, identify, commit

SQL is written only in this package: everything else asks `Library` by name.
"""

from birdid_app.core.library.database import BUSY_TIMEOUT_SECONDS, LIBRARY_VARIABLE, default_library_path
from birdid_app.core.library.errors import IndexerBusy, LibraryDamaged, LibraryError, LibraryReadOnly
from birdid_app.core.library.index_job import (
    BATCH_SIZE,
    DECODER_NICENESS,
    IndexJob,
    IndexProgress,
    _decode_for_index,
)
from birdid_app.core.library.library import Library
from birdid_app.core.library.lock import IndexLock
from birdid_app.core.library.places import photo_where, place_set_for
from birdid_app.core.library.rebuild import rebuild_library
from birdid_app.core.library.rows import IndexSummary, _Decoded, _Work, refresh_place_answers, store_rows
from birdid_app.core.library.scan import (
    COMPANION_SUFFIXES,
    FINGERPRINT_SAMPLE,
    _pair_companions,
    _scan,
    fingerprint,
)
from birdid_app.core.library.schema import (
    _SCHEMA_V1,
    LABEL_SOURCES,
    MIGRATIONS,
    NOT_A_BIRD,
    RANKINGS,
    SCHEMA_VERSION,
    TOP_SPECIES,
    UNKNOWN_SPECIES,
    LibraryPhoto,
)

__all__ = [
    "BATCH_SIZE",
    "BUSY_TIMEOUT_SECONDS",
    "COMPANION_SUFFIXES",
    "DECODER_NICENESS",
    "FINGERPRINT_SAMPLE",
    "LABEL_SOURCES",
    "LIBRARY_VARIABLE",
    "MIGRATIONS",
    "NOT_A_BIRD",
    "RANKINGS",
    "SCHEMA_VERSION",
    "TOP_SPECIES",
    "UNKNOWN_SPECIES",
    "IndexJob",
    "IndexLock",
    "IndexProgress",
    "IndexSummary",
    "IndexerBusy",
    "Library",
    "LibraryDamaged",
    "LibraryError",
    "LibraryPhoto",
    "LibraryReadOnly",
    "_SCHEMA_V1",
    "_Decoded",
    "_Work",
    "_decode_for_index",
    "_pair_companions",
    "_scan",
    "default_library_path",
    "fingerprint",
    "photo_where",
    "place_set_for",
    "rebuild_library",
    "refresh_place_answers",
    "store_rows",
]
