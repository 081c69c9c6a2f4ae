"""How far a long job has got, in words: one wording for the command line and the window.

Reads the progress records by their fields (download.DownloadProgress, library.IndexProgress)
rather than importing those modules, so a front end can format progress without loading them.
"""

from __future__ import annotations

from typing import Protocol


# Read-only members (properties), so the frozen dataclasses match.
class _Download(Protocol):
    @property
    def done(self) -> int: ...  # bytes
    @property
    def total(self) -> int | None: ...
    @property
    def bytes_per_second(self) -> float: ...
    @property
    def seconds_left(self) -> float | None: ...
    @property
    def resumed_from(self) -> int: ...


class _Indexing(Protocol):
    @property
    def done(self) -> int: ...  # photos
    @property
    def total(self) -> int: ...
    @property
    def photos_per_second(self) -> float: ...
    @property
    def seconds_left(self) -> float | None: ...


def duration(seconds: float) -> str:
    """'42 s', or '3 min 5 s' from a minute on."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def fraction_done(progress: _Download | _Indexing) -> float:
    """0..1; a download of unknown size counts as not started, an empty indexing job as done."""
    if progress.total:
        return progress.done / progress.total
    return 1.0 if hasattr(progress, "photos_per_second") else 0.0


def describe_progress(progress: _Download | _Indexing, separator: str = ", ") -> str:
    """'12.5 of 194.9 MB, 3.1 MB/s, 1 min 2 s left' for a download (with ', resumed at 40.0 MB'
    when it carried on from an earlier try); '40 of 120 photos, 5.2/s, 15 s left' for indexing.
    The window joins the parts with ' · ' instead."""
    if hasattr(progress, "photos_per_second"):
        parts = [f"{progress.done} of {progress.total} photos", f"{progress.photos_per_second:.1f}/s"]
    else:
        total = progress.total or 0
        parts = [f"{progress.done / 1e6:.1f} of {total / 1e6:.1f} MB", f"{progress.bytes_per_second / 1e6:.1f} MB/s"]
    if progress.seconds_left is not None:
        parts.append(f"{duration(progress.seconds_left)} left")
    resumed_from = getattr(progress, "resumed_from", 0)
    if resumed_from:
        parts.append(f"resumed at {resumed_from / 1e6:.1f} MB")
    return separator.join(parts)
