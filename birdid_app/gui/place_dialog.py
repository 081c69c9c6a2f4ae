"""Where a photo was taken, as a person types it: a town's name or coordinates, looked up offline
on a worker thread (core.place.place_from_text; the first lookup reads the list of towns, a second
or two), and the dialog that sets that place for a photo or for every photo in its folder.

The place is kept in the library (LibraryWriter.set_place); the window passes it with each
identification, and the range prior ranks by it before the photo's own GPS.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from birdid_app.gui.jobs import Job

LOOKUP_DELAY_MS = 300  # typing pauses this long before the text is looked up
PLACE_HINT = "A town, such as Texel or “Cambridge, GB”, or coordinates, such as 52.37, 4.89"


class PlaceResolver(QObject):
    """Texts looked up as places on the thread pool; only the answer for the newest text counts.
    Every lookup ends in resolved or failed, unless a newer text was asked for meanwhile."""

    resolved = Signal(str, object)  # the text, (latitude, longitude, label)
    failed = Signal(str, str)  # the text, the sentence saying why it is no place

    def __init__(self, parent: QObject | None = None, delay_ms: int = LOOKUP_DELAY_MS) -> None:
        super().__init__(parent)
        self.text = ""  # the newest text asked about
        self._answered: str | None = None  # the newest text whose answer arrived
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._look_up)

    def ask(self, text: str, *, now: bool = False) -> None:
        """Look `text` up once typing pauses (`now`: at once)."""
        self.text, self._answered = " ".join(text.split()), None
        if now:
            self._timer.stop()
            self._look_up()
        else:
            self._timer.start()

    def clear(self) -> None:
        """Nothing to look up: a lookup under way is dropped when it arrives."""
        self._timer.stop()
        self.text = self._answered = ""

    def waiting(self) -> bool:
        """Whether the newest text's answer has not arrived yet."""
        return self._answered != self.text

    def _look_up(self) -> None:
        text = self.text

        def work(report, should_cancel):
            from birdid_app.core.places.place import PlaceError, place_from_text

            try:
                return text, place_from_text(text), None
            except PlaceError as error:
                return text, None, str(error)

        job = Job(work)
        job.succeeded.connect(self._arrived)
        job.failed.connect(lambda message: self._arrived((text, None, message)))
        job.start()

    def _arrived(self, answer) -> None:
        text, place, problem = answer
        if text != self.text:
            return  # a newer text was asked about meanwhile
        self._answered = text
        if place is not None:
            self.resolved.emit(text, place)
        else:
            self.failed.emit(text, problem)


def resolved_path(path: Path) -> Path:
    """The path places are kept by, as `birdid identify` looks them up: links followed."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a link loop, a name too long: as given, made absolute
        return Path(path).absolute()


def assigned_place_for(places: dict, path: Path) -> tuple[float, float, str] | None:
    """(latitude, longitude, "person" | "folder") of the place set for the resolved `path` or its
    nearest folder that has one, from the library's assigned_places(): core.library.place_set_for,
    as the engine's IdentifyRequest carries it."""
    from birdid_app.core.library import place_set_for

    found = place_set_for(places, path)
    return None if found is None else (found[0], found[1], found[3])


class PlaceDialog(QDialog):
    """Set (or clear) where a photo, or every photo in its folder, was taken.

    After accept(): `action` is "set" or "clear", `target` the photo or folder it applies to, and
    for "set" `place` is (latitude, longitude, label)."""

    def __init__(self, photo: Path, places: dict, parent: QWidget | None = None) -> None:
        """`photo`: the resolved path of the photo on screen; `places`: the library's assigned_places()."""
        super().__init__(parent)
        self.setWindowTitle("Set Place")
        self.photo, self.folder, self.places = photo, photo.parent, places
        self.action: str | None = None
        self.target: Path | None = None
        self.place: tuple[float, float, str] | None = None

        intro = QLabel(f"Where was <b>{html.escape(photo.name)}</b> taken? It is used before the photo's own GPS.")
        intro.setWordWrap(True)
        self.now = QLabel()
        self.now.setWordWrap(True)
        self.now.setAccessibleName("Place set now")
        self.text = QLineEdit()
        self.text.setPlaceholderText(PLACE_HINT)
        self.text.setAccessibleName("Place")
        self.text.setToolTip(PLACE_HINT)
        self.found = QLabel("")
        self.found.setWordWrap(True)
        self.found.setAccessibleName("Place found")
        self.this_photo = QRadioButton("This &photo")
        self.whole_folder = QRadioButton(f"Every photo in its &folder ({(self.folder.name or str(self.folder)).replace('&', '&&')})")
        self.whole_folder.setToolTip(str(self.folder))
        self.scope = QButtonGroup(self)
        self.scope.addButton(self.this_photo)
        self.scope.addButton(self.whole_folder)
        (self.this_photo if str(photo) in places or str(self.folder) not in places else self.whole_folder).setChecked(True)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.set_button = QPushButton("&Set Place")
        self.set_button.setDefault(True)
        self.clear_button = QPushButton("C&lear")
        self.buttons.addButton(self.set_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.clear_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        self.set_button.clicked.connect(self._set)
        self.clear_button.clicked.connect(self._clear)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.now)
        layout.addWidget(self.text)
        layout.addWidget(self.found)
        layout.addWidget(self.this_photo)
        layout.addWidget(self.whole_folder)
        layout.addWidget(self.buttons)

        self.resolver = PlaceResolver(self)
        self.resolver.resolved.connect(self._resolved)
        self.resolver.failed.connect(self._failed)
        self.text.textChanged.connect(self._typed)
        self.text.returnPressed.connect(lambda: self.resolver.ask(self.text.text(), now=True))
        self.scope.buttonToggled.connect(lambda *_: self._show_state())
        self._show_state()
        self.resize(480, self.sizeHint().height())

    def _scope_target(self) -> Path:
        return self.photo if self.this_photo.isChecked() else self.folder

    def _show_state(self) -> None:
        own, folder = self.places.get(str(self.photo)), self.places.get(str(self.folder))
        if own is not None:
            self.now.setText(f"Now: {_named(own)}, set for this photo.")
        elif folder is not None:
            self.now.setText(f"Now: {_named(folder)}, set for its folder.")
        else:
            self.now.setText("No place is set for this photo or its folder.")
        self.clear_button.setEnabled(str(self._scope_target()) in self.places)
        self.set_button.setEnabled(self.place is not None and not self.resolver.waiting())

    def _typed(self, text: str) -> None:
        self.place = None
        if not text.strip():
            self.found.setText("")
            self.resolver.clear()
        else:
            self.found.setText("Looking it up…")
            self.resolver.ask(text)
        self._show_state()

    def _resolved(self, text: str, place) -> None:
        self.place = place
        latitude, longitude, label = place
        self.found.setText(f"Found: {label}" + ("" if label[:1].isdigit() or label[:1] == "-" else
                                                f" ({latitude:.4f}, {longitude:.4f})"))
        self._show_state()

    def _failed(self, text: str, problem: str) -> None:
        self.place = None
        self.found.setText(problem)
        self._show_state()

    def _set(self) -> None:
        if self.place is None or self.resolver.waiting():
            return
        self.action, self.target = "set", self._scope_target()
        self.accept()

    def _clear(self) -> None:
        self.action, self.target, self.place = "clear", self._scope_target(), None
        self.accept()


def _named(place) -> str:
    latitude, longitude, name = place
    return name or f"{latitude:.4f}, {longitude:.4f}"
