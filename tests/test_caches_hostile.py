"""Files birdid keeps or reads that someone or something else may have replaced (issue 23): a RAW
that claims a billion pixels, special files and lying headers in place of the map cache, the
int8 model or the library, another model's int8 copy, and a library that may only be read."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_raw import _ifd0, write_dng

from birdid_app.core.errors import PhotoError
from birdid_app.core.photos.photo import decode_photo, decode_thumbnail
from test_photo_hostile import needs_fifo, outcome_within_time_limit

# --- 5. a RAW pixel bomb -----------------------------------------------------------------------

_CLAIMED = (40_000, 26_000)  # a 132 KB DNG claimed this, and LibRaw took 4.7 GB and 18 s


def pixel_bomb(path: Path, preview: tuple[int, int] | None = None) -> Path:
    """A DNG of 64 x 48 Bayer pixels whose IFD0 (ImageWidth, ImageLength, TileWidth,
    TileLength) claims 40000 x 26000: pidng writes the truth, the tags are patched after."""
    write_dng(path, sensor=(64, 48), preview=preview)
    data = bytearray(path.read_bytes())
    for at, tag in _ifd0(data)[0]:
        if tag in (256, 257, 322, 323):  # width, length, tile width, tile length
            kind = struct.unpack_from("<H", data, at + 2)[0]
            value = _CLAIMED[0] if tag in (256, 322) else _CLAIMED[1]
            struct.pack_into("<H" if kind == 3 else "<I", data, at + 8, value)
    path.write_bytes(data)
    return path


def _peak_kib() -> int:
    """The process's peak resident memory in KiB (Linux), or 0 where it cannot be told."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if sys.platform.startswith("linux") else 0


def test_a_raw_claiming_a_billion_pixels_is_refused_before_libraw_unpacks_it(tmp_path):
    # This bomb's sensor data is a few KB, so LibRaw finds it short only after allocating 2 GB for
    # it (untouched, so not counted below); the refusal must come first, and say why.
    bomb = pixel_bomb(tmp_path / "bomb.dng")
    assert bomb.stat().st_size < 200_000
    peak_before = _peak_kib()
    started = time.monotonic()
    for draft_size in ((384, 384), None):  # the model's size, and the full resolution a zoom asks for
        with pytest.raises(PhotoError) as refused:
            decode_photo(bomb, draft_size=draft_size)
        assert str(refused.value) == (
            f"{bomb}: The RAW image is too large to decode safely (1040 megapixels, more than the 179 birdid decodes)."
        )
    assert time.monotonic() - started < 5
    assert _peak_kib() - peak_before < 500_000  # well under 0.5 GB


def test_a_pixel_bombs_own_preview_still_serves_a_thumbnail(tmp_path):
    bomb = pixel_bomb(tmp_path / "bomb.dng", preview=(400, 260))  # the claimed sensor's shape
    thumbnail = decode_thumbnail(bomb, 200)
    assert thumbnail.size == (200, 130)


# --- 6 and 8. the map kept beside the library ---------------------------------------------------

MAP_MODEL = "test-model"


@pytest.fixture
def mapped_library(tmp_path) -> Path:
    """A library of 40 photos with embeddings by MAP_MODEL, in two groups."""
    from birdid_app.core.library import Library

    path = tmp_path / "library.sqlite3"
    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(2, 32))[np.arange(40) % 2] + 0.3 * rng.normal(size=(40, 32))).astype(np.float32)
    with Library(path, model=MAP_MODEL) as library, library.db:
        for photo_id, vector in enumerate(vectors, start=1):
            library.db.execute("INSERT INTO photos (id, path, size, mtime_ns, fingerprint) VALUES (?, ?, 1, 1, 'f')",
                               (photo_id, f"/photos/p{photo_id:03}.jpg"))
            library.db.execute("INSERT INTO identifications (photo_id, model, embedding) VALUES (?, ?, ?)",
                               (photo_id, MAP_MODEL, vector.tobytes()))
    return path


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def logged(name: str):
    """The warning lines logger `name` gives inside the block (the tests run without pytest's
    logging plugin, so caplog is not there)."""
    handler, logger = _Lines(), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def npy_member(array: np.ndarray, claimed_shape: tuple[int, ...] | None = None) -> bytes:
    """A .npy file of `array` whose header says `claimed_shape` (the real one unless given)."""
    out = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if claimed_shape is not None:
        header["shape"] = claimed_shape
    np.lib.format.write_array_header_1_0(out, header)
    out.write(array.tobytes())
    return out.getvalue()


def write_kept_map(path: Path, key: str, ids: np.ndarray, claimed_rows: int | None = None) -> None:
    """A kept map as np.savez writes one (stored, uncompressed), whose ids header may claim more rows."""
    rows = np.arange(len(ids), dtype=np.uint64)
    points = np.zeros((len(ids), 2), np.float32)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("key.npy", npy_member(np.array(key)))
        archive.writestr("ids.npy", npy_member(ids, None if claimed_rows is None else (claimed_rows,)))
        archive.writestr("rows.npy", npy_member(rows))
        archive.writestr("points.npy", npy_member(points))


def fifo_unblocker(path: Path):
    """Frees a reader blocked opening (or reading) the named pipe at `path`: writes a few bytes
    and closes, so the reader sees data, then the end."""
    def unblock() -> None:
        with contextlib.suppress(OSError):
            descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.write(descriptor, b"\0" * 128)
            os.close(descriptor)
    return unblock


@needs_fifo
@pytest.mark.parametrize("kind", ["named pipe", "link to /dev/zero", "header claiming 10^12 rows"])
def test_a_kept_map_that_is_not_one_is_deleted_with_a_log_line_and_made_again(mapped_library, kind):
    from birdid_app.core.library import Library
    from birdid_app.core.library import map as maps

    cache = maps.map_cache_path(mapped_library, MAP_MODEL)
    if kind == "named pipe":
        os.mkfifo(cache)
    elif kind == "link to /dev/zero":
        cache.symlink_to("/dev/zero")
    else:
        write_kept_map(cache, maps._cache_key(MAP_MODEL), np.arange(1, 41, dtype=np.int64), claimed_rows=10**12)

    def kept_map():  # on the time-limited thread: a library connection serves the thread that opened it
        with Library(mapped_library, model=MAP_MODEL) as library:
            return maps.cached_map(library)

    with logged("birdid_app.core.library.map") as lines:
        assert outcome_within_time_limit(kept_map, unblock=fifo_unblocker(cache)) == ("returned", None)
    assert not os.path.lexists(cache)  # deleted, not left to fail again at every look
    assert len(lines) == 1 and lines[0].startswith(f"The kept map {cache} cannot be used (")
    with Library(mapped_library, model=MAP_MODEL) as library:
        made = maps.library_map(library)
    assert made.points.shape == (40, 2) and cache.is_file() and not cache.is_symlink()
    with Library(mapped_library, model=MAP_MODEL) as library:
        assert maps.cached_map(library) is not None  # the new one is kept and used


def test_a_kept_map_whose_arrays_do_not_fit_together_is_made_again(mapped_library):
    from birdid_app.core.library import Library
    from birdid_app.core.library import map as maps

    cache = maps.map_cache_path(mapped_library, MAP_MODEL)
    write_kept_map(cache, maps._cache_key(MAP_MODEL), np.arange(40, 0, -1, dtype=np.int64))  # ids not ascending
    with Library(mapped_library, model=MAP_MODEL) as library, logged("birdid_app.core.library.map") as lines:
        assert maps.cached_map(library) is None
    assert not cache.exists() and "do not fit together" in lines[0]


# --- 6 and 8. the kept int8 conversion ---------------------------------------------------------


def tiny_graph() -> bytes:
    """A graph ONNX Runtime loads, with the int8 graph's input and first outputs: what `convert`
    gives in these tests, so that keeping, binding and refusing are tested without the half
    minute of a real export (tests/test_int8.py runs real ones)."""
    from onnx import TensorProto, helper

    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("logits", "embedding")]
    nodes = [helper.make_node("Identity", ["images"], [name]) for name in ("logits", "embedding")]
    graph = helper.make_graph(nodes, "tiny", [images], outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@pytest.fixture
def conversions(monkeypatch):
    """The checkpoints converted (by path) while the test runs, each into tiny_graph()."""
    from birdid_app.core.model import int8

    converted: list[Path] = []

    def convert(checkpoint):
        converted.append(checkpoint.path)
        return tiny_graph()

    monkeypatch.setattr(int8, "convert", convert)
    return converted


def _digest_path(kept: Path) -> Path:
    return kept.with_name(kept.name + ".sha256")


@pytest.mark.parametrize("digest", ["plain", "naming this model"])
def test_another_models_int8_copy_with_a_digest_to_match_is_converted_again(small_model_file, red_model_file,
                                                                            conversions, digest):
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.int8 import kept_file, model_digest, prepare_int8

    other, this = read_checkpoint(small_model_file), read_checkpoint(red_model_file)
    prepare_int8(other)
    assert conversions == [small_model_file]
    # Someone puts the other model's conversion where this model's is kept, and writes a digest
    # for it: the plain SHA-256 birdid wrote before, or the digest file as birdid writes it now,
    # naming this model's file as its source.
    data = kept_file(other).read_bytes()
    kept = kept_file(this)
    kept.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    _digest_path(kept).write_text(
        sha256 + "\n" if digest == "plain" else json.dumps({"sha256": sha256, "model_sha256": model_digest(this)}),
        encoding="ascii",
    )
    told = []
    with logged("birdid_app.core.model.int8") as lines:
        prepare_int8(this, on_converting=lambda: told.append(1))
    assert told == [1] and conversions == [small_model_file, red_model_file]  # not run under this model's name
    assert len(lines) == 1 and "converted again" in lines[0], lines
    assert kept.read_bytes() != data  # replaced by this model's own
    told.clear()
    prepare_int8(this, on_converting=lambda: told.append(1))
    assert told == [] and len(conversions) == 2  # and that one is kept and used


@needs_fifo
@pytest.mark.parametrize("where", ["model a named pipe", "model a link to /dev/zero", "digest a named pipe"])
def test_a_special_file_in_place_of_the_kept_int8_model_is_converted_again_not_waited_on(
        small_model_file, conversions, where):
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.int8 import kept_file, prepare_int8

    checkpoint = read_checkpoint(small_model_file)
    prepare_int8(checkpoint)  # a sound conversion and digest, then one of them replaced
    kept = kept_file(checkpoint)
    target = _digest_path(kept) if where.startswith("digest") else kept
    target.unlink()
    if where.endswith("named pipe"):
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    with logged("birdid_app.core.model.int8") as lines:
        outcome = outcome_within_time_limit(prepare_int8, checkpoint, unblock=fifo_unblocker(target))
    assert outcome[0] == "returned", outcome
    assert conversions == [small_model_file, small_model_file]
    assert len(lines) == 1 and "converted again" in lines[0], lines
    assert target.is_file() and not target.is_symlink()  # the conversion kept again in its place


# --- 6 and 10. the library file ------------------------------------------------------------------


@needs_fifo
@pytest.mark.parametrize("create", [True, False], ids=["indexing", "reading"])
def test_a_named_pipe_as_the_library_is_one_sentence_not_a_hang(tmp_path, create):
    from birdid_app.core.library import Library, LibraryError

    pipe = tmp_path / "library.sqlite3"
    os.mkfifo(pipe)
    kind, error = outcome_within_time_limit(lambda: Library(pipe, create=create), unblock=fifo_unblocker(pipe))
    assert kind == "raised" and isinstance(error, LibraryError), error
    assert str(error) == (f"The library {pipe} is a named pipe, not a library file: "
                          "move it aside or choose another library file.")


def _may_drop_root_powers() -> bool:
    if shutil.which("setpriv") is None:
        return False
    return subprocess.run(["setpriv", "--bounding-set=-dac_override", "true"], capture_output=True).returncode == 0


_AS_A_PERSON = """
import contextlib, io, json, sys
from birdid_app.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def run_commands_as_a_person(commands: list[list[str]], capsys) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of `birdid` with each argv, run as a person whose file modes
    hold. Root writes read-only files and folders regardless, so as root the commands run in a
    child that setpriv has taken that power from (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""
    from birdid_app.cli import main

    if os.geteuid() != 0:
        results = []
        for argv in commands:
            code = main(argv)
            out, err = capsys.readouterr()
            results.append((code, out, err))
        return results
    if not _may_drop_root_powers():
        pytest.skip("running as root, which writes read-only files anyway, and setpriv cannot take that power away here")
    done = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", _AS_A_PERSON,
         json.dumps(commands)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    return [tuple(result) for result in json.loads(done.stdout)]


@pytest.fixture
def indexed_library(tmp_path, small_model_file, capsys) -> tuple[Path, Path, str]:
    """(library file, a photo in it, that photo's top species): three photos indexed by the small model."""
    from birdid_app.cli import main
    from birdid_app.core.library import Library
    from conftest import make_photo

    folder = tmp_path / "photos"
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", size=(320, 240), seed=i)
    library_path = tmp_path / "shelf" / "library.sqlite3"
    library_path.parent.mkdir()
    assert main(["index", str(folder), "--library", str(library_path), "--model", str(small_model_file),
                 "--precision", "fp32"]) == 0
    capsys.readouterr()
    with Library(library_path, model=small_model_file.stem, create=False) as library:
        photo = library.photo_by_path(folder / "p0.jpg")
    return library_path, photo.path, photo.species[0][0]


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_a_read_only_library_can_be_searched_and_exported_and_refuses_changes_in_a_sentence(
        tmp_path, small_model_file, indexed_library, capsys, read_only):
    library_path, photo, species = indexed_library
    common = ["--library", str(library_path), "--model", str(small_model_file)]
    exported = tmp_path / "out.csv"
    locked = library_path if read_only == "file" else library_path.parent
    mode = locked.stat().st_mode
    locked.chmod(0o444 if read_only == "file" else 0o555)
    try:
        found, export, label, index = run_commands_as_a_person([
            ["find", species, *common],
            ["export", str(exported), *common],
            ["label", str(photo), species, *common],
            ["index", *common, "--precision", "fp32"],
        ], capsys)
        journals = sorted(p.name for p in library_path.parent.iterdir() if p.name.endswith(("-shm", "-wal")))
    finally:
        locked.chmod(mode)
    assert found[0] == 0 and str(photo) in found[1], found
    assert export[0] == 0 and export[1].strip() == f"{exported}: 3 photos", export
    assert exported.read_text(encoding="utf-8").count("\n") == 4  # a header and three photos
    refused = (f"birdid: The library {library_path} is read-only: make the file and its folder writable to "
               "change it, or choose another library file.")
    for code, out, err in (label, index):
        assert code == 2 and "Traceback" not in err and err.strip().splitlines()[-1] == refused, (code, out, err)
    assert journals == []  # nothing made beside it that would stop the next writer
    # Writable again, it takes the label.
    assert run_commands_as_a_person([["label", str(photo), species, *common]], capsys)[0][0] == 0


# --- 6. other files read from the data folder, the models folder and the package -----------------


def _read_model(pipe: Path):
    from birdid_app.core.model.checkpoint import read_checkpoint

    return read_checkpoint(pipe)


def _read_model_index(pipe: Path):
    from birdid_app.core.model.model_store import ModelStore

    pipe.rename(pipe.with_name("models.json"))
    return ModelStore(pipe.parent).models()


def _read_alias_table(pipe: Path):
    from birdid_app.core.model import species_names

    original = species_names.aliases_path
    species_names.aliases_path = lambda: pipe
    try:
        return species_names._alias_table.__wrapped__()  # not the cached table
    finally:
        species_names.aliases_path = original


def _read_place_data(pipe: Path):
    from birdid_app.core.places import place_names

    return place_names._read_packaged(pipe, 1 << 20)


@needs_fifo
@pytest.mark.parametrize(("reader", "refusal"), [
    (_read_model, "{pipe}: This is a named pipe, not a model file."),
    (_read_model_index, "The model index {index} cannot be read (this is a named pipe, not a model index)."),
    (_read_alias_table, "{pipe}: This is a named pipe, not a list of names."),
    (_read_place_data, "{pipe}: This is a named pipe, not a data file."),
], ids=["model file", "model index", "alias table", "place names"])
def test_a_named_pipe_in_place_of_a_file_birdid_reads_is_one_sentence_not_a_hang(tmp_path, reader, refusal):
    pipe = tmp_path / "file"
    os.mkfifo(pipe)
    kind, error = outcome_within_time_limit(reader, pipe, unblock=fifo_unblocker(pipe))
    assert kind == "raised", error
    assert str(error) == refusal.format(pipe=pipe, index=tmp_path / "models.json")


@needs_fifo
def test_the_model_store_says_a_named_pipe_in_place_of_a_model_is_not_the_model(tmp_path, small_model_file):
    from birdid_app.core.model.model_store import ModelStore

    store = ModelStore(tmp_path / "models")
    model = store.import_file(small_model_file)
    model.path.unlink()
    os.mkfifo(model.path)
    assert outcome_within_time_limit(store.verify, model, unblock=fifo_unblocker(model.path)) == ("returned", False)
