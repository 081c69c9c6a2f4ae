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
read is never overwritten; the person gets one sentence instead.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import exiv2

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import FileProblem

SidecarStyle = Literal["lightroom", "darktable"]
"""lightroom: `photo.xmp` (Lightroom, Capture One); darktable: `photo.ext.xmp` (darktable, digiKam)."""

NAMESPACE = "https://birdid.org/ns/1.0/"
PREFIX = "birdid"

# Exiv2 only writes properties of namespaces it knows; the registry is process-wide, so once here.
exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
# Adobe's XMP toolkit inside Exiv2 keeps process-wide state (the namespace registry it grows
# while parsing), so library workers take turns; a sidecar is a few kilobytes, the wait is short.
_EXIV2 = threading.Lock()

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
    """Every sidecar of `photo` that exists, of either naming."""
    photo = Path(photo)
    found = [p for p in (*_names(photo, "lightroom"), *_names(photo, "darktable")) if p.is_file()]
    # On a case-insensitive file system photo.xmp and photo.XMP are one file.
    unique: dict[tuple[int, int], Path] = {}
    for path in found:
        status = path.stat()
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
    path = sidecar_path(photo, style)
    if path.exists():
        image = _open_sidecar(path)
    elif species is None:
        return path  # nothing of birdid's to take out, and no reason to create a file
    else:
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    _apply(image.xmpData(), species, model=model, probability=probability, confirmed=confirmed, root=root)
    try:
        image.writeMetadata()
        with image.io().data() as packet:
            _replace(path, packet)
    except exiv2.Exiv2Error as error:
        raise SidecarError(path, f"birdid could not write this sidecar ({_reason(error)}), so it is as it was.") from None
    return path


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
        image = exiv2.ImageFactory.open(str(photo))
        image.readMetadata()
    except exiv2.Exiv2Error:
        # A format Exiv2 does not know, or a damaged photo: the photo reader reports those; here
        # it just has no keywords to offer.
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
    unreadable = "this sidecar is not XMP that birdid can read, so birdid left it as it was."
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SidecarError(path, f"birdid could not read this file ({error.strerror or error}).") from None
    try:
        tree = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        raise SidecarError(path, unreadable) from None
    try:
        image = exiv2.ImageFactory.open(data)
        if image.imageType() != exiv2.ImageType.xmp:
            raise SidecarError(path, unreadable)
        image.readMetadata()
    except exiv2.Exiv2Error:
        raise SidecarError(path, unreadable) from None
    # Exiv2 only logs (does not raise) when the XMP toolkit rejects well-formed XML that is not
    # valid RDF, and then holds no properties at all: a file with content that read as empty.
    if image.xmpData().count() == 0 and _has_properties(tree):
        raise SidecarError(path, unreadable)
    return image


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
    try:
        data = photo.read_bytes()
    except OSError as error:
        raise SidecarError(photo, f"birdid could not read this file ({error.strerror or error}).") from None
    try:
        image = exiv2.ImageFactory.open(data)
        if image.imageType() != exiv2.ImageType.jpeg:
            raise SidecarError(photo, "this photo is not a JPEG, and birdid embeds keywords only in JPEGs (a sidecar works for any photo).")
        image.readMetadata()
        # IPTC keywords are kept in step only where the photo has some: editors that find both
        # prefer XMP, but an IPTC list that disagrees with it shows up as stray keywords.
        iptc = image.iptcData() if any(d.key() == _IPTC_KEYWORDS for d in image.iptcData()) else None
        _apply(image.xmpData(), species, model=model, probability=probability, confirmed=confirmed, root=root,
               iptc=iptc)
        image.writeMetadata()
        with image.io().data() as written:
            _replace(photo, written)
    except exiv2.Exiv2Error as error:
        raise SidecarError(photo, f"birdid could not write keywords into this photo ({_reason(error)}), so it is as it was.") from None
    return photo


def _replace(path: Path, data: memoryview) -> None:
    try:
        with atomic_write(path, "wb") as out:
            out.write(data)
    except OSError as error:
        raise SidecarError(path, f"birdid could not write this file ({error.strerror or error}), so it is as it was.") from None


def _reason(error: exiv2.Exiv2Error) -> str:
    message = error.args[-1] if error.args else str(error)
    return str(message).rstrip(".")
