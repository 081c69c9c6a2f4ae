"""Shared fixtures: small real checkpoints with random weights, real photo files, and folders
that keep every test away from the user's own data."""

from __future__ import annotations

import os

# Before any Qt import: the test machines have no display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from birdid_app.core.model.checkpoint import write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig

SPECIES = [
    "Eurasian Blue Tit",
    "Great Tit",
    "European Robin",
    "Common Blackbird",
    "Eurasian Wren",
    "Common Chaffinch",
    "House Sparrow",
    "White Wagtail",
    "Common Kingfisher",
    "Grey Heron",
]
SMALL_CONFIG = HieraConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=1, num_classes=len(SPECIES), image_size=(128, 128))
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


def randomise(model: torch.nn.Module, seed: int, classifier_scale: float = 1.0) -> torch.nn.Module:
    """Give every parameter a random value large enough that a wiring mistake anywhere shows in
    the outputs (the usual init leaves biases and norms near-constant). With classifier_scale > 1,
    random weights give confident, well separated logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("weight") and param.ndim == 1:  # LayerNorm gains
                param.copy_(1 + 0.1 * noise)
            elif name.startswith("pos_embed"):
                param.copy_(0.5 * noise)
            elif name.startswith("classifier."):
                param.copy_(classifier_scale * noise / param.shape[-1] ** 0.5)
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.numel()
                param.copy_(noise / fan_in**0.5)
    return model


def make_small_model(seed: int = 0, classifier_scale: float = 8.0) -> Hiera:
    model = randomise(Hiera(SMALL_CONFIG), seed, classifier_scale)
    model.refresh_position_embedding()
    return model.eval()


def red_evidence_model(image_size: tuple[int, int] = (128, 128), other_bias: float = 0.0, *,
                       by_amount: bool = False) -> Hiera:
    """A model whose class 0 score rises with red, and whose blocks pass tokens through
    unchanged: its evidence for class 0 is exactly where the image is red. Class 1 scores
    `other_bias` everywhere, so a picture with no red at all is class 1 when it is above 0.

    The layer norms make class 0's score the same for a little red or a lot; `by_amount` adds a
    constant channel beside the red one, so the score grows with the share of red in the picture
    (a photo cropped to its red patch scores higher than the whole)."""
    config = HieraConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=1, num_classes=2, image_size=image_size)
    model = Hiera(config)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.stem.proj.weight[0, 0, 3, 3] = 1.0  # channel 0 = the red of the centre pixel
        for block in (b for stage in model.body for b in stage):
            block.norm1.weight.fill_(1.0)
            block.norm2.weight.fill_(1.0)
            if block.proj is not None:  # widening keeps the incoming channels in place
                block.proj.weight.copy_(torch.eye(*block.proj.weight.shape))
        model.features[1].weight.fill_(1.0)
        model.classifier.weight[0, 0] = 1.0
        model.classifier.bias[1] = other_bias
        if by_amount:
            model.stem.proj.bias[1] = 1.0  # channel 1: the constant the red is measured against
            model.classifier.weight[0, 0] = 5.0  # normalised against it, red moves the score less
        else:
            model.classifier.weight[1, 1] = 1.0  # channel 1 is always 0 here: class 1 scores its bias
    model.refresh_position_embedding()
    return model.eval()


def make_photo(path: Path, size: tuple[int, int] = (640, 480), seed: int = 0, **save_args) -> Path:
    """A photo-like picture: smooth gradients, shapes and a little noise, saved by its suffix."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(xx / (37 + 11 * seed) + seed),
            128 + 100 * np.cos(yy / 53),
            128 + 80 * np.sin((xx + yy) / 71),
        ],
        axis=-1,
    )
    base += rng.normal(0, 6, base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x0 + rng.integers(20, width // 3), y0 + rng.integers(20, height // 3)], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_args)
    return path


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path_factory, monkeypatch):
    """birdid's data and settings go to a fresh temporary folder for every test."""
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("BIRDID_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("BIRDID_CONFIG_DIR", str(root / "config"))
    return root


# One int8 conversion per model (by its file's SHA-256) for the whole session: a fresh data folder
# would otherwise export and quantise the same small model again in every test that loads it at
# "auto" (a few seconds each, more beside other work). What a test gets is what a real conversion
# of the same bytes gave, kept by core/model/int8.py's own code as after a conversion. Tests marked
# int8_real convert for real every time (tests/test_int8.py).
_INT8_CONVERTED: dict[str, bytes] = {}  # model SHA-256 -> convert()'s bytes
_INT8_KEPT: dict[str, bytes] = {}  # model SHA-256 -> a kept conversion's bytes (bound to that SHA-256)


def _keep_session_int8(checkpoint, convert_now) -> bool:
    """The session's int8 conversion of `checkpoint`'s model file kept in this test's data folder,
    made now by `convert_now(checkpoint)` when the session has none; False when it has none and
    `convert_now` is None, or the model has no file."""
    from birdid_app.core.model import int8

    kept = int8.kept_file(checkpoint)
    if kept is None:
        return False
    source = int8.model_digest(checkpoint)
    if source not in _INT8_KEPT:
        if source not in _INT8_CONVERTED:
            if convert_now is None:
                return False
            _INT8_CONVERTED[source] = convert_now(checkpoint)
        _INT8_KEPT[source] = int8._bound(_INT8_CONVERTED[source], source)
    if not kept.exists():
        int8._keep(kept, _INT8_KEPT[source], source)
    return True


@pytest.fixture(autouse=True)
def int8_converted_once_per_session(request, monkeypatch):
    if request.node.get_closest_marker("int8_real"):
        return
    from birdid_app.core.model import int8

    real_convert, real_convert_in_a_process = int8.convert, int8.convert_in_a_process

    def convert(checkpoint):
        if checkpoint.path is None:
            return real_convert(checkpoint)
        source = int8.model_digest(checkpoint)
        if source not in _INT8_CONVERTED:
            _INT8_CONVERTED[source] = real_convert(checkpoint)
        return _INT8_CONVERTED[source]

    def convert_in_a_process(checkpoint, should_stop=lambda: False):
        # The engine converts in a child process, which this test's patches do not reach: the
        # session's conversion is kept first where the child would put it (when there is one).
        _keep_session_int8(checkpoint, None)
        done = real_convert_in_a_process(checkpoint, should_stop)
        kept = int8.kept_file(checkpoint)
        if done and kept is not None:
            _INT8_KEPT.setdefault(int8.model_digest(checkpoint), kept.read_bytes())
        return done

    monkeypatch.setattr(int8, "convert", convert)
    monkeypatch.setattr(int8, "convert_in_a_process", convert_in_a_process)


@pytest.fixture
def small_model_int8_kept(small_model_file):
    """small_model_file's int8 conversion kept in this test's data folder, as a first `birdid`
    command at "auto" leaves it: for the `birdid` processes a test starts, which the session's
    patches do not reach."""
    from birdid_app.core.model import int8
    from birdid_app.core.model.checkpoint import read_checkpoint

    _keep_session_int8(read_checkpoint(small_model_file), int8.convert)
    return small_model_file


@pytest.fixture(autouse=True)
def quiet_computer(monkeypatch):
    """The precision trial sees a quiet computer, whatever else runs beside the tests: a trial
    taken while other programs are busy is measured again at the next load (core/model/precision.py),
    which tests that expect a kept trial to be reused must not depend on."""
    from birdid_app.core.model import precision

    monkeypatch.setattr(precision, "others_cpu_share", lambda: lambda: 0.0)


@pytest.fixture(scope="session")
def small_model_file(tmp_path_factory) -> Path:
    """A real checkpoint file, Birder's format, of a small Hiera AbsWin with random weights."""
    path = tmp_path_factory.mktemp("models") / "small-hiera.pt"
    write_checkpoint(path, make_small_model(), SPECIES, RGB_MEAN, RGB_STD)
    return path


@pytest.fixture
def indexed(tmp_path, small_model_file, capsys):
    """Six photos indexed by `birdid index` into a library of their own: (folder, library file,
    the CLI options that name that library and the small model)."""
    from birdid_app.cli import main

    folder = tmp_path / "photos"
    for i in range(6):
        make_photo(folder / f"p{i}.jpg", size=(320, 240), seed=i)
    library = tmp_path / "library.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0
    capsys.readouterr()
    return folder, library, common


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    make_photo(folder / "blue-tit.jpg", seed=1, quality=90)
    make_photo(folder / "robin.png", size=(300, 420), seed=2)
    make_photo(folder / "heron.jpg", size=(1600, 1200), seed=3, quality=85)
    return folder


# The red-evidence model as a real checkpoint: its species, and a far-away "bird" in a 1024x768 photo.
RED_SPECIES, OTHER_SPECIES = "Common Redstart", "Grey Heron"
RED_PATCH = (700, 100, 780, 180)  # left, top, right, bottom


@pytest.fixture(scope="session")
def red_model_file(tmp_path_factory) -> Path:
    """A checkpoint of red_evidence_model: its evidence for RED_SPECIES is exactly where the
    photo is red, and it says OTHER_SPECIES for a photo with no red at all."""
    path = tmp_path_factory.mktemp("red") / "red-evidence.pt"
    write_checkpoint(path, red_evidence_model(other_bias=2.0), [RED_SPECIES, OTHER_SPECIES], (0.0,) * 3, (1.0,) * 3)
    return path


@pytest.fixture(scope="session")
def amount_model_file(tmp_path_factory) -> Path:
    """As red_model_file, but the score grows with the share of red: a crop to the patch scores higher."""
    path = tmp_path_factory.mktemp("amount") / "red-amount.pt"
    write_checkpoint(path, red_evidence_model(other_bias=2.0, by_amount=True), [RED_SPECIES, OTHER_SPECIES],
                     (0.0,) * 3, (1.0,) * 3)
    return path


# Look-alikes the picture alone cannot tell apart, for the range prior's tests: Willow Tit a little
# ahead of Marsh Tit, and a Kingfisher the test range models (tests/geomodel_files.py) have no label for.
LOOKALIKES = ["Willow Tit", "Marsh Tit", "Common Kingfisher"]


@pytest.fixture(scope="session")
def lookalike_model(tmp_path_factory) -> Path:
    """A real checkpoint whose classifier ignores the picture: Willow Tit 0.49, Marsh Tit 0.44,
    Common Kingfisher 0.07 for any photo."""
    import dataclasses

    model = randomise(Hiera(dataclasses.replace(SMALL_CONFIG, num_classes=len(LOOKALIKES))), seed=0)
    model.refresh_position_embedding()
    model.eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.1, 0.0, -1.9]))
    path = tmp_path_factory.mktemp("lookalike") / "lookalike.pt"
    write_checkpoint(path, model, LOOKALIKES, RGB_MEAN, RGB_STD)
    return path


@pytest.fixture
def hub(small_model_file, tmp_path, monkeypatch):
    """A loopback hub serving the small checkpoint as the published model, whose hash the app
    is told to expect; the hub cache and endpoint point at this test's own places."""
    import dataclasses

    from birdid_app.core.model import model_store
    from hub_server import FakeHub

    published = model_store.PUBLISHED_MODEL
    server = FakeHub(published.repo_id, published.filename, small_model_file.read_bytes()).start()
    monkeypatch.setattr(model_store, "PUBLISHED_MODEL", dataclasses.replace(published, sha256=server.sha256))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.stop()


WINDOW_WAIT_MS = 30_000


def open_window(qtbot):
    """The real main window, shown."""
    from birdid_app.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def open_ready_window(qtbot):
    """The real main window, shown, with its model loaded on the engine thread."""
    window = open_window(qtbot)
    qtbot.waitUntil(lambda: window.loaded_model is not None, timeout=WINDOW_WAIT_MS)
    return window


def identified(qtbot, window, paths):
    """`paths` added to the window, its first answer given and its photo shown."""
    window.add_photos(paths)
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WINDOW_WAIT_MS)
    qtbot.waitUntil(lambda: window.photo_view.photo_size() is not None, timeout=WINDOW_WAIT_MS)


@pytest.fixture
def fine_tune(tmp_path):
    """Another valid checkpoint in the same format: a user's own fine-tune."""
    path = tmp_path / "usb" / "my-garden-birds.pt"
    path.parent.mkdir()
    write_checkpoint(path, make_small_model(seed=9), SPECIES, RGB_MEAN, RGB_STD)
    return path
