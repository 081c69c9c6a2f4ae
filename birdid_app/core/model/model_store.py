"""The installed models: which files, whether each is the published one, which one is active.

The index is a small JSON file in the models folder. Each entry records the file's SHA-256 with
the size and modification time it had when hashed, so a start-up checks two numbers instead of
reading 195 MB, and a file that changed since is hashed again before anything loads it. It also
records whether the file's zip CRC-32s were checked: once, at import or at the first load, since
a file whose bytes have not changed cannot start failing them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import BirdidError, Cancelled, CheckpointError, FileProblem
from birdid_app.core.files import open_regular_file, read_regular_file
from birdid_app.core.paths import models_dir

INDEX_VERSION = 1
HASH_CHUNK = 1 << 20
INDEX_LIMIT = 16 << 20  # bytes: the index is a few hundred bytes a model


@dataclass(frozen=True)
class PublishedModel:
    """The model birdid is made for, as published on the hub."""

    name: str
    repo_id: str
    filename: str
    revision: str
    sha256: str
    approx_size_mb: int  # for the download button; the exact size comes from the server


PUBLISHED_MODEL = PublishedModel(
    name="hiera_abswin_base_mim-intermediate-eu-common",
    repo_id="birder-project/hiera_abswin_base_mim-intermediate-eu-common",
    filename="hiera_abswin_base_mim-intermediate-eu-common.pt",
    revision="main",
    sha256="ce44e29c36b083c9e1d0eed9693a3f9c5bc39c03cf03efce3d453bfa328c7b9c",
    approx_size_mb=195,
)


class ModelStoreError(BirdidError):
    """A problem with the installed models (missing, changed, unknown name)."""


class _IndexProblem(FileProblem):
    """The index file cannot be read; raised as ModelStoreError."""


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    sha256: str
    size: int
    mtime_ns: int
    verified: bool  # the file is byte for byte the published model
    origin: str  # "download" or "import"
    source: str  # the URL downloaded from, or the file imported from
    # Every zip entry matched its CRC-32 when these bytes were checked. False in entries written
    # before birdid checked CRCs: those are checked at their next load.
    crc_checked: bool = False

    @property
    def trust_label(self) -> str:
        """How the app describes this model wherever its results appear."""
        if self.verified:
            return "verified"
        return f"unverified, imported from {self.source}"

    def to_json(self) -> dict:
        return asdict(self) | {"path": str(self.path)}

    @classmethod
    def from_json(cls, data: dict) -> InstalledModel:
        """An index entry; fields a later birdid added are ignored, so that an index it wrote
        still opens here."""
        known = {f.name for f in fields(cls)}
        return cls(**({k: v for k, v in data.items() if k in known} | {"path": Path(data["path"])}))


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The file's SHA-256. Raises CheckpointError naming it when it is not a regular file (a
    named pipe in a model's place must not hang a start) or cannot be opened."""
    digest = hashlib.sha256()
    with open_regular_file(path, "a model file", CheckpointError) as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


class ModelStore:
    """The models folder and its index. Cheap to create; reads the index on each query, so a
    command line run and the window see each other's changes."""

    def __init__(self, root: Path | None = None, published: PublishedModel | None = None) -> None:
        self.root = Path(root) if root is not None else models_dir()
        self.published = published or PUBLISHED_MODEL

    @property
    def index_path(self) -> Path:
        return self.root / "models.json"

    # --- reading -----------------------------------------------------------------------------

    def models(self) -> list[InstalledModel]:
        return [InstalledModel.from_json(entry) for entry in self._read_index()["models"]]

    def active(self) -> InstalledModel | None:
        index = self._read_index()
        return next((m for m in self.models() if m.name == index["active"]), None)

    def get(self, name: str) -> InstalledModel:
        for model in self.models():
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models()) or "none"
        raise ModelStoreError(f"No installed model is called '{name}' (installed: {known}).")

    def recorded_sha256(self, path: Path) -> str | None:
        """The SHA-256 recorded for the installed model file at `path`, while it has the size and
        modification time it had when hashed (what checked_path trusts); None for any other file."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        where = os.path.abspath(path)
        for model in self.models():
            if os.path.abspath(model.path) == where and (model.size, model.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                return model.sha256
        return None

    def checked_path(self, model: InstalledModel) -> Path:
        """The model's file, after making sure it is still the file that was installed and that
        its CRC-32s were checked; load it with read_checkpoint(path, check_crc=False).

        A file with the recorded size and modification time is trusted without reading it; any
        other is hashed again, and refused if its bytes changed. An entry whose CRCs were never
        checked (written by an older birdid, or a download) has them checked now, once: a damaged
        file raises CheckpointError, a sound one is recorded as checked."""
        path = model.path
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ModelStoreError(
                f"The model file {path} is missing: download or import the model again."
            ) from None
        updated = model
        if stat.st_size != model.size or stat.st_mtime_ns != model.mtime_ns:
            if stat.st_size != model.size or sha256_file(path) != model.sha256:
                raise ModelStoreError(
                    f"The model file {path} changed since it was installed, so birdid will not load it: "
                    "download or import the model again."
                )
            updated = replace(updated, mtime_ns=stat.st_mtime_ns)
        if not model.crc_checked:
            from birdid_app.core.model.checkpoint import check_crcs  # torch: only when needed

            check_crcs(path)
            updated = replace(updated, crc_checked=True)
        if updated != model:
            self._replace(model, updated)
        return path

    def verify(self, model: InstalledModel, progress: Callable[[int], None] | None = None) -> bool:
        """Hash the whole file again; True when it still has the bytes recorded at install."""
        try:
            if sha256_file(model.path, progress) != model.sha256:
                return False
        except CheckpointError:  # gone, or not a regular file any more
            return False
        stat = model.path.stat()
        self._replace(model, replace(model, size=stat.st_size, mtime_ns=stat.st_mtime_ns))
        return True

    # --- changing ----------------------------------------------------------------------------

    def add(
        self,
        path: Path,
        *,
        sha256: str,
        origin: str,
        source: str,
        name: str | None = None,
        crc_checked: bool = False,
    ) -> InstalledModel:
        """Record a file already in place; the first model added becomes the active one.

        `crc_checked`: the caller compared the file's CRC-32s (read_checkpoint does); when False,
        the first load checks them."""
        stat = path.stat()
        verified = sha256 == self.published.sha256
        model = InstalledModel(
            name=self.published.name if verified else (name or path.stem),
            path=path,
            sha256=sha256,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            verified=verified,
            origin=origin,
            source=source,
            crc_checked=crc_checked,
        )
        index = self._read_index()
        index["models"] = [m for m in index["models"] if m["name"] != model.name] + [model.to_json()]
        if index["active"] is None:
            index["active"] = model.name
        self._write_index(index)
        return model

    def set_active(self, name: str) -> InstalledModel:
        model = self.get(name)
        index = self._read_index()
        index["active"] = model.name
        self._write_index(index)
        return model

    def remove(self, name: str) -> InstalledModel:
        """Forget a model and delete its file if it lies in birdid's models folder (a file in
        the Hugging Face cache is left for the other tools that share it)."""
        model = self.get(name)
        index = self._read_index()
        index["models"] = [m for m in index["models"] if m["name"] != name]
        if index["active"] == name:
            index["active"] = index["models"][0]["name"] if index["models"] else None
        self._write_index(index)
        if model.path.parent == self.root:
            model.path.unlink(missing_ok=True)
        return model

    def import_file(
        self,
        source: Path,
        progress: Callable[[int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> InstalledModel:
        """Copy a model file into the models folder, hashing it on the way.

        The published file is recognised by its hash and marked verified. Any other file must pass
        the checkpoint loader's checks, CRC-32s included, and is kept as unverified. Nothing
        half-copied is ever left under a name the store would load."""
        source = Path(source)
        if not source.is_file():
            if not source.exists():
                problem = "there is no such file."
            elif source.is_dir():
                problem = "this is a folder, not a model file."
            else:
                problem = "this is not a regular file."
            raise CheckpointError(source, problem)
        self.root.mkdir(parents=True, exist_ok=True)
        handle, partial_name = tempfile.mkstemp(dir=self.root, prefix=".import-", suffix=".partial")
        partial = Path(partial_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out, open_regular_file(source, "a model file", CheckpointError) as inp:
                while chunk := inp.read(HASH_CHUNK):
                    if should_cancel is not None and should_cancel():
                        raise Cancelled(f"The import of {source} was cancelled.")
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            sha256 = digest.hexdigest()
            for model in self.models():
                if model.sha256 == sha256:
                    return model  # already installed; the copy is dropped below
            # The published file needs no loader checks: its hash names its bytes. Its CRCs are
            # checked at its first load, as a download's are, so this path needs no torch.
            crc_checked = False
            if sha256 == self.published.sha256:
                name = self.published.name
            else:
                from birdid_app.core.model.checkpoint import read_checkpoint  # torch: only when needed

                try:
                    read_checkpoint(partial, check_crc=True)
                except CheckpointError as error:
                    raise CheckpointError(source, error.problem) from None
                name, crc_checked = self._free_name(source.stem), True
            destination = self.root / f"{name}.pt"
            os.replace(partial, destination)
            return self.add(
                destination, sha256=sha256, origin="import", source=str(source), name=name, crc_checked=crc_checked
            )
        finally:
            partial.unlink(missing_ok=True)

    # --- the index file ----------------------------------------------------------------------

    def _free_name(self, stem: str) -> str:
        taken = {m.name for m in self.models()} | {self.published.name}
        name, number = stem, 2
        while name in taken or (self.root / f"{name}.pt").exists():
            name, number = f"{stem}-{number}", number + 1
        return name

    def _replace(self, old: InstalledModel, new: InstalledModel) -> None:
        index = self._read_index()
        # Merged, not replaced: fields a later birdid wrote outlive this one's rewrite.
        index["models"] = [m | new.to_json() if m["name"] == old.name else m for m in index["models"]]
        self._write_index(index)

    def _read_index(self) -> dict:
        if not self.index_path.exists():
            return {"version": INDEX_VERSION, "active": None, "models": []}
        try:
            data = json.loads(read_regular_file(self.index_path, INDEX_LIMIT, "a model index", _IndexProblem))
        except _IndexProblem as problem:
            reason = problem.problem[:1].lower() + problem.problem[1:].rstrip(".")
            raise ModelStoreError(f"The model index {self.index_path} cannot be read ({reason}).") from None
        except ValueError as error:
            raise ModelStoreError(f"The model index {self.index_path} cannot be read ({error}).") from None
        if not isinstance(data, dict):
            raise ModelStoreError(f"The model index {self.index_path} cannot be read (it is not a JSON object).")
        if data.get("version") != INDEX_VERSION:
            raise ModelStoreError(f"The model index {self.index_path} is from another version of birdid.")
        return data

    def _write_index(self, index: dict) -> None:
        """Atomically: a crash leaves the old index or the new one, never half of one."""
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.index_path, "w") as out:
            json.dump(index, out, indent=2)
