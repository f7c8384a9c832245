"""Read a raw text file with Spark, line by line, into good rows and quarantine rows.

Every line ends up in exactly one of the two outputs: parsed into the staged
table's columns, or quarantined with its file, 1-based line number, raw text
and the reason. Problems of the whole file raise :class:`SourceError` before
any work is done, naming the file and the line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.data.parsing import Reject, SourceError
from schemas import table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

DELIMITERS = ("::", "\t", "|", ",", ";")


@dataclass
class ParsedFile:
    """One file, split.

    Attributes:
        rows: Parsed rows with the staged table's schema.
        quarantine: ``stg_quarantine`` rows of the lines that could not be parsed.
        path: The file.
    """

    rows: DataFrame
    quarantine: DataFrame
    path: Path


def check_file(path: Path, *, sep: str, header: Sequence[str] | None = None, encoding: str = "utf-8") -> None:
    """File-level checks: exists, not empty, header (if any) as expected, data rows present, delimiter.

    Blank lines before the first data line are skipped here (the reader quarantines them
    as ``blank_line``); the delimiter is checked on the first non-blank data line.

    Raises:
        FileNotFoundError: The file is missing.
        SourceError: Empty file, wrong header, header only, or a first data line without the delimiter.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} is missing")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    with path.open("rb") as f:
        numbered = ((n, raw.rstrip(b"\r\n").decode(encoding, errors="replace").removeprefix("\ufeff"))
                    for n, raw in enumerate(f, start=1))
        if header is not None:
            _, first = next(numbered)
            expected = [h.lower() for h in header]
            if [h.strip().lower() for h in first.split(sep)] != expected:
                others = [d for d in DELIMITERS if d != sep and [h.strip().lower() for h in first.split(d)] == expected]
                hint = f"; it is separated by {others[0]!r}: wrong delimiter?" if others else ""
                raise SourceError(f"{path}:1: header {first!r} does not match the expected {sep.join(header)!r}{hint}")
        data = next(((n, line) for n, line in numbered if line.strip()), None)
    if data is None:
        raise SourceError(f"{path}: the file has {'a header but ' if header is not None else ''}no data rows")
    first_data, line = data
    if sep not in line:
        others = [d for d in DELIMITERS if d != sep and d in line and not (sep == "::" and d == ":")]
        hint = f"; it has {others[0]!r}: wrong delimiter?" if others else ""
        raise SourceError(f"{path}:{first_data}: expected fields separated by {sep!r}, found none{hint}")


def ends_with_newline(path: Path) -> bool:
    """Whether the file's last byte is a newline (else its last line may be truncated)."""
    with Path(path).open("rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def read_text_file(
    spark: SparkSession,
    path: Path,
    parse: Callable[[str], tuple],
    table_name: str,
    *,
    sep: str,
    header: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> ParsedFile:
    """Parse every line of ``path`` with ``parse``.

    Args:
        spark: Session.
        path: Input file (local or shared file system).
        parse: ``line -> tuple`` in the column order of ``table_name``; raises ``Reject``.
        table_name: The staged table the rows belong to.
        sep: Field delimiter (for the file-level check).
        header: Expected header columns, if the file has a header row.
        encoding: ``utf-8`` (undecodable lines are quarantined), ``latin-1``, or
            ``utf-8-or-latin-1`` (per line; for catalogues whose encoding varies by release).

    Returns:
        The parsed rows and the quarantined lines.
    """
    path = Path(path).resolve()
    check_file(path, sep=sep, header=header, encoding="latin-1" if encoding == "utf-8-or-latin-1" else encoding)
    source = str(path)
    has_header = header is not None
    clean_end = ends_with_newline(path)
    fallback = "latin-1" if encoding == "utf-8-or-latin-1" else None
    encoding = "utf-8" if fallback else encoding
    if fallback is None and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        # Large files: Spark splits lines. The JVM decodes them as UTF-8 and turns
        # bytes that are not valid UTF-8 into U+FFFD, which marks the line as bad.
        lines = spark.sparkContext.textFile(source).zipWithIndex()
    else:
        # Other encodings (latin-1 catalogues, small): exact bytes, split here.
        def split(pair: tuple[str, bytes]) -> list[bytes]:
            parts = pair[1].split(b"\n")
            if parts and parts[-1] == b"":
                parts.pop()
            return [p[:-1] if p.endswith(b"\r") else p for p in parts]

        lines = spark.sparkContext.binaryFiles(source).flatMap(split).zipWithIndex()
    n_lines = lines.count()
    last = n_lines - 1

    def classify(pair: tuple[str | bytes, int]) -> tuple[str, tuple]:
        raw, idx = pair
        line_no = idx + 1
        if has_header and idx == 0:
            return ("header", ())
        if isinstance(raw, bytes):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                if fallback is not None:
                    text = raw.decode(fallback)
                else:
                    return ("bad", ("ingest", source, line_no, raw.decode(encoding, errors="backslashreplace"),
                                    "bad_encoding", f"bad_encoding: byte {raw[e.start]:#04x} at column "
                                    f"{e.start + 1} is not valid {encoding}"))
        else:
            text = raw
            if "\ufffd" in text:
                return ("bad", ("ingest", source, line_no, text, "bad_encoding",
                                f"bad_encoding: bytes at column {text.index(chr(0xFFFD)) + 1} are not valid UTF-8"))
        if idx == 0 and text.startswith("\ufeff"):  # a byte-order mark (Excel writes one): not data
            text = text[1:]
        if not text.strip():
            return ("bad", ("ingest", source, line_no, text, "blank_line", "blank_line: no data on the line"))
        try:
            return ("ok", parse(text))
        except Reject as r:
            code, reason = r.code, str(r)
            if idx == last and not clean_end:
                code, reason = "truncated_last_line", f"truncated_last_line: the file ends mid-line ({r})"
            return ("bad", ("ingest", source, line_no, text, code, reason))

    tagged = lines.map(classify).cache()
    rows = spark.createDataFrame(tagged.filter(lambda t: t[0] == "ok").map(lambda t: t[1]), table(table_name).spark)
    bad = spark.createDataFrame(tagged.filter(lambda t: t[0] == "bad").map(lambda t: t[1]), table("stg_quarantine").spark)
    logger.info("read %s: %d lines", path.name, n_lines)
    return ParsedFile(rows=rows, quarantine=bad, path=path)
