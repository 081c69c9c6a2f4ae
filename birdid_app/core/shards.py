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
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
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
from birdid_app.core.preprocess import squash_to_input_size

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
        from birdid_app.core.inference import Classifier

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
    """Shard rows of one model, the newest row of each path (the file as it was last seen)."""

    rows: dict[str, dict] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable shards and why
    refused: list[tuple[Path, str]] = field(default_factory=list)  # shards of another model and why


def read_shards(files: Sequence[Path], model_name: str, columns: list[str] | None = None) -> ShardRead:
    """Read `files`: an unreadable one (half-written by a worker that died, say) is skipped and
    said so; one with rows of another model is refused whole."""
    read = ShardRead()
    for file in files:
        try:
            table = pq.read_table(file, columns=columns)
            if "model" not in table.column_names or "path" not in table.column_names:
                raise ValueError("it has no path or model column")
        except (OSError, ValueError, pa.ArrowException) as error:
            read.skipped.append((file, f"{file}: This shard cannot be read, so it was skipped ({error})."))
            continue
        models = set(table.column("model").to_pylist())
        if models - {model_name}:
            other = ", ".join(sorted(str(m) for m in models - {model_name}))
            read.refused.append((file, f"{file}: This shard holds identifications by {other}, not {model_name}; "
                                       "it was not imported."))
            continue
        for row in table.to_pylist():
            kept = read.rows.get(row["path"])
            if kept is None or row["mtime_ns"] >= kept["mtime_ns"]:
                read.rows[row["path"]] = row
    return read


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
    refused: list[str] = field(default_factory=list)  # sentences: shards of another model


def import_shards(library: Library, files: Sequence[Path], model_name: str,
                  species_names: Iterable[str] = ()) -> ImportSummary:
    """Merge shard rows by `model_name` into `library`, idempotently: a photo the library already
    holds with the same size, time, fingerprint and identification is left alone, so importing
    twice changes nothing. The indexer's folders named in the shards become the library's."""
    from birdid_app.core.inference import Identification

    read = read_shards(files, model_name)
    summary = ImportSummary(skipped=[why for _, why in read.skipped], refused=[why for _, why in read.refused])
    known = library._known(model_name)
    names = {name.casefold(): name for name in species_names}
    for folder in sorted({row["folder"] for row in read.rows.values() if row["folder"]}):
        if Path(folder) not in library.folders():
            library.add_folder(Path(folder))
    pending = []
    for path, row in sorted(read.rows.items()):
        old = known.get(path)
        same_file = old is not None and (old[1], old[2], old[3]) == (row["size"], row["mtime_ns"], row["fingerprint"])
        if same_file and row["fingerprint"] is not None and (old[4] or (old[5] is not None and row["embedding"] is None)):
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
    pairs = {path: row["companion"] for path, row in read.rows.items() if row["companion"]}
    for start in range(0, len(pending), _IMPORT_BATCH):
        store_rows(library, model_name, pending[start : start + _IMPORT_BATCH], pairs=pairs,
                   species_names=names, summary=summary.stored)
    summary.imported = len(pending)
    return summary
