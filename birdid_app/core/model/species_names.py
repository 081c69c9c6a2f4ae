"""Species names across taxonomies: our model's classes carry Collins guide (British/IOC) English
names, the BirdNET Geomodel range prior carries eBird/Clements labels. This module finds, for each
class, the geomodel output column that is the same bird, so the prior can be looked up and a photo's
species exported under its eBird name.

The shipped files (resources/geomodel/, see its README.md): labels.txt, the published geomodel's
label list in output order, so names reconcile without the model installed; aliases.tsv, British/IOC
names whose eBird name differs. No Qt, torch or onnxruntime here: the command line and the library
use it without loading a model.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from birdid_app.core.errors import FileProblem
from birdid_app.core.files import read_regular_file

LABELS_LINE = "code<TAB>scientific name<TAB>common name"
ALIASES_LINE = "name<TAB>eBird common name<TAB>eBird scientific name[<TAB>note]"
MAX_FIELD_CHARS = 200
# A label or alias list: some 100 bytes a taxon, and the largest lists name 100,000 taxa.
LIST_LIMIT = 64 << 20

# How a class found its label (Match.how).
BY_SCIENTIFIC = "scientific"
BY_NAME = "name"
BY_ALIAS = "alias"


class GeoLabel(NamedTuple):
    code: str  # eBird species code (a numeric iNaturalist-style id for the geomodel's non-eBird taxa)
    scientific: str
    common: str  # eBird English name


class LabelsError(FileProblem):
    """A label or alias file that cannot be used; the message names the file and the line."""


def _read_text(path: Path) -> str:
    """The file as text, read only as a regular file of at most LIST_LIMIT bytes: a named pipe or
    a link to /dev/zero in a list's place is refused, not waited on or read without end."""
    try:
        return read_regular_file(path, LIST_LIMIT, "a list of names", LabelsError).decode("utf-8")
    except UnicodeDecodeError as error:
        raise LabelsError(path, f"it is not UTF-8 text (byte {error.start} cannot be decoded).") from error
    except OSError as error:
        raise LabelsError(path, f"it cannot be read ({error.strerror or error}).") from error


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) pairs. Split on "\\n" only, not str.splitlines, which would also break
    at form feeds, \\x1c-\\x1e, NEL and U+2028: those must reach the control-character check instead
    of silently becoming rows and shifting every line number after them."""
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(number, line.removesuffix("\r")) for number, line in enumerate(lines, start=1)]


def _bad_field(field: str, may_be_empty: bool = False) -> str | None:
    """Why `field` cannot be a name (or a note, which `may_be_empty`), or None."""
    if not field.strip() and not may_be_empty:
        return "a field is empty"
    if len(field) > MAX_FIELD_CHARS:
        return f"a field is longer than {MAX_FIELD_CHARS} characters"
    # Cc (control) and Cf (format: zero-width and bidirectional marks, a BOM mid-file), and the
    # Unicode line and paragraph separators: none belongs in a name, and each hides or breaks one.
    # isprintable() first because it is fast; it also refuses harmless no-break spaces, hence the rest.
    if not field.isprintable() and any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in field):
        return "it holds a control character"
    return None


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def parse_labels(text: str, path: Path) -> list[GeoLabel]:
    """The rows of a geomodel label file, `code<TAB>scientific<TAB>common` each, in output order.

    Tolerates a UTF-8 BOM, \\r\\n endings and one trailing newline; a line that is not exactly
    three non-empty fields of at most MAX_FIELD_CHARS characters without control characters (a
    blank line included) is a LabelsError naming `path` and the line, as is a file with nothing
    but white space in it. Fields are kept as written but for surrounding spaces."""
    if not text.removeprefix("\ufeff").strip():
        raise LabelsError(path, f"it is empty, where one '{LABELS_LINE}' line per geomodel output was expected.")
    labels: list[GeoLabel] = []
    for number, line in _numbered_lines(text):
        fields = line.split("\t")
        why = f"it has {_fields(len(fields))}, not 3" if len(fields) != 3 else None
        why = why or next(filter(None, map(_bad_field, fields)), None)
        if why:
            raise LabelsError(path, f"line {number} is not '{LABELS_LINE}': {why}.")
        code, scientific, common = (field.strip(" ") for field in fields)
        labels.append(GeoLabel(code, scientific, common))
    return labels


def published_labels_path() -> Path:
    """The shipped copy of the published geomodel's label list (resources/geomodel/labels.txt). The
    package is always unpacked on disk, as a wheel or in the frozen bundle, so this is a real file."""
    return Path(str(resources.files("birdid_app.resources") / "geomodel" / "labels.txt"))


def aliases_path() -> Path:
    """The shipped alias table, resources/geomodel/aliases.tsv (its format: README.md beside it)."""
    return Path(str(resources.files("birdid_app.resources") / "geomodel" / "aliases.tsv"))


@functools.cache
def _published_labels() -> tuple[GeoLabel, ...]:
    path = published_labels_path()
    return tuple(parse_labels(_read_text(path), path))


def published_labels() -> list[GeoLabel]:
    """The shipped label list, parsed once; each call returns a fresh list the caller may change."""
    return list(_published_labels())


_APOSTROPHES = re.compile(r"['’‘ʼ`´]")
_NOT_WORD = re.compile(r"[\W_]+")
# The British spellings that differ from eBird's American ones inside bird names.
_BRITISH_SPELLINGS = (("grey", "gray"), ("colour", "color"))


def normalised_name(name: str) -> str:
    """`name` reduced to what tells two spellings of one English bird name apart, nothing more:

    1. accents dropped (NFKD, combining marks removed): "Brünnich's" -> "Brunnich's";
    2. case folded: "Black-headed Gull" -> "black-headed gull";
    3. apostrophes (' ’ ‘ ʼ ` ´) dropped: "tengmalm’s owl" -> "tengmalms owl";
    4. every other run of punctuation, underscores or white space one space, the ends trimmed:
       "eurasian collared-dove" -> "eurasian collared dove";
    5. British spellings made American, anywhere in a word: "grey" -> "gray", "colour" -> "color",
       so "Grey Heron" == "Gray Heron", "Greylag Goose" == "Graylag Goose".

    Word order and words themselves are kept: "Woodpigeon" and "Wood Pigeon" stay different, as do
    "Robin" and "European Robin"; the alias table bridges those."""
    if not name.isascii():  # most names are: skipping the decomposition halves the time of a match
        decomposed = unicodedata.normalize("NFKD", name)
        name = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = _NOT_WORD.sub(" ", _APOSTROPHES.sub("", name.casefold())).strip()
    for british, american in _BRITISH_SPELLINGS:
        words = words.replace(british, american)
    return words


def typed_species(text: str, names: Iterable[str]) -> str | None:
    """The one of `names` (the model's class names, and the labels beside them) a person meant
    by `text`, as `names` spells it: the same words whatever their capitals and the spaces around
    or between them, so a class name with a stray tab or double space can still be chosen. None
    when no name matches."""
    wanted = _spaced_key(text)
    return next((name for name in names if _spaced_key(name) == wanted), None) if wanted else None


def shown_name(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut to `limit` characters: a pasted paragraph is not echoed."""
    text = " ".join(text.split())
    return f"“{text}”" if len(text) <= limit else f"“{text[: limit - 1]}…”"


def _spaced_key(name: str) -> str:
    """`name` with its capitals and its runs of white space made irrelevant: how a typed name
    and a scientific name are compared."""
    return " ".join(name.split()).casefold()


class _AliasTarget(NamedTuple):
    common: str
    scientific: str


def _parse_aliases(text: str, path: Path) -> dict[str, _AliasTarget]:
    """The alias table: normalised British/IOC name -> its eBird label. Lines starting with '#'
    and blank lines are comments; a malformed row or a name given twice is a LabelsError."""
    table: dict[str, _AliasTarget] = {}
    first_line: dict[str, int] = {}
    for number, line in _numbered_lines(text):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        why = f"it has {_fields(len(fields))}, not 3 or 4" if len(fields) not in (3, 4) else None
        why = why or next(filter(None, map(_bad_field, fields[:3])), None)
        why = why or (_bad_field(fields[3], may_be_empty=True) if len(fields) == 4 else None)
        if why:
            raise LabelsError(path, f"line {number} is not '{ALIASES_LINE}': {why}.")
        name, common, scientific = (field.strip(" ") for field in fields[:3])
        key = normalised_name(name)
        if key in table:
            raise LabelsError(path, f"line {number} lists {name!r} again, already named on line {first_line[key]}.")
        table[key] = _AliasTarget(common, scientific)
        first_line[key] = number
    return table


@functools.cache
def _alias_table() -> dict[str, _AliasTarget]:
    path = aliases_path()
    return _parse_aliases(_read_text(path), path)


def aliases() -> dict[str, str]:
    """The shipped alias table, normalised British/IOC name -> eBird common name as written in
    labels.txt (read and validated once; a bad row is a LabelsError naming the file and line)."""
    return {key: target.common for key, target in _alias_table().items()}


@dataclass(frozen=True)
class Match:
    label_index: int  # row in the labels list == the geomodel's output column
    label: GeoLabel
    how: str  # BY_SCIENTIFIC, BY_NAME or BY_ALIAS


@dataclass(frozen=True)
class SpeciesMatch:
    class_names: tuple[str, ...]
    matches: dict[str, Match]  # class name -> its label
    unmatched: tuple[str, ...]  # class names with no label, in class order

    def label_columns(self) -> np.ndarray:
        """[len(class_names)] int64: each class's geomodel output column, -1 where it has none."""
        return np.array(
            [self.matches[name].label_index if name in self.matches else -1 for name in self.class_names],
            dtype=np.int64,
        )

    def ebird(self, class_name: str) -> GeoLabel | None:
        match = self.matches.get(class_name)
        return match.label if match else None


class _LabelIndex(NamedTuple):
    by_scientific: dict[str, int]
    by_name: dict[str, int]
    by_name_and_scientific: dict[tuple[str, str], int]


@functools.lru_cache(maxsize=4)
def _label_index(labels: tuple[GeoLabel, ...]) -> _LabelIndex:
    """Lookups into `labels`, built once per list (normalising 12,012 names is most of a match's
    time). Where several rows share a key the first wins, as setdefault keeps it."""
    by_scientific: dict[str, int] = {}
    by_name: dict[str, int] = {}
    by_name_and_scientific: dict[tuple[str, str], int] = {}
    for index, label in enumerate(labels):
        scientific = _spaced_key(label.scientific)
        name = normalised_name(label.common)
        by_scientific.setdefault(scientific, index)
        if name:
            by_name.setdefault(name, index)
            by_name_and_scientific.setdefault((name, scientific), index)
    return _LabelIndex(by_scientific, by_name, by_name_and_scientific)


def _find(class_name: str, index: _LabelIndex, alias_table: dict[str, _AliasTarget]) -> tuple[int, str] | None:
    scientific = _spaced_key(class_name)
    if scientific in index.by_scientific:
        return index.by_scientific[scientific], BY_SCIENTIFIC
    words = scientific.split(" ")
    if len(words) == 3 and (binomial := " ".join(words[:2])) in index.by_scientific:
        return index.by_scientific[binomial], BY_SCIENTIFIC
    name = normalised_name(class_name)
    if not name:
        return None
    # The alias table before eBird's own names: it is the more specific of the two, and five of its
    # names are false friends, British names that eBird gives to a different bird (Black Vulture,
    # Azure-winged Magpie, ...), which the plain name match would get wrong.
    target = alias_table.get(name)
    if target is not None:
        target_name = normalised_name(target.common)
        found = index.by_name_and_scientific.get((target_name, _spaced_key(target.scientific)))
        if found is None:
            found = index.by_name.get(target_name)
        if found is not None:
            return found, BY_ALIAS
    if name in index.by_name:
        return index.by_name[name], BY_NAME
    return None


def match_species(class_names: Sequence[str], labels: Sequence[GeoLabel]) -> SpeciesMatch:
    """Each class's geomodel label, tried in this order:

    1. the class name as a scientific name ("Ardea cinerea", any case and spacing) against the
       labels' scientific names; a trinomial that is not a label falls back to its binomial;
    2. the shipped alias table (aliases.tsv): the class name normalised (normalised_name) as its
       key; the target is the label with that eBird name and scientific name, or failing that the
       first with that eBird name;
    3. the class name normalised against the labels' eBird English names, normalised.

    Where a key fits several labels (labels.txt names Tyto furcata and Tyto alba both "American
    Barn Owl"), the first in label order is taken. A class matching none is listed in `unmatched`,
    never an error."""
    labels = tuple(labels)
    index = _label_index(labels)
    alias_table = _alias_table()
    matches: dict[str, Match] = {}
    unmatched: dict[str, None] = {}  # a dict keeps a class named twice listed once, in order
    for class_name in class_names:
        if class_name in matches or class_name in unmatched:
            continue
        found = _find(class_name, index, alias_table)
        if found is None:
            unmatched[class_name] = None
        else:
            label_index, how = found
            matches[class_name] = Match(label_index, labels[label_index], how)
    return SpeciesMatch(tuple(class_names), matches, tuple(unmatched))


# --- finding a species by any part of any of its names ---------------------------------------

# How close a name came to what was typed (SpeciesHit.closeness), closest first.
EXACT, WORD_PREFIX, SUBSTRING = 0, 1, 2


def search_key(text: str) -> str:
    """`text` as a search compares it: accents dropped (NFKD, combining marks removed), case
    folded, apostrophes dropped, every other run of punctuation or space one space. Unlike
    normalised_name, spellings are kept, so "gre" is still the start of "Grey Heron"."""
    if not text.isascii():
        text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return _NOT_WORD.sub(" ", _APOSTROPHES.sub("", text.casefold())).strip()


class SpeciesNames(NamedTuple):
    name: str  # as the model spells it: what a search chooses
    also: tuple[str, ...] = ()  # the names beside it: its eBird English name, its scientific name


class SpeciesHit(NamedTuple):
    name: str  # the model's name of the species found
    matched: str  # the name of it that matched: `name`, or one of the names beside it
    closeness: int  # EXACT, WORD_PREFIX or SUBSTRING


def names_beside(class_names: Sequence[str], labels: Sequence[GeoLabel] | None = None) -> list[SpeciesNames]:
    """Each class with the names it also goes by, found as the range prior finds its label
    (match_species over `labels`, the shipped list by default): "Grey Heron" with "Gray Heron"
    and "Ardea cinerea". A class with no label, or shipped lists that cannot be read, leave
    the class name alone: searching by it still works."""
    try:
        matched = match_species(class_names, published_labels() if labels is None else labels)
    except LabelsError:
        return [SpeciesNames(name) for name in class_names]
    species = []
    for name in class_names:
        label = matched.ebird(name)
        others = [] if label is None else [label.common, label.scientific]
        keys, also = {search_key(name)}, []
        for other in others:  # "European Robin" is its own eBird name: kept once
            if search_key(other) not in keys:
                keys.add(search_key(other))
                also.append(other)
        species.append(SpeciesNames(name, tuple(also)))
    return species


class SpeciesSearch:
    """Ranks species by how closely any of their names fits a typed text: the one matcher
    behind the Library tab's search, the label fields, "All species…" and `birdid find`."""

    def __init__(self, species: Iterable[SpeciesNames | str]) -> None:
        self.species: list[SpeciesNames] = [SpeciesNames(s) if isinstance(s, str) else s for s in species]
        # Per species: (each of its names, that name's key, the key's words), its own name first.
        self._keys = [
            [(shown, key, key.split(" ")) for shown in (names.name, *names.also) if (key := search_key(shown))]
            for names in self.species
        ]

    def matching(self, text: str) -> list[SpeciesHit]:
        """Every species any of whose names holds `text`: exact names first, then those with a
        word starting with each typed word ("eur rob" -> European Robin), then those holding it
        anywhere ("obin"); within each, the species' own name before the names beside it, then
        alphabetical. Case, accents and punctuation do not matter. Nothing for an empty text."""
        query = search_key(text)
        if not query:
            return []
        words = query.split(" ")
        ranked: list[tuple[int, int, str, SpeciesHit]] = []
        for names, keys in zip(self.species, self._keys, strict=True):
            best: tuple[int, int, str] | None = None
            for which, (shown, key, key_words) in enumerate(keys):
                if key == query:
                    closeness = EXACT
                elif all(any(word.startswith(typed) for word in key_words) for typed in words):
                    closeness = WORD_PREFIX
                elif query in key or all(typed in key for typed in words):
                    closeness = SUBSTRING
                else:
                    continue
                if best is None or (closeness, min(which, 1)) < best[:2]:
                    best = (closeness, min(which, 1), shown)
            if best is not None:
                ranked.append((best[0], best[1], names.name.casefold(), SpeciesHit(names.name, best[2], best[0])))
        ranked.sort(key=lambda row: row[:3])
        return [hit for *_, hit in ranked]

    def chosen(self, text: str) -> str | list[str]:
        """The species `text` names, or the names it could mean (none or several): a species
        whose own name is `text` (as typed_species compares it) or that alone is the closest fit,
        else every species at that closest fit, or [] when nothing fits."""
        own = typed_species(text, [names.name for names in self.species])
        if own is not None:
            return own
        hits = self.matching(text)
        closest = [hit.name for hit in hits if hit.closeness == hits[0].closeness] if hits else []
        return closest[0] if len(closest) == 1 else closest


def ambiguity_sentence(text: str, names: list[str], where: str = "the model's species", limit: int = 8) -> str:
    """One sentence for a typed name that fits no species, or several: which, so the person can
    name one."""
    if not names:
        return f"{shown_name(text)} is not a name of any of {where}."
    listed = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"{shown_name(text)} could be {len(names)} of {where}: {listed}; name one."
