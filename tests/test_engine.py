"""The engine thread's rules, on the real engine with the small checkpoint: the priority table,
one slot each for identification and class-activation maps, index work a photo at a time, and
every request ending in exactly one of result, error or cancelled."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from birdid_app.core.library import Library
from birdid_app.core.model import inference
from birdid_app.core.model.model_store import ModelStore
from birdid_app.gui.engine import Engine, EngineSettings, ExplainRequest, IdentifyRequest
from conftest import make_photo

WAIT_MS = 60_000


@pytest.fixture
def engine(qtbot, small_model_file):
    model = ModelStore().import_file(small_model_file)
    engine = Engine()
    engine.start()
    with qtbot.waitSignal(engine.model_loaded, timeout=WAIT_MS):
        engine.load_model(model, EngineSettings(device="cpu", precision="fp32"))
    yield engine
    engine.stop()


class Endings:
    """Every ending the engine reports, by request id."""

    def __init__(self, engine: Engine) -> None:
        self.by_id: dict[int, list[str]] = {}
        engine.identified.connect(lambda outcome: self._add(outcome.request.request_id, "identified"))
        engine.explained.connect(lambda request_id, _: self._add(request_id, "explained"))
        engine.failed.connect(lambda request_id, _: self._add(request_id, "failed"))
        engine.cancelled.connect(lambda request_id: self._add(request_id, "cancelled"))

    def _add(self, request_id: int, ending: str) -> None:
        self.by_id.setdefault(request_id, []).append(ending)


def _called_by_the_index_job() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if Path(frame.f_code.co_filename).match("library/index_job.py"):
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def slow_forwards(monkeypatch):
    """Each forward takes 0.2 s longer, and says whether it was for the index (called by the index
    job) or for the window, and how many photos it held."""
    forwards: list[tuple[str, int]] = []
    original = inference.Classifier.identify_images

    def slow(self, images, *args, **kwargs):
        forwards.append(("index" if _called_by_the_index_job() else "window", len(images)))
        time.sleep(0.2)
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "identify_images", slow)
    return forwards


def test_an_identification_asked_for_while_indexing_waits_for_at_most_one_photo(
    engine, qtbot, tmp_path, photo_dir, slow_forwards
):
    folder = tmp_path / "birds"
    for i in range(16):
        make_photo(folder / f"b{i:02d}.jpg", size=(320, 240), seed=i)
    library = tmp_path / "library.sqlite3"
    with Library(library) as opened:
        opened.add_folder(folder)
    engine.start_indexing(library, "small-hiera")
    qtbot.waitUntil(lambda: sum(n for kind, n in slow_forwards if kind == "index") >= 3, timeout=WAIT_MS)

    asked_at = len(slow_forwards)
    with qtbot.waitSignal(engine.identified, timeout=WAIT_MS):
        engine.identify(IdentifyRequest(1, "robin", path=photo_dir / "robin.png"))
    served_at = slow_forwards.index(("window", 1), asked_at)
    in_between = [n for kind, n in slow_forwards[asked_at:served_at] if kind == "index"]
    assert sum(in_between) <= 1  # at most the one photo already in the model when it was asked
    with qtbot.waitSignal(engine.index_finished, timeout=WAIT_MS) as finished:
        pass
    assert finished.args[0].embedded == 16  # and the index carried on, and finished
    assert all(n == 1 for kind, n in slow_forwards if kind == "index")


def test_identification_and_class_activation_maps_wait_in_their_own_slots(engine, qtbot, photo_dir, slow_forwards):
    endings = Endings(engine)
    path = photo_dir / "robin.png"
    started = threading.Event()
    engine.working.connect(lambda request_id: started.set(), type=Qt.ConnectionType.DirectConnection)
    engine.identify(IdentifyRequest(1, "busy", path=path))  # keeps the engine busy meanwhile
    assert started.wait(30)
    engine.explain(ExplainRequest(2, "cam", path, None, None, class_index=0, stage=3))
    engine.explain(ExplainRequest(3, "cam", path, None, None, class_index=1, stage=3))  # replaces 2
    engine.identify(IdentifyRequest(4, "robin", path=path))  # a different slot: replaces neither
    qtbot.waitUntil(lambda: len(endings.by_id) == 4, timeout=WAIT_MS)
    assert endings.by_id == {1: ["identified"], 2: ["cancelled"], 3: ["explained"], 4: ["identified"]}


def test_every_request_ends_exactly_once_even_when_the_engine_stops(qtbot, small_model_file, photo_dir, slow_forwards):
    model = ModelStore().import_file(small_model_file)
    engine = Engine()
    endings = Endings(engine)
    engine.start()
    with qtbot.waitSignal(engine.model_loaded, timeout=WAIT_MS):
        engine.load_model(model, EngineSettings(device="cpu", precision="fp32"))
    path = photo_dir / "robin.png"
    started = threading.Event()
    engine.working.connect(lambda request_id: started.set(), type=Qt.ConnectionType.DirectConnection)  # on the engine thread
    engine.identify(IdentifyRequest(1, "under way", path=path))
    assert started.wait(30)
    engine.identify(IdentifyRequest(2, "waiting", path=path))
    engine.explain(ExplainRequest(3, "waiting cam", path, None, None, class_index=0, stage=2))
    engine.cancel(2)
    engine.stop()  # request 1 finishes its forward, and its result is dropped as cancelled
    qtbot.wait(50)  # signals emitted on the engine thread are delivered here
    assert endings.by_id == {1: ["cancelled"], 2: ["cancelled"], 3: ["cancelled"]}
    assert Counter(len(e) for e in endings.by_id.values()) == Counter({1: 3})


def test_settling_the_heap_frees_what_a_replaced_model_left_in_cycles_and_freezes_the_rest():
    """After a model change the engine collects once and freezes what is alive, so later full
    collections (which hold the GIL, stalling the window) do not walk the model's objects; what a
    previous freeze kept must still be freed once it is garbage."""
    import gc
    import weakref

    from birdid_app.gui.engine_precision import settle_heap

    class Node:
        pass

    old = Node()
    old.itself = old  # a cycle: reference counting alone never frees it
    gone = weakref.ref(old)
    gc.freeze()  # as the previous model's settle left the heap
    del old
    try:
        settle_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        survivor = Node()
        survivor.itself = survivor
        before = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() == before  # collections leave the frozen objects alone
    finally:
        gc.unfreeze()
