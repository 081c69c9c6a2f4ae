"""The zoom on the bird, and how far to trust the answer, for the photo on screen.

The controller draws the zoom panel and the trust panel from the session's entry, asks the engine
(through the session) for a zoom and for the mirror-and-crops check, and reads the library's two
signals on its reader thread. As OverlayController, it holds no state the session does not, but
which library reads are under way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRect

from birdid_app.core.errors import BirdidError
from birdid_app.gui.engine import CheckRequest, IdentifyOutcome, ZoomOutcome, ZoomRequest
from birdid_app.gui.photo_view import PhotoView
from birdid_app.gui.session import PhotoEntry, PhotoSession
from birdid_app.gui.trust_panel import TrustPanel, ZoomPanel


class ZoomTrustController(QObject):
    def __init__(
        self,
        session: PhotoSession,
        zoom_panel: ZoomPanel,
        trust_panel: TrustPanel,
        photo_view: PhotoView,
        *,
        zoom_every_photo: Callable[[], bool],  # the setting as it is now
        places: Callable[[PhotoEntry], tuple[Any, Any]],  # (assigned place, home place) the engine is told
        head: Callable[[], Any],  # the loaded model's classifier head, or None
        read_library: Callable[..., None],  # read(query, answered, when_missing=...) on the library's reader
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.zoom_panel, self.trust_panel, self.photo_view = session, zoom_panel, trust_panel, photo_view
        self.zoom_every_photo, self.places, self.head, self.read_library = zoom_every_photo, places, head, read_library
        self._signals_asked: set[tuple[int, object]] = set()  # (entry id, region) read for now
        session.zoom_changed.connect(self._zoom_changed)
        session.trust_changed.connect(self._trust_changed)
        zoom_panel.zoom_requested.connect(self.zoom_on_bird)
        zoom_panel.keep_requested.connect(self.keep_zoom)
        zoom_panel.cancel_requested.connect(self.cancel_zoom)
        zoom_panel.whole_requested.connect(photo_view.clear_region)
        self.hide()

    def hide(self) -> None:
        """Until the answer of the photo on screen is shown."""
        self.zoom_panel.hide()
        self.trust_panel.hide()

    def show(self, entry: PhotoEntry) -> None:
        """The panels for the answer now shown; what is not computed yet is asked for."""
        self.show_zoom(entry)
        self.show_trust(entry)

    # --- zoom on the bird --------------------------------------------------------------------

    def zoom_on_bird(self) -> None:
        """Identify the photo on screen again, on the box where the evidence for its answer lies."""
        entry = self.session.current
        if entry is None or entry.whole is None or self.session.zoom_pending(entry):
            return
        class_index = int(entry.whole.identification.probabilities.argmax())
        assigned_place, home_place = self.places(entry)
        self.session.send("zoom", entry, lambda request_id: ZoomRequest(
            request_id, entry.source, entry.path, entry.image, class_index, assigned_place, home_place))
        self.zoom_panel.show_working()

    def cancel_zoom(self) -> None:
        entry = self.session.current
        if entry is not None:
            self.session.cancel_zoom(entry)

    def keep_zoom(self) -> None:
        entry = self.session.current
        if entry is None or not isinstance(entry.zoom, ZoomOutcome) or entry.zoom.outcome is None:
            return
        self.session.keep_zoom(entry)  # answer_changed -> the zoomed answer is shown
        if entry.region is not None:
            self.photo_view.set_region(QRect(*entry.region))

    def _zoom_changed(self, entry: PhotoEntry) -> None:
        if entry is self.session.current:
            self.show_zoom(entry)
            self.show_zoom_box(entry)

    def show_zoom(self, entry: PhotoEntry) -> None:
        """The zoom panel for the photo on screen; with the setting on, the zoom is asked for."""
        if entry.whole is None or (entry.region is not None and not zoom_kept(entry)):
            self.zoom_panel.hide()  # a region the person chose: they have zoomed themselves
            return
        self.zoom_panel.show()
        if isinstance(entry.zoom, ZoomOutcome):
            whole_best = entry.whole.ranked[0]
            self.zoom_panel.show_zoom(entry.zoom, zoom_kept(entry),
                                      f"{whole_best.name} ({whole_best.probability:.0%})")
        elif isinstance(entry.zoom, str):
            self.zoom_panel.show_failed(entry.zoom)
        elif self.session.zoom_pending(entry):
            self.zoom_panel.show_working()
        elif self.zoom_every_photo():
            self.zoom_on_bird()
        else:
            self.zoom_panel.show_offer()

    def show_zoom_box(self, entry: PhotoEntry) -> None:
        zoom = entry.zoom
        box = zoom.box if isinstance(zoom, ZoomOutcome) and zoom.outcome is not None else None
        self.photo_view.set_evidence_box(QRect(*box) if box else None)

    # --- how far to trust the answer ---------------------------------------------------------

    def _trust_changed(self, entry: PhotoEntry) -> None:
        if entry is self.session.current and entry.outcome() is not None:
            self.show_trust(entry)

    def show_trust(self, entry: PhotoEntry) -> None:
        """The three signals for the answer on screen; those not computed yet are asked for."""
        from birdid_app.core.insight.trust import Agreement

        outcome = entry.outcome()
        self.trust_panel.show()
        region = entry.region
        agreement = entry.agreements.get(region)
        if isinstance(agreement, Agreement):
            self.trust_panel.show_signal(agreement.signal())
        elif isinstance(agreement, str):
            self.trust_panel.show_failed("Mirror and crops", agreement)
        else:
            self.trust_panel.show_working("Mirror and crops")
            if not self.session.check_pending(entry):
                class_index = int(outcome.identification.probabilities.argmax())
                self.session.send("check", entry, lambda request_id: CheckRequest(
                    request_id, entry.source, entry.path, entry.image, region, class_index))
        signals = entry.library_signals.get(region)
        if signals is None:
            for title in ("Your confirmed photos", "Unfamiliar photo"):
                self.trust_panel.show_working(title)
            if (entry.id, region) not in self._signals_asked:
                self._read_library_signals(entry, outcome)
        else:
            for signal in signals:
                self.trust_panel.show_signal(signal)

    def _read_library_signals(self, entry: PhotoEntry, outcome: IdentifyOutcome) -> None:
        """The library's two signals, read on the library's reader thread."""
        head = self.head()
        if head is None:
            return
        from birdid_app.core.insight import trust

        region, path = entry.region, entry.path
        answer, embedding = outcome.ranked[0].name, outcome.identification.embedding

        def query(library) -> list:
            from birdid_app.core.library import LibraryDamaged

            try:
                own = library.photo_by_path(path) if path is not None else None
                vote, familiar = trust.library_signals(library, answer, embedding, head,
                                                       exclude=[own.id] if own is not None else [])
            except LibraryDamaged:
                raise  # the Library tab offers to rebuild it
            except BirdidError as error:  # another model's library, say: said where the signals would be
                return [dataclasses.replace(signal, finding=str(error)) for signal in trust.without_library()]
            return [vote.signal(), familiar.signal()]

        def answered(signals: list) -> None:
            self._signals_asked.discard((entry.id, region))
            if outcome is entry.outcome():  # not an answer since replaced
                self.session.accept_library_signals(entry, region, signals)

        self._signals_asked.add((entry.id, region))
        self.read_library(query, answered, when_missing=trust.without_library())


def zoom_kept(entry: PhotoEntry) -> bool:
    """Whether the answer shown is the zoom's: its box is the region, and answered by it."""
    zoom = entry.zoom
    return isinstance(zoom, ZoomOutcome) and zoom.outcome is not None and entry.region_outcome is zoom.outcome
