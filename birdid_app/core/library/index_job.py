"""Indexing a library's folders with one model: planning the least to do (scan.py finds the
photos, the library what it holds), decoding on a small pool of low-priority threads while the
model identifies the batch before, and committing each batch in one transaction (rows.py).

Indexing commits in batches, one transaction each, so a process killed at any moment leaves a
consistent file and loses at most the batch under way; the next run sees what is done (same size
and mtime, and an identification by this model) and carries on. One indexer runs on a library at
a time (`IndexLock`); a second waits, or is told that another is running.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from birdid_app.core.errors import PhotoError
from birdid_app.core.library.database import _guarded
from birdid_app.core.library.library import Library
from birdid_app.core.library.lock import IndexLock
from birdid_app.core.library.places import photo_where
from birdid_app.core.library.rows import IndexSummary, _Decoded, _Work, apply_plan, store_rows
from birdid_app.core.library.scan import _inside_any, _pair_companions, _scan, fingerprint
from birdid_app.core.photos.photo import decode_photo, photo_metadata
from birdid_app.core.photos.sharpness import SHARPNESS_DRAFT, Region, sharpness

if TYPE_CHECKING:
    from PIL import Image

    from birdid_app.core.model.inference import Identification
    from birdid_app.core.places.range_prior import PlaceAnswer, RangePrior

BATCH_SIZE = 8  # photos per forward pass and per committed transaction


@dataclass(frozen=True)
class IndexProgress:
    done: int
    total: int
    photos_per_second: float
    seconds_left: float | None
    current: str


@dataclass
class _OpenBatch:
    """A batch of photos decoded and being identified; committed in one transaction when done."""

    works: list[_Work]
    results: list[_Decoded]
    identified: dict[int, Identification]  # index in the batch -> its Identification
    sharpness: dict[int, float]  # index in the batch -> its sharpness on the bird (culling on)


class IndexJob:
    """Indexing the library's folders with one model, one batch at a time, so that whoever runs
    it (the engine thread, between interactive requests; or the command line) decides when the
    next batch goes.

    `classify(images) -> list of core Identification` runs the model. Decoding of the next batch
    runs on a small thread pool while the current one is in the model.

    Creating a job takes the library's IndexLock: `wait_for_lock` blocks (calling `on_wait`
    first) while another indexer holds it; otherwise IndexerBusy is raised."""

    def __init__(
        self,
        library: Library,
        classify: Callable[[list[Image.Image]], list[Identification]],
        model_name: str,
        *,
        progress: Callable[[IndexProgress], None] | None = None,
        batch_size: int = BATCH_SIZE,
        decoders: int = 2,
        decode_size: tuple[int, int] = (384, 384),
        wait_for_lock: bool = False,
        on_wait: Callable[[], None] | None = None,
        species_names: Iterable[str] = (),
        range_prior: RangePrior | None = None,
        home_place: tuple[float, float] | None = None,
        prepare: Callable[[Image.Image], Image.Image] | None = None,
        bird_box: Callable[[Identification, tuple[int, int]], Region | None] | None = None,
    ) -> None:
        self.library = library
        # Culling: with `bird_box` (an Identification and an image size -> where the bird is in
        # it, or None for the centre; core/insight/bird_box.py's cull_box), each photo's sharpness on
        # the bird is scored on a grey copy decoded at SHARPNESS_DRAFT and stored with it.
        self.bird_box = bird_box
        if bird_box is not None and decode_size is not None:
            decode_size = (max(decode_size[0], SHARPNESS_DRAFT[0]), max(decode_size[1], SHARPNESS_DRAFT[1]))
        # Run on each decoded photo on the decoder threads, beside the model's forward: the
        # squash to the model's input size (~8 ms a 1000x750 draft) would otherwise wait in line
        # before each batch's forward on the indexing thread.
        self.prepare = prepare
        # core.range_prior.RangePrior, or None: with it, each photo with a place (its folder's or
        # its own set by the person, its GPS, else `home_place`) also gets the answer ranked
        # with what lives there that week, stored beside the picture's own.
        self.range_prior = range_prior
        self.home_place = home_place
        self.classify = classify
        # The model's species by lower-case name: a photo's own keyword that names one of them
        # becomes its label (source "keywords"), so years of keywording in an editor count.
        self.species_names = {name.casefold(): name for name in species_names}
        self.model_name = model_name
        self.progress = progress
        self.batch_size = batch_size
        self.decode_size = decode_size
        self.summary = IndexSummary()
        self.pending: list[_Work] = []
        self.done = 0
        library.require_writable()  # before the lock, whose file is made beside the library
        self._lock = IndexLock(library.path)
        self._lock.acquire(wait=wait_for_lock, on_wait=on_wait)
        self._pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="birdid-decode",
                                        initializer=_decode_below_the_model)
        self._next: list[Future[_Decoded]] | None = None
        self._batch: _OpenBatch | None = None  # the batch being identified, not yet committed
        self._pairs: dict[str, str] = {}  # RAW path -> the JPEG beside it, as planned
        self._scanning: Future[tuple[list[Path], dict[str, tuple[int, int]]]] | None = None
        self._started = time.monotonic()
        self.cancelled = threading.Event()

    # --- planning ----------------------------------------------------------------------------

    def start_scan(self) -> None:
        """Walk the folders on a pool thread; `plan_when_scanned` then plans from what it found.
        A big tree on a slow disk takes a while to walk, and the thread that runs this job must
        stay free for interactive requests meanwhile."""
        folders = self.library.folders()
        self._scanning = self._pool.submit(lambda: (folders, dict(_scan(folders, self.cancelled.is_set))))

    def plan_when_scanned(self, timeout: float) -> IndexSummary | None:
        """The plan, once the scan started by `start_scan` has finished; None if it is still
        walking after `timeout` seconds."""
        assert self._scanning is not None, "start_scan first"
        try:
            folders, found = self._scanning.result(timeout=timeout)
        except FutureTimeout:
            return None
        return self.plan(found=(folders, found))

    @_guarded
    def plan(self, found: tuple[list[Path], dict[str, tuple[int, int]]] | None = None) -> IndexSummary:
        """Scan the folders (unless `found` holds a scan already made) and work out the least to
        do: unchanged files this model has identified (or that could not be decoded) are skipped,
        moved or renamed ones re-pointed, deleted ones dropped, and new, changed, unreadable and
        not-yet-identified-by-this-model ones queued. A damaged library raises LibraryDamaged
        here, before any work, rather than part-way."""
        self.library.check_not_damaged()
        if found is None:
            folders = self.library.folders()
            found = (folders, dict(_scan(folders)))
        folders, scanned = found
        photos, pairs = _pair_companions(scanned)
        known = self.library.known(self.model_name)
        self.summary.scanned = len(photos)
        self.pending = []
        missing = {path: row for path, row in known.items() if path not in photos and _inside_any(Path(path), folders)}
        by_fingerprint = {row[3]: (path, row) for path, row in missing.items() if row[3] is not None}
        missing_sizes = {row[1] for row in missing.values()}
        renames: list[tuple[str, int, int, int]] = []
        for path, (size, mtime) in sorted(photos.items()):
            row = known.get(path)
            if row is not None and row[1] == size and row[2] == mtime and row[3] is not None:
                _, _, _, _, identified, error = row
                if identified or error is not None:
                    self.summary.unchanged += 1
                    continue
                # Unchanged, but this model has not identified it yet (another model did).
                self.pending.append(_Work(Path(path), size, mtime, row[3], file_changed=False))
                continue
            fp = None
            # Only a new path the size of a photo that went missing can be that photo moved: read
            # its fingerprint now. Every other file's is read later by the decoder threads, so a
            # first index of a big folder does not read half a megabyte per photo on this thread.
            if row is None and size in missing_sizes:
                try:
                    fp = fingerprint(Path(path), size)
                except PhotoError:
                    fp = None  # recorded with its error by the decoder threads
                if fp is not None and fp in by_fingerprint:
                    old_path, old_row = by_fingerprint.pop(fp)
                    del missing[old_path]
                    renames.append((path, size, mtime, old_row[0]))
                    if not old_row[4] and old_row[5] is None:  # moved, and this model lacks it
                        self.pending.append(_Work(Path(path), size, mtime, fp, file_changed=False))
                    continue
            # New, changed at its path, or never read (its fingerprint is missing).
            self.pending.append(_Work(Path(path), size, mtime, fp, file_changed=True))
        apply_plan(self.library, folders, renames, [row[0] for row in missing.values()], pairs)
        self._pairs = pairs
        self.summary.renamed = len(renames)
        self.summary.removed = len(missing)
        self._started = time.monotonic()
        return self.summary

    @property
    def total(self) -> int:
        return self.done + len(self.pending) + (len(self._batch.works) if self._batch is not None else 0)

    def finished(self) -> bool:
        """Nothing left, or cancelled (a batch identified only in part is then left uncommitted:
        the next run does it)."""
        return (not self.pending and self._batch is None) or self.cancelled.is_set()

    # --- running -----------------------------------------------------------------------------

    @_guarded
    def step(self, photos: int | None = None) -> bool:
        """Identify the next photos and commit each batch once all of it is done; True while
        work remains. With `photos`, at most that many go through the model in this call, so a
        caller that must stay responsive (the window's engine) waits at most one small forward
        between steps; without, a whole batch goes in one forward."""
        if self._batch is None:
            if self.finished():
                self.close()
                return False
            self._batch = self._open_next_batch()
        batch = self._batch
        waiting = [i for i, result in enumerate(batch.results) if result.image is not None and i not in batch.identified]
        now = waiting if photos is None else waiting[:photos]
        if now:
            images = [image for i in now if (image := batch.results[i].image) is not None]  # all of them: see waiting
            for i, identification in zip(now, self.classify(images), strict=True):
                batch.identified[i] = self._scored(batch, i, identification)
        if len(now) < len(waiting):
            return True
        self._batch = None
        rows = [
            (replace(work, fingerprint=result.fingerprint), result, batch.identified.get(i))
            for i, (work, result) in enumerate(zip(batch.works, batch.results, strict=True))
            if not result.vanished  # deleted since the scan: the next run sees it gone
        ]
        scores = [batch.sharpness.get(i) for i, result in enumerate(batch.results) if not result.vanished]
        self._commit(rows, scores)
        self.done += len(batch.works)
        self._report(str(batch.works[-1].path))
        if self.finished():
            self.close()
            return False
        return True

    def _open_next_batch(self) -> _OpenBatch:
        """The next batch, decoded (it was being decoded while the previous one was identified),
        with the decoding of the one after it started."""
        works, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        decoded = self._next if self._next is not None else self._decode(works)
        self._next = self._decode(self.pending[: self.batch_size]) if self.pending else None
        return _OpenBatch(works, [future.result() for future in decoded], {}, {})

    def _scored(self, batch: _OpenBatch, i: int, identification: Identification) -> Identification:
        """With culling on, score photo `i`'s sharpness on the bird, and drop what was kept only for
        that (the stage maps, the grey copy) before the batch waits for its commit."""
        grey = batch.results[i].grey
        if self.bird_box is None or grey is None:
            return identification
        batch.sharpness[i] = sharpness(grey, self.bird_box(identification, grey.size))
        batch.results[i] = replace(batch.results[i], grey=None)
        return replace(identification, stage_maps=())

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> IndexSummary:
        if not self.pending and not self.done:
            self.plan()
        while self.step():
            if should_stop():
                self.cancelled.set()
        self.close()
        return self.summary

    def close(self) -> None:
        self.cancelled.set()  # a scan still walking stops at its next folder
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._lock.release()

    def _decode(self, batch: list[_Work]) -> list[Future[_Decoded]]:
        read_keywords = bool(self.species_names)
        grey = self.bird_box is not None
        return [self._pool.submit(_decode_for_index, work, self.decode_size, read_keywords, self.prepare, grey)
                for work in batch]

    def _commit(self, rows: list[tuple[_Work, _Decoded, Identification | None]], scores: list[float | None]) -> None:
        answers = self._place_answers(rows) if self.range_prior is not None else None
        store_rows(self.library, self.model_name, rows, pairs=self._pairs, species_names=self.species_names,
                   summary=self.summary, place_answers=answers,
                   geomodel_sha256=self.range_prior.geomodel.sha256 if self.range_prior is not None else None,
                   sharpness=scores if self.bird_box is not None else None)

    def _place_answers(self, rows: list[tuple[_Work, _Decoded, Identification | None]]) -> list[PlaceAnswer | None]:
        places = self.library.assigned_places()
        answers: list[PlaceAnswer | None] = []
        assert self.range_prior is not None, "answers by place need the range prior"
        for work, result, identification in rows:
            if identification is None:
                answers.append(None)
                continue
            where, _ = photo_where(places, work.path, *result.metadata, home_place=self.home_place)
            answers.append(None if where is None else self.range_prior.answer(identification.probabilities, where))
        return answers

    def _report(self, current: str) -> None:
        if self.progress is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.done / elapsed
        left = len(self.pending) / rate if rate > 0 else None
        self.progress(IndexProgress(self.done, self.total, rate, left, current))


_NO_METADATA = (None, None, None)
DECODER_NICENESS = 10  # how much lower than the model's threads a decoder thread is scheduled (Linux)


def _decode_below_the_model() -> None:
    """Run this decoder thread below the model's (and the window's) threads. On two cores a
    decoder that takes a core from one of torch's threads holds up the whole parallel step until
    it gives it back, so the forward loses twice the decoder's time; below them, it decodes in the
    gaps the forward leaves and otherwise waits. Linux only (a thread's own nice value); elsewhere
    the threads run at the process's priority."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODER_NICENESS)
        except OSError:
            pass  # not allowed here: decoding at the process's priority still works


def _decode_for_index(work: _Work, size: tuple[int, int], read_keywords: bool = False,
                      prepare: Callable[[Image.Image], Image.Image] | None = None, grey: bool = False) -> _Decoded:
    """The photo decoded for the model (and passed through `prepare`), with its metadata and
    fingerprint, on a decoder thread; with `grey`, also a grey copy of about SHARPNESS_DRAFT to
    score its sharpness on. Never raises for anything about the file: whatever is wrong with it
    is its recorded error."""
    try:
        fp = work.fingerprint or fingerprint(work.path, work.size)
    except PhotoError as error:
        if not os.path.lexists(work.path):
            return _Decoded(None, _NO_METADATA, None, None, vanished=True)
        return _Decoded(None, _NO_METADATA, str(error), None)
    try:
        image = decode_photo(work.path, draft_size=size)
    except PhotoError as error:
        return _Decoded(None, _NO_METADATA, str(error), fp)
    grey_copy = _grey_for_sharpness(image) if grey else None
    if prepare is not None:
        image = prepare(image)
    return _Decoded(image, photo_metadata(work.path), None, fp, keywords=_keywords(work.path) if read_keywords else (),
                    grey=grey_copy)


def _grey_for_sharpness(image: Image.Image) -> Image.Image:
    """`image` in grey, shrunk by the largest whole factor that keeps it at least SHARPNESS_DRAFT
    (a full-resolution decode, when zooming, is otherwise 24 MB a photo while it waits)."""
    factor = min(image.width // SHARPNESS_DRAFT[0], image.height // SHARPNESS_DRAFT[1])
    return (image.reduce(factor) if factor >= 2 else image).convert("L")


def _keywords(path: Path) -> tuple[str, ...]:
    """The keywords of the photo and its sidecars; none when they cannot be read (an unreadable
    sidecar is the keywords command's to report, not the indexer's)."""
    from birdid_app.core.photos.sidecar import SidecarError, read_keywords  # exiv2: only when indexing

    try:
        return tuple(read_keywords(path))
    except SidecarError:
        return ()
