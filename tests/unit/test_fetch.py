"""``recsys data fetch``: download, resume, md5 and sha256 checks, safe extraction, TOFU, CLI.

A stdlib HTTP server on 127.0.0.1 (ephemeral port, with ``Range`` support)
serves zips built in tmp dirs from the verified MovieLens 100K in ../shared.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import stat
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.cli import app
from recsys.data.checksums import KNOWN_SHA256
from recsys.data.fetch import (
    BASE_URL_ENV,
    RECORD_NAME,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    fetch_movielens,
    release_url,
    safe_extract,
)


@dataclass
class Served:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    ignore_range: bool = False
    truncate_once: dict[str, int] = field(default_factory=dict)  # path -> bytes to send, then drop


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def do_GET(self) -> None:
        served = self.served
        rng = self.headers.get("Range")
        served.requests.append((self.path, rng))
        body = served.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        status, start = 200, 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not served.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = served.truncate_once.pop(self.path, None)
        self.wfile.write(body[start:] if cut is None else body[start : start + cut])
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    served: Served

    def zip_requests(self, name: str = "ml-100k") -> list[str | None]:
        """Range headers of the requests for ``name``.zip."""
        return [rng for path, rng in self.served.requests if path == f"/{name}.zip"]


@pytest.fixture
def server() -> Iterator[Server]:
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", served)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def build_zip(files: dict[str, bytes], *, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(zipfile.ZipInfo(f"{top}/"), b"")
        for name, data in sorted(files.items()):
            zf.writestr(f"{top}/{name}", data)
    return buf.getvalue()


def md5_file(data: bytes, name: str) -> bytes:
    """A ``.md5`` in the BSD format GroupLens publishes."""
    return f"MD5 ({name}) = {hashlib.md5(data).hexdigest()}\n".encode()


@pytest.fixture(scope="session")
def ml100k_files(ml100k_dir: Path) -> dict[str, bytes]:
    """All files of the verified MovieLens 100K (held in memory, never written to the repo)."""
    return {p.name: p.read_bytes() for p in sorted(ml100k_dir.iterdir()) if p.is_file()}


@pytest.fixture(scope="session")
def ml100k_zip(ml100k_files: dict[str, bytes]) -> bytes:
    return build_zip(ml100k_files, top="ml-100k")


@pytest.fixture
def ml100k_server(server: Server, ml100k_zip: bytes) -> Server:
    server.served.files["/ml-100k.zip"] = ml100k_zip
    server.served.files["/ml-100k.zip.md5"] = md5_file(ml100k_zip, "ml-100k.zip")
    return server


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(cache: Path) -> list[str]:
    """Temp folders and partial files left in the cache."""
    return sorted(p.name for p in cache.iterdir() if ".tmp-" in p.name or p.name.endswith(".part"))


def test_embedded_checksums_cover_the_shared_release(ml100k_dir: Path) -> None:
    known = KNOWN_SHA256["ml-100k"]
    assert sorted(known) == sorted(p.name for p in ml100k_dir.iterdir() if p.is_file())
    assert all(sha256(ml100k_dir / name) == digest for name, digest in known.items())


def test_fetch_extracts_and_verifies(ml100k_server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)

    assert path == cache / "ml-100k"
    assert (path / "u.data").is_file()
    for name, digest in KNOWN_SHA256["ml-100k"].items():
        assert sha256(path / name) == digest, name
    record = json.loads((path / RECORD_NAME).read_text())
    assert record["checksums"] == "embedded"
    assert record["files"] == dict(KNOWN_SHA256["ml-100k"])
    assert ("/ml-100k.zip.md5", None) in ml100k_server.served.requests
    assert (cache / "ml-100k.zip").is_file()
    assert leftovers(cache) == []


def test_second_fetch_makes_no_request(ml100k_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    first = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    n_requests = len(ml100k_server.served.requests)
    with caplog.at_level("INFO", logger="recsys.data.fetch"):
        second = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    assert second == first
    assert len(ml100k_server.served.requests) == n_requests
    assert "already fetched and verified" in caplog.text and str(first) in caplog.text


def test_force_downloads_again(ml100k_server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    (cache / "ml-100k" / "u.data").write_text("tampered\n")
    with pytest.raises(ChecksumError, match=r"u\.data"):
        fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    path = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, force=True, progress=True)
    assert ml100k_server.zip_requests() == [None, None]
    assert sha256(path / "u.data") == KNOWN_SHA256["ml-100k"]["u.data"]
    assert leftovers(cache) == []


def test_resume_from_a_truncated_part(ml100k_server: Server, ml100k_zip: bytes, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    half = len(ml100k_zip) // 2
    (cache / "ml-100k.zip.part").write_bytes(ml100k_zip[:half])

    path = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)

    assert ml100k_server.zip_requests() == [f"bytes={half}-"]
    assert sha256(path / "u.data") == KNOWN_SHA256["ml-100k"]["u.data"]
    assert not (cache / "ml-100k.zip.part").exists()


def test_interrupted_download_keeps_the_part_and_resumes(ml100k_server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ml100k_server.served.truncate_once["/ml-100k.zip"] = 300_000
    with pytest.raises(DownloadError, match="resume"):
        fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    assert (cache / "ml-100k.zip.part").stat().st_size == 300_000
    assert not (cache / "ml-100k").exists()

    path = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    assert ml100k_server.zip_requests() == [None, "bytes=300000-"]
    assert sha256(path / "u.item") == KNOWN_SHA256["ml-100k"]["u.item"]


def test_restart_when_the_server_ignores_range(ml100k_server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-100k.zip.part").write_bytes(b"stale bytes of some other file")
    ml100k_server.served.ignore_range = True

    path = fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)

    assert ml100k_server.zip_requests() == ["bytes=30-"]
    assert sha256(path / "u.data") == KNOWN_SHA256["ml-100k"]["u.data"]


def test_corrupted_download_is_rejected(server: Server, ml100k_files: dict[str, bytes], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bad = dict(ml100k_files, **{"u.data": ml100k_files["u.data"].replace(b"\t5\t", b"\t1\t", 1)})
    server.served.files["/ml-100k.zip"] = build_zip(bad, top="ml-100k")  # no .md5: only sha256 catches it

    with pytest.raises(ChecksumError, match=r"u\.data has sha256 .* expected"):
        fetch_movielens("ml-100k", cache, base_url=server.url, progress=False)
    assert not (cache / "ml-100k").exists()
    assert not (cache / "ml-100k.zip").exists()
    assert leftovers(cache) == []


def test_garbage_download_is_rejected(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    server.served.files["/ml-100k.zip"] = b"<html>not a zip</html>"
    with pytest.raises(UnsafeArchiveError, match="not a valid zip"):
        fetch_movielens("ml-100k", cache, base_url=server.url, progress=False)
    assert not (cache / "ml-100k").exists()
    assert leftovers(cache) == []


def test_md5_mismatch_is_an_error(ml100k_server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ml100k_server.served.files["/ml-100k.zip.md5"] = md5_file(b"something else", "ml-100k.zip")
    with pytest.raises(ChecksumError, match=r"md5 .* does not match .*ml-100k\.zip\.md5"):
        fetch_movielens("ml-100k", cache, base_url=ml100k_server.url, progress=False)
    assert not (cache / "ml-100k").exists()
    assert not (cache / "ml-100k.zip").exists()


def _zip_with(member: zipfile.ZipInfo, data: bytes, *, top: str = "ml-100k") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/u.data", b"1\t1\t5\t0\n")
        zf.writestr(member, data)
    return buf.getvalue()


def _symlink(name: str) -> zipfile.ZipInfo:
    """A member whose Unix mode says symlink (its data is the link target)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("member", "data", "reason"),
    [
        (lambda root: zipfile.ZipInfo("../evil"), b"pwned", "'..'"),
        (lambda root: zipfile.ZipInfo("ml-100k/../../evil"), b"pwned", "'..'"),
        (lambda root: zipfile.ZipInfo(str(root / "evil")), b"pwned", "absolute path"),
        (lambda root: _symlink("ml-100k/evil"), b"../../evil", "symbolic link"),
        (lambda root: zipfile.ZipInfo("other/evil"), b"pwned", "outside the release's top folder"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "outside-top"],
)
def test_unsafe_members_are_rejected(
    server: Server, tmp_path: Path, member: Callable[[Path], zipfile.ZipInfo], data: bytes, reason: str
) -> None:
    cache = tmp_path / "deep" / "cache"
    server.served.files["/ml-100k.zip"] = _zip_with(member(tmp_path), data)

    with pytest.raises(UnsafeArchiveError, match=re.escape(reason)):
        fetch_movielens("ml-100k", cache, base_url=server.url, progress=False)
    assert not list(tmp_path.rglob("evil")), "something was written"
    assert not (cache / "ml-100k").exists()
    assert leftovers(cache) == []
    assert not (cache / "ml-100k.zip").exists()


def test_zip_bomb_cap(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/zeros", b"\0" * 2_000_000)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="over the cap"):
        safe_extract(archive, dest, top_folder="ml-100k", max_total_bytes=1_000_000)
    assert list(dest.iterdir()) == []
    assert safe_extract(archive, dest, top_folder="ml-100k", max_total_bytes=2_000_000) == (1, 2_000_000)


def test_trust_on_first_use(server: Server, ml100k_files: dict[str, bytes], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = {"ratings.csv": ml100k_files["u1.test"], "README.txt": ml100k_files["README"]}
    original = build_zip(files, top="ml-latest-small")
    server.served.files["/ml-latest-small.zip"] = original
    server.served.files["/ml-latest-small.zip.md5"] = md5_file(original, "ml-latest-small.zip")

    path = fetch_movielens("ml-latest-small", cache, base_url=server.url, progress=False)
    record = json.loads((path / RECORD_NAME).read_text())
    assert record["checksums"] == "trust-on-first-use"
    assert record["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert fetch_movielens("ml-latest-small", cache, base_url=server.url, progress=False) == path

    (path / "ratings.csv").write_bytes(b"1,2,5.0,0\n")
    with pytest.raises(ChecksumError, match=r"ratings\.csv has sha256"):
        fetch_movielens("ml-latest-small", cache, base_url=server.url, progress=False)
    (path / "ratings.csv").write_bytes(files["ratings.csv"])
    (path / "extra.csv").write_bytes(b"x\n")
    with pytest.raises(ChecksumError, match=r"extra\.csv is unexpected"):
        fetch_movielens("ml-latest-small", cache, base_url=server.url, progress=False)

    # --force re-downloads and checks against the first fetch: same files pass ...
    assert fetch_movielens("ml-latest-small", cache, base_url=server.url, force=True, progress=False) == path
    assert not (path / "extra.csv").exists()
    # ... and a release that changed upstream is reported, the verified copy kept.
    changed = build_zip({**files, "ratings.csv": b"changed\n"}, top="ml-latest-small")
    server.served.files["/ml-latest-small.zip"] = changed
    server.served.files["/ml-latest-small.zip.md5"] = md5_file(changed, "ml-latest-small.zip")
    with pytest.raises(ChecksumError, match=r"previous fetch.*ratings\.csv has sha256"):
        fetch_movielens("ml-latest-small", cache, base_url=server.url, force=True, progress=False)
    assert (path / "ratings.csv").read_bytes() == files["ratings.csv"]
    assert leftovers(cache) == []


def test_ml10m_extracts_to_its_own_folder(server: Server, tmp_path: Path) -> None:
    server.served.files["/ml-10m.zip"] = build_zip({"ratings.dat": b"1::122::5::838985046\n"}, top="ml-10M100K")
    path = fetch_movielens("ml-10m", tmp_path / "cache", base_url=server.url, progress=False)
    assert path == tmp_path / "cache" / "ml-10M100K"
    assert (path / "ratings.dat").is_file()


def test_404_names_the_url(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        fetch_movielens("ml-1m", cache, base_url=server.url, progress=False)
    assert f"{server.url}/ml-1m.zip" in str(err.value) and "HTTP 404" in str(err.value)
    assert not (cache / "ml-1m.zip.part").exists()
    assert not (cache / "ml-1m").exists()


def test_base_url_from_the_environment(ml100k_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE_URL_ENV, ml100k_server.url + "/")
    assert release_url("ml-10m") == f"{ml100k_server.url}/ml-10m.zip"
    path = fetch_movielens("ml-100k", tmp_path / "cache", progress=False)
    assert (path / "u.data").is_file()
    assert ml100k_server.zip_requests() == [None]


def test_bad_names_and_urls() -> None:
    with pytest.raises(ValueError, match="unknown MovieLens release 'ml-5m'"):
        release_url("ml-5m")
    with pytest.raises(ValueError, match="http"):
        release_url("ml-100k", "file:///etc")


def test_cli_fetch(ml100k_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    runner = CliRunner()
    cache = tmp_path / "cache"
    args = ["data", "fetch", "ml-100k", "--base-url", ml100k_server.url, "--cache-dir", str(cache)]

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(cache / "ml-100k")
    assert sha256(cache / "ml-100k" / "u.data") == KNOWN_SHA256["ml-100k"]["u.data"]

    n_requests = len(ml100k_server.served.requests)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == str(cache / "ml-100k")
    assert len(ml100k_server.served.requests) == n_requests

    missing = runner.invoke(app, ["data", "fetch", "ml-1m", "--base-url", ml100k_server.url, "--cache-dir", str(cache)])
    assert missing.exit_code == 1
    assert f"{ml100k_server.url}/ml-1m.zip" in missing.stderr and "404" in missing.stderr

    unknown = runner.invoke(app, ["data", "fetch", "ml-5m", "--cache-dir", str(cache)])
    assert unknown.exit_code == 2
    assert "unknown release" in unknown.output


def test_cli_base_url_from_the_environment(ml100k_server: Server, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["data", "fetch", "ml-100k", "--cache-dir", str(tmp_path / "c"), "--no-progress"],
        env={BASE_URL_ENV: ml100k_server.url},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "c" / "ml-100k")
