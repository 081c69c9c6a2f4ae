"""Finding a species by any part of any of its names: the core matcher, the completion popup
typed into, and `birdid find`."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from birdid_app.cli import main
from birdid_app.core.library import Library
from birdid_app.core.library.labels import library_species
from birdid_app.core.model.species_names import (
    EXACT,
    SUBSTRING,
    WORD_PREFIX,
    SpeciesNames,
    SpeciesSearch,
    names_beside,
    search_key,
)
from conftest import SPECIES


def test_names_match_by_any_part_closest_first_whatever_the_case_and_accents():
    search = SpeciesSearch([*names_beside(SPECIES), SpeciesNames("Brünnich's Guillemot"), "Robin Accentor"])
    assert [(hit.name, hit.closeness) for hit in search.matching("ROBIN")] == [
        ("European Robin", WORD_PREFIX), ("Robin Accentor", WORD_PREFIX)]
    assert [(hit.name, hit.closeness) for hit in search.matching("robin accentor")] == [("Robin Accentor", EXACT)]
    assert [(hit.name, hit.closeness) for hit in search.matching("obin")] == [
        ("European Robin", SUBSTRING), ("Robin Accentor", SUBSTRING)]
    assert [hit.name for hit in search.matching("eur rob")] == ["European Robin"]
    assert [hit.name for hit in search.matching("brunnichs")] == ["Brünnich's Guillemot"]
    assert search_key("  Brünnich’s  GUILLEMOT ") == "brunnichs guillemot"
    # The names beside the model's: the eBird English name and the scientific name.
    assert search.matching("gray")[0] == ("Grey Heron", "Gray Heron", WORD_PREFIX)
    assert search.matching("erithacus")[0] == ("European Robin", "Erithacus rubecula", WORD_PREFIX)
    # A word start beats a substring, whatever the alphabet says: Grey Heron, then Common Kingfisher.
    assert [hit.name for hit in search.matching("her")] == ["Grey Heron", "Common Kingfisher"]
    assert search.matching("") == [] and search.matching(" - ") == [] and search.matching("dodo") == []


def test_a_typed_name_means_one_species_or_says_which_it_could_be():
    search = SpeciesSearch(names_beside(SPECIES))
    assert search.chosen("robin") == "European Robin"
    assert search.chosen("great tit") == "Great Tit"
    assert search.chosen("tit") == ["Eurasian Blue Tit", "Great Tit"]
    assert search.chosen("dodo") == []
    assert search.chosen("ardea cinerea") == "Grey Heron"


def test_completion_offers_species_as_you_type_and_a_row_chosen_fills_the_field(qtbot):
    from birdid_app.gui.species_completer import NAME_ROLE, SpeciesCompleter

    field = QLineEdit()
    qtbot.addWidget(field)
    field.show()
    completer = SpeciesCompleter(field, ["Not a bird"])
    with qtbot.waitSignal(completer.names_ready, timeout=10_000):
        completer.set_class_names(SPECIES)
    qtbot.keyClicks(field, "ardea")
    popup = completer.popup()
    assert popup.isVisible()
    assert [completer.rows.item(r).text() for r in range(completer.rows.rowCount())] == ["Grey Heron (Ardea cinerea)"]
    field.clear()
    qtbot.keyClicks(field, "rob")
    assert [completer.rows.item(r).data(NAME_ROLE) for r in range(completer.rows.rowCount())] == ["European Robin"]
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert field.text() == "European Robin" and not popup.isVisible()


def test_birdid_find_takes_part_of_a_name_and_says_which_species_it_could_mean(indexed, capsys):
    folder, library, common = indexed
    assert main(["label", str(folder / "p1.jpg"), "European Robin", *common]) == 0
    capsys.readouterr()
    assert main(["find", "robin", "--json", *common]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0] == {"path": str(folder / "p1.jpg"), "probability": json.loads(out)[0]["probability"],
                                  "confirmed": True}
    assert "Finding European Robin." in err
    assert main(["find", "Erithacus", "--confirmed", "--json", *common]) == 0  # the scientific name
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == [str(folder / "p1.jpg")]

    with Library(library) as opened:
        tits = [name for name in library_species(opened) if name.endswith("Tit")]
    if len(tits) < 2:
        assert main(["label", str(folder / "p2.jpg"), "Great Tit", *common]) == 0
        assert main(["label", str(folder / "p3.jpg"), "Eurasian Blue Tit", *common]) == 0
    capsys.readouterr()
    assert main(["find", "tit", *common]) == 2
    assert capsys.readouterr().err.strip() == (
        "birdid: “tit” could be 2 of the species in the library: Eurasian Blue Tit, Great Tit; name one.")


def test_all_species_filters_by_any_part_of_any_name_as_you_type(qtbot):
    from types import SimpleNamespace

    from birdid_app.gui.results_panel import SpeciesListDialog

    ranked = [SimpleNamespace(name=name, probability=0.1) for name in SPECIES]
    dialog = SpeciesListDialog(ranked)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClicks(dialog.filter, "robin")
    assert dialog.visible_rows() == ["3. European Robin — 10.0%"]
    dialog.filter.clear()
    qtbot.keyClicks(dialog.filter, "Gray")  # the eBird name beside the model's Grey Heron
    assert dialog.visible_rows() == ["10. Grey Heron — 10.0%"]
    dialog.filter.clear()
    assert len(dialog.visible_rows()) == len(SPECIES)


def test_the_label_field_takes_part_of_a_name_and_says_which_species_it_could_be(qtbot):
    from birdid_app.gui.label_panel import LabelPanel

    panel = LabelPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_species_names(SPECIES)
    panel.show_photo("Great Tit", None)
    assert not panel.confirm_button.isEnabled()  # until the library says the photo is in it
    panel.set_in_library(True)
    assert panel.confirm_button.isEnabled()
    chosen = []
    panel.label_chosen.connect(chosen.append)
    qtbot.keyClicks(panel.species, "tit")
    panel.set_button.click()
    assert chosen == [] and panel.state.text() == "“tit” could be 2 of the model's species: Eurasian Blue Tit, Great Tit; name one."
    panel.species.clear()
    qtbot.keyClicks(panel.species, "not a b")  # the two labels that are not species complete too
    assert panel.completer.rows.rowCount() == 1
    panel.species.setText("ROBIN")
    panel.set_button.click()
    assert chosen == ["European Robin"] and panel.species.text() == ""
