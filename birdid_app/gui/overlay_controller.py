"""What the overlay shows over the photo, and where each map comes from.

The controller turns the overlay panel's choice into a picture over the photo view: stage-map
views are drawn on the thread pool from the maps of the identification already made; a
class-activation map not computed before is asked of the engine through the session (a gradient
pass, never an identification) and kept in the photo's entry. Late answers are matched by the session's tickets:
a drawing asked for before the last change of choice is dropped on arrival.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QRectF, Signal

from birdid_app.gui.engine import ExplainRequest
from birdid_app.gui.images import qimage_from_rgba
from birdid_app.gui.overlay_panel import OverlayChoice, OverlayPanel
from birdid_app.gui.session import PhotoEntry, PhotoSession

COMPUTING_CAM = "Computing the class-activation map…"


class OverlayController(QObject):
    # The photo on screen has an answer whose stage maps were let go (PhotoEntry.forget_maps, on
    # leaving it) and the overlay is asked for: the window identifies it again for its maps.
    maps_needed = Signal(object)  # the PhotoEntry

    def __init__(
        self,
        session: PhotoSession,
        panel: OverlayPanel,
        photo_view,
        run: Callable,  # run(work, on_success): a job on the thread pool
        status: Callable[[str, int], None],  # status(message, milliseconds; 0: until replaced)
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.panel, self.photo_view = session, panel, photo_view
        self.run, self.status = run, status
        self.values = None  # the map on screen: [H, W] in 0..1 or [H, W, 3] colours
        session.cam_ready.connect(self._cam_ready)
        session.cam_ended.connect(self._cam_ended)

    def update(self) -> None:
        """Draw what the panel asks for over the photo on screen, or nothing."""
        ticket = self.session.tickets.issue("overlay")  # any drawing still under way is now stale
        choice = self.panel.choice()
        entry = self.session.current
        outcome = entry.outcome() if entry is not None else None
        if not choice.enabled or entry is None or outcome is None or not outcome.identification.stage_maps:
            self.session.tickets.withdraw("overlay")
            self.photo_view.set_overlay(None)
            self.values = None
            if choice.enabled and outcome is not None:
                self.maps_needed.emit(entry)  # else nothing would ever be drawn on this photo
            return
        if choice.mode == "cam":
            key = (entry.region, choice.class_index, choice.stage)
            if key in entry.cams:
                self.run(_render_values(entry.cams[key], choice), lambda r: self._show(ticket, r))
            else:
                self._request_cam(entry, choice, key)
            return
        self.run(_render_stage(outcome.identification.stage_maps, choice), lambda r: self._show(ticket, r))

    def _request_cam(self, entry: PhotoEntry, choice: OverlayChoice, key) -> None:
        if choice.class_index is None:  # no species to explain: the list is empty until a model loads
            return
        self.status(COMPUTING_CAM, 0)
        class_index, stage = choice.class_index, choice.stage
        self.session.send("cam", entry, lambda request_id: ExplainRequest(
            request_id, entry.source, entry.path, entry.image, entry.region, class_index, stage), key=key)

    def _cam_ready(self, entry: PhotoEntry, key) -> None:
        self.status("", 0)
        if entry is self.session.current:
            self.update()

    def _cam_ended(self, message: str | None) -> None:
        if not self.session.cam_waiting():
            self.status(message or "", 10000 if message else 0)

    def _show(self, ticket: int, rendered) -> None:
        if self.session.tickets.take(ticket) is None or self.session.current is None:
            return  # the choice or the photo changed while this was drawn
        image, values, channel, count = rendered
        self.values = values
        if channel is not None:
            self.panel.show_channel(channel, count)
        region = self.session.current.region
        target = QRectF(*region) if region else None
        self.photo_view.set_overlay(image, target, self.panel.choice().opacity)


def _render_stage(stage_maps, choice: OverlayChoice):
    """A job: the chosen view of one stage map, coloured, as (QImage, values, channel, count)."""

    def work(report, should_cancel):
        from birdid_app.core.insight import explain

        view = explain.overlay_values(stage_maps, choice.stage, choice.mode, channel_rank=choice.channel_rank)
        picture = qimage_from_rgba(explain.overlay_rgba(view.values, 1.0, choice.colormap))
        return picture, view.values, view.channel, view.channels if choice.mode == "channel" else None

    return work


def _render_values(values, choice: OverlayChoice):
    def work(report, should_cancel):
        from birdid_app.core.insight import explain

        return qimage_from_rgba(explain.overlay_rgba(values, 1.0, choice.colormap)), values, None, None

    return work
