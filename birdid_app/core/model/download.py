"""Downloading the published model from the hub, resumably, verified before anything loads it.

huggingface_hub supplies what a download from the hub needs to agree on: the endpoint (and
HF_ENDPOINT), the resolve URL, the request headers (user agent, token) and the cache folder,
whose layout (`blobs/<etag>`, `snapshots/<commit>/<file>`, `refs/<revision>`) we write so that
other hub tools find the file. The transfer itself is ours: since huggingface_hub 1.x the client
deletes a partial file when a download fails, and a field download over a poor connection must
resume where it stopped. The protocol is the hub's: a HEAD on `/{repo}/resolve/{revision}/{file}`
answered with X-Repo-Commit, X-Linked-Etag and X-Linked-Size (and, for large files, a redirect),
then a GET with a Range header.

The hub client checks sizes only, and trusts a cached file for existing; we check the SHA-256 of
the whole file against the published one before recording it, so no unverified byte is loaded.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from birdid_app import __version__
from birdid_app.core.errors import BirdidError, Cancelled
from birdid_app.core.model.model_store import InstalledModel, ModelStore, sha256_file

CHUNK = 256 * 1024
PROGRESS_INTERVAL = 0.1  # seconds between progress reports
RESUME_ATTEMPTS = 3  # reconnections within one download while data keeps arriving
DEFAULT_TIMEOUT = 20.0  # seconds without an answer before giving up
RETRY_DELAY = 0.5  # seconds before reconnecting after a dropped connection
PARTIAL_SUFFIX = ".birdid-partial"
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(BirdidError):
    """A download that did not complete; the message says why and what to do."""


class DownloadCancelled(Cancelled):
    """The person cancelled; the partial file stays for a later resume, untrusted."""


class VerificationError(DownloadError):
    """The bytes are not the published model's; they were deleted."""


@dataclass(frozen=True)
class DownloadProgress:
    done: int  # bytes on disk, including those from an earlier, interrupted attempt
    total: int | None
    bytes_per_second: float
    seconds_left: float | None
    resumed_from: int  # bytes already on disk when this attempt started


@dataclass(frozen=True)
class _RemoteFile:
    commit: str
    etag: str
    size: int
    location: str  # where the bytes are: the resolve URL or the CDN URL it redirects to


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The hub's metadata sits on the redirect response itself, so a HEAD must not follow it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's API
        return None


def download_published_model(
    store: ModelStore,
    *,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[DownloadProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> InstalledModel:
    """Fetch the published model into the hub cache, verify it and record it in `store`.

    A file already in the hub cache (from an earlier run or another tool) is verified and used
    without a request. Raises DownloadError (with VerificationError for wrong bytes) or
    DownloadCancelled.
    """
    published = store.published
    path, source = download_hub_file(
        published.repo_id, published.filename, published.revision, sha256=published.sha256, what="model",
        cache_dir=cache_dir, endpoint=endpoint, timeout=timeout, progress=progress, should_cancel=should_cancel,
    )
    return store.add(path, sha256=published.sha256, origin="download", source=source)


def download_hub_file(
    repo_id: str,
    filename: str,
    revision: str,
    *,
    sha256: str | None,
    what: str,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[DownloadProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[Path, str]:
    """(path in the hub cache, where it came from) of a file of a hub repository, resumably
    downloaded and verified: against `sha256` when birdid knows it, else against the SHA-256 the
    hub publishes for the file (the ETag of a file stored in LFS). `what` names the file in
    messages ("model", "range model"). A file already in the hub cache is verified and used
    without a request; a damaged one is deleted and fetched again."""
    import huggingface_hub
    from huggingface_hub import constants as hub_constants

    # Read at call time (huggingface_hub reads them once, at import) so a setting changed while
    # the app runs, or by a test, is honoured.
    cache = Path(cache_dir or os.environ.get("HF_HUB_CACHE") or hub_constants.HF_HUB_CACHE)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"

    cached = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache, revision=revision)
    if isinstance(cached, str):
        cached_path = Path(cached)
        # Without a known hash, the cached blob's own name is the hash the hub published for it.
        expected = sha256 or (cached_path.resolve().name if _SHA256.fullmatch(cached_path.resolve().name) else None)
        if expected is not None and sha256_file(cached_path) == expected:
            return cached_path, f"hub cache {cached_path}"
        _delete_cached(cached_path)  # a damaged or unverifiable copy: never trusted, fetched again below

    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _OFFLINE_VALUES:
        raise DownloadError(
            f"Downloads are switched off (HF_HUB_OFFLINE is set): unset it, or import the {what} file."
        )

    url = huggingface_hub.hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    headers = _request_headers(huggingface_hub.get_token())
    remote = _head(url, headers, timeout)
    expected = sha256 or remote.etag.lower()
    if not _SHA256.fullmatch(expected):
        raise DownloadError(
            f"{_host(url)} publishes no SHA-256 for {filename}, so its bytes could not be checked: "
            f"import the {what} file instead."
        )
    if should_cancel is not None and should_cancel():
        raise DownloadCancelled("The download was cancelled before it started.")

    blobs = repo_folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f"{remote.etag}{PARTIAL_SUFFIX}"
    _fetch(remote, partial, headers, timeout, progress, should_cancel)

    if sha256_file(partial) != expected:
        partial.unlink(missing_ok=True)
        published = "the published model" if what == "model" else f"the published {what}"
        raise VerificationError(
            f"The file downloaded from {_host(url)} is not {published} (its SHA-256 differs), "
            f"so it was deleted: download again, or import a copy you trust."
        )
    return _place_in_cache(repo_folder, remote, partial, filename, revision), url


def _request_headers(token: str | None) -> dict[str, str]:
    # Not huggingface_hub's build_hf_headers: besides the user agent and token, it may fetch an
    # "agent harness" list from the hub to describe the caller, a request the app has no use for.
    headers = {
        "User-Agent": f"birdid/{__version__}; huggingface_hub/{huggingface_hub_version()}",
        "Accept-Encoding": "identity",  # sizes must be the file's, not a compressed stream's
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def huggingface_hub_version() -> str:
    from importlib.metadata import version

    return version("huggingface_hub")


def _head(url: str, headers: dict[str, str], timeout: float) -> _RemoteFile:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, method="HEAD", headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            status, answer = response.status, response.headers
    except urllib.error.HTTPError as error:
        error.close()  # it holds the connection; the headers stay readable
        if error.code not in (301, 302, 303, 307, 308):
            raise DownloadError(_http_problem(url, error.code)) from None
        status, answer = error.code, error.headers
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(_connection_problem(url, error, timeout)) from None

    commit = answer.get("X-Repo-Commit")
    etag = (answer.get("X-Linked-Etag") or answer.get("ETag") or "").strip('"').removeprefix("W/").strip('"')
    size = answer.get("X-Linked-Size") or (answer.get("Content-Length") if status < 300 else None)
    # Both become file names in the cache, so only plain names pass (no "..", no slashes).
    names_ok = bool(commit and etag and _SAFE_NAME.fullmatch(commit) and _SAFE_NAME.fullmatch(etag))
    if not names_ok or not size or not size.isdigit():
        raise DownloadError(
            f"{_host(url)} did not answer like a model hub (no commit, ETag or size): check the hub address, "
            "or import the model file."
        )
    location = urllib.parse.urljoin(url, answer["Location"]) if status >= 300 and answer.get("Location") else url
    return _RemoteFile(commit=commit, etag=etag, size=int(size), location=location)


def _fetch(
    remote: _RemoteFile,
    partial: Path,
    headers: dict[str, str],
    timeout: float,
    progress: Callable[[DownloadProgress], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> None:
    """Bring `partial` up to the remote file's size, resuming from what it already holds."""
    if partial.exists() and partial.stat().st_size > remote.size:
        partial.unlink()  # not a prefix of this file
    resumed_from = partial.stat().st_size if partial.exists() else 0
    meter = _Meter(remote.size, resumed_from, progress)
    attempts_left = RESUME_ATTEMPTS
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        if have == remote.size:
            meter.report(have, force=True)
            return
        request_headers = dict(headers)
        if have:
            request_headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(remote.location, headers=request_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                # A server that ignores Range answers 200 with the whole file: start over.
                mode = "ab" if have and response.status == 206 else "wb"
                done = have if mode == "ab" else 0
                with partial.open(mode) as out:
                    while chunk := response.read(CHUNK):
                        if should_cancel is not None and should_cancel():
                            raise DownloadCancelled("The download was cancelled; it will resume from here next time.")
                        out.write(chunk)
                        done += len(chunk)
                        meter.report(done)
                        attempts_left = RESUME_ATTEMPTS  # data is flowing: reconnecting is worth it
            if done > remote.size:
                partial.unlink(missing_ok=True)
                raise DownloadError(
                    f"{_host(remote.location)} sent more bytes than the model file has: try again later, "
                    "or import the model file."
                )
            if done < remote.size:  # the response ended early without an error: ask for the rest
                if attempts_left == 0:
                    raise DownloadError(_lost_problem(remote.location, EOFError(), partial, remote.size, timeout))
                attempts_left -= 1
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416:  # our partial file does not fit the server's file
                partial.unlink(missing_ok=True)
                continue
            raise DownloadError(_http_problem(remote.location, error.code)) from None
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DownloadError(
                    f"The disk holding {partial.parent} is full: free {remote.size // 1_000_000 + 1} MB and "
                    "download again (it resumes where it stopped)."
                ) from None
            if not _is_transient(error) or attempts_left == 0:
                raise DownloadError(_lost_problem(remote.location, error, partial, remote.size, timeout)) from None
            attempts_left -= 1
            time.sleep(RETRY_DELAY)
        except http.client.HTTPException as error:  # IncompleteRead and other broken responses
            if attempts_left == 0:
                raise DownloadError(_lost_problem(remote.location, error, partial, remote.size, timeout)) from None
            attempts_left -= 1
            time.sleep(RETRY_DELAY)


def _place_in_cache(repo_folder: Path, remote: _RemoteFile, partial: Path, filename: str, revision: str) -> Path:
    """Lay the verified file out as the hub cache does, so other hub tools find it."""
    blob = repo_folder / "blobs" / remote.etag
    os.replace(partial, blob)
    pointer = repo_folder / "snapshots" / remote.commit / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.unlink(missing_ok=True)
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # no symlinks (Windows without developer mode): the hub keeps the file itself there
        os.replace(blob, pointer)
    refs = repo_folder / "refs"
    refs.mkdir(exist_ok=True)
    (refs / revision).write_text(remote.commit, encoding="utf-8")
    return pointer


def _delete_cached(pointer: Path) -> None:
    blob = pointer.resolve()
    pointer.unlink(missing_ok=True)
    if blob != pointer:
        blob.unlink(missing_ok=True)


class _Meter:
    """Turns byte counts into DownloadProgress reports, at most every PROGRESS_INTERVAL."""

    def __init__(self, total: int, resumed_from: int, sink: Callable[[DownloadProgress], None] | None) -> None:
        self.total = total
        self.resumed_from = resumed_from
        self.sink = sink
        self.started = self.last_report = time.monotonic()
        self.rate = 0.0

    def report(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.sink is None or (not force and now - self.last_report < PROGRESS_INTERVAL):
            return
        elapsed = max(now - self.started, 1e-6)
        # Average over this attempt: steadier than the last interval, honest after a resume.
        self.rate = (done - self.resumed_from) / elapsed
        left = (self.total - done) / self.rate if self.rate > 0 else None
        self.last_report = now
        self.sink(DownloadProgress(done, self.total, self.rate, left, self.resumed_from))


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _http_problem(url: str, code: int) -> str:
    if code == 404:
        return f"{_host(url)} has no such model file (HTTP 404): check the hub address, or import the model file."
    if code in (401, 403):
        return f"{_host(url)} refused access to the model file (HTTP {code}): import the model file instead."
    if code >= 500:
        return f"{_host(url)} had a server error (HTTP {code}): try again later, or import the model file."
    return f"{_host(url)} answered HTTP {code}: try again later, or import the model file."


def _is_transient(error: OSError) -> bool:
    return isinstance(error, (ConnectionError, TimeoutError)) or isinstance(
        getattr(error, "reason", None), (ConnectionError, TimeoutError)
    )


def _connection_problem(url: str, error: OSError, timeout: float) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, TimeoutError) or isinstance(error, TimeoutError):
        return f"{_host(url)} did not answer within {timeout:g} seconds: try again later, or import the model file."
    return f"Cannot reach {_host(url)}: check the network connection and try again, or import the model file."


def _lost_problem(url: str, error: Exception, partial: Path, size: int, timeout: float) -> str:
    have = partial.stat().st_size if partial.exists() else 0
    if isinstance(error, TimeoutError):
        what = f"{_host(url)} stopped sending for {timeout:g} seconds"
    else:
        what = f"The connection to {_host(url)} was lost"
    return (
        f"{what} after {have / 1e6:.1f} of {size / 1e6:.1f} MB: download again to resume, "
        "or import the model file."
    )
