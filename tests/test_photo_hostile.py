"""What a photo folder can hold besides photos, and photos that break decoders.

Every input is real and made here: a named pipe, a socket, a symbolic-link loop, a TIFF with a
tag of the wrong type, a 16-bit PNG... Each must give a PhotoError naming the file (or, for
photo_metadata, three Nones) quickly: a call that could block runs on a thread with a time
limit, so a regression fails the test instead of hanging the run.
"""

from __future__ import annotations

import errno
import os
import queue
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from birdid_app.core import files as files_module
from birdid_app.core.errors import PhotoError
from birdid_app.core.files import open_regular_file, problem_from_os_error
from birdid_app.core.photos import photo as photo_module
from birdid_app.core.photos.photo import decode_photo, photo_metadata

REPO = Path(__file__).resolve().parents[1]
TIME_LIMIT = 20  # seconds; each call here takes well under one
NO_METADATA = (None, None, None)
ORIENTATION_TAG = 0x0112

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")


def outcome_within_time_limit(function, *args, unblock=None):
    """("returned", value) or ("raised", exception) of function(*args), run on a daemon thread.
    If it is still running after TIME_LIMIT, `unblock()` frees it and the test fails."""
    outcome = queue.SimpleQueue()

    def run():
        try:
            outcome.put(("returned", function(*args)))
        except BaseException as error:
            outcome.put(("raised", error))

    threading.Thread(target=run, daemon=True).start()
    try:
        return outcome.get(timeout=TIME_LIMIT)
    except queue.Empty:
        if unblock is not None:
            unblock()
        pytest.fail(f"{function.__name__} was still blocked after {TIME_LIMIT} s")


def lower_first(text: str) -> str:
    # PhotoError may capitalise its problem to start a sentence; the problems are compared as written.
    return text[:1].lower() + text[1:]


def assert_refused(path: Path, problem: str, unblock=None) -> PhotoError:
    """decode_photo raises PhotoError(path, problem) and photo_metadata gives three Nones."""
    kind, error = outcome_within_time_limit(decode_photo, path, unblock=unblock)
    assert kind == "raised" and isinstance(error, PhotoError), error
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    assert lower_first(error.problem) == problem
    assert outcome_within_time_limit(photo_metadata, path, unblock=unblock) == ("returned", NO_METADATA)
    return error


def save_photo(path: Path, size=(64, 48), **options) -> Path:
    Image.new("RGB", size, (90, 140, 60)).save(path, **options)
    return path


# --- What is not a regular file --------------------------------------------------------------


@needs_fifo
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)

    def unblock():  # a reader blocked in open() returns once a writer opens the pipe
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))

    assert_refused(pipe, "this is a named pipe, not a photo.", unblock)
    kind, error = outcome_within_time_limit(open_regular_file, pipe, unblock=unblock)
    assert kind == "raised" and lower_first(error.problem) == "this is a named pipe, not a photo."


@needs_fifo
def test_a_pipe_put_in_place_after_the_check_is_refused_without_waiting(tmp_path, monkeypatch):
    # The race itself: the path was a regular file when stat looked and is a named pipe when
    # open opens it. os.stat is made to answer for the earlier regular file; the open is real.
    pipe = tmp_path / "swapped.jpg"
    os.mkfifo(pipe)
    earlier = os.stat(save_photo(tmp_path / "photo.jpg"))
    real_stat = os.stat
    monkeypatch.setattr(files_module.os, "stat", lambda p, *a, **k: earlier if p == pipe else real_stat(p, *a, **k))

    kind, error = outcome_within_time_limit(
        open_regular_file, pipe, unblock=lambda: os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    )

    assert kind == "raised" and isinstance(error, PhotoError)
    assert lower_first(error.problem) == "this is a named pipe, not a photo."


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this system")
def test_a_socket_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a socket's path is limited to about 100 bytes: bind a short one
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("socket.jpg")
        assert_refused(tmp_path / "socket.jpg", "this is a socket, not a photo.")


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null on this system")
def test_a_device_is_refused():
    assert_refused(Path("/dev/null"), "this is a device, not a photo.")


# --- Paths the system cannot follow ------------------------------------------------------------


@needs_symlinks
def test_a_symbolic_link_loop(tmp_path):
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    assert_refused(tmp_path / "a.jpg", "the path loops through symbolic links.")


@needs_symlinks
def test_a_link_to_a_photo_is_read_and_a_dangling_one_is_missing(tmp_path):
    photo = save_photo(tmp_path / "photo.jpg")
    (tmp_path / "link.jpg").symlink_to(photo)
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "moved.jpg")

    assert decode_photo(tmp_path / "link.jpg").size == (64, 48)
    with open_regular_file(tmp_path / "link.jpg") as file:
        assert file.read() == photo.read_bytes()
    assert_refused(tmp_path / "dangling.jpg", "no such file.")


def test_a_path_through_a_file(tmp_path):
    save_photo(tmp_path / "photo.jpg")
    assert_refused(tmp_path / "photo.jpg" / "inside.jpg", "a part of the path is not a folder.")


def test_a_name_too_long_for_the_file_system(tmp_path):
    assert_refused(tmp_path / ("x" * 300 + ".jpg"), "the file name is too long.")


def unreadable_file(tmp_path: Path) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Root reads any file whatever its mode bits, but the kernel lets no one read this
        # write-only control file. (Opening it to read does nothing.)
        path = Path("/proc/sys/vm/drop_caches")
        try:
            path.open("rb").close()
        except PermissionError:
            return path
        pytest.skip("running as root, and no file here that root may not read")
    path = save_photo(tmp_path / "private.jpg")
    path.chmod(0)
    return path


def test_a_file_birdid_may_not_read(tmp_path):
    assert_refused(unreadable_file(tmp_path), "birdid is not allowed to read this file.")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="no /proc/self/mem on this system")
def test_os_errors_without_a_sentence_of_their_own_name_the_systems_reason(tmp_path, monkeypatch):
    # Real errors from the system: reading a process's memory at address 0 is an I/O error;
    # opening a socket as a file is "No such device or address".
    with pytest.raises(OSError) as read_error, open("/proc/self/mem", "rb") as memory:
        memory.read(16)
    assert read_error.value.errno == errno.EIO
    assert problem_from_os_error(read_error.value) == "the disk reported an error while reading this file."

    monkeypatch.chdir(tmp_path)
    with socket.socket(socket.AF_UNIX) as server, pytest.raises(OSError) as open_error:
        server.bind("socket.jpg")
        os.open("socket.jpg", os.O_RDONLY)
    assert open_error.value.errno == errno.ENXIO
    assert problem_from_os_error(open_error.value) == "the file could not be read (no such device or address)."


# --- Files that break decoders -----------------------------------------------------------------


def tiff_with_text_strip_offsets(width: int = 8, height: int = 4) -> bytes:
    """An uncompressed 8-bit grey TIFF whose StripOffsets (tag 273) is ASCII "ab", not a number."""
    entries = [  # (tag, type, count, value): type 3 SHORT, 4 LONG, 2 ASCII; values padded to 4 bytes
        (256, 3, 1, struct.pack("<HH", width, 0)),  # ImageWidth
        (257, 3, 1, struct.pack("<HH", height, 0)),  # ImageLength
        (258, 3, 1, struct.pack("<HH", 8, 0)),  # BitsPerSample
        (259, 3, 1, struct.pack("<HH", 1, 0)),  # Compression: none
        (262, 3, 1, struct.pack("<HH", 1, 0)),  # PhotometricInterpretation: black is zero
        (273, 2, 3, b"ab\0\0"),  # StripOffsets, of the wrong type
        (277, 3, 1, struct.pack("<HH", 1, 0)),  # SamplesPerPixel
        (278, 3, 1, struct.pack("<HH", height, 0)),  # RowsPerStrip
        (279, 4, 1, struct.pack("<I", width * height)),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *entry[:3]) + entry[3] for entry in entries)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(range(width * height))


def test_a_tiff_whose_strip_offsets_have_the_wrong_type(tmp_path):
    path = tmp_path / "scan.tif"
    path.write_bytes(tiff_with_text_strip_offsets())
    with pytest.raises(TypeError), Image.open(path) as image:  # what Pillow itself does with it
        image.load()

    with pytest.raises(PhotoError) as caught:
        decode_photo(path)

    assert caught.value.path == path
    assert lower_first(caught.value.problem).startswith("the image could not be read (TypeError: ")
    assert caught.value.problem.endswith(").")
    assert photo_metadata(path) == NO_METADATA


class DecoderBug(Exception):
    """An exception of a type no decoder is known to raise."""


@pytest.mark.parametrize(
    ("raised", "problem"),
    [
        (DecoderBug("unexpected\nstate 7."), "the image could not be read (DecoderBug: unexpected state 7)."),
        (DecoderBug(), "the image could not be read (DecoderBug)."),
        (MemoryError(), "there is not enough memory to decode this image."),
        (OSError(errno.EIO, "Input/output error"), "the disk reported an error while reading this file."),
    ],
    ids=["any-exception", "without-a-message", "memory", "read-error"],
)
def test_any_exception_from_a_decoder_is_the_files_problem(tmp_path, monkeypatch, raised, problem):
    path = save_photo(tmp_path / "photo.png", format="PNG")

    def load(self):
        raise raised

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)

    with pytest.raises(PhotoError) as caught:
        decode_photo(path)

    assert caught.value.path == path
    assert lower_first(caught.value.problem) == problem
    # Not chained: the decoder's exception would keep its frames, and their images, alive.
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert photo_metadata(path) == NO_METADATA  # a PNG with no EXIF loads to look for it


# --- 16-bit grey in bounded memory ------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "suffix", "mode"), [(np.uint16, ".png", "I;16"), (np.int32, ".tif", "I")], ids=["16-bit", "32-bit"]
)
def test_16_bit_grey_is_scaled_band_by_band_as_in_one_piece(tmp_path, monkeypatch, dtype, suffix, mode):
    # 2000 pixels a band, so 64 x 48 is scaled in four bands: 31, 31, 31 rows, and the last 4.
    monkeypatch.setattr(photo_module, "_BAND_PIXELS", 2000)
    rng = np.random.default_rng(7)
    values = rng.integers(-9000 if dtype is np.int32 else 0, 75000 if dtype is np.int32 else 65536, (97, 64))
    values[0, :4] = [0, 128, 129, 65535]  # 128 / 257 rounds down, 129 / 257 up
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(values.astype(dtype)).save(path)
    with Image.open(path) as opened:
        assert opened.mode == mode

    decoded = np.asarray(decode_photo(path, draft_size=None))  # [H, W, 3]

    expected = np.rint(values.clip(0, 65535) / 257).astype(np.uint8)
    assert np.array_equal(decoded, np.repeat(expected[..., None], 3, axis=-1))
    assert list(decoded[0, :4, 0]) == [0, 0, 1, 255]


def test_16_bit_grey_decodes_in_memory_near_its_8_bit_result(tmp_path):
    # tracemalloc sees numpy's arrays (not Pillow's own buffers): the 8-bit result, 1 byte a
    # pixel, and one band (measured: 2.4 bytes a pixel in all). One int64 copy of the image
    # would be 8 bytes a pixel; converting with int64 arrays took 17.
    width, height = 3000, 2000
    ramp = np.linspace(0, 65535, width * height).astype(np.uint16).reshape(height, width)
    path = tmp_path / "scan16.png"
    Image.fromarray(ramp).save(path, compress_level=1)

    tracemalloc.start()
    try:
        decoded = decode_photo(path, draft_size=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert decoded.size == (width, height)
    assert peak < 4 * width * height


# --- Reduced for the model ---------------------------------------------------------------------


def test_a_large_png_is_reduced_to_no_less_than_the_draft_size_upright(tmp_path):
    # Stored 1200 x 800, to be turned a quarter (orientation 6): upright 800 x 1200. For an
    # upright draft of 200 x 400 the largest factor is 3 (4 would leave 300 rows); read in
    # stored orientation it would have been 2.
    rng = np.random.default_rng(3)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    path = tmp_path / "large.png"
    Image.fromarray(rng.integers(0, 256, (800, 1200, 3), dtype=np.uint8)).save(path, exif=exif, compress_level=1)

    full = decode_photo(path, draft_size=None)
    reduced = decode_photo(path, draft_size=(200, 400))

    assert full.size == (800, 1200)
    assert reduced.size == (267, 400)
    assert np.array_equal(np.asarray(reduced), np.asarray(full.reduce(3)))  # the mean of each 3 x 3 box
    assert decode_photo(path, draft_size=(500, 700)).size == (800, 1200)  # a factor of 1: untouched


# --- Warnings ----------------------------------------------------------------------------------


def jpeg_with_corrupt_exif(path: Path, missing: int) -> Path:
    """A JPEG whose EXIF says its first directory holds 5 entries but ends after 12 - `missing`
    bytes of them: Pillow warns "Corrupt EXIF data. Expecting to read 12 bytes but only got N"."""
    exif = b"Exif\0\0II*\0" + struct.pack("<I", 8) + struct.pack("<H", 5) + bytes(12 - missing)
    return save_photo(path, exif=exif)


def test_decoder_warnings_become_one_log_line_naming_the_file_on_any_thread(tmp_path):
    # In a fresh interpreter: pytest replaces warnings.showwarning inside each test. Six photos
    # whose EXIF ends after 1 to 6 bytes, mixed with good ones, decoded four at a time; and a
    # 500 x 500 photo over a lowered decompression-bomb limit (but under twice it).
    corrupt = [jpeg_with_corrupt_exif(tmp_path / f"corrupt{n}.jpg", 12 - n) for n in range(1, 7)]
    good = [save_photo(tmp_path / f"good{n}.jpg") for n in range(6)]
    large = save_photo(tmp_path / "large.jpg", size=(500, 500))
    script = textwrap.dedent(
        f"""
        import warnings
        from concurrent.futures import ThreadPoolExecutor
        from PIL import Image
        from birdid_app.core.photos.photo import decode_photo, photo_metadata

        paths = {[str(p) for pair in zip(corrupt, good, strict=True) for p in pair]!r}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(photo_metadata, paths))  # logs at DEBUG: nothing shown
            list(pool.map(decode_photo, paths))
        Image.MAX_IMAGE_PIXELS = 200_000
        decode_photo({str(large)!r})
        # Outside a decode, Pillow's warning goes where it always went, once.
        for _ in range(2):
            with Image.open({str(corrupt[0])!r}) as image:
                image.getexif()
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop("PYTHONWARNINGS", None)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=environment
    )

    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    for n, path in enumerate(corrupt, start=1):
        assert [line for line in lines if str(path) in line] == [
            f"{path}: Pillow warned: Corrupt EXIF data. Expecting to read 12 bytes but only got {n}."
        ]
    assert not any(str(path) in line for path in good for line in lines)
    [bomb] = [line for line in lines if str(large) in line]
    assert bomb.startswith(f"{large}: Pillow warned: Image size (250000 pixels) exceeds limit of 200000 pixels")
    outside = [line for line in lines if "UserWarning: Corrupt EXIF data" in line]
    assert len(outside) == 1 and "only got 1" in outside[0]
