"""Index rows computed away from the library (on a Ray cluster: birdid_app/cluster.py), kept as
Parquet shards, and merged into a library by `birdid library import`.

The steps a cluster runs are the desktop indexer's own, cut where a cluster needs them cut:
`decode_batch` is the decoder threads' work (fingerprint, EXIF, keywords, the picture squashed
to the model's input size) and `Embedder` the model's (one Classifier per worker, loaded once);
`import_shards` stores the rows with the indexer's own commit (library.store_rows). So a folder
indexed on a cluster and imported gives the rows a local `birdid index` gives.

One shard row per photo: path, size, mtime_ns, fingerprint, taken_at, latitude, longitude,
error, keywords, folder (the folder given to the indexer), companion (the JPEG beside a RAW),
model, identified, embedding (float32, null when the photo could not be read), species and
probabilities (the top 5). pyarrow comes with the `cluster` extra; nothing else in birdid imports this module.

Shards may come from anywhere, so import trusts none of it: every row is checked (a full path,
inside a folder of the library or one the person names with the import; the model's species;
an embedding search can use) and a wrong one refused with a sentence naming its shard and row.
The folder column is the indexer's own note; it never adds a folder to the library.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from birdid_app.core.library import (
    TOP_SPECIES,
    IndexSummary,
    Library,
    _decode_for_index,
    _Decoded,
    _Work,
    store_rows,
)
from birdid_app.core.model.preprocess import squash_to_input_size

SHARD_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("size", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("fingerprint", pa.string()),
    ("taken_at", pa.string()),
    ("latitude", pa.float64()),
    ("longitude", pa.float64()),
    ("error", pa.string()),
    ("keywords", pa.list_(pa.string())),
    ("folder", pa.string()),
    ("companion", pa.string()),
    ("model", pa.string()),
    ("identified", pa.bool_()),  # has an embedding: what a rerun reads, without the embeddings
    ("embedding", pa.list_(pa.float32())),
    ("species", pa.list_(pa.string())),
    ("probabilities", pa.list_(pa.float32())),
])
# What a rerun needs to know what is done already: read without the embeddings.
_KNOWN_COLUMNS = ["path", "size", "mtime_ns", "fingerprint", "model", "error", "identified"]
# Rows stored per transaction by import_shards, as the indexer commits per batch.
_IMPORT_BATCH = 512
# Embeddings are kept as float32: a larger value would become infinity.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def decode_batch(batch: dict[str, np.ndarray], *, input_size: tuple[int, int], read_keywords: bool) -> dict:
    """Decode a batch of photos for the model, as the indexer's decoder threads do.

    `batch`: path, size, mtime_ns, folder, companion [n] (one photo per row). Adds fingerprint,
    taken_at, latitude, longitude (NaN when unknown), error, keywords (JSON lists), vanished, and
    pixels: uint8 [n, H, W, 3], each picture squashed to `input_size` (height, width) as
    to_model_input would (zeros for a photo that could not be read). Never raises for a photo.
    """
    count = len(batch["path"])
    height, width = input_size
    pixels = np.zeros((count, height, width, 3), dtype=np.uint8)
    out = {name: np.asarray(batch[name]) for name in ("path", "size", "mtime_ns", "folder", "companion")}
    columns: dict[str, list] = {"fingerprint": [], "taken_at": [], "latitude": [], "longitude": [], "error": [],
                                "keywords": [], "vanished": [], "decoded": []}
    for row in range(count):
        work = _Work(Path(str(batch["path"][row])), int(batch["size"][row]), int(batch["mtime_ns"][row]),
                     None, file_changed=True)
        result = _decode_for_index(work, input_size, read_keywords)
        if result.image is not None:
            pixels[row] = np.asarray(squash_to_input_size(result.image, input_size))
        taken_at, latitude, longitude = result.metadata
        columns["fingerprint"].append(result.fingerprint)
        columns["taken_at"].append(taken_at)
        columns["latitude"].append(math.nan if latitude is None else latitude)
        columns["longitude"].append(math.nan if longitude is None else longitude)
        columns["error"].append(result.error)
        columns["keywords"].append(json.dumps(list(result.keywords)))
        columns["vanished"].append(result.vanished)
        columns["decoded"].append(result.image is not None)
    for name in ("fingerprint", "taken_at", "error", "keywords"):
        out[name] = np.array(columns[name], dtype=object)
    out["latitude"] = np.array(columns["latitude"], dtype=np.float64)
    out["longitude"] = np.array(columns["longitude"], dtype=np.float64)
    out["vanished"] = np.array(columns["vanished"], dtype=bool)
    out["decoded"] = np.array(columns["decoded"], dtype=bool)
    out["pixels"] = pixels
    return out


class Embedder:
    """The model on one worker: loaded once, then each decoded batch through it. Returns the
    batch as shard rows (a pyarrow Table in SHARD_SCHEMA), photos deleted since the scan left out."""

    def __init__(self, model_path: str, model_name: str, device: str = "cpu", precision: str = "fp32") -> None:
        from birdid_app.core.model.inference import Classifier

        self.classifier = Classifier.from_file(Path(model_path), device=device, precision=precision)
        self.model_name = model_name

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from PIL import Image

        decoded = [row for row in range(len(batch["path"])) if batch["decoded"][row]]
        identified = dict(zip(decoded, self.classifier.identify_images(
            [Image.fromarray(batch["pixels"][row]) for row in decoded], keep_stage_maps=False), strict=True))
        rows = []
        for row in range(len(batch["path"])):
            if batch["vanished"][row]:  # deleted since the scan: the next run sees it gone
                continue
            identification = identified.get(row)
            top = identification.ranked(TOP_SPECIES) if identification is not None else []
            rows.append({
                "path": str(batch["path"][row]),
                "size": int(batch["size"][row]),
                "mtime_ns": int(batch["mtime_ns"][row]),
                "fingerprint": _text(batch["fingerprint"][row]),
                "taken_at": _text(batch["taken_at"][row]),
                "latitude": _none_if_nan(batch["latitude"][row]),
                "longitude": _none_if_nan(batch["longitude"][row]),
                "error": _text(batch["error"][row]),
                "keywords": json.loads(batch["keywords"][row]),
                "folder": str(batch["folder"][row]),
                "companion": str(batch["companion"][row]) or None,
                "model": self.model_name,
                "identified": identification is not None,
                "embedding": None if identification is None else identification.embedding.astype(np.float32).tolist(),
                "species": [score.name for score in top] if identification is not None else None,
                "probabilities": [score.probability for score in top] if identification is not None else None,
            })
        return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _text(value) -> str | None:
    """A text column's value as it comes back from Ray: a column of nothing but None travels as
    floats (NaN)."""
    return None if value is None or (isinstance(value, float | np.floating) and math.isnan(value)) else str(value)


def shard_files(paths: Iterable[Path]) -> list[Path]:
    """The Parquet files named, folders searched (not recursively), sorted."""
    found = []
    for path in paths:
        found.extend(sorted(path.glob("*.parquet")) if path.is_dir() else [path])
    return found


@dataclass
class ShardRead:
    """Shard rows of one model, the newest row of each photo (the file as it was last seen)."""

    rows: dict[str, dict] = field(default_factory=dict)  # normalised path -> row
    origin: dict[str, tuple[Path, int]] = field(default_factory=dict)  # path -> (shard, row number) of the row kept
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable shards and why
    refused: list[tuple[Path, str]] = field(default_factory=list)  # shards refused whole (another model...) and why
    refused_rows: list[str] = field(default_factory=list)  # sentences: rows refused, each naming shard and row


# What each column may hold, by the Arrow type a shard declares for it (a column of nothing but
# nulls has the null type; the rows then say what is missing).
def _fits(actual: pa.DataType, wanted: pa.DataType) -> bool:
    if pa.types.is_null(actual):
        return True
    if pa.types.is_list(wanted):
        return ((pa.types.is_list(actual) or pa.types.is_large_list(actual))
                and _fits(actual.value_type, wanted.value_type))
    if pa.types.is_string(wanted):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_boolean(wanted):
        return pa.types.is_boolean(actual)
    if pa.types.is_integer(wanted):
        return pa.types.is_integer(actual)
    return pa.types.is_floating(actual) or pa.types.is_integer(actual)


def read_shards(files: Sequence[Path], model_name: str, columns: list[str] | None = None, *,
                check: Callable[[dict], str | None] | None = None) -> ShardRead:
    """Read `files`: an unreadable one (half-written by a worker that died, say) is skipped and
    said so; one with rows of another model, without a column it needs or with a column of the
    wrong type is refused whole. Every row's path must be a full path (normalised: `P/./a.jpg`
    and `P//a.jpg` are one photo) and its size and time whole numbers; `check` may refuse more
    (its phrase, a sentence, follows "SHARD, row N: "; rows count from 1). Of the rows left for one
    photo the newest wins (by mtime_ns; the later shard, then the later row, when equal)."""
    read = ShardRead()
    wanted = columns if columns is not None else SHARD_SCHEMA.names
    for file in files:
        try:
            table = pq.read_table(file, columns=[c for c in wanted if c in pq.read_schema(file).names])
        except (OSError, ValueError, pa.ArrowException) as error:
            read.skipped.append((file, f"{file}: This shard cannot be read, so it was skipped ({error})."))
            continue
        missing = [name for name in wanted if name not in table.column_names]
        if missing:
            read.refused.append((file, f"{file}: This shard has no {', '.join(missing)} "
                                       f"column{'s' if len(missing) > 1 else ''}, so it was not imported; "
                                       "write it again with `birdid index --engine ray`."))
            continue
        wrong = [(name, table.schema.field(name).type) for name in wanted
                 if not _fits(table.schema.field(name).type, SHARD_SCHEMA.field(name).type)]
        if wrong:
            name, actual = wrong[0]
            read.refused.append((file, f"{file}: This shard's {name} column holds {str(actual)[:100]}, not "
                                       f"{SHARD_SCHEMA.field(name).type}, so it was not imported; write it again "
                                       "with `birdid index --engine ray`."))
            continue
        models = set(table.column("model").to_pylist())
        if models - {model_name}:
            other = ", ".join(sorted(str(m) for m in models - {model_name}))
            read.refused.append((file, f"{file}: This shard holds identifications by {other}, not {model_name}; "
                                       "it was not imported."))
            continue
        for number, row in enumerate(table.to_pylist(), start=1):
            problem = _path_problem(row) or (check(row) if check is not None else None)
            if problem is not None:
                read.refused_rows.append(f"{file}, row {number}: {problem}")
                continue
            kept = read.rows.get(row["path"])
            if kept is None or row["mtime_ns"] >= kept["mtime_ns"]:
                read.rows[row["path"]] = row
                read.origin[row["path"]] = (file, number)
    return read


def normalised_path(value) -> tuple[str | None, str | None]:
    """(a shard's path as the one spelling the library keeps, None), os.path.normpath's:
    `P/./a.jpg` and `P//a.jpg` are `P/a.jpg`; or (None, why not) when it cannot name a photo:
    not text, empty, with a NUL character, or not a full path."""
    if not isinstance(value, str):
        return None, (f"Its path is {'missing' if value is None else 'not text'}; each row must name its photo "
                      "by its full path.")
    if not value:
        return None, "Its path is empty; each row must name its photo by its full path."
    if "\0" in value:
        return None, f"Its path {value[:200]!r} holds a NUL character, which no file name can."
    if not os.path.isabs(value):
        return None, (f"Its path {value[:200]!r} is not a full path; each row must name its photo from the top "
                      "of its disk.")
    return os.path.normpath(value), None


def _path_problem(row: dict) -> str | None:
    """Why the row cannot be read as a photo's (its path normalised in place), or None."""
    path, why = normalised_path(row["path"])
    if path is None:
        return why
    row["path"] = path
    for name in ("size", "mtime_ns"):
        if name in row and not _whole(row[name]):
            return f"Its {name} is {row[name]!r}, not a whole number of at least 0."
    return None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text_or_none(value) -> bool:
    return value is None or isinstance(value, str)


class _RowCheck:
    """What import_shards asks of each row beyond a path, size and time: the types of the other
    columns, a place on Earth, and an identification search can use (an embedding of the model's
    width with finite values, not all zero; the model's own species with probabilities)."""

    def __init__(self, embedding_dim: int | None, species: set[str]) -> None:
        self.dim = embedding_dim
        self.species = species

    def __call__(self, row: dict) -> str | None:
        for name in ("fingerprint", "taken_at", "error", "folder", "companion"):
            if not _text_or_none(row[name]):
                return f"Its {name} is not text."
        if row["companion"]:
            companion, why = normalised_path(row["companion"])
            if companion is None:
                return f"Its companion {row['companion'][:200]!r} is not the full path of a file."
            row["companion"] = companion
        else:
            row["companion"] = None
        for name, limit in (("latitude", 90.0), ("longitude", 180.0)):
            value = row[name]
            if value is not None and not (_number(value) and -limit <= value <= limit):
                return f"Its {name} {value!r} is not a place on Earth (from -{limit:g} to {limit:g})."
        keywords = row["keywords"]
        if keywords is not None and not (isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)):
            return "Its keywords are not a list of text."
        if not isinstance(row["identified"], bool) or row["identified"] != (row["embedding"] is not None):
            return "Its identified column does not say whether it has an embedding; index the photo again."
        if row["embedding"] is None:
            return None
        return self._identification_problem(row)

    def _identification_problem(self, row: dict) -> str | None:
        embedding = row["embedding"]  # a list of numbers or None: the column's type was checked
        vector = np.asarray(embedding, dtype=np.float64)  # None reads as NaN
        if not (np.isfinite(vector).all() and (vector.size == 0 or np.abs(vector).max() < _FLOAT32_MAX)):
            return "Its embedding holds values that are not finite numbers (NaN, infinity or missing)."
        if self.dim is None:
            self.dim = len(embedding)  # no model or library to compare with: the first row sets it
        if len(embedding) != self.dim:
            return (f"Its embedding has {len(embedding)} values, not the model's {self.dim}; it was made by "
                    "another model.")
        vector = vector.astype(np.float32)
        with np.errstate(over="ignore", under="ignore"):
            norm = np.sqrt(np.dot(vector, vector))  # as the search normalises it (core/library/vectors.py)
        if not (np.isfinite(norm) and norm > 0):
            return "Its embedding is all zeros (or too large to compare), which no photo gives."
        species, probabilities = row["species"], row["probabilities"]
        if (not isinstance(species, list) or not isinstance(probabilities, list) or not species
                or len(species) != len(probabilities) or len(species) > TOP_SPECIES):
            return f"Its species and probabilities are not the model's top {TOP_SPECIES}, one probability each."
        if not all(isinstance(name, str) for name in species) or len(set(species)) != len(species):
            return "Its species are not distinct names."
        if self.species:
            unknown = [name for name in species if name not in self.species]
            if unknown:
                return f"Its species {unknown[0][:100]!r} is not one of the model's; it was made by another model."
        if not all(_number(p) and 0.0 <= p <= 1.0 for p in probabilities) or sum(probabilities) > 1.001:
            return "Its probabilities are not numbers from 0 to 1 that add up to at most 1 (NaN, say)."
        return None


def known_rows(files: Sequence[Path], model_name: str) -> ShardRead:
    """What shards already hold, for a rerun to skip: path -> the row without its pixels' results."""
    return read_shards(files, model_name, columns=_KNOWN_COLUMNS)


def is_done(row: dict | None, size: int, mtime_ns: int) -> bool:
    """The local indexer's rule: a file of the same size and modification time, read before (its
    fingerprint known), and either identified or recorded as unreadable, needs no work."""
    return (row is not None and row["size"] == size and row["mtime_ns"] == mtime_ns and row["fingerprint"] is not None
            and (row["identified"] or row["error"] is not None))


@dataclass
class ImportSummary:
    imported: int = 0  # photos stored (new or changed)
    unchanged: int = 0  # already in the library exactly so
    stored: IndexSummary = field(default_factory=IndexSummary)  # embedded / failed among the imported
    skipped: list[str] = field(default_factory=list)  # sentences: unreadable shards
    refused: list[str] = field(default_factory=list)  # sentences: shards refused whole (another model...)
    refused_rows: list[str] = field(default_factory=list)  # sentences: rows that cannot be a photo's
    outside: list[tuple[Path, int, str]] = field(default_factory=list)  # (shard, row, path): outside the folders
    folders_added: list[Path] = field(default_factory=list)  # folders named with the import that rows came into

    def sentences(self) -> list[str]:
        """What was not imported and why, a few sentences however many rows: each shard refused
        or skipped, then the rows refused counted, the first named."""
        said = self.skipped + self.refused
        if self.refused_rows:
            said.append(self.refused_rows[0])
        if len(self.refused_rows) > 1:
            said.append(f"{len(self.refused_rows)} shard rows were refused in all, for reasons like the one "
                        "above; the other rows were imported.")
        if self.outside:
            shard, row, path = self.outside[0]
            others = len(self.outside) - 1
            said.append(f"{shard}, row {row}: The photo {path} is not in a folder of the library"
                        + (f" (nor are {others} more rows' photos)" if others else "")
                        + "; name its folder with --folder FOLDER to import it, or add it with "
                          "`birdid index FOLDER` first.")
        return said

    @property
    def refused_anything(self) -> bool:
        return bool(self.skipped or self.refused or self.refused_rows or self.outside)


def import_shards(library: Library, files: Sequence[Path], model_name: str,
                  species_names: Iterable[str] = (), *, folders: Iterable[Path] = (),
                  embedding_dim: int | None = None) -> ImportSummary:
    """Merge shard rows by `model_name` into `library`, idempotently: a photo the library already
    holds with the same size, time, fingerprint and identification is left alone, so importing
    twice changes nothing.

    Shards come from elsewhere, so every row is checked (read_shards, _RowCheck) and a row that
    is wrong is refused with a sentence naming its shard and row, the others imported. A photo
    must lie in a folder of the library or one of `folders` (named by the person with the import;
    those that rows came into become the library's): a shard never adds a folder by itself.
    Species must be `species_names` (the model's classes) where given; embeddings must have
    `embedding_dim` values, else the width the library's embeddings by this model already have."""
    from birdid_app.core.model.inference import Identification

    if embedding_dim is None:
        embedding_dim = library.embedding_width(model_name)
    species_names = list(species_names)
    read = read_shards(files, model_name, check=_RowCheck(embedding_dim, set(species_names)))
    summary = ImportSummary(skipped=[why for _, why in read.skipped], refused=[why for _, why in read.refused],
                            refused_rows=list(read.refused_rows))
    have = [Path(os.path.normpath(folder)) for folder in library.folders()]
    named = [Path(os.path.normpath(os.path.abspath(folder))) for folder in folders]
    named += [Path(folder).resolve() for folder in folders]  # the library keeps folders resolved
    rows: dict[str, dict] = {}
    came_into: set[Path] = set()
    for path, row in read.rows.items():
        inside = [folder for folder in have + named if _inside(path, folder)]
        if not inside or (row["companion"] and not any(_inside(row["companion"], f) for f in have + named)):
            summary.outside.append((*read.origin[path], path))
            continue
        rows[path] = row
        if not any(folder in have for folder in inside):
            came_into.add(inside[0])
    summary.outside.sort(key=lambda found: (str(found[0]), found[1]))
    for folder in sorted(came_into):
        library.add_folder(folder)
        summary.folders_added.append(folder)
    known = library.known(model_name)
    names = {name.casefold(): name for name in species_names}
    pending = []
    for path, row in sorted(rows.items()):
        old = known.get(path)
        same_file = old is not None and (old[1], old[2], old[3]) == (row["size"], row["mtime_ns"], row["fingerprint"])
        if same_file and old is not None and row["fingerprint"] is not None and (old[4] or (old[5] is not None and row["embedding"] is None)):
            summary.unchanged += 1
            continue
        work = _Work(Path(path), row["size"], row["mtime_ns"], row["fingerprint"], file_changed=not same_file)
        decoded = _Decoded(None, (row["taken_at"], row["latitude"], row["longitude"]), row["error"],
                           row["fingerprint"], keywords=tuple(row["keywords"] or ()))
        identification = None
        if row["embedding"] is not None:
            identification = Identification(
                path, np.asarray(row["probabilities"], dtype=np.float32), np.asarray(row["embedding"], dtype=np.float32),
                (), list(row["species"]), 0.0, 0,
            )
        pending.append((work, decoded, identification))
    pairs = {path: row["companion"] for path, row in rows.items() if row["companion"]}
    for start in range(0, len(pending), _IMPORT_BATCH):
        store_rows(library, model_name, pending[start : start + _IMPORT_BATCH], pairs=pairs,
                   species_names=names, summary=summary.stored)
    summary.imported = len(pending)
    return summary


def _inside(path: str | Path, folder: Path) -> bool:
    """Whether the photo `path` (normalised) lies under `folder`, by the names alone (the folder
    itself is no photo: its sidecar would be beside it, outside)."""
    return folder in Path(path).parents
