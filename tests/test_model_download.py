"""Getting the model from a real HTTP server on loopback that speaks the hub's protocol."""

from __future__ import annotations

import os
import subprocess
import sys

import huggingface_hub
import pytest

from birdid_app.core.model import download as download_module
from birdid_app.core.model.download import DownloadCancelled, DownloadError, VerificationError, download_published_model
from birdid_app.core.model.inference import Classifier
from birdid_app.core.model.model_store import ModelStore
from hub_server import unreachable_url


def cached_copy(store: ModelStore):
    """What the hub client would find in its cache for the published file."""
    p = store.published
    cache = os.environ["HF_HUB_CACHE"]  # this test's own, set by the hub fixture
    return huggingface_hub.try_to_load_from_cache(p.repo_id, p.filename, revision=p.revision, cache_dir=cache)


def cache_dir(tmp_path):
    return tmp_path / "hub-cache"


@pytest.fixture
def small_chunks(monkeypatch):
    """Many progress reports and cancel checks even for a 5 MB file."""
    monkeypatch.setattr(download_module, "CHUNK", 64 * 1024)
    monkeypatch.setattr(download_module, "PROGRESS_INTERVAL", 0.0)


def test_clean_download_is_verified_active_and_then_works_offline(hub, tmp_path, photo_dir, small_model_file):
    store = ModelStore()
    reports = []
    model = download_published_model(store, progress=reports.append)
    assert model.verified and model.origin == "download"
    assert model.path.read_bytes() == small_model_file.read_bytes()
    assert store.active() == model
    assert reports[-1].done == reports[-1].total == len(hub.content)
    # The file sits in the hub's standard cache layout, where other hub tools find it.
    found = huggingface_hub.try_to_load_from_cache(
        store.published.repo_id, store.published.filename, cache_dir=cache_dir(tmp_path)
    )
    assert found == str(model.path)
    assert [r.method for r in hub.requests] == ["HEAD", "GET"]

    # From now on: no request at all, whatever HF_HUB_OFFLINE says.
    before = len(hub.requests)
    classifier = Classifier.from_file(store.checked_path(store.active()), device="cpu")
    assert classifier.identify_files([photo_dir / "robin.png"])[0].ranked(1)
    done = subprocess.run(
        [sys.executable, "-m", "birdid_app", "identify", str(photo_dir / "robin.png"), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(hub.requests) == before

    # A second download finds the verified file in the cache and asks the server nothing.
    assert download_published_model(ModelStore()).path == model.path
    assert len(hub.requests) == before


def test_a_connection_dropped_mid_file_resumes_with_a_range(hub, small_chunks):
    hub.faults.cuts = [1_000_000]
    model = download_published_model(ModelStore())
    assert model.verified
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 2 and gets[1].range == "bytes=1000000-"


def test_an_interrupted_download_resumes_on_the_next_try(hub, small_chunks, monkeypatch):
    monkeypatch.setattr(download_module, "RETRY_DELAY", 0.0)
    # Cut after 2 MB, then every reconnection is cut before any data: the download gives up,
    # keeping the bytes it has.
    hub.faults.cuts = [2_000_000] + [0] * download_module.RESUME_ATTEMPTS
    store = ModelStore()
    with pytest.raises(DownloadError, match=r"was lost after [\d.]+ of [\d.]+ MB: download again to resume"):
        download_published_model(store)
    assert store.models() == [] and cached_copy(store) is None
    first_gets = sum(r.method == "GET" for r in hub.requests)

    model = download_published_model(store)
    assert model.verified and model.path.read_bytes() == hub.content
    retry = [r for r in hub.requests if r.method == "GET"][first_gets:]
    assert retry[0].range is not None and int(retry[0].range.split("=")[1].rstrip("-")) >= 2_000_000


def test_wrong_bytes_of_the_right_size_are_refused_and_deleted(hub, tmp_path):
    hub.faults.wrong_bytes = True
    store = ModelStore()
    with pytest.raises(VerificationError, match="is not the published model .* so it was deleted"):
        download_published_model(store)
    assert store.models() == [] and store.active() is None
    assert cached_copy(store) is None
    leftovers = [p for p in cache_dir(tmp_path).rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_damaged_copy_in_the_hub_cache_is_not_trusted(hub, tmp_path):
    store = ModelStore()
    model = download_published_model(store)
    store.remove(model.name)
    blob = model.path.resolve()
    blob.write_bytes(b"x" * blob.stat().st_size)  # same size, other bytes: the hub client would trust it
    again = download_published_model(store)
    assert again.verified and again.path.read_bytes() == hub.content
    assert sum(r.method == "GET" for r in hub.requests) == 2


@pytest.mark.parametrize(
    "fault, message",
    [
        ({"head_status": 404}, "has no such model file (HTTP 404)"),
        ({"head_status": 500}, "had a server error (HTTP 500): try again later"),
        ({"get_status": 503}, "had a server error (HTTP 503)"),
    ],
)
def test_http_errors_are_one_clear_sentence(hub, fault, message):
    for name, value in fault.items():
        setattr(hub.faults, name, value)
    store = ModelStore()
    with pytest.raises(DownloadError) as caught:
        download_published_model(store)
    text = str(caught.value)
    assert message in text and "import the model file" in text and "\n" not in text
    assert store.models() == []


def test_an_unreachable_server(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", unreachable_url())
    with pytest.raises(DownloadError, match="Cannot reach 127.0.0.1:.*check the network connection"):
        download_published_model(ModelStore())


def test_a_server_that_does_not_answer_times_out(hub):
    hub.faults.stall_seconds = 5
    with pytest.raises(DownloadError, match=r"did not answer within 0.5 seconds"):
        download_published_model(ModelStore(), timeout=0.5)


def test_offline_mode_refuses_to_download(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        download_published_model(ModelStore())
    assert hub.requests == []


def test_cancel_leaves_nothing_trusted_and_the_next_try_resumes(hub, small_chunks):
    store = ModelStore()
    seen = []

    def cancel_after_a_megabyte():
        return bool(seen) and seen[-1].done >= 1_000_000

    with pytest.raises(DownloadCancelled):
        download_published_model(store, progress=seen.append, should_cancel=cancel_after_a_megabyte)
    assert store.models() == [] and store.active() is None and cached_copy(store) is None

    model = download_published_model(store)
    assert model.verified and model.path.read_bytes() == hub.content
    last_get = [r for r in hub.requests if r.method == "GET"][-1]
    assert last_get.range is not None and int(last_get.range.split("=")[1].rstrip("-")) >= 1_000_000


def test_a_server_that_ignores_ranges_still_gives_a_correct_file(hub, small_chunks):
    hub.faults.cuts, hub.faults.ignore_range = [1_500_000], True
    model = download_published_model(ModelStore())
    assert model.path.read_bytes() == hub.content


def test_a_full_disk_says_how_much_space_is_needed(hub, tmp_path):
    # The partial file is made a link to /dev/full, where every write fails with ENOSPC.
    blobs = tmp_path / "hub-cache" / "models--birder-project--hiera_abswin_base_mim-intermediate-eu-common" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{hub.sha256}{download_module.PARTIAL_SUFFIX}").symlink_to("/dev/full")
    store = ModelStore()
    with pytest.raises(DownloadError, match=r"The disk holding .*blobs is full: free 5 MB and download again"):
        download_published_model(store)
    assert store.models() == []


def test_a_server_cannot_name_files_outside_the_cache(hub, monkeypatch, tmp_path):
    hub.sha256 = "../../../escaped"  # what the server claims as the ETag
    store = ModelStore()
    with pytest.raises(DownloadError, match="did not answer like a model hub"):
        download_published_model(store)
    assert not (tmp_path / "escaped.birdid-partial").exists() and store.models() == []
