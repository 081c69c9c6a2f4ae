"""XMP sidecars and JPEGs made elsewhere, built the hostile ways issue 23 found (items 3, 6, 9):
birdid refuses each with one sentence naming the file, never loses the person's metadata, never
writes where the person did not put the file, and the other photos of a batch carry on."""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_sidecar import DARKTABLE_SIDECAR, NOTE, as_list, tags

from birdid_app.core.library.keywords import write_library_keywords
from birdid_app.core.photos.sidecar import SidecarError, read_keywords, write_keywords
from conftest import make_photo

ROOT = Path(__file__).resolve().parents[1]

# A JPEG's own XMP as an editor could leave it: rating, colour label, keywords, darktable's history,
# and a DOCTYPE line, harmless XML that Exiv2's XMP toolkit rejects ("XMP Toolkit error 201").
DOCTYPE_PACKET = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<!DOCTYPE x:xmpmeta>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="4"
   xmp:Label="Red">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>garden</rdf:li>
     <rdf:li>Camargue</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

# As an old Windows tool writes it: declared ISO-8859-1, and "München" with a raw Latin-1 byte.
LATIN1_SIDECAR = """<?xml version="1.0" encoding="ISO-8859-1"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmp:Rating="3">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>M\u00fcnchen</rdf:li>
     <rdf:li>garden</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
""".encode("latin-1")


def jpeg_with_packet(path: Path, packet: str) -> Path:
    """A real JPEG whose APP1 XMP segment holds `packet` exactly as given (exiftool would tidy it)."""
    data = make_photo(path, size=(96, 64)).read_bytes()
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode("utf-8")
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:])
    return path


def one_sentence(error: SidecarError, path: Path) -> str:
    message = str(error)
    assert message.startswith(f"{path}: ") and message.endswith(".") and ". " not in message, message
    assert error.problem[:1].isupper(), message
    return error.problem


def library_of(*photos: Path, species: str = "Eurasian Wren") -> SimpleNamespace:
    """What write_library_keywords needs of a Library: every photo labelled `species`."""
    rows = [SimpleNamespace(path=Path(p), error=None, label=species, species=[(species, 0.97)]) for p in photos]
    folders = sorted({Path(p).parent for p in photos})
    return SimpleNamespace(reading_model=lambda: "eu-common hiera", all_photos=lambda: rows, folders=lambda: folders)


def write_all(*photos: Path, embed: bool = False) -> tuple[SimpleNamespace, list[str]]:
    errors: list[str] = []
    summary = write_library_keywords(library_of(*photos), min_probability=0.5, confirmed_only=False,
                                     style="lightroom", root="Birds", embed=embed, on_error=errors.append)
    return summary, errors


# --- 3: --embed must not wipe a JPEG's own XMP ----------------------------------------------------


def test_embedding_into_a_jpeg_whose_xmp_exiv2_rejects_is_refused_and_keeps_its_xmp(tmp_path):
    hostile = jpeg_with_packet(tmp_path / "doctype.jpg", DOCTYPE_PACKET)
    original = hostile.read_bytes()
    plain = make_photo(tmp_path / "plain.jpg", size=(96, 64))

    summary, errors = write_all(hostile, plain, embed=True)

    assert (summary.written, summary.failed) == (1, 1)
    assert len(errors) == 1 and errors[0].startswith(f"{hostile}: The XMP inside this photo is not XMP")
    assert hostile.read_bytes() == original
    found = tags(hostile)
    assert found["XMP-xmp:Rating"] == 4
    assert found["XMP-xmp:Label"] == "Red"
    assert as_list(found["XMP-dc:Subject"]) == ["garden", "Camargue"]
    assert [step["Operation"] for step in found["XMP-darktable:History"]] == ["exposure"]
    assert as_list(tags(plain)["XMP-dc:Subject"]) == ["Eurasian Wren"]  # the batch carried on


# --- 6: special files and unbounded reads ----------------------------------------------------------

# Run in a child with 2 GiB of address space and a deadline: the old code waited on the FIFO
# forever and read /dev/zero and the sparse file until memory ran out.
CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from pathlib import Path
    from types import SimpleNamespace
    from birdid_app.core.library.keywords import write_library_keywords
    from birdid_app.core.photos.sidecar import SidecarError, read_keywords
    photos = sys.argv[1:]
    rows = [SimpleNamespace(path=Path(p), error=None, label="Eurasian Wren", species=[]) for p in photos]
    folders = sorted({Path(p).parent for p in photos})
    library = SimpleNamespace(reading_model=lambda: "m", all_photos=lambda: rows, folders=lambda: folders)
    errors, read = [], {}
    start = time.monotonic()
    summary = write_library_keywords(library, min_probability=0.5, confirmed_only=False, style="lightroom",
                                     root="Birds", embed=False, on_error=errors.append)
    for photo in photos:
        try:
            read[photo] = read_keywords(photo)
        except SidecarError as error:
            read[photo] = str(error)
    print(json.dumps({"written": summary.written, "failed": summary.failed, "errors": errors, "read": read,
                      "seconds": time.monotonic() - start}))
    """
)


def test_pipes_devices_and_huge_sidecars_are_refused_quickly_and_the_batch_carries_on(tmp_path):
    photos = [make_photo(tmp_path / f"{name}.jpg", size=(96, 64)) for name in ("fifo", "zero", "sparse", "big", "ok")]
    os.mkfifo(tmp_path / "fifo.xmp")
    (tmp_path / "zero.xmp").symlink_to("/dev/zero")
    with open(tmp_path / "sparse.xmp", "wb") as handle:
        handle.truncate(8 << 30)  # 8 GiB that cost no disk
    with open(tmp_path / "big.xmp", "wb") as handle:
        handle.truncate(200_000_000)
    (tmp_path / "ok.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")

    try:
        done = subprocess.run([sys.executable, "-c", CHILD, *map(str, photos)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail("writing keywords hung on a sidecar that is a named pipe")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)

    assert (result["written"], result["failed"]) == (1, 4), result["errors"]
    assert result["seconds"] < 20
    problems = {Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in result["errors"]}
    assert problems["fifo.xmp"] == "This is a named pipe, not an XMP sidecar."
    assert problems["zero.xmp"].startswith("This sidecar is a link to /dev/zero, outside the photo's folder")
    assert problems["sparse.xmp"] == "The file is 8589.9 MB, larger than an XMP sidecar can be (16 MB)."
    assert problems["big.xmp"] == "The file is 200.0 MB, larger than an XMP sidecar can be (16 MB)."
    assert "Eurasian Wren" in as_list(tags(tmp_path / "ok.xmp")["XMP-dc:Subject"])

    # Indexing reads keywords from sidecars too: each one refused with its sentence.
    read = {Path(photo).name: answer for photo, answer in result["read"].items()}
    assert read["fifo.jpg"] == f"{tmp_path / 'fifo.xmp'}: This is a named pipe, not an XMP sidecar."
    assert read["zero.jpg"] == f"{tmp_path / 'zero.xmp'}: This is a device, not an XMP sidecar."
    assert "larger than an XMP sidecar can be" in read["sparse.jpg"]
    assert read["ok.jpg"] == ["holiday", "Camargue", "Eurasian Wren", "cr3"]
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.xmp").st_mode) and (tmp_path / "zero.xmp").is_symlink()
    assert os.path.getsize(tmp_path / "sparse.xmp") == 8 << 30


def test_embedding_into_a_named_pipe_is_refused_without_waiting(tmp_path):
    pipe = tmp_path / "bird.jpg"
    os.mkfifo(pipe)
    outcome: list[BaseException | None] = []

    def embed() -> None:
        try:
            write_keywords(pipe, "Eurasian Wren", **NOTE, embed=True)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            outcome.append(error)

    worker = threading.Thread(target=embed, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        with open(pipe, "wb"):  # a writer that closes at once: the waiting reader gets an empty file
            pass
        worker.join(10)
        pytest.fail("embedding waited for a writer on a named pipe")
    assert isinstance(outcome[0], SidecarError), outcome
    assert one_sentence(outcome[0], pipe) == "This is a named pipe, not a JPEG to embed keywords in."


# --- 9: read-only and linked sidecars, other encodings ---------------------------------------------


def test_a_read_only_sidecar_is_left_as_it_is(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    sidecar = tmp_path / "bird.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    sidecar.chmod(0o444)
    before = os.stat(sidecar)

    with pytest.raises(SidecarError) as raised:
        write_keywords(photo, "Eurasian Wren", **NOTE)
    assert one_sentence(raised.value, sidecar).startswith("This sidecar is read-only, so birdid left it as it is")
    after = os.stat(sidecar)
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o444)
    assert sidecar.read_text(encoding="utf-8") == DARKTABLE_SIDECAR
    assert sorted(os.listdir(tmp_path)) == ["bird.jpg", "bird.xmp"]


def test_a_read_only_jpeg_is_not_embedded_into(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    original = photo.read_bytes()
    photo.chmod(0o444)
    with pytest.raises(SidecarError) as raised:
        write_keywords(photo, "Eurasian Wren", **NOTE, embed=True)
    assert one_sentence(raised.value, photo).startswith("This photo is read-only, so birdid left it as it is")
    assert photo.read_bytes() == original and stat.S_IMODE(os.stat(photo).st_mode) == 0o444


def test_a_linked_sidecar_inside_the_folder_is_written_through_and_stays_a_link(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    (tmp_path / "xmp").mkdir()
    real = tmp_path / "xmp" / "bird.xmp"
    real.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    link = tmp_path / "bird.xmp"
    link.symlink_to(Path("xmp") / "bird.xmp")

    assert write_keywords(photo, "Eurasian Wren", **NOTE) == link
    assert link.is_symlink() and os.readlink(link) == str(Path("xmp") / "bird.xmp")
    assert as_list(tags(real)["XMP-dc:Subject"]) == ["holiday", "Camargue", "Eurasian Wren"]
    assert "Eurasian Wren" in read_keywords(photo)
    assert sorted(os.listdir(tmp_path / "xmp")) == ["bird.xmp"]  # no temporary file left


@pytest.mark.parametrize("dangling", [False, True], ids=["existing", "dangling"])
def test_a_sidecar_linked_out_of_the_folder_is_refused_and_nothing_is_written_there(tmp_path, dangling):
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    photo = make_photo(folder / "bird.jpg", size=(96, 64))
    outside = elsewhere / "bird.xmp"
    if not dangling:
        outside.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    link = folder / "bird.xmp"
    link.symlink_to(outside)

    with pytest.raises(SidecarError) as raised:
        write_keywords(photo, "Eurasian Wren", **NOTE)
    assert one_sentence(raised.value, link) == (
        f"This sidecar is a link to {outside}, outside the photo's folder, so birdid left it as it is."
    )
    assert link.is_symlink()
    assert os.listdir(elsewhere) == ([] if dangling else ["bird.xmp"])
    if not dangling:
        assert outside.read_text(encoding="utf-8") == DARKTABLE_SIDECAR


def test_a_jpeg_linked_from_elsewhere_is_not_embedded_into(tmp_path):
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    folder.mkdir()
    real = make_photo(elsewhere / "bird.jpg", size=(96, 64))
    original = real.read_bytes()
    link = folder / "bird.jpg"
    link.symlink_to(real)
    with pytest.raises(SidecarError) as raised:
        write_keywords(link, "Eurasian Wren", **NOTE, embed=True)
    assert one_sentence(raised.value, link).startswith(f"This photo is a link to {real}, outside")
    assert link.is_symlink() and real.read_bytes() == original


def test_a_latin1_sidecar_keeps_its_umlauts(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    sidecar = tmp_path / "bird.xmp"
    sidecar.write_bytes(LATIN1_SIDECAR)

    assert read_keywords(photo) == ["München", "garden"]
    write_keywords(photo, "Eurasian Wren", **NOTE)
    found = tags(sidecar)
    assert as_list(found["XMP-dc:Subject"]) == ["München", "garden", "Eurasian Wren"]
    assert found["XMP-xmp:Rating"] == 3
    assert read_keywords(photo) == ["München", "garden", "Eurasian Wren"]


def test_a_sidecar_in_an_unknown_encoding_is_refused(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    sidecar = tmp_path / "bird.xmp"
    sidecar.write_bytes(LATIN1_SIDECAR.replace(b"ISO-8859-1", b"x-no-such-encoding"))
    with pytest.raises(SidecarError) as raised:
        write_keywords(photo, "Eurasian Wren", **NOTE)
    assert "declares an encoding birdid does not know (x-no-such-encoding)" in one_sentence(raised.value, sidecar)
    assert sidecar.read_bytes() == LATIN1_SIDECAR.replace(b"ISO-8859-1", b"x-no-such-encoding")


# --- smaller: Exiv2's own lines stay off the terminal ----------------------------------------------


def test_exiv2_complaints_go_to_the_debug_log_not_stderr(tmp_path, capfd):
    hostile = jpeg_with_packet(tmp_path / "doctype.jpg", DOCTYPE_PACKET)
    exiv2_log, birdid_log = logging.getLogger("exiv2"), logging.getLogger("birdid_app.core.photos.sidecar")
    seen_from_exiv2: list[logging.LogRecord] = []
    seen_by_birdid: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def __init__(self, into: list[logging.LogRecord]) -> None:
            super().__init__(logging.DEBUG)
            self.into = into

        def emit(self, record: logging.LogRecord) -> None:
            self.into.append(record)

    handlers = Collect(seen_from_exiv2), Collect(seen_by_birdid)
    exiv2_log.addHandler(handlers[0])
    birdid_log.addHandler(handlers[1])
    level = birdid_log.level
    birdid_log.setLevel(logging.DEBUG)
    try:
        with pytest.raises(SidecarError):
            write_keywords(hostile, "Eurasian Wren", **NOTE, embed=True)
        assert read_keywords(hostile) == []
    finally:
        exiv2_log.removeHandler(handlers[0])
        birdid_log.removeHandler(handlers[1])
        birdid_log.setLevel(level)

    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert not seen_from_exiv2
    assert any("XMP Toolkit error 201" in r.getMessage() and r.levelno == logging.DEBUG for r in seen_by_birdid)
