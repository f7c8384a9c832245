"""Download, verify and safely extract MovieLens releases into a local cache.

One call of :func:`fetch_movielens` takes a release name (``ml-100k``, ...) to a
verified folder ``<cache>/<folder>/``:

1. **Download** ``{base_url}/{name}.zip`` with :mod:`urllib` in chunks to
   ``<cache>/<name>.zip.part``. An existing ``.part`` is resumed with
   ``Range: bytes=<size>-`` (appended on ``206``, restarted from zero on
   ``200``); the file is renamed to ``<name>.zip`` once complete
   (``Content-Length`` / ``Content-Range`` checked when the server sends them).
2. **Verify the archive** against ``{url}.md5`` when the server publishes one
   (GroupLens does; a ``404`` only means there is nothing to check).
3. **Extract safely** into a temporary folder next to the target: members that
   would escape it (absolute paths, ``..``, symlinks, special files) or that lie
   outside the release's top folder are rejected, and so is an archive whose
   total uncompressed size exceeds a cap (zip bombs).
4. **Verify the files** (sha256) against :data:`recsys.data.checksums.KNOWN_SHA256`
   when the release is listed there, and against the record of the previous
   fetch on ``--force``. Every verified fetch writes the record
   ``<cache>/<folder>/.recsys-checksums.json`` (sha256 of every file): for a
   release without embedded checksums this is trust on first use.
5. **Publish** by renaming the verified temporary folder into place, so a
   failed fetch never leaves a half-extracted or unverified folder behind.

A later call finds the record, re-hashes the folder against it (and against the
embedded checksums), makes no HTTP request, and returns the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.data.checksums import known_checksums

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
BASE_URL_ENV = "RECSYS_MOVIELENS_BASE_URL"
RECORD_NAME = ".recsys-checksums.json"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CHUNK_SIZE = 1 << 20
# The largest release (ml-latest) unpacks to under 2 GiB; 8 GiB leaves room for growth.
DEFAULT_MAX_EXTRACT_BYTES = 8 << 30
USER_AGENT = "recsys-fetch/0.1 (+python-urllib)"
_MD5_RE = re.compile(rb"\b([0-9a-fA-F]{32})\b")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class FetchError(RuntimeError):
    """A release could not be fetched; the message says what and where."""


class DownloadError(FetchError):
    """An HTTP request failed or a download is incomplete (names the URL and status)."""


class ChecksumError(FetchError):
    """A digest does not match (names the archive or the file)."""


class UnsafeArchiveError(FetchError):
    """The archive is not a valid zip, or has a member we refuse to extract."""


@dataclass(frozen=True)
class Release:
    """One MovieLens release as published by GroupLens.

    Attributes:
        name: Release name, also the archive stem (``{name}.zip``).
        folder: Top folder inside the archive, which becomes ``<cache>/<folder>/``.
    """

    name: str
    folder: str

    @property
    def archive(self) -> str:
        """File name of the archive on the server and in the cache."""
        return f"{self.name}.zip"


RELEASES: Mapping[str, Release] = {
    r.name: r
    for r in (
        Release("ml-100k", "ml-100k"),
        Release("ml-1m", "ml-1m"),
        Release("ml-10m", "ml-10M100K"),
        Release("ml-20m", "ml-20m"),
        Release("ml-25m", "ml-25m"),
        Release("ml-32m", "ml-32m"),
        Release("ml-latest", "ml-latest"),
        Release("ml-latest-small", "ml-latest-small"),
    )
}


class MovieLensSourceSettings(BaseSettings):
    """Where MovieLens archives are downloaded from (env ``RECSYS_MOVIELENS_BASE_URL``).

    Attributes:
        base_url: Folder URL holding ``{name}.zip`` (and ``{name}.zip.md5``); point
            it at a mirror to avoid GroupLens.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_MOVIELENS_", frozen=True)

    base_url: str = DEFAULT_BASE_URL


def get_release(name: str) -> Release:
    """Look up a release by name.

    Args:
        name: e.g. ``ml-100k``.

    Returns:
        The release.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
    """
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"unknown MovieLens release {name!r}; known: {', '.join(RELEASES)}") from None


def resolve_base_url(base_url: str | None = None) -> str:
    """The base URL to download from: the argument, else the environment, else GroupLens.

    Args:
        base_url: Explicit value (``--base-url``); ``None`` to use
            ``RECSYS_MOVIELENS_BASE_URL`` or :data:`DEFAULT_BASE_URL`.

    Returns:
        The URL without a trailing slash.

    Raises:
        ValueError: When the URL is not ``http://`` or ``https://``.
    """
    url = (base_url if base_url is not None else MovieLensSourceSettings().base_url).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"MovieLens base URL must be http(s)://host/...: got {url!r}")
    return url


def release_url(name: str, base_url: str | None = None) -> str:
    """URL of one release's archive, ``{base_url}/{name}.zip``.

    Args:
        name: Release name.
        base_url: See :func:`resolve_base_url`.

    Returns:
        The archive URL.
    """
    return f"{resolve_base_url(base_url)}/{get_release(name).archive}"


def fetch_movielens(
    name: str,
    cache_dir: Path,
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    keep_archive: bool = True,
) -> Path:
    """Download, verify and extract one MovieLens release; idempotent and resumable.

    Args:
        name: Release name, one of :data:`RELEASES` (``ml-100k``, ``ml-10m``, ...).
        cache_dir: Cache folder (the CLI passes `Settings.movielens_cache`, `<RECSYS_HOME>/raw/movielens`).
        base_url: Server folder holding ``{name}.zip``; default from
            ``RECSYS_MOVIELENS_BASE_URL``, else GroupLens.
        force: Download and extract again even when a verified copy exists. The
            new files must match the previous fetch's record (if any): a release
            that changed upstream is reported, not silently re-trusted.
        progress: Show a rich progress bar (on stderr); ``None`` means "when
            stdout is a terminal". Without it, progress is logged.
        timeout: Seconds each network operation may block.
        max_extract_bytes: Refuse archives whose members add up to more than this.
        keep_archive: Keep ``<cache>/<name>.zip`` after a successful fetch.

    Returns:
        The verified extracted folder ``<cache>/<folder>`` (e.g. ``<cache>/ml-100k``).

    Raises:
        ValueError: Unknown release or bad base URL.
        DownloadError: HTTP failure (names the URL and status) or incomplete download;
            a partial ``.part`` file is kept so that the next call resumes.
        ChecksumError: md5 of the archive or sha256 of a file does not match; the
            archive is deleted and no folder is published.
        UnsafeArchiveError: Invalid zip or a member that would escape the target,
            a link, or too much data; nothing is written outside a temp folder.
    """
    release = get_release(name)
    url = release_url(name, base_url)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    show_progress = sys.stdout.isatty() if progress is None else progress
    target = cache / release.folder
    archive = cache / release.archive
    part = cache / f"{release.archive}.part"
    embedded = known_checksums(name)

    with _locked(cache / f".{name}.lock"):
        previous: dict[str, str] | None = None
        if (target / RECORD_NAME).is_file():
            if not force:
                start = time.monotonic()
                n_files = _verify_existing(target, embedded)
                logger.info("%s is already fetched and verified (%d files, %.1fs): %s",
                            name, n_files, time.monotonic() - start, target)
                return target
            try:
                previous = _read_record(target)
            except ChecksumError as exc:
                logger.warning("--force: ignoring the previous record: %s", exc)
        elif target.exists():
            logger.warning("%s exists without a checksum record (interrupted or foreign): it will be replaced", target)

        _remove_stale_temp_dirs(cache, release.folder)
        if force:
            archive.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
        if archive.is_file():
            logger.info("reusing the cached archive %s", archive)
        else:
            _download(url, archive, timeout=timeout, progress=show_progress)

        try:
            _check_md5(url, archive, timeout=timeout)
            _extract_verify_publish(
                archive, release, target, url=url, embedded=embedded, previous=previous,
                max_extract_bytes=max_extract_bytes,
            )
        except (ChecksumError, UnsafeArchiveError):
            archive.unlink(missing_ok=True)
            logger.info("deleted the rejected archive %s", archive)
            raise
        if not keep_archive:
            archive.unlink(missing_ok=True)
    return target


def _verify_existing(target: Path, embedded: dict[str, str] | None) -> int:
    """Re-hash a fetched folder against its record and the embedded checksums; file count."""
    record = _read_record(target)
    actual = sha256_tree(target)
    hint = f"(delete {target} or fetch again with --force)"
    _compare(actual, record, root=target, what=f"the record {RECORD_NAME} {hint}", strict=True)
    if embedded is not None:
        _compare(actual, embedded, root=target, what=f"the embedded checksums {hint}", strict=False)
    return len(actual)


def _extract_verify_publish(
    archive: Path,
    release: Release,
    target: Path,
    *,
    url: str,
    embedded: dict[str, str] | None,
    previous: dict[str, str] | None,
    max_extract_bytes: int,
) -> None:
    """Extract into a temp dir next to ``target``, verify, write the record, rename into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{release.folder}.tmp-", dir=target.parent))
    try:
        start = time.monotonic()
        n_files, n_bytes = safe_extract(archive, tmp, top_folder=release.folder, max_total_bytes=max_extract_bytes)
        logger.info("extracted %d files (%.1f MB) from %s in %.1fs",
                    n_files, n_bytes / 1e6, archive.name, time.monotonic() - start)
        staged = tmp / release.folder
        if not staged.is_dir():
            raise UnsafeArchiveError(f"{archive}: no top folder {release.folder}/ in the archive")
        start = time.monotonic()
        actual = sha256_tree(staged)
        if embedded is not None:
            _compare(actual, embedded, root=f"{archive} (extracted)", what=f"the embedded checksums of {release.name}", strict=False)
            source = "embedded"
        else:
            source = "trust-on-first-use"
        if previous is not None:
            _compare(actual, previous, root=f"{archive} (extracted)",
                     what=f"the previous fetch's record (if {release.name} changed upstream, "
                          f"delete {target} and fetch again to trust the new files)",
                     strict=True)
        logger.info("sha256 of %d files of %s: %s%s (%.1fs)", len(actual), release.name,
                    "verified against the embedded checksums" if embedded is not None else "recorded (trust on first use)",
                    ", and match the previous fetch" if previous is not None else "", time.monotonic() - start)
        record = {
            "release": release.name,
            "url": url,
            "archive_md5": _file_digest(archive, "md5"),
            "checksums": source,
            "algorithm": "sha256",
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": actual,
        }
        (staged / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        _publish(staged, target, tmp)
        logger.info("%s is ready: %s", release.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(staged: Path, target: Path, tmp: Path) -> None:
    """Rename ``staged`` to ``target``, moving an existing ``target`` aside first."""
    old = tmp / ".replaced"
    had_old = target.exists() or target.is_symlink()
    if had_old:
        os.rename(target, old)
    try:
        os.rename(staged, target)
    except OSError:
        if had_old:
            os.rename(old, target)
        raise


def _remove_stale_temp_dirs(cache: Path, folder: str) -> None:
    """Remove temp dirs left by a killed fetch (we hold the lock, so none is in use)."""
    for stale in cache.glob(f".{folder}.tmp-*"):
        logger.info("removing a stale temporary folder %s", stale)
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` so concurrent fetches of a release serialise."""
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another fetch holding %s", path)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------ download


def _open(url: str, *, timeout: float, headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
    """GET ``url``; HTTP and network failures become :class:`DownloadError` naming the URL."""
    request = Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        response: http.client.HTTPResponse = urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked)
    except HTTPError as exc:
        exc.close()
        raise DownloadError(f"GET {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, URLError) else exc
        raise DownloadError(f"GET {url} failed: {reason}") from exc
    return response


def _download(url: str, dest: Path, *, timeout: float, progress: bool,
              chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
    """Stream ``url`` to ``dest`` through ``dest.part``, resuming an existing ``.part``."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open(url, timeout=timeout, headers=headers)
    except DownloadError as exc:
        cause = exc.__cause__
        if offset and isinstance(cause, HTTPError) and cause.code == 416:
            logger.warning("%s: the server cannot resume from byte %d (HTTP 416): starting over", url, offset)
            part.unlink()
            return _download(url, dest, timeout=timeout, progress=progress, chunk_size=chunk_size)
        raise
    with response:
        status = response.status
        length = _int_header(response.headers.get("Content-Length"))
        if status == 206 and offset:
            start, total = _parse_content_range(response.headers.get("Content-Range"), url)
            if start != offset:
                raise DownloadError(f"GET {url}: asked to resume at byte {offset}, server sent from byte {start}")
            mode: Literal["ab", "wb"] = "ab"
            logger.info("resuming %s at %.1f MB", url, offset / 1e6)
        elif status == 200:
            if offset:
                logger.info("%s: the server ignored the Range request (HTTP 200): restarting from zero", url)
            offset, total, mode = 0, length, "wb"
        else:
            raise DownloadError(f"GET {url} failed: unexpected HTTP {status} {response.reason}")
        start_time = time.monotonic()
        received = offset
        with open(part, mode) as out, _Progress(url, total, offset, enabled=progress) as bar:
            try:
                while chunk := response.read(chunk_size):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(received)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"GET {url} was interrupted after {received} bytes ({exc!r}); "
                    f"run the fetch again to resume from {part}"
                ) from exc
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise DownloadError(
            f"GET {url}: got {size} of {total} bytes"
            + (f"; run the fetch again to resume from {part}" if size < total else " (discarded)")
        )
    os.replace(part, dest)
    elapsed = time.monotonic() - start_time
    logger.info("downloaded %s: %.1f MB in %.1fs", url, size / 1e6, elapsed)


def _int_header(value: str | None) -> int | None:
    """A numeric header value, or None when missing or malformed."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` -> (start, total or None)."""
    match = _CONTENT_RANGE_RE.match((value or "").strip())
    if match is None:
        raise DownloadError(f"GET {url}: HTTP 206 with an unusable Content-Range {value!r}")
    total = match.group(3)
    return int(match.group(1)), (int(total) if total != "*" else None)


class _Progress:
    """A rich progress bar on stderr, or a log line every 10% (or 50 MB) without one."""

    def __init__(self, url: str, total: int | None, done: int, *, enabled: bool) -> None:
        self.url, self.total, self.enabled = url, total, enabled
        self._bar: Any = None
        self._task: Any = None
        self._next_log = done
        self._step = max(total // 10, 1) if total else 50 * 10**6
        self._done = done

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            )
            self._bar.__enter__()
            name = self.url.rsplit("/", 1)[-1]
            self._task = self._bar.add_task(name, total=self.total, completed=self._done)
        else:
            self._next_log = self._done + self._step
        return self

    def update(self, done: int) -> None:
        """Report ``done`` bytes of the file received so far."""
        self._done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
        elif done >= self._next_log:
            if self.total:
                logger.info("%s: %.1f of %.1f MB (%d%%)", self.url, done / 1e6, self.total / 1e6,
                            100 * done // self.total)
            else:
                logger.info("%s: %.1f MB", self.url, done / 1e6)
            self._next_log = done + self._step

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)


# ------------------------------------------------------------------------- verify


def _check_md5(url: str, archive: Path, *, timeout: float) -> None:
    """Compare the archive's md5 with ``{url}.md5`` when the server publishes one."""
    md5_url = f"{url}.md5"
    try:
        response = _open(md5_url, timeout=timeout)
    except DownloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, HTTPError) and cause.code in (404, 410):
            logger.info("no %s (HTTP %d): skipping the md5 check of the archive", md5_url, cause.code)
            return
        raise
    with response:
        try:
            body = response.read(64 * 1024)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"GET {md5_url} failed: {exc!r}") from exc
    match = _MD5_RE.search(body)
    if match is None:
        logger.warning("%s holds no md5 digest: skipping the md5 check of the archive", md5_url)
        return
    expected = match.group(1).decode().lower()
    actual = _file_digest(archive, "md5")
    if actual != expected:
        raise ChecksumError(f"{archive}: md5 {actual} does not match {expected} published at {md5_url} "
                            "(corrupted download; the archive was deleted, fetch again)")
    logger.info("md5 of %s matches %s", archive.name, md5_url)


def _file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of one file, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def sha256_tree(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (the checksum record excluded).

    Args:
        root: An extracted release folder.

    Returns:
        ``{path relative to root with / separators: sha256 hex}``, sorted by path.

    Raises:
        ChecksumError: When the tree holds a symlink or a special file.
    """
    digests: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath) / entry
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ChecksumError(f"{root}: {rel} is a symlink (not extracted by us: tampered?)")
            if stat.S_ISREG(mode) and rel != RECORD_NAME:
                digests[rel] = _file_digest(path, "sha256")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ChecksumError(f"{root}: {rel} is not a regular file")
    return dict(sorted(digests.items()))


def _read_record(target: Path) -> dict[str, str]:
    """The ``files`` of a folder's checksum record, validated."""
    path = target / RECORD_NAME
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChecksumError(f"{path} is unreadable ({exc!r}): delete {target} or fetch again with --force") from exc
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256_RE.match(v) for k, v in files.items()
    ):
        raise ChecksumError(f"{path} is malformed: delete {target} or fetch again with --force")
    return files


def _compare(actual: Mapping[str, str], expected: Mapping[str, str], *, root: Path | str, what: str,
             strict: bool) -> None:
    """Raise :class:`ChecksumError` naming every file that is missing or differs."""
    problems = []
    for rel, digest in sorted(expected.items()):
        got = actual.get(rel)
        if got is None:
            problems.append(f"{rel} is missing")
        elif got != digest:
            problems.append(f"{rel} has sha256 {got}, expected {digest}")
    extra = sorted(set(actual) - set(expected))
    if extra and strict:
        problems.extend(f"{rel} is unexpected" for rel in extra)
    elif extra:
        logger.warning("%s: %d file(s) without a known checksum: %s", root, len(extra), ", ".join(extra[:10]))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ChecksumError(f"{root}: {len(problems)} file(s) do not match {what}: {shown}")


# ------------------------------------------------------------------------ extract


def _member_problem(info: zipfile.ZipInfo, top_folder: str | None) -> str | None:
    """Why a zip member must not be extracted, or None when it is safe."""
    name = info.filename
    if not name or "\x00" in name:
        return "empty or NUL in the name"
    if "\\" in name:
        return "backslash in the name (ambiguous path separator)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "'..' in the path"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "special file"
    if top_folder is not None and parts[0] != top_folder:
        return f"outside the release's top folder {top_folder}/"
    return None


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    top_folder: str | None = None,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
) -> tuple[int, int]:
    """Extract a zip into ``dest`` after checking every member; nothing lands outside ``dest``.

    All members are checked before anything is written: absolute paths, ``..``,
    symlinks and special files, names outside ``top_folder``, and a declared
    total size above ``max_total_bytes`` reject the whole archive. Bytes are also
    counted while writing, in case the declared sizes lie. Files are created
    exclusively (a duplicate member is an error) with default permissions.

    Args:
        archive: The zip file.
        dest: Existing empty folder to extract into.
        top_folder: When given, every member must lie under ``top_folder/``.
        max_total_bytes: Cap on the total uncompressed size (zip bomb guard).

    Returns:
        (files written, bytes written).

    Raises:
        UnsafeArchiveError: Not a zip, a rejected member, or too much data.
    """
    dest_root = Path(dest).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{archive} is not a valid zip archive ({exc}); it was deleted, fetch again") from exc
    with zf:
        infos = zf.infolist()
        planned: list[tuple[zipfile.ZipInfo, Path]] = []
        declared = 0
        for info in infos:
            problem = _member_problem(info, top_folder)
            path = (dest_root / info.filename).resolve()
            if problem is None and not path.is_relative_to(dest_root):
                problem = "resolves outside the target folder"
            if problem is not None:
                raise UnsafeArchiveError(f"{archive}: refusing member {info.filename!r}: {problem}")
            declared += info.file_size
            planned.append((info, path))
        if declared > max_total_bytes:
            raise UnsafeArchiveError(f"{archive}: members add up to {declared} bytes, over the cap of "
                                     f"{max_total_bytes} (zip bomb?)")
        written = n_files = 0
        for info, path in planned:
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(path, "xb") as out:
                    while chunk := src.read(DEFAULT_CHUNK_SIZE):
                        written += len(chunk)
                        if written > max_total_bytes:
                            raise UnsafeArchiveError(f"{archive}: more than {max_total_bytes} bytes "
                                                     "uncompressed (zip bomb?)")
                        out.write(chunk)
            except FileExistsError as exc:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} appears twice") from exc
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is corrupt ({exc})") from exc
            n_files += 1
    return n_files, written
