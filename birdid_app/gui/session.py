"""The photos a person has opened and what the model said about them: the window's state, held
apart from its widgets (napari's ViewerModel beside its QtViewer is the pattern).

`PhotoSession` keeps the entries, which one is shown, its region, the answers and the
class-activation maps already computed, and the requests under way. The window asks it what to
send to the engine, hands it what the engine answers, and draws what its signals say.

One mechanism guards against stale results everywhere: `Tickets`. Every piece of work whose
answer comes back later (an identification, a class-activation map, an overlay being drawn, a
grid of thumbnails) is given a ticket for what it was asked for; issuing a newer ticket for the
same purpose, or withdrawing it, makes the old one stale, and a stale answer is dropped on arrival.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

Region = tuple[int, int, int, int]  # x, y, width, height in upright photo pixels


class RequestSender(Protocol):
    """Where the session's requests go: the engine (gui/engine.py), or a stand-in in a test."""

    def send(self, request: Any) -> None: ...

    def cancel(self, request_id: int) -> None: ...


class Tickets:
    """Tickets for work whose answer arrives later. `issue(purpose, payload)` returns a new
    ticket number and makes any earlier ticket for the same purpose stale; `take(ticket)` returns
    the payload of a ticket that is still current (and retires it), or None for a stale or
    unknown one. A purpose is any hashable value: ("identify", entry id), "overlay", ...
    Plain Python, used on the GUI thread only."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._current: dict[Any, int] = {}  # purpose -> its current ticket
        self._payloads: dict[int, tuple[Any, Any]] = {}  # ticket -> (purpose, payload)

    def issue(self, purpose, payload=None) -> int:
        self.withdraw(purpose)
        ticket = next(self._numbers)
        self._current[purpose] = ticket
        self._payloads[ticket] = (purpose, payload)
        return ticket

    def current(self, purpose) -> int | None:
        return self._current.get(purpose)

    def is_current(self, ticket: int) -> bool:
        return ticket in self._payloads

    def take(self, ticket: int) -> tuple[Any, Any] | None:
        """(purpose, payload) of a current ticket, which is retired; None when stale or unknown."""
        taken = self._payloads.pop(ticket, None)
        if taken is not None and self._current.get(taken[0]) == ticket:
            del self._current[taken[0]]
        return taken

    def withdraw(self, purpose) -> int | None:
        """Make the current ticket for `purpose` stale; returns it (to cancel its work), or None."""
        ticket = self._current.pop(purpose, None)
        if ticket is not None:
            self._payloads.pop(ticket, None)
        return ticket



_entry_ids = itertools.count(1)


@dataclass(eq=False)
class PhotoEntry:
    """One photo in the strip, with what the model said about it (kept, never asked twice)."""

    source: str
    path: Path | None = None
    image: Any = None  # a pasted picture, as an RGB PIL image
    whole: Any = None  # the IdentifyOutcome for the whole photo
    region: Region | None = None
    region_outcome: Any = None  # the IdentifyOutcome for the region
    error: str | None = None
    # Class-activation maps already computed, by (region, class index, stage).
    cams: dict = field(default_factory=dict)
    zoom: Any = None  # the engine's ZoomOutcome for the whole photo once asked for, or the sentence why it failed
    # How far to trust each answer, by region (None: the whole photo): the mirror-and-crops
    # Agreement (or the sentence why it failed), and the library's (NeighbourVote, Familiarity)
    # (or a list of TrustSignals saying why there are none), as core.trust gives them.
    agreements: dict = field(default_factory=dict)
    library_signals: dict = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_entry_ids))

    def outcome(self):
        return self.region_outcome if self.region else self.whole

    def file(self) -> Path:
        """The photo's file, for an entry that is not a pasted picture (whose `image` is set)."""
        if self.path is None:
            raise ValueError(f"{self.source} is a pasted picture, not a file")
        return self.path

    def forget_maps(self) -> None:
        """Let go of the stage maps and class-activation maps (megabytes a photo); the ranking
        and embedding stay. Memory stays bounded: maps are kept for the photo on screen only."""
        for outcome in (self.whole, self.region_outcome):
            if outcome is not None:
                outcome.identification.stage_maps = ()
        self.cams.clear()


class PhotoSession(QObject):
    """The window's photos and answers, without widgets. Signals say what changed; the window
    draws it."""

    entries_added = Signal(int)  # the row of the first new entry
    current_changed = Signal(object)  # the PhotoEntry now shown
    answer_changed = Signal(object)  # a PhotoEntry whose answer (or error, or state) changed
    cam_ready = Signal(object, object)  # PhotoEntry, (region, class index, stage) now in its cams
    request_stopped = Signal(object)  # a PhotoEntry whose identification was cancelled
    cam_ended = Signal(object)  # a class-activation request ended without a map: its sentence, or None if cancelled
    zoom_changed = Signal(object)  # a PhotoEntry whose zoom arrived, failed or stopped
    trust_changed = Signal(object)  # a PhotoEntry with a new signal of how far to trust its answer

    def __init__(self, parent: QObject | None = None, engine: RequestSender | None = None) -> None:
        super().__init__(parent)
        self.entries: list[PhotoEntry] = []
        self.current: PhotoEntry | None = None
        self.tickets = Tickets()
        self.engine = engine  # None: tickets only, nothing sent or cancelled (the session's own tests)

    # --- sending -----------------------------------------------------------------------------

    def send(self, kind: str, entry: PhotoEntry, build: Callable[[int], Any], *, key=None) -> int:
        """Ask the engine for `kind` of work on `entry` ("identify", "zoom", "check", or "cam" with
        the map's `key`): a ticket is issued, the request it replaces is cancelled on the engine,
        and `build(ticket)`, the request carrying that ticket as its id, is sent. Returns the ticket."""
        if kind == "cam":
            request_id, replaced = self.cam_ticket(entry, key)
        else:
            request_id, replaced = {"identify": self.identify_ticket, "zoom": self.zoom_ticket,
                                    "check": self.check_ticket}[kind](entry)
        self._cancel(replaced)
        if self.engine is not None:
            self.engine.send(build(request_id))
        return request_id

    def _cancel(self, request_id: int | None) -> int | None:
        if request_id is not None and self.engine is not None:
            self.engine.cancel(request_id)
        return request_id

    def stop(self, entry: PhotoEntry) -> None:
        """Cancel the identification under way for `entry`, if any; the engine says when it stopped."""
        self._cancel(self.pending(entry))

    # --- photos ------------------------------------------------------------------------------

    def add(self, entries: list[PhotoEntry]) -> None:
        first = len(self.entries)
        self.entries += entries
        self.entries_added.emit(first)

    def select(self, row: int) -> PhotoEntry | None:
        if not 0 <= row < len(self.entries):
            return None
        previous, self.current = self.current, self.entries[row]
        if previous is not None and previous is not self.current:
            previous.forget_maps()
        self.current_changed.emit(self.current)
        return self.current

    # --- identification ----------------------------------------------------------------------

    def pending(self, entry: PhotoEntry) -> int | None:
        """The identification request under way for `entry`, if any."""
        return self.tickets.current(("identify", entry.id))

    def identify_ticket(self, entry: PhotoEntry) -> tuple[int, int | None]:
        """(a request id for identifying `entry` as it is now, the request it replaces or None)."""
        replaced = self.tickets.withdraw(("identify", entry.id))
        return self.tickets.issue(("identify", entry.id), (entry, entry.region)), replaced

    def set_region(self, entry: PhotoEntry, region: Region | None) -> int | None:
        """Change the region; the request that no longer applies is cancelled, and returned (or None)."""
        entry.region, entry.region_outcome = region, None
        return self._cancel(self.tickets.withdraw(("identify", entry.id)))

    def keep_zoom(self, entry: PhotoEntry) -> int | None:
        """Keep the zoom's answer: its box becomes the photo's region, answered already. The
        request that no longer applies is cancelled (by set_region), and returned (or None)."""
        stale = self.set_region(entry, entry.zoom.box)
        entry.region_outcome = entry.zoom.outcome
        self.answer_changed.emit(entry)
        return stale

    def accept_identified(self, request_id: int, outcome) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return  # stale: a newer request, or a region change, took its place
        entry, region = taken[1]
        if region is None:
            entry.whole, entry.error = outcome, None
        elif region == entry.region:
            entry.region_outcome = outcome
        self.answer_changed.emit(entry)

    def accept_failed(self, request_id: int, message: str) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return
        purpose, payload = taken
        if purpose == "cam":
            self.cam_ended.emit(message)
            return
        if purpose[0] in ("zoom", "check"):
            # Neither changes the answer: the window says what went wrong where the signal would be.
            self._side_ended(purpose[0], payload, message)
            return
        entry, _ = payload
        entry.error = message
        self.answer_changed.emit(entry)

    def accept_cancelled(self, request_id: int) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return
        purpose, payload = taken
        if purpose == "cam":
            self.cam_ended.emit(None)
        elif purpose[0] in ("zoom", "check"):
            self._side_ended(purpose[0], payload, None)
        else:
            self.request_stopped.emit(payload[0])

    # --- class-activation maps ---------------------------------------------------------------

    def cam_ticket(self, entry: PhotoEntry, key) -> tuple[int, int | None]:
        """(a request id for the class-activation map `key` of `entry`, the CAM request it replaces)."""
        replaced = self.tickets.withdraw("cam")
        return self.tickets.issue("cam", (entry, key)), replaced

    def accept_cam(self, request_id: int, cam) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return
        entry, key = taken[1]
        entry.cams[key] = cam
        self.cam_ready.emit(entry, key)

    def cam_waiting(self) -> bool:
        return self.tickets.current("cam") is not None

    # --- zoom, and how far to trust an answer ------------------------------------------------

    def zoom_ticket(self, entry: PhotoEntry) -> tuple[int, int | None]:
        """(a request id for zooming on `entry`'s whole photo, the zoom request it replaces)."""
        replaced = self.tickets.withdraw(("zoom", entry.id))
        return self.tickets.issue(("zoom", entry.id), (entry, None)), replaced

    def cancel_zoom(self, entry: PhotoEntry) -> int | None:
        """The person stopped `entry`'s zoom: its request is cancelled (and its id returned), and the
        zoom is kept as that sentence, so "zoom every photo" does not ask for it again at once."""
        request_id = self._cancel(self.tickets.withdraw(("zoom", entry.id)))
        if request_id is not None:
            entry.zoom = "The zoom was cancelled."
            self.zoom_changed.emit(entry)
        return request_id

    def zoom_pending(self, entry: PhotoEntry) -> bool:
        return self.tickets.current(("zoom", entry.id)) is not None

    def accept_zoomed(self, request_id: int, zoom) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return
        entry, _ = taken[1]
        entry.zoom = zoom
        self.zoom_changed.emit(entry)

    def check_ticket(self, entry: PhotoEntry) -> tuple[int, int | None]:
        """(a request id for checking `entry`'s answer as it is now, the check it replaces).
        The engine holds one check at a time: a newer one, for any photo, cancels the older."""
        replaced = self.tickets.withdraw(("check", entry.id))
        return self.tickets.issue(("check", entry.id), (entry, entry.region)), replaced

    def check_pending(self, entry: PhotoEntry) -> bool:
        return self.tickets.current(("check", entry.id)) is not None

    def accept_checked(self, request_id: int, agreement) -> None:
        taken = self.tickets.take(request_id)
        if taken is None:
            return
        entry, region = taken[1]
        entry.agreements[region] = agreement
        self.trust_changed.emit(entry)

    def accept_library_signals(self, entry: PhotoEntry, region: Region | None, signals) -> None:
        entry.library_signals[region] = signals
        self.trust_changed.emit(entry)

    def _side_ended(self, kind: str, payload, message: str | None) -> None:
        entry, region = payload
        # A failure is kept as its sentence, said where the result would be; a stopped request
        # leaves nothing, and is asked again when the photo is shown again.
        if kind == "zoom":
            if message is not None:
                entry.zoom = message
            self.zoom_changed.emit(entry)
        else:
            if message is not None:
                entry.agreements[region] = message
            self.trust_changed.emit(entry)
