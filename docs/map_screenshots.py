"""Regenerate docs/map.png (what `birdid map --out --colour-by label` draws) and docs/map-window.png
(the library map's window, coloured by top species, a lasso round two look-alike species).

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/map_screenshots.py

No trained model can be run where this is made, and a model of random weights puts every photo
anywhere, so the library is 3,000 photo rows whose embeddings are made to look like a birder's:
40 real species names with Zipf counts, each photo its species' direction plus noise, two pairs
of species made look-alikes (their directions close), and one label in eight wrong on purpose.
The map, the window and the command are the real ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
MAP_OUT, WINDOW_OUT = DOCS / "map.png", DOCS / "map-window.png"
MODEL = "demo-embeddings"
SPECIES = [
    "Eurasian Blue Tit", "Great Tit", "European Robin", "Common Blackbird", "House Sparrow", "Common Chaffinch",
    "Eurasian Wren", "Dunnock", "Common Starling", "Eurasian Magpie", "Carrion Crow", "Common Wood Pigeon",
    "Eurasian Collared Dove", "Great Spotted Woodpecker", "Eurasian Nuthatch", "Long-tailed Tit", "Coal Tit",
    "Eurasian Goldfinch", "European Greenfinch", "Eurasian Jay", "Mallard", "Grey Heron", "Mute Swan",
    "Common Kingfisher", "White Wagtail", "Black Redstart", "Common Redstart", "Song Thrush", "Mistle Thrush",
    "Goldcrest", "Common Chiffchaff", "Willow Warbler", "Eurasian Blackcap", "Barn Swallow", "Common Swift",
    "Common Buzzard", "Eurasian Sparrowhawk", "Common Kestrel", "Tawny Owl", "Eurasian Bullfinch",
]
LOOK_ALIKES = [("Common Chiffchaff", "Willow Warbler"), ("Song Thrush", "Mistle Thrush")]


def fill_library(path: Path, count: int = 3000, seed: int = 4) -> None:
    from birdid_app.core.library import Library

    rng = np.random.default_rng(seed)
    dim = 256
    centres = rng.normal(size=(len(SPECIES), dim))
    for first, second in LOOK_ALIKES:  # close directions: the map puts their clusters side by side
        centres[SPECIES.index(second)] = centres[SPECIES.index(first)] + 0.45 * rng.normal(size=dim)
    which = (rng.zipf(1.25, count) - 1) % len(SPECIES)
    vectors = (centres[which] + 0.55 * rng.normal(size=(count, dim))).astype(np.float32)
    labelled = rng.random(count) < 0.25
    wrong = rng.random(count) < 0.03 / 0.25
    with Library(path, model=MODEL) as library, library.db:
        for i in range(count):
            library.db.execute("INSERT INTO photos (id, path, size, mtime_ns, fingerprint) VALUES (?, ?, 1, 1, 'f')",
                               (i + 1, f"/photos/2026/{i:05}.jpg"))
            library.db.execute("INSERT INTO identifications (photo_id, model, embedding) VALUES (?, ?, ?)",
                               (i + 1, MODEL, vectors[i].tobytes()))
            library.db.execute(
                "INSERT INTO predictions (photo_id, model, rank, species, probability) VALUES (?, ?, 1, ?, 0.9)",
                (i + 1, MODEL, SPECIES[which[i]]),
            )
            if labelled[i]:
                label = SPECIES[(which[i] + 1) % len(SPECIES)] if wrong[i] else SPECIES[which[i]]
                library.db.execute("INSERT INTO labels (photo_id, species, set_at, source) VALUES (?, ?, '', 'person')",
                                   (i + 1, label))


def main() -> None:
    from screenshot import scratch_session

    scratch = scratch_session("map")
    library = scratch / "library.sqlite3"
    fill_library(library)

    from birdid_app.cli import main as birdid

    # Coloured by the person's labels: the few wrong ones are dots of another colour inside a cluster.
    assert birdid(["map", "--library", str(library), "--out", str(MAP_OUT), "--size", "1400x1000",
                   "--colour-by", "label"]) == 0

    from PySide6.QtCore import QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from birdid_app.gui.engine import Engine
    from birdid_app.gui.library_map_view import LibraryMapWindow
    from birdid_app.gui.library_service import LibraryService

    app = QApplication(sys.argv[:1])
    service = LibraryService(Engine(), path=library)  # an engine never started: the map asks it nothing
    service.set_model(MODEL)
    window = LibraryMapWindow(service)
    window.species_names = SPECIES
    window.colour_by.setCurrentIndex(window.colour_by.findData("species"))
    window.resize(1200, 820)
    window.show()
    window.compute()

    def send(kind, position: QPointF, button, held) -> None:
        canvas = window.canvas
        event = QMouseEvent(kind, position, QPointF(canvas.mapToGlobal(position.toPoint())), button, held,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(canvas, event)

    def act() -> None:
        if window.data is None:
            QTimer.singleShot(200, act)
            return
        # A lasso round the look-alike pair's clusters, as a person would drag it.
        positions = window.canvas.screen_positions()
        keys = window.data.keys["species"]
        rows = [i for i, key in enumerate(keys) if key in LOOK_ALIKES[0]]
        centre = positions[rows].mean(axis=0)
        radius = float(np.percentile(np.linalg.norm(positions[rows] - centre, axis=1), 90)) + 10
        ring = [QPointF(*(centre + radius * np.array([np.cos(a), np.sin(a)]))) for a in np.linspace(0, 2 * np.pi, 40)]
        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        send(QMouseEvent.Type.MouseButtonPress, ring[0], left, left)
        for point in ring[1:]:
            send(QMouseEvent.Type.MouseMove, point, none, left)
        send(QMouseEvent.Type.MouseButtonRelease, ring[-1], left, none)
        QTimer.singleShot(600, lambda: (window.grab().save(str(WINDOW_OUT)), app.quit()))

    QTimer.singleShot(300, act)
    QTimer.singleShot(180_000, app.quit)  # never hang a build
    app.exec()
    print(f"wrote {MAP_OUT} and {WINDOW_OUT}")


if __name__ == "__main__":
    main()
