"""Starting a damaged library again: the damaged file set aside, a new one with its folders."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from birdid_app.core.library.database import BUSY_TIMEOUT_SECONDS
from birdid_app.core.library.library import Library


def rebuild_library(path: Path) -> tuple[Path, list[Path]]:
    """Set a damaged library file aside and start a new one with the same folders, as far as
    they can still be read from it. Returns (where the damaged file now is, the folders kept).
    The photos themselves are never touched; indexing the folders again fills the new library."""
    path = Path(path)
    folders: list[Path] = []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS) as old:
            folders = [Path(p) for (p,) in old.execute("SELECT path FROM folders ORDER BY path")]
    except sqlite3.Error:
        pass  # the folders page is damaged too: the person names the folders again
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    number = 2
    while kept.exists():
        kept = kept.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{number}")
        number += 1
    if path.exists():
        os.replace(path, kept)
    for suffix in ("-wal", "-shm"):  # the damaged file's journal belongs with it, not with the new one
        journal = path.with_name(path.name + suffix)
        if journal.exists():
            os.replace(journal, kept.with_name(kept.name + suffix))
    with Library(path) as fresh:
        for folder in folders:
            fresh.add_folder(folder)
    return kept, folders
