"""Installing models from files, choosing the active one, and trusting only verified bytes."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import torch

from birdid_app.cli import main
from birdid_app.core.errors import CheckpointError
from birdid_app.core.model import model_store
from birdid_app.core.model.model_store import ModelStore, ModelStoreError, sha256_file


@pytest.fixture
def published_is_small_model(small_model_file, monkeypatch):
    """Make the small checkpoint play the published model: the app expects its hash."""
    published = dataclasses.replace(model_store.PUBLISHED_MODEL, sha256=sha256_file(small_model_file))
    monkeypatch.setattr(model_store, "PUBLISHED_MODEL", published)
    return published



def store_files(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir())


def test_importing_the_published_file_marks_it_verified_and_active(published_is_small_model, small_model_file):
    store = ModelStore()
    model = store.import_file(small_model_file)
    assert model.verified and model.trust_label == "verified"
    assert model.name == published_is_small_model.name
    assert model.path == store.root / f"{model.name}.pt"
    assert model.path.read_bytes() == small_model_file.read_bytes()
    assert store.active() == model
    assert store.import_file(small_model_file) == model  # the same bytes again: no second copy
    assert store_files(store) == [f"{model.name}.pt", "models.json"]


def test_a_fine_tune_is_accepted_unverified_and_says_where_it_came_from(published_is_small_model, small_model_file, fine_tune):
    store = ModelStore()
    published = store.import_file(small_model_file)
    own = store.import_file(fine_tune)
    assert not own.verified and own.name == "my-garden-birds"
    assert own.trust_label == f"unverified, imported from {fine_tune}"
    assert store.active() == published  # the first one installed stays active
    assert store.set_active(own.name) == own and store.active() == own
    assert [m.name for m in store.models()] == [published.name, own.name]


@pytest.mark.parametrize(
    "content, phrase",
    [(b"just some text\n", "This is not a PyTorch model file."), (b"", "The file is empty.")],
)
def test_a_file_that_is_not_a_model_is_refused_and_nothing_is_left(tmp_path, content, phrase):
    source = tmp_path / "holiday.pt"
    source.write_bytes(content)
    store = ModelStore()
    with pytest.raises(CheckpointError, match=re.escape(f"holiday.pt: {phrase}")):
        store.import_file(source)
    assert store.models() == [] and store_files(store) == []


def test_a_checkpoint_with_code_in_it_is_refused(tmp_path, small_model_file):
    data = torch.load(small_model_file, weights_only=True)
    data["hook"] = print  # a pickled reference to a callable: weights_only refuses it
    source = tmp_path / "trojan.pt"
    torch.save(data, source)
    store = ModelStore()
    with pytest.raises(CheckpointError, match="trojan.pt: The file holds Python objects or code"):
        store.import_file(source)
    assert store_files(store) == []


def test_a_missing_import_source(tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere.pt: There is no such file\.$"):
        ModelStore().import_file(tmp_path / "nowhere.pt")


def test_start_up_trusts_size_and_mtime_without_reading_the_file(fine_tune, monkeypatch):
    store = ModelStore()
    model = store.import_file(fine_tune)
    monkeypatch.setattr(model_store, "sha256_file", lambda *a, **k: pytest.fail("hashed at start-up"))
    assert store.checked_path(store.active()) == model.path


def test_a_touched_file_is_hashed_again_and_a_changed_one_refused(fine_tune):
    store = ModelStore()
    model = store.import_file(fine_tune)
    os.utime(model.path, ns=(model.mtime_ns + 10**9, model.mtime_ns + 10**9))
    assert store.checked_path(store.active()) == model.path  # same bytes: accepted, new time recorded
    assert store.active().mtime_ns == model.mtime_ns + 10**9

    data = bytearray(model.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.path.write_bytes(bytes(data))
    with pytest.raises(ModelStoreError, match="changed since it was installed, so birdid will not load it"):
        store.checked_path(store.active())
    assert not store.verify(store.active())


def test_remove_deletes_our_copy_and_picks_another_active(published_is_small_model, small_model_file, fine_tune):
    store = ModelStore()
    published = store.import_file(small_model_file)
    own = store.import_file(fine_tune)
    store.remove(published.name)
    assert not published.path.exists()
    assert store.active() == own
    store.remove(own.name)
    assert store.active() is None and store.models() == []
    with pytest.raises(ModelStoreError, match="No installed model is called 'ghost'"):
        store.remove("ghost")


def test_model_commands(published_is_small_model, small_model_file, fine_tune, photo_dir, capsys):
    assert main(["model", "list"]) == 0
    assert "No model is installed" in capsys.readouterr().out
    assert main(["model", "import", str(small_model_file)]) == 0
    assert main(["model", "import", str(fine_tune)]) == 0
    out = capsys.readouterr().out
    assert "imported (verified)" in out and f"imported (unverified, imported from {fine_tune})" in out

    assert main(["model", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"* {published_is_small_model.name}") and "verified" in listed[0]
    assert listed[1].startswith("  my-garden-birds") and "unverified" in listed[1]

    assert main(["model", "use", "my-garden-birds"]) == 0
    assert main(["identify", str(photo_dir / "robin.png")]) == 0
    out = capsys.readouterr().out
    assert f"model: my-garden-birds (unverified, imported from {fine_tune})" in out

    assert main(["model", "verify"]) == 0
    assert capsys.readouterr().out.count(": OK") == 2
    assert main(["model", "remove", "my-garden-birds"]) == 0
    assert main(["model", "use", "my-garden-birds"]) == 2
    assert "No installed model is called" in capsys.readouterr().err


def test_model_download_command_prints_progress_lines_and_a_clear_error(hub, tmp_path, monkeypatch, capsys):
    from birdid_app.core.model import download

    monkeypatch.setattr(download, "CHUNK", 64 * 1024)
    monkeypatch.setattr(download, "PROGRESS_INTERVAL", 0.0)
    assert main(["model", "download"]) == 0
    captured = capsys.readouterr()
    assert "downloaded and verified" in captured.out
    progress = [line for line in captured.err.splitlines() if line.startswith("downloaded ")]
    megabytes = len(hub.content) / 1e6
    assert len(progress) >= 5  # a line per tenth, not one per chunk
    assert progress[-1].startswith(f"downloaded 100%: {megabytes:.1f} of {megabytes:.1f} MB")

    main(["model", "remove", model_store.PUBLISHED_MODEL.name])
    capsys.readouterr()
    hub.faults.head_status = 500
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))  # nothing cached to fall back on
    assert main(["model", "download"]) == 1
    assert "had a server error (HTTP 500)" in capsys.readouterr().err

