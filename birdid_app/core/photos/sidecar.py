"""Species as keywords the person's photo editor reads: XMP sidecars beside the photo, or (when
asked) the XMP inside a JPEG.

birdid writes the species into `dc:subject` and `root|species` into `lr:hierarchicalSubject`,
the two fields Lightroom, Capture One, darktable and digiKam all read, and a note of its own in
the birdid namespace: the model, the probability, whether a person confirmed it, and exactly which
keywords birdid added. That list is what lets a changed label replace the old species, and lets
birdid take its keywords back out, without touching a keyword the person typed themselves.

Everything else in a sidecar (ratings, other keywords, develop settings, darktable's history) is
kept: the sidecar is read and written by Exiv2 (python-exiv2), the library darktable itself and
Photini use, which keeps every property of every namespace, known or not. A sidecar Exiv2 cannot
read is never overwritten; the person gets one sentence instead, and so is a JPEG whose own XMP
packet Exiv2 cannot read (embedding would otherwise write the photo back without it).

Sidecars and photos come from elsewhere, so they are read only through core/files.py (regular files,
never a named pipe or a device, at most SIDECAR_MAX_BYTES or PHOTO_MAX_BYTES), a sidecar in another
encoding than UTF-8 is turned into UTF-8 before Exiv2 sees it, and a write never goes somewhere the
person did not put it: a read-only sidecar or photo is left as it is, and a symbolic link is written
through only when its target is inside the photo's folder (the link stays a link).
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import stat
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import exiv2

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import FileProblem
from birdid_app.core.files import problem_from_os_error, read_regular_file

SidecarStyle = Literal["lightroom", "darktable"]
"""lightroom: `photo.xmp` (Lightroom, Capture One); darktable: `photo.ext.xmp` (darktable, digiKam)."""

NAMESPACE = "https://birdid.org/ns/1.0/"
PREFIX = "birdid"

# Exiv2 only writes properties of namespaces it knows; the registry is process-wide, so once here.
exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
# Adobe's XMP toolkit inside Exiv2 keeps process-wide state (the namespace registry it grows
# while parsing), so library workers take turns; a sidecar is a few kilobytes, the wait is short.
_EXIV2 = threading.Lock()

# XMP sidecars are kilobytes (darktable's with a long history, some hundreds); this is far more.
SIDECAR_MAX_BYTES = 16_000_000
# A photo read whole: to embed keywords into it, or to read the keywords inside it.
PHOTO_MAX_BYTES = 512_000_000

_LOG = logging.getLogger(__name__)


class _Exiv2AtDebug(logging.Filter):
    """Exiv2 reports a packet it cannot parse on its own logger ("XMP Toolkit error 201", "Failed
    to decode XMP metadata."), which without any logging set up lands on stderr with no file named.
    birdid says what is wrong with such a file in one sentence itself, so Exiv2's lines go to
    birdid's log at debug level instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        _LOG.debug("Exiv2: %s", record.getMessage())
        return False


# python-exiv2's handler hands Exiv2's log to Python's logging (logger "exiv2"); once per process.
exiv2.LogMsg.setHandler(exiv2.pythonHandler)
if not any(isinstance(f, _Exiv2AtDebug) for f in logging.getLogger("exiv2").filters):
    logging.getLogger("exiv2").addFilter(_Exiv2AtDebug())

_SUBJECT = "Xmp.dc.subject"
_HIERARCHICAL = "Xmp.lr.hierarchicalSubject"
# What birdid added to the two fields above, so that it removes those and nothing else.
_OWN_SUBJECT = f"Xmp.{PREFIX}.subject"
_OWN_HIERARCHICAL = f"Xmp.{PREFIX}.hierarchicalSubject"
_SPECIES = f"Xmp.{PREFIX}.species"
_MODEL = f"Xmp.{PREFIX}.model"
_PROBABILITY = f"Xmp.{PREFIX}.probability"
_CONFIRMED = f"Xmp.{PREFIX}.confirmed"
_IPTC_KEYWORDS = "Iptc.Application2.Keywords"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


class SidecarError(FileProblem):
    """A sidecar (or photo) whose keywords cannot be read or written; it is left as it was."""


def sidecar_path(photo: str | Path, style: SidecarStyle = "lightroom") -> Path:
    """The sidecar birdid reads and writes for `photo`: an existing one of either naming (the
    person's editor made it, so it is the one their editor reads), else the one `style` names."""
    photo = Path(photo)
    preferred, other = _names(photo, style), _names(photo, "darktable" if style == "lightroom" else "lightroom")
    for candidate in (*preferred, *other):
        if candidate.is_file():
            return candidate
    return preferred[0]


def existing_sidecars(photo: str | Path) -> list[Path]:
    """Every sidecar of `photo` that exists, of either naming: anything with a sidecar's name, so
    that a named pipe or a device there is refused when read rather than passed over unsaid."""
    photo = Path(photo)
    # On a case-insensitive file system photo.xmp and photo.XMP are one file.
    unique: dict[tuple[int, int], Path] = {}
    for path in (*_names(photo, "lightroom"), *_names(photo, "darktable")):
        try:
            status = path.stat()
        except OSError:
            continue  # not there (or a link to nothing): no sidecar
        unique.setdefault((status.st_dev, status.st_ino), path)
    return list(unique.values())


def _names(photo: Path, style: SidecarStyle) -> tuple[Path, Path]:
    # Lightroom on Windows and some cameras' software write the extension in capitals.
    if style == "lightroom":
        return photo.with_suffix(".xmp"), photo.with_suffix(".XMP")
    return photo.with_name(photo.name + ".xmp"), photo.with_name(photo.name + ".XMP")


def write_keywords(
    photo: str | Path,
    species: str | None,
    *,
    model: str,
    probability: float | None,
    confirmed: bool,
    root: str = "Birds",
    style: SidecarStyle = "lightroom",
    embed: bool = False,
) -> Path:
    """Make `species` birdid's keyword for `photo`, replacing the species birdid wrote before;
    None takes birdid's keywords and note out again. Returns the file written: the sidecar, or the
    photo itself when `embed` (JPEG only). Raises SidecarError, with the file unchanged, when the
    file cannot be read as XMP or cannot be written."""
    with _EXIV2:
        return _write(Path(photo), species, model=model, probability=probability, confirmed=confirmed, root=root,
                      style=style, embed=embed)


def _write(
    photo: Path,
    species: str | None,
    *,
    model: str,
    probability: float | None,
    confirmed: bool,
    root: str,
    style: SidecarStyle,
    embed: bool,
) -> Path:
    if embed:
        return _embed(photo, species, model=model, probability=probability, confirmed=confirmed, root=root)
    # With no species there is nothing of birdid's to take out of a sidecar that is not there.
    return _update_sidecar(photo, style, lambda xmp: _apply(xmp, species, model=model, probability=probability,
                                                            confirmed=confirmed, root=root), create=species is not None)


def _update_sidecar(photo: Path, style: SidecarStyle, change: Callable[[exiv2.XmpData], None], *, create: bool) -> Path:
    """The merging writer: `change` the XMP of `photo`'s sidecar (read whole, every property kept)
    and write it back atomically; a sidecar that is not there is made only when `create`."""
    path = sidecar_path(photo, style)
    target = _write_target(path, photo.parent, "sidecar")
    if target.exists():
        image = _open_sidecar(path)
    elif not create:
        return path
    else:
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    change(image.xmpData())
    # Reading a sidecar, Exiv2 also converts its XMP to Exif and IPTC (xmp:Rating to
    # Exif.Image.Rating, say), and writing converts those back into any XMP property that is not
    # there: a property taken out would come back (a cleared rating as 65535). A sidecar is XMP only.
    image.clearExifData()
    image.clearIptcData()
    if image.xmpData().count() == 0:
        # Exiv2 keeps the old packet when nothing is left to write (and its buffer is then not
        # safe to read): the empty XMP is written as it is.
        _replace(path, target, memoryview(_EMPTY_XMP))
        return path
    try:
        image.writeMetadata()
        with image.io().data() as packet:
            _replace(path, target, packet)
    except exiv2.Exiv2Error as error:
        raise SidecarError(path, f"birdid could not write this sidecar ({_reason(error)}), so it is as it was.") from None
    return path


# The cull, as Lightroom, darktable, digiKam and Capture One read it: xmp:Rating -1 is rejected, 1-5
# stars; a pick is the colour label "Green" (xmp:Label holds the label's name; green is the
# colour both Lightroom's default label set and darktable's five colour labels have).
_RATING = "Xmp.xmp.Rating"
_LABEL = "Xmp.xmp.Label"
PICK_LABEL = "Green"


def write_cull(photo: str | Path, rating: int, picked: bool, *, style: SidecarStyle = "lightroom") -> Path:
    """Write the person's cull into `photo`'s sidecar through the same merging writer as the
    keywords: xmp:Rating `rating` (-1 rejected, 1-5 stars; 0 takes the rating out) and, when
    `picked` and the photo has no colour label yet, xmp:Label PICK_LABEL (taken out again when not
    picked, if it is PICK_LABEL); a label the person chose is never changed. Everything else in the sidecar is kept. Returns the sidecar;
    raises SidecarError, with the file unchanged, as write_keywords does."""
    if not -1 <= rating <= 5:
        raise ValueError(f"A rating is -1 (rejected) to 5, not {rating}.")
    with _EXIV2:
        return _update_sidecar(Path(photo), style, lambda xmp: _apply_cull(xmp, rating, picked),
                               create=rating != 0 or picked)


def _apply_cull(xmp: exiv2.XmpData, rating: int, picked: bool) -> None:
    _erase(xmp, _RATING)
    if rating:
        xmp[_RATING] = str(rating)
    label = _text(xmp, _LABEL)
    if picked and not label:
        xmp[_LABEL] = PICK_LABEL
    elif not picked and label == PICK_LABEL:
        _erase(xmp, _LABEL)
    # Else a colour label the person chose in their editor stays, picked or not: the pick is
    # still kept in the library.


def read_rating(photo: str | Path) -> int | None:
    """The xmp:Rating already on `photo`: in its sidecars first, else inside the photo; None when
    it has none (or one that is not a number). Raises SidecarError for a sidecar that cannot be read."""
    photo = Path(photo)
    with _EXIV2:
        for path in existing_sidecars(photo):
            rating = _rating_in(_open_sidecar(path).xmpData())
            if rating is not None:
                return rating
        try:
            data = read_regular_file(photo, PHOTO_MAX_BYTES, "a photo", SidecarError)
            image = exiv2.ImageFactory.open(data)
            image.readMetadata()
        except (SidecarError, exiv2.Exiv2Error) as error:
            _LOG.debug("%s: no rating read from inside the photo (%s)", photo, error)
            return None
        return _rating_in(image.xmpData())


def _rating_in(xmp: exiv2.XmpData) -> int | None:
    text = _text(xmp, _RATING)
    try:
        return None if text is None else round(float(text))
    except ValueError:
        return None


def _text(xmp: exiv2.XmpData, key: str) -> str | None:
    position = xmp.findKey(exiv2.XmpKey(key))
    return None if position == xmp.end() else position.toString()


def read_keywords(photo: str | Path) -> list[str]:
    """Every keyword already on `photo`, in order and once each: dc:subject and the last part of each
    lr:hierarchicalSubject from its sidecars, then the XMP and IPTC keywords inside the photo.
    Raises SidecarError for a sidecar that cannot be read."""
    photo = Path(photo)
    keywords: list[str] = []
    with _EXIV2:
        for path in existing_sidecars(photo):
            keywords += _keywords_in(_open_sidecar(path).xmpData())
        keywords += _embedded_keywords(photo)
    return list(dict.fromkeys(k for k in keywords if k))


def _embedded_keywords(photo: Path) -> list[str]:
    try:
        data = read_regular_file(photo, PHOTO_MAX_BYTES, "a photo", SidecarError)
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    except (SidecarError, exiv2.Exiv2Error) as error:
        # Not a regular file, too large, a format Exiv2 does not know, or a damaged photo: the
        # photo reader reports those; here it just has no keywords to offer.
        _LOG.debug("%s: no keywords read from inside the photo (%s)", photo, error)
        return []
    keywords = _keywords_in(image.xmpData())
    for datum in image.iptcData():
        if datum.key() == _IPTC_KEYWORDS:
            try:
                keywords.append(datum.toString())
            except UnicodeDecodeError:
                continue  # Latin-1 IPTC from old software: not worth guessing at
    return keywords


def _keywords_in(xmp: exiv2.XmpData) -> list[str]:
    flat = _bag(xmp, _SUBJECT)
    leaves = [entry.rsplit("|", 1)[-1].strip() for entry in _bag(xmp, _HIERARCHICAL)]
    return flat + leaves


def _open_sidecar(path: Path) -> exiv2.Image:
    """The sidecar at `path`, read, or SidecarError: never an empty one standing in for a file
    Exiv2 could not understand, since writing that back would throw the person's work away."""
    data = _as_utf8(path, read_regular_file(path, SIDECAR_MAX_BYTES, "an XMP sidecar", SidecarError))
    try:
        tree = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        raise SidecarError(path, _UNREADABLE) from None
    try:
        image = exiv2.ImageFactory.open(data)
        if image.imageType() != exiv2.ImageType.xmp:
            raise SidecarError(path, _UNREADABLE)
        image.readMetadata()
    except exiv2.Exiv2Error:
        raise SidecarError(path, _UNREADABLE) from None
    # Exiv2 only logs (does not raise) when the XMP toolkit rejects well-formed XML that is not
    # valid RDF, and then holds no properties at all: a file with content that read as empty.
    if image.xmpData().count() == 0 and _has_properties(tree):
        raise SidecarError(path, _UNREADABLE)
    return image


_EMPTY_XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
              b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n  <rdf:Description rdf:about=""/>\n'
              b' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>')
_UNREADABLE = "this sidecar is not XMP that birdid can read, so birdid left it as it was."
# A byte-order mark says the encoding before any declaration can (UTF-32's marks first: UTF-32-LE's
# starts with UTF-16-LE's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED = re.compile(rb"""\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_DECLARATION = re.compile(r"""\A(\s*<\?xml\b[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""")


def _as_utf8(path: Path, data: bytes) -> bytes:
    """`data` in UTF-8, declared so. Exiv2 reads every sidecar as UTF-8, whatever its XML
    declaration says: a Latin-1 "München" would come back as "MÃ¼nchen". Decoded here by its
    byte-order mark or declared encoding instead, which is what any XML parser does."""
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if codec is None:
        declared = _DECLARED.match(data)
        if declared is None:
            return data  # no declaration: UTF-8, as XML says
        name = declared.group(1).decode("ascii")
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            raise SidecarError(path, f"this sidecar declares an encoding birdid does not know ({name[:40]}), "
                                     "so birdid left it as it was.") from None
    if codec == "utf-8":
        return data
    try:
        text = data.decode(codec)  # the utf-16 and utf-32 codecs take the byte-order mark away
    except UnicodeDecodeError:
        raise SidecarError(path, _UNREADABLE) from None
    return _DECLARATION.sub(r"\1\2UTF-8\2", text, count=1).encode("utf-8")


def _has_properties(tree: ElementTree.Element) -> bool:
    for description in tree.iter(f"{_RDF}Description"):
        if len(description) or set(description.attrib) - {f"{_RDF}about"}:
            return True
    return False


def _apply(
    xmp: exiv2.XmpData,
    species: str | None,
    *,
    model: str,
    probability: float | None,
    confirmed: bool,
    root: str,
    iptc: exiv2.IptcData | None = None,
) -> None:
    """Take out what birdid added last time, then add `species` (unless None) and birdid's note."""
    old_flat, old_tree = _bag(xmp, _OWN_SUBJECT), _bag(xmp, _OWN_HIERARCHICAL)
    new_flat = [species] if species else []
    path = "|".join(part for part in (*root.split("|"), species or "") if part.strip())
    new_tree = [path] if species else []

    own_flat = _replace_in_bag(xmp, _SUBJECT, old_flat, new_flat)
    own_tree = _replace_in_bag(xmp, _HIERARCHICAL, old_tree, new_tree)
    if iptc is not None:
        _replace_iptc(iptc, old_flat, new_flat)

    for key in (_OWN_SUBJECT, _OWN_HIERARCHICAL, _SPECIES, _MODEL, _PROBABILITY, _CONFIRMED):
        _erase(xmp, key)
    if species is None:
        return
    if own_flat:
        xmp[_OWN_SUBJECT] = exiv2.XmpArrayValue(own_flat, exiv2.TypeId.xmpBag)
    if own_tree:
        xmp[_OWN_HIERARCHICAL] = exiv2.XmpArrayValue(own_tree, exiv2.TypeId.xmpBag)
    xmp[_SPECIES] = species
    xmp[_MODEL] = model
    if probability is not None:
        xmp[_PROBABILITY] = f"{probability:.4f}"
    xmp[_CONFIRMED] = "True" if confirmed else "False"  # XMP's Boolean spelling


def _replace_in_bag(xmp: exiv2.XmpData, key: str, old: Iterable[str], new: list[str]) -> list[str]:
    """Remove `old` from the bag at `key` and add `new`; returns the entries of `new` that birdid
    added, leaving out any the person had already put there (those stay theirs)."""
    old = set(old)
    before = _bag(xmp, key)
    kept = [entry for entry in before if entry not in old]
    added = [entry for entry in new if entry not in kept]
    entries = kept + added
    if entries != before:
        _erase(xmp, key)
        if entries:
            xmp[key] = exiv2.XmpArrayValue(entries, exiv2.TypeId.xmpBag)
    return added


def _replace_iptc(iptc: exiv2.IptcData, old: Iterable[str], new: list[str]) -> None:
    old = set(old)
    before = [datum.toString() for datum in iptc if datum.key() == _IPTC_KEYWORDS]
    kept = [keyword for keyword in before if keyword not in old]
    keywords = kept + [keyword for keyword in new if keyword not in kept]
    if keywords == before:
        return
    key = exiv2.IptcKey(_IPTC_KEYWORDS)
    while (position := iptc.findKey(key)) != iptc.end():
        iptc.erase(position)
    for keyword in keywords:
        iptc.add(key, exiv2.StringValue(keyword))


def _bag(xmp: exiv2.XmpData, key: str) -> list[str]:
    position = xmp.findKey(exiv2.XmpKey(key))
    if position == xmp.end():
        return []
    value = position.value()
    if isinstance(value, exiv2.XmpArrayValue):
        return [str(entry) for entry in value]
    # Some writers put a single keyword as plain text rather than a one-entry bag.
    text = position.toString()
    return [text] if text else []


def _erase(xmp: exiv2.XmpData, key: str) -> None:
    position = xmp.findKey(exiv2.XmpKey(key))
    if position != xmp.end():
        xmp.erase(position)


def _embed(
    photo: Path, species: str | None, *, model: str, probability: float | None, confirmed: bool, root: str
) -> Path:
    """Write into the JPEG itself: the whole new file is built in memory and takes the photo's name
    in one rename, so a failure leaves the original photo exactly as it was."""
    target = _write_target(photo, photo.parent, "photo")
    data = read_regular_file(photo, PHOTO_MAX_BYTES, "a JPEG to embed keywords in", SidecarError)
    try:
        image = exiv2.ImageFactory.open(data)
        if image.imageType() != exiv2.ImageType.jpeg:
            raise SidecarError(photo, "this photo is not a JPEG, and birdid embeds keywords only in JPEGs (a sidecar works for any photo).")
        image.readMetadata()
        if _packet_lost(image):
            # Writing now would write the photo back with no XMP but birdid's: its rating, colour
            # label, keywords and editor history gone.
            raise SidecarError(photo, "the XMP inside this photo is not XMP that birdid can read, so birdid left the "
                                      "photo as it was (a sidecar works instead).")
        # IPTC keywords are kept in step only where the photo has some: editors that find both
        # prefer XMP, but an IPTC list that disagrees with it shows up as stray keywords.
        iptc = image.iptcData() if any(d.key() == _IPTC_KEYWORDS for d in image.iptcData()) else None
        _apply(image.xmpData(), species, model=model, probability=probability, confirmed=confirmed, root=root,
               iptc=iptc)
        image.writeMetadata()
        with image.io().data() as written:
            _replace(photo, target, written)
    except exiv2.Exiv2Error as error:
        raise SidecarError(photo, f"birdid could not write keywords into this photo ({_reason(error)}), so it is as it was.") from None
    return photo


def _packet_lost(image: exiv2.Image) -> bool:
    """Whether Exiv2 read the photo's XMP packet as nothing though it holds properties: Exiv2 only
    logs when its XMP toolkit rejects a packet (a DOCTYPE line is enough) and goes on empty."""
    if image.xmpData().count():
        return False
    packet = image.xmpPacket()
    if not packet.strip(" \t\r\n\0"):
        return False
    try:
        tree = ElementTree.fromstring(packet.encode("utf-8"))
    except ElementTree.ParseError:
        return True
    return _has_properties(tree)


def _write_target(path: Path, folder: Path, what: str) -> Path:
    """The file that writing `path` changes: `path`, or where it links to when that is inside
    `folder` (the photo's folder), so that the link stays a link. SidecarError, before anything is
    read, for a link out of the folder, and for a file that is read-only (the person's "leave this
    alone"; an atomic write would otherwise replace it regardless)."""
    target = path
    if os.path.islink(path):
        try:
            target = path.resolve()
            inside = folder.resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a link loop, before Python 3.13
            problem = problem_from_os_error(error) if isinstance(error, OSError) else "the path loops through symbolic links."
            raise SidecarError(path, problem) from None
        if not target.is_relative_to(inside):
            raise SidecarError(path, f"this {what} is a link to {target}, outside the photo's folder, so birdid "
                                     "left it as it is.")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target  # written new
    except OSError as error:
        raise SidecarError(path, problem_from_os_error(error)) from None
    if stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(target, os.W_OK)):
        raise SidecarError(path, f"this {what} is read-only, so birdid left it as it is; make it writable to let "
                                 "birdid write into it.")
    return target


def _replace(path: Path, target: Path, data: memoryview) -> None:
    """`data` into `target` (the file `path` names, or the one it links to), atomically."""
    try:
        with atomic_write(target, "wb") as out:
            out.write(data)
    except OSError as error:
        raise SidecarError(path, f"birdid could not write this file ({error.strerror or error}), so it is as it was.") from None


def _reason(error: exiv2.Exiv2Error) -> str:
    message = error.args[-1] if error.args else str(error)
    return str(message).rstrip(".")
