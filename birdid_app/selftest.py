"""`birdid selftest`: proves an installation works, with or without a display server.

It says where the app finds its resources, its models and its settings, loads a model, identifies
the bundled sample picture and prints the answer. With `--window` it then opens the real window
(QT_QPA_PLATFORM=offscreen works), lets the engine thread load the same model and identify the
sample there, and closes it. The window part runs on a throwaway data and settings folder, so a
self-check never changes the person's models, library or settings.

The sample is a drawing (resources/samples/robin.jpg): the check is that the whole pipeline runs
in this installation, not that the model is right about it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from birdid_app import __version__
from birdid_app.core import paths

WINDOW_TIMEOUT_S = 120


class SelftestFailed(Exception):
    """One sentence on what did not work."""


def describe_installation() -> list[str]:
    frozen = getattr(sys, "frozen", False)
    where = f"frozen bundle in {Path(sys.executable).parent}" if frozen else f"Python package in {Path(__file__).parent}"
    return [
        f"birdid {__version__}, {where}",
        f"resources: {paths.sample_picture().parent.parent}",  # files() is a MultiplexedPath when frozen
        f"models and library: {paths.data_dir()}",
        f"settings: {paths.config_dir()}",
    ]


def identify_sample(
    model_path: Path, device: str, precision: str, top_k: int = 5, *, check_crc: bool = True
) -> list[str]:
    """`check_crc=False` for an installed model's path, which the model store has checked."""
    from birdid_app.core.model.inference import Classifier

    started = time.perf_counter()
    classifier = Classifier.from_file(model_path, device=device, precision=precision, check_crc=check_crc)
    loaded = time.perf_counter()
    (result,) = classifier.identify_files([paths.sample_picture()], keep_stage_maps=False)
    if isinstance(result, Exception):
        raise SelftestFailed(str(result))
    ranked = "; ".join(f"{s.name} {s.probability:.1%}" for s in result.ranked(top_k))
    return [
        f"model: {model_path} ({len(classifier.class_names)} species), loaded in {loaded - started:.2f} s",
        f"device: {classifier.device}; precision: {classifier.precision_reason}",
        f"sample {paths.sample_picture().name}: {ranked} ({result.forward_seconds:.2f} s)",
    ]


def identify_sample_in_window(model_path: Path, device: str = "auto", precision: str = "auto") -> list[str]:
    """The real window, a real engine thread, on `device` in `precision` (its Settings), the sample
    dropped in, waited for, closed."""
    with tempfile.TemporaryDirectory(prefix="birdid-selftest-") as scratch:
        saved = {name: os.environ.get(name) for name in ("BIRDID_DATA_DIR", "BIRDID_CONFIG_DIR")}
        os.environ["BIRDID_DATA_DIR"] = str(Path(scratch) / "data")
        os.environ["BIRDID_CONFIG_DIR"] = str(Path(scratch) / "config")
        try:
            from birdid_app.core.settings import Settings, save_settings

            save_settings(Settings(device=device, precision=precision))
            return _run_window(model_path)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _run_window(model_path: Path) -> list[str]:
    from PySide6.QtCore import QTimer

    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.gui.app import configure_application, running_application
    from birdid_app.gui.main_window import MainWindow

    ModelStore().import_file(model_path)
    app = configure_application(running_application())
    started = time.perf_counter()
    window = MainWindow()
    window.show()
    window.add_photos([paths.sample_picture()])
    problems: list[str] = []
    window.engine.model_failed.connect(problems.append)
    window.engine.failed.connect(lambda _request, message: problems.append(message))

    def check() -> None:
        entry = window.session.current
        if problems or (entry is not None and entry.outcome() is not None):
            window.close()
            app.quit()
        else:
            QTimer.singleShot(100, check)

    QTimer.singleShot(0, check)
    # A timer of its own, stopped once the window is done: a single-shot one would fire
    # WINDOW_TIMEOUT_S later whatever happened, and quit the application of whoever called this.
    give_up = QTimer()
    give_up.setSingleShot(True)

    def time_out() -> None:
        problems.append(f"nothing after {WINDOW_TIMEOUT_S} s")
        app.quit()

    give_up.timeout.connect(time_out)
    give_up.start(WINDOW_TIMEOUT_S * 1000)
    app.exec()
    give_up.stop()
    entry, loaded = window.session.current, window.loaded_model
    outcome = None if entry is None else entry.outcome()
    if problems or outcome is None or loaded is None:
        reason = problems[0] if problems else "the window closed before it had an answer"
        raise SelftestFailed(f"the window could not identify the sample: {reason}")
    best = outcome.ranked[0]
    return [
        f"window: {app.platformName()} platform, model loaded on the engine thread, sample identified as "
        f"{best.name} {best.probability:.1%} ({time.perf_counter() - started:.2f} s from opening), "
        f"{loaded.precision} on {loaded.device}"
    ]
