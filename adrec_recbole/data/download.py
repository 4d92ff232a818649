"""Resumable, verified HTTP download of gzipped data files.

A file is fetched into ``{dest}.part``; an interrupted transfer is resumed with an HTTP ``Range``
request. The download counts as complete only when its size equals the server's length
(``Content-Length`` / ``Content-Range``) and the whole gzip stream decompresses with a valid CRC;
and, for data files, every line parses as a JSON object; then ``.part`` is renamed to ``dest``.
So ``dest`` existing means "verified": a truncated transfer stays as ``.part`` to be resumed, a
corrupt one is deleted, and a ``dest`` that fails its check later is deleted and fetched again.
"""
import gzip
import hashlib
import http.client
import os
import re
import sys
import zlib
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from tqdm import tqdm

from adrec_recbole.data.errors import DataFormatError, DownloadError, EncodingError
from adrec_recbole.data.layout import json_record

CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class _Interrupted(Exception):
    """The transfer stopped before the announced length; the ``.part`` file can be resumed."""


class _HashingReader:
    """A read-only file wrapper that feeds every byte read through it into a hash."""

    def __init__(self, stream, digest):
        self.stream, self.digest = stream, digest

    def read(self, size=-1):
        data = self.stream.read(size)
        self.digest.update(data)
        return data


class BadContent(ValueError):
    """The file decompresses, but its content is not what was asked for (e.g. not JSON lines)."""


CORRUPT = (EOFError, gzip.BadGzipFile, zlib.error, BadContent)


def verify_gzip(path, json_lines=False):
    """Decompress the whole gzip file (checking every CRC and length) and return its sha256.

    With ``json_lines``, every non-blank decompressed line must also be a JSON object. Raises
    ``EOFError`` for a truncated stream, ``gzip.BadGzipFile``/``zlib.error`` for a corrupt one and
    :class:`BadContent` for content that is not JSON lines (all in :data:`CORRUPT`).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        reader = _HashingReader(raw, digest)
        with gzip.GzipFile(fileobj=reader, mode="rb") as stream:
            if json_lines:
                _check_json_lines(stream, path)
            else:
                while stream.read(CHUNK_BYTES):
                    pass
        digest.update(raw.read())
    return digest.hexdigest()


def _check_json_lines(stream, path):
    """Raise :class:`BadContent` at the first non-blank line of ``stream`` that is not a JSON object."""
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            json_record(path, line_number, line.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise BadContent(str(EncodingError(path, line_number, error.start + 1, line[error.start]))) from None
        except DataFormatError as error:
            raise BadContent(str(error)) from None


def _transfer(url, part, timeout):
    """Append the rest of ``url`` to ``part``, resuming with ``Range``; raise ``_Interrupted`` if it stops short."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "adrec-recbole"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing left after offset: the .part may already be whole
            return
        raise
    with response:
        total = None
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DownloadError(f"{url}: server answered the range request with an unexpected Content-Range")
            total = int(match.group(2)) if match.group(2) != "*" else None
        else:
            offset = 0
            if response.headers.get("Content-Length"):
                total = int(response.headers["Content-Length"])
        with open(part, "ab" if offset else "wb") as stream, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[: -len(".part")], mininterval=1.0,
        ) as progress:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    stream.write(chunk)
                    progress.update(len(chunk))
            except (http.client.HTTPException, OSError) as error:
                raise _Interrupted(str(error)) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Interrupted(f"connection closed after {size:,} of {total:,} bytes")


def fetch(url, dest, retries=3, timeout=60, json_lines=False, force=False):
    """Download and verify ``url`` as ``dest``; return its record ``{'url', 'file', 'bytes', 'sha256'}``.

    ``dest`` counts as downloaded only once it passed :func:`verify_gzip` (``json_lines``: its lines
    are JSON objects too). An existing ``dest`` is verified again and, if it fails, deleted and
    downloaded anew; ``force`` deletes ``dest`` and any ``.part`` first. Interrupted transfers are
    resumed up to ``retries`` more times in this call, and the ``.part`` file is kept for a later
    call when they run out; a transfer that fails the check is deleted. HTTP errors (e.g. 404) are
    not retried. Raises :class:`DownloadError`.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if force:
        for path in (dest, part):
            path.unlink(missing_ok=True)
    if dest.exists():
        try:
            sha256 = verify_gzip(dest, json_lines)
            return {"url": url, "file": dest.name, "bytes": dest.stat().st_size, "sha256": sha256}
        except CORRUPT as error:
            print(f"{dest} is corrupt ({error}); deleting it and downloading it again", file=sys.stderr)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            break
        except HTTPError as error:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (_Interrupted, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            if attempt == retries:
                kept = f"; {part.stat().st_size:,} bytes kept in {part} to resume" if part.exists() else ""
                raise DownloadError(f"{url}: download failed ({reason}){kept}") from None
    try:
        sha256 = verify_gzip(part, json_lines)
    except CORRUPT as error:
        part.unlink()
        raise DownloadError(f"{url}: downloaded file is corrupt ({error}); removed it, run again") from None
    os.replace(part, dest)
    return {"url": url, "file": dest.name, "bytes": dest.stat().st_size, "sha256": sha256}
