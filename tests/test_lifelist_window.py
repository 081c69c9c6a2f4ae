"""The life list through the real window: photos with real EXIF dates and GPS, indexed by the real
indexer and labelled in the library, listed by species, by year and by place; a double-click
shows a species' first photo; the eBird file is written on a worker and its sentence shown; a
damaged library is its sentence, and the window carries on."""

from __future__ import annotations

import csv
import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from birdid_app.cli import main
from birdid_app.core.library import Library, default_library_path
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, save_settings
from conftest import WINDOW_WAIT_MS, open_ready_window
from geomodel_files import photo_taken_at

AMSTERDAM = (52.3731, 4.8922)
DEN_BURG = (53.0546, 4.7977)
AMSTERDAM_NAME = "Amsterdam, North Holland, Netherlands"
DEN_BURG_NAME = "Den Burg, North Holland, Netherlands"

# name: (EXIF DateTimeOriginal or None, GPS position or None, the person's label or None)
PHOTOS = {
    "heron-2023.jpg": ("2023:04:02 08:15:00", AMSTERDAM, "Grey Heron"),
    "heron-2024.jpg": ("2024:05:01 07:12:03", AMSTERDAM, "Grey Heron"),
    "robin-texel.jpg": ("2024:05:01 16:00:00", DEN_BURG, "European Robin"),
    "robin-no-gps.jpg": ("2024:06:10 09:00:00", None, "European Robin"),
    "wren-undated.jpg": (None, AMSTERDAM, "Eurasian Wren"),
    "unlabelled.jpg": ("2024:05:01 09:00:00", AMSTERDAM, None),
}


@pytest.fixture(scope="module")
def birding(tmp_path_factory, small_model_file):
    """PHOTOS indexed into a library and labelled, once; each test gets a copy as its own library."""
    root = tmp_path_factory.mktemp("lifelist")
    folder = root / "photos"
    for seed, (name, (taken, position, _)) in enumerate(PHOTOS.items()):
        latitude, longitude = position or (None, None)
        photo_taken_at(folder / name, latitude=latitude, longitude=longitude, taken=taken, seed=seed)
    library = root / "library.sqlite3"
    with pytest.MonkeyPatch.context() as patch:  # the autouse folders are per test; this is per module
        patch.setenv("BIRDID_DATA_DIR", str(root / "data"))
        patch.setenv("BIRDID_CONFIG_DIR", str(root / "config"))
        # fp32: "auto" would convert the model to int8 first, most of this fixture's time.
        assert main(["index", str(folder), "--model", str(small_model_file), "--library", str(library),
                     "--device", "cpu", "--precision", "fp32"]) == 0
    with Library(library) as opened:
        for name, (_, _, label) in PHOTOS.items():
            if label is not None:
                opened.set_label(opened.photo_by_path(folder / name).id, label)
    return folder, library


@pytest.fixture
def window(qtbot, birding, small_model_file, capsys):
    _, library = birding
    default_library_path().parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(library, default_library_path())
    capsys.readouterr()
    save_settings(Settings(device="cpu", precision="fp32"))  # no precision trial: not what this tests
    ModelStore().import_file(small_model_file)
    window = open_ready_window(qtbot)
    window.tabs.setCurrentWidget(window.library_view)
    return window


def open_life_list(qtbot, window):
    window.library_view.life_list_button.click()
    life_list = window.library_view.life_list_window
    qtbot.waitExposed(life_list)
    settle(qtbot, life_list)
    return life_list


def settle(qtbot, life_list) -> None:
    qtbot.waitUntil(lambda: life_list.reading is None and life_list.exporting is None, timeout=WINDOW_WAIT_MS)


def rows(life_list) -> list[list[str]]:
    table = life_list.species_table
    return [[table.item(row, column).text() for column in range(table.columnCount())] for row in range(table.rowCount())]


def places(life_list) -> list[tuple[str, list[list[str]]]]:
    tree = life_list.places_tree
    shown = []
    for i in range(tree.topLevelItemCount()):
        place = tree.topLevelItem(i)
        kinds = [[place.child(j).text(column) for column in range(4)] for j in range(place.childCount())]
        shown.append((place.text(0), kinds))
    return shown


def test_the_life_list_by_species_by_year_and_by_place(qtbot, window, birding):
    folder, _ = birding
    life_list = open_life_list(qtbot, window)
    assert [life_list.year.itemText(i) for i in range(life_list.year.count())] == ["All years", "2024", "2023"]
    assert rows(life_list) == [
        ["Grey Heron", "Gray Heron", "2023-04-02", AMSTERDAM_NAME, "2", "2", "2024-05-01"],
        ["European Robin", "European Robin", "2024-05-01", DEN_BURG_NAME, "2", "2", "2024-06-10"],
    ]
    assert life_list.summary.text() == "2 species, 4 photos on 3 days."
    assert life_list.notes.text().splitlines() == [
        "1 confirmed photo has no capture date and is not in the list.",
        "1 sighting has no known place (no GPS position, or one that cannot be right, such as 0,0).",
    ]
    assert places(life_list) == [
        (f"{AMSTERDAM_NAME} (1 species)", [["Grey Heron", "2", "2", "2023-04-02"]]),
        (f"{DEN_BURG_NAME} (1 species)", [["European Robin", "1", "1", "2024-05-01"]]),
        ("place unknown (1 species)", [["European Robin", "1", "1", "2024-06-10"]]),
    ]

    life_list.year.setCurrentIndex(life_list.year.findData(2023))  # the year list
    settle(qtbot, life_list)
    assert rows(life_list) == [["Grey Heron", "Gray Heron", "2023-04-02", AMSTERDAM_NAME, "1", "1", "2023-04-02"]]
    assert life_list.summary.text() == "1 species, 1 photo on 1 day in 2023."
    assert places(life_list) == [(f"{AMSTERDAM_NAME} (1 species)", [["Grey Heron", "1", "1", "2023-04-02"]])]
    assert life_list.year.currentText() == "2023"

    # A double-click on a species shows its first photo in the identification view.
    life_list.year.setCurrentIndex(0)
    settle(qtbot, life_list)
    table = life_list.species_table
    robin = table.visualItemRect(table.item(1, 0)).center()
    # As a mouse sends it: a press and release, then the second press as a double-click (QTest's
    # double-click alone has no first press, and a view only activates the item both were on).
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=robin)
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=robin)
    qtbot.waitUntil(lambda: window.session.current is not None, timeout=WINDOW_WAIT_MS)
    entry = window.session.current
    assert entry.path == folder / "robin-texel.jpg"
    assert window.tabs.currentWidget() is window.identify_view
    # Identified, and the library read for it (its label, then the trust signals, in that order on
    # the reader thread): nothing of it is still on its way when the window closes.
    qtbot.waitUntil(lambda: entry.outcome() is not None and entry.library_signals.get(entry.region) is not None,
                    timeout=WINDOW_WAIT_MS)

    # A label set in the window is a sighting more: the open list reads itself again.
    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        window.library_service.writer.set_label(window.library_service.path, folder / "unlabelled.jpg",
                                             "Common Blackbird")
    qtbot.waitUntil(lambda: len(rows(life_list)) == 3, timeout=WINDOW_WAIT_MS)
    settle(qtbot, life_list)  # the read's last signal too, before the window goes
    assert rows(life_list)[1][:4] == ["Common Blackbird", "Eurasian Blackbird", "2024-05-01", AMSTERDAM_NAME]

    # A place set for the photo without GPS is where its sighting was: the list reads itself again.
    window.library_service.writer.set_place(window.library_service.path, folder / "robin-no-gps.jpg",
                                         *DEN_BURG, "our holiday cottage")
    qtbot.waitUntil(lambda: [name for name, _ in places(life_list)][-1] != "place unknown (1 species)",
                    timeout=WINDOW_WAIT_MS)
    settle(qtbot, life_list)
    assert places(life_list)[-1] == ("our holiday cottage (1 species)", [["European Robin", "1", "1", "2024-06-10"]])
    assert "no known place" not in life_list.notes.text()


def test_export_for_ebird_is_written_on_a_worker_and_says_what_it_wrote(qtbot, window, tmp_path, monkeypatch):
    life_list = open_life_list(qtbot, window)
    destination = tmp_path / "to-ebird.csv"
    asked = []

    def save_as(parent, caption, suggested, filter_):
        asked.append(suggested)
        return str(destination), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_as)
    life_list.export_button.click()
    settle(qtbot, life_list)
    assert asked == ["birdid-ebird.csv"]
    assert life_list.status.text() == (
        f"{destination}: 3 sightings of 2 species on 3 checklists; 1 confirmed photo without a place left out "
        "(eBird needs a location); 1 confirmed photo without a capture date left out"
    )
    with destination.open(newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    assert [(row[0], row[8]) for row in written] == [
        ("Gray Heron", "04/02/2023"), ("Gray Heron", "05/01/2024"), ("European Robin", "05/01/2024"),
    ]

    life_list.year.setCurrentIndex(life_list.year.findData(2024))  # the year shown is the year exported
    settle(qtbot, life_list)
    life_list.export_button.click()
    settle(qtbot, life_list)
    assert asked[-1] == "birdid-ebird-2024.csv"
    assert life_list.status.text().startswith(f"{destination}: 2 sightings of 2 species on 2 checklists in 2024; ")

    # A folder that cannot be written to: one sentence naming the file.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where a folder should be")
    destination = blocked / "to-ebird.csv"
    life_list.export_button.click()
    settle(qtbot, life_list)
    assert life_list.status.text().startswith(f"{destination}: It could not be written (")


def test_the_menu_opens_it_and_a_damaged_library_is_its_sentence(qtbot, window):
    life_list_path = default_library_path()
    window.life_list_action.trigger()
    life_list = window.library_view.life_list_window
    qtbot.waitExposed(life_list)
    settle(qtbot, life_list)
    assert len(rows(life_list)) == 2

    life_list_path.write_bytes(b"this is not a database " * 400)
    life_list.refresh_button.click()
    settle(qtbot, life_list)
    assert life_list.status.text().startswith(f"The library {life_list_path} is damaged (")
    assert rows(life_list) == [] and places(life_list) == [] and not life_list.notes.isVisible()
    assert window.library_view.rebuild_button.isVisible()  # the Library tab offers to rebuild it
    # The rest of the window carries on: the year list and the export still answer, with the sentence.
    assert life_list.export_button.isEnabled() and life_list.refresh_button.isEnabled()


def test_with_no_library_yet_it_says_how_to_start(qtbot, small_model_file):
    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(small_model_file)
    window = open_ready_window(qtbot)
    life_list = open_life_list(qtbot, window)
    assert life_list.status.text().startswith("There is no library yet: ")
    assert rows(life_list) == [] and life_list.summary.text() == ""
    assert not default_library_path().exists()  # reading it made none
