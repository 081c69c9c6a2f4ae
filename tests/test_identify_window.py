"""The identification window, driven for real: photos in by drop, open and paste; answers equal to
the core classifier's; regions; a bad file; a slow engine that never freezes the window."""

from __future__ import annotations

import time
import warnings

import pytest
from PySide6.QtCore import QMimeData, QPointF, QRect, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from birdid_app.cli import main
from birdid_app.core.model import inference
from birdid_app.core.model.inference import Classifier
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.photos.photo import crop_region, decode_photo
from birdid_app.core.settings import load_settings
from birdid_app.gui.images import pil_from_qimage
from birdid_app.gui.main_window import MainWindow
from birdid_app.gui.settings_dialog import SettingsDialog
from conftest import open_ready_window

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def classifier_at(small_model_file):
    """The core classifier on the same checkpoint, by device and precision, made once per module."""
    made = {}

    def classifier(device: str, precision: str) -> Classifier:
        if (device, precision) not in made:
            made[device, precision] = Classifier.from_file(small_model_file, device=device, precision=precision)
        return made[device, precision]

    return classifier


@pytest.fixture
def reference(window, classifier_at):
    """What the window must show: the core classifier on the device and at the precision the
    window's engine runs ("auto" measures which mode is fastest here: fp32 or bf16 from run to run)."""
    return classifier_at(window.loaded_model.device, window.loaded_model.precision)


@pytest.fixture
def installed(small_model_file):
    return ModelStore().import_file(small_model_file)


@pytest.fixture
def window(qtbot, installed):
    return open_ready_window(qtbot)


@pytest.fixture
def slow_engine(monkeypatch):
    """Each forward pass takes a second longer: the engine is slow, not the test."""
    original = inference.Classifier.identify_images

    def slow(self, *args, **kwargs):
        time.sleep(1.0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "identify_images", slow)


def shown_species(window: MainWindow) -> list[str]:
    return [s.name for s in window.results.ranked[: window.settings.top_k]]


def expected_species(reference, image, top_k=5) -> list[str]:
    (result,) = reference.identify_images([image])
    return [s.name for s in result.ranked(top_k)]


def wait_for_answer(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.session.current is not None and window.session.current.outcome() is not None, timeout=WAIT_MS)


def drop(window: MainWindow, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(window.width() / 2, window.height() / 2)
    with warnings.catch_warnings():
        # PySide marks QDragEnterEvent's only constructor deprecated; Qt offers no other to build one.
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            point.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)


def test_a_dropped_photo_gets_the_classifiers_ranking(window, qtbot, reference, photo_dir):
    drop(window, [photo_dir / "blue-tit.jpg"])
    wait_for_answer(qtbot, window)
    image = decode_photo(photo_dir / "blue-tit.jpg", draft_size=reference.image_size)
    assert shown_species(window) == expected_species(reference, image)
    panel = window.results
    assert panel.headline.text().endswith(panel.ranked[0].name)
    assert [bar.accessibleName().split(":")[0] for bar in panel.row_bars if bar.isVisible()] == shown_species(window)
    assert "Identified in" in window.statusBar().currentMessage()
    # The photo is decoded for display on the thread pool, independently of the engine's answer.
    qtbot.waitUntil(lambda: window.photo_view.photo_size() is not None, timeout=WAIT_MS)
    assert window.photo_view.photo_size().width() == 640


def test_a_dropped_folder_becomes_a_strip_stepped_with_arrow_keys(window, qtbot, reference, photo_dir):
    drop(window, [photo_dir])
    assert window.strip.count() == 3 and window.strip.isVisible()
    wait_for_answer(qtbot, window)
    first = window.session.current
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.session.current is window.session.entries[1]
    wait_for_answer(qtbot, window)
    image = decode_photo(window.session.current.path, draft_size=reference.image_size)
    assert shown_species(window) == expected_species(reference, image)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.session.current is first and first.whole is not None  # kept, not asked again
    assert window.results.ranked == first.whole.ranked


def test_open_dialog_and_recent_files(window, qtbot, reference, photo_dir, monkeypatch):
    path = photo_dir / "heron.jpg"
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    window.open_action.trigger()
    wait_for_answer(qtbot, window)
    image = decode_photo(path, draft_size=reference.image_size)
    assert shown_species(window) == expected_species(reference, image)
    assert load_settings().recent_files[0] == str(path)


def test_pasting_an_image_and_a_path(window, qtbot, reference, photo_dir):
    picture = QImage(str(photo_dir / "robin.png"))
    QGuiApplication.clipboard().setImage(picture)
    window.paste_action.trigger()
    wait_for_answer(qtbot, window)
    assert window.session.current.source == "Pasted image"
    assert shown_species(window) == expected_species(reference, pil_from_qimage(picture))

    QGuiApplication.clipboard().setText(str(photo_dir / "heron.jpg"))
    window.paste_action.trigger()
    wait_for_answer(qtbot, window)
    assert window.session.current.path == photo_dir / "heron.jpg"


def drag_on_photo(qtbot, window: MainWindow, image_rect: QRect) -> None:
    """A Shift-drag across the photo view, from one image corner of `image_rect` to the other."""
    view = window.photo_view
    start = view.mapFromScene(QPointF(image_rect.topLeft()))
    end = view.mapFromScene(QPointF(image_rect.bottomRight()))
    shift = Qt.KeyboardModifier.ShiftModifier
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, shift, start)
    move = QMouseEvent(
        QMouseEvent.Type.MouseMove, QPointF(end), QPointF(view.viewport().mapToGlobal(end)),
        Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, shift,
    )
    QApplication.sendEvent(view.viewport(), move)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, shift, end)


def test_a_region_is_identified_as_that_crop_and_esc_goes_back(window, qtbot, reference, photo_dir):
    path = photo_dir / "heron.jpg"  # 1600 x 1200
    window.add_photos([path])
    wait_for_answer(qtbot, window)
    whole = window.session.current.whole
    qtbot.waitUntil(lambda: window.photo_view.photo_size() is not None, timeout=WAIT_MS)
    drag_on_photo(qtbot, window, QRect(400, 300, 480, 360))
    region = window.session.current.region
    assert region is not None and abs(region[0] - 400) <= 4 and abs(region[2] - 480) <= 8
    wait_for_answer(qtbot, window)
    crop = crop_region(decode_photo(path, draft_size=None), region)
    assert shown_species(window) == expected_species(reference, crop)
    assert "selected region" in window.results.detail.text()
    assert window.results.model_view.pixmap().size().width() == 128  # the input size it looked at

    window.photo_view.setFocus()
    qtbot.keyClick(window.photo_view, Qt.Key.Key_Escape)
    assert window.session.current.region is None
    assert window.results.ranked == whole.ranked  # back to the whole photo, from memory


def test_a_bad_file_shows_its_error_and_the_next_photo_works(window, qtbot, reference, photo_dir, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    drop(window, [bad, photo_dir / "robin.png"])
    qtbot.waitUntil(lambda: window.results.headline.text() == "Could not identify this photo", timeout=WAIT_MS)
    assert "broken.jpg: This is not an image birdid can read." in window.results.detail.text()
    window.strip.setCurrentRow(1)
    wait_for_answer(qtbot, window)
    # Decoded as the engine decodes a whole photo: reduced, but never below the model's input size.
    robin = decode_photo(photo_dir / "robin.png", draft_size=reference.image_size)
    assert shown_species(window) == expected_species(reference, robin)


def test_the_window_keeps_responding_while_the_engine_works(window, qtbot, photo_dir, slow_engine):
    # "auto" is measured beside the answers on a first start: let it finish, so the ticks below
    # count the engine's forward alone.
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip(), timeout=90_000)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    window.add_photos([photo_dir / "robin.png"])
    assert window.results.headline.text() == "Identifying…"
    wait_for_answer(qtbot, window)
    timer.stop()
    # A second of forward pass, ~50 timer ticks if the GUI thread never stalls; a frozen window gets 1 or 2.
    assert len(ticks) >= 25
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.5


def test_a_newer_photo_supersedes_a_waiting_one(window, qtbot, photo_dir, slow_engine):
    cancelled, identified = [], []
    window.engine.cancelled.connect(cancelled.append)
    window.engine.identified.connect(lambda outcome: identified.append(outcome.request.source))
    with qtbot.waitSignal(window.engine.working, timeout=WAIT_MS):  # the first is under way
        window.add_photos([photo_dir / "blue-tit.jpg", photo_dir / "heron.jpg", photo_dir / "robin.png"])
    window.strip.setCurrentRow(1)  # waits behind the first
    superseded = window.session.pending(window.session.entries[1])
    window.strip.setCurrentRow(2)  # replaces the waiting one
    wait_for_answer(qtbot, window)
    assert window.session.current is window.session.entries[2]
    assert cancelled == [superseded]
    qtbot.waitUntil(lambda: len(identified) == 2, timeout=WAIT_MS)
    assert identified == [str(photo_dir / "blue-tit.jpg"), str(photo_dir / "robin.png")]
    assert window.session.entries[1].whole is None and window.session.pending(window.session.entries[1]) is None


def test_stop_identifying_cancels_the_photo_under_way(window, qtbot, photo_dir, slow_engine):
    window.add_photos([photo_dir / "robin.png"])
    request = window.session.pending(window.session.current)
    with qtbot.waitSignal(window.engine.cancelled, timeout=WAIT_MS) as cancelled:
        window.stop_action.trigger()
    assert cancelled.args == [request]
    assert window.results.headline.text() == "Stopped"
    assert window.session.current.whole is None


def test_closing_during_work_ends_the_engine_cleanly(qtbot, installed, photo_dir, slow_engine):
    window = open_ready_window(qtbot)
    window.add_photos([photo_dir / "heron.jpg"])
    qtbot.waitUntil(lambda: window.engine.isRunning() and window.session.pending(window.session.current) is not None)
    window.close()
    assert window.engine.isFinished()


def test_settings_survive_a_restart(qtbot, installed, photo_dir):
    window = open_ready_window(qtbot)

    def choose_seven_species():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, SettingsDialog)
        dialog.top_k_box.setValue(7)
        dialog.accept()

    QTimer.singleShot(0, choose_seven_species)
    window.show_settings()
    window.close()

    again = open_ready_window(qtbot)
    assert again.settings.top_k == 7
    again.add_photos([photo_dir / "robin.png"])
    wait_for_answer(qtbot, again)
    assert sum(bar.isVisible() for bar in again.results.row_bars) == 7


def test_birdid_with_photo_arguments_opens_them(qtbot, installed, photo_dir):
    seen = []

    def look_then_close():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen.extend(entry.path for entry in window.session.entries)
        window.close()

    QTimer.singleShot(300, look_then_close)
    assert main([str(photo_dir / "robin.png"), str(photo_dir / "heron.jpg")]) == 0
    assert seen == [photo_dir / "robin.png", photo_dir / "heron.jpg"]


def test_a_raw_says_it_is_decoding_and_a_broken_photo_says_why_in_the_view(window, qtbot, tmp_path):
    from test_raw import write_dng

    raw = write_dng(tmp_path / "heron.dng", preview=(512, 384))
    window.add_photos([raw])
    assert window.photo_view.waiting_text == "Decoding the RAW heron.dng…"
    qtbot.waitUntil(lambda: window.photo_view.photo_size() is not None, timeout=30_000)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    window.add_photos([broken])
    assert window.photo_view.waiting_text == "Opening broken.jpg…"
    qtbot.waitUntil(lambda: (window.photo_view.waiting_text or "").startswith(f"{broken}: "), timeout=30_000)
    assert window.photo_view.photo_size() is None


@pytest.mark.slow
def test_at_int8_the_window_shows_the_int8_graphs_answer_the_cli_gives(qtbot, installed, photo_dir, capsys):
    """The window's forward (which also draws the stage maps) runs the same int8 graph as
    `birdid identify`: the same probabilities, and the status bar names int8."""
    import json

    from birdid_app.core.settings import Settings, save_settings

    save_settings(Settings(device="cpu", precision="int8"))
    window = open_ready_window(qtbot)
    assert window.loaded_model.precision == "int8" and window.model_status.text().endswith("· int8")
    photo = photo_dir / "heron.jpg"
    window.add_photos([photo])
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=60_000)
    outcome = window.session.current.outcome()
    assert len(outcome.identification.stage_maps) == 4  # the maps come from the same run
    capsys.readouterr()
    assert main(["identify", "--precision", "int8", "--json", "--top-k", "10", str(photo)]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    shown = {s.name: s.probability for s in outcome.ranked}
    for species in record["species"]:
        assert shown[species["name"]] == pytest.approx(species["probability"], abs=0.001)


def test_auto_answers_the_first_photo_at_once_and_measures_beside_it(qtbot, installed, photo_dir, monkeypatch, capsys):
    """A fresh data folder: the first photo is answered in a mode that needs no preparation while
    "auto" is still being measured (slowed here), then the window switches, says so in a line that
    stays, and shows the photo again as `birdid identify` answers it in the mode measured."""
    import json
    import threading

    from birdid_app.core.model import precision

    release = threading.Event()
    original = precision.measure_precisions

    def slow_trial(*args, **kwargs):  # beside the answers, on its own thread: held until the answer is in
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(precision, "measure_precisions", slow_trial)
    monkeypatch.setattr(precision, "candidate_precisions", lambda device, native_bf16: ["fp32", "bf16"])  # no int8
    window = open_ready_window(qtbot)
    assert window.loaded_model.precision_reason.endswith("being measured beside your answers (once for this model)")
    photo = photo_dir / "robin.png"
    window.add_photos([photo])
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=30_000)
    assert "picked automatically" not in window.model_status.toolTip()  # answered before the trial
    with qtbot.waitSignal(window.engine.precision_switched, timeout=60_000) as switched:
        release.set()
    assert "measured fastest on this computer" in switched.args[0]
    assert window.statusBar().currentMessage() == switched.args[0]  # it stays
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip()
                    and window.session.pending(window.session.current) is None
                    and window.session.current.outcome() is not None, timeout=30_000)
    chosen = window.loaded_model.precision
    capsys.readouterr()
    assert main(["identify", "--precision", chosen, "--json", "--top-k", "10", str(photo)]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    shown = {s.name: s.probability for s in window.session.current.outcome().ranked}
    for species in record["species"]:
        assert shown[species["name"]] == pytest.approx(species["probability"], abs=0.001)
