"""The canonical on-disk layout of a dataset, as RecBole 1.2.1 and ADRec read it.

``{data_path}/{name}/`` holds tab-separated UTF-8 files (``\\n`` line ends, no quoting):

* ``{name}.train.inter``, ``{name}.valid.inter``, ``{name}.test.inter``: header
  ``user_id:token  item_id_list:token_seq  item_id:token`` (UniSRec's format); tokens are integer
  indices written as strings. For a user's time-ordered sequence ``s`` of length ``n >= 3``,
  train holds ``s[:t] -> s[t]`` for ``t = n-3, ..., 1`` (longest prefix first), valid holds
  ``s[:n-2] -> s[n-2]`` and test ``s[:n-1] -> s[n-1]``; every history keeps its last
  ``MAX_HISTORY`` items.
* ``{name}.item``: header ``item_id:token  title:token_seq  brand:token_seq  categories:token_seq``,
  one row per item index, an empty string for an empty field.
* ``{name}.item2index`` and ``{name}.user2index``: ``raw id<TAB>index``, no header.
* ``{name}.meta.json``: provenance and the count of everything each filtering policy removed.

A folder is built under a hidden temporary name next to its target and renamed into place only
when complete (:func:`building_dataset`), so an interrupted run never leaves a half dataset.
"""
import gzip
import hashlib
import html
import json
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from adrec_recbole.data.errors import DataFormatError

MAX_HISTORY = 50
SPLITS = ("train", "valid", "test")
INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")
ITEM_TEXT_FIELDS = ("title", "brand", "categories")
ITEM_HEADER = ("item_id:token",) + tuple(f"{field}:token_seq" for field in ITEM_TEXT_FIELDS)
UNISREC_TEXT_HEADER = ("item_id:token", "text:token_seq")

_GZIP_MAGIC = b"\x1f\x8b"
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^<>]*>")


def inter_file(name, split):
    """File name of one split's interactions: ``{name}.{split}.inter``."""
    return f"{name}.{split}.inter"


def missing_files(folder, name):
    """Names of the files a complete dataset folder lacks (empty list: the folder is usable).

    Item text may come from ``{name}.item`` or from UniSRec's ``{name}.text`` with ``{name}.item2index``.
    """
    folder = Path(folder)
    missing = [inter_file(name, split) for split in SPLITS if not (folder / inter_file(name, split)).is_file()]
    unisrec_text = [folder / f"{name}.text", folder / f"{name}.item2index"]
    if not (folder / f"{name}.item").is_file() and not all(path.is_file() for path in unisrec_text):
        missing.append(f"{name}.item")
    return missing


def clean_text(text):
    """Unescape HTML entities, remove HTML tags, and collapse all whitespace (tabs, newlines) to one space."""
    text = _HTML_TAG.sub(" ", html.unescape(text))
    return " ".join(text.split())


def find_input(folder, file_name):
    """Path of ``file_name`` in ``folder``, plain or with a ``.gz`` suffix; DataFormatError if neither exists."""
    for candidate in (Path(folder) / file_name, Path(folder) / f"{file_name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataFormatError(f"{Path(folder) / file_name}: file not found (plain or .gz)")


def iter_lines(path, desc=None):
    """Yield ``(line_number, text)`` for every line of a plain or gzipped UTF-8 file, line end removed.

    Gzip is recognised by its magic bytes, not by the file name. Bytes that are not UTF-8 and a
    corrupt or truncated gzip stream raise :class:`DataFormatError` naming the file and line.
    ``desc`` turns on a tqdm line counter with that label.
    """
    path = Path(path)
    with open(path, "rb") as stream:
        gzipped = stream.read(2) == _GZIP_MAGIC
    line_number = 0
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            lines = tqdm(stream, desc=desc, unit=" lines", mininterval=1.0, disable=desc is None)
            for line_number, raw in enumerate(lines, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataFormatError(
                        f"{path}:{line_number}: not valid UTF-8 "
                        f"(byte 0x{raw[error.start]:02x} at column {error.start + 1})"
                    ) from None
                yield line_number, text.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataFormatError(f"{path}:{line_number + 1}: corrupt or truncated gzip data ({error})") from None


def iter_tsv(path, header=None, n_fields=None, desc=None):
    """Yield ``(line_number, fields)`` of a tab-separated file with a fixed number of fields per line.

    With ``header``, the first line must equal it and fixes the number of fields; without it,
    every line (the first included) must have ``n_fields`` fields.
    """
    lines = iter_lines(path, desc)
    if header is not None:
        n_fields = len(header)
        first = next(lines, (1, ""))[1]
        if tuple(first.split("\t")) != tuple(header):
            expected = "\t".join(header)
            raise DataFormatError(f"{path}:1: expected header {expected!r}, found {first[:200]!r}")
    for line_number, line in lines:
        fields = line.split("\t")
        if len(fields) != n_fields:
            raise DataFormatError(
                f"{path}:{line_number}: expected {n_fields} tab-separated fields, found {len(fields)}"
            )
        yield line_number, fields


def read_index(path):
    """Read a ``raw id<TAB>index`` file into ``{raw id: index token}``; ids and indices must be unique."""
    index, first_line = {}, {}
    for line_number, (raw_id, token) in iter_tsv(path, n_fields=2):
        if not token.isdigit():
            raise DataFormatError(f"{path}:{line_number}: index {token!r} is not a non-negative integer")
        for key in (("id", raw_id), ("index", token)):
            if key in first_line:
                raise DataFormatError(
                    f"{path}:{line_number}: duplicate {key[0]} {key[1]!r} (first on line {first_line[key]})"
                )
            first_line[key] = line_number
        index[raw_id] = token
    return index


def leave_one_out(sequence, max_history=MAX_HISTORY):
    """Split one time-ordered sequence (``len >= 3``) into ``(train_rows, valid_row, test_row)``.

    A row is ``(history, target)``: train has every prefix ``s[:t] -> s[t]`` for ``t = n-3 .. 1``
    (longest first, as UniSRec writes it), valid ``s[:n-2] -> s[n-2]``, test ``s[:n-1] -> s[n-1]``;
    histories keep their last ``max_history`` items.
    """
    if len(sequence) < 3:
        raise ValueError(f"leave-one-out needs at least 3 items, got {len(sequence)}")

    def row(position):
        return sequence[max(0, position - max_history):position], sequence[position]

    n = len(sequence)
    return [row(position) for position in range(n - 3, 0, -1)], row(n - 2), row(n - 1)


def check_target(out, name, replace=False):
    """Raise ``FileExistsError`` if ``{out}/{name}`` exists and may not be replaced."""
    target = Path(out) / name
    if target.exists() and not replace:
        raise FileExistsError(f"{target} already exists; remove it or pass --force to rebuild it")


@contextmanager
def building_dataset(out, name, replace=False):
    """Yield an empty staging folder; on success it becomes ``{out}/{name}``, on any error it is removed.

    The staging folder is a hidden sibling of the target, so the final step is a rename on the same
    file system. ``replace`` swaps out an existing ``{out}/{name}``; without it that is an error.
    """
    check_target(out, name, replace)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp creates it private; the dataset should not be
    try:
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out))
            os.replace(target, retired / name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_splits(folder, name, user_sequences, max_history=MAX_HISTORY):
    """Write the three ``.inter`` files from ``(user token, [item tokens])`` pairs, in the given user order."""
    folder = Path(folder)
    streams = {split: open(folder / inter_file(name, split), "w", encoding="utf-8", newline="\n") for split in SPLITS}
    try:
        for stream in streams.values():
            stream.write("\t".join(INTER_HEADER) + "\n")
        for user, sequence in user_sequences:
            train_rows, valid_row, test_row = leave_one_out(sequence, max_history)
            for split, rows in (("train", train_rows), ("valid", [valid_row]), ("test", [test_row])):
                streams[split].writelines(f"{user}\t{' '.join(history)}\t{target}\n" for history, target in rows)
    finally:
        for stream in streams.values():
            stream.close()


def write_items(folder, name, rows):
    """Write ``{name}.item`` from ``(item token, title, brand, categories)`` rows of cleaned text."""
    with open(Path(folder) / f"{name}.item", "w", encoding="utf-8", newline="\n") as stream:
        stream.write("\t".join(ITEM_HEADER) + "\n")
        for row in rows:
            if any("\t" in field or "\n" in field for field in row):
                raise ValueError(f"item {row[0]!r}: a field contains a tab or a newline")
            stream.write("\t".join(row) + "\n")


def write_index(path, pairs):
    """Write ``raw id<TAB>index`` lines (no header) from ``(raw id, index token)`` pairs."""
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        stream.writelines(f"{raw_id}\t{token}\n" for raw_id, token in pairs)


def copy_plain(source, dest):
    """Copy ``source`` to ``dest`` byte for byte, decompressing it first if it is gzipped."""
    with open(source, "rb") as stream:
        gzipped = stream.read(2) == _GZIP_MAGIC
    with (gzip.open(source, "rb") if gzipped else open(source, "rb")) as reader, open(dest, "wb") as writer:
        shutil.copyfileobj(reader, writer)


def describe_file(path):
    """Provenance record of an input file: ``{'file', 'bytes', 'sha256'}``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return {"file": str(path), "bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def write_meta(folder, name, meta):
    """Write the provenance record ``{name}.meta.json``."""
    with open(Path(folder) / f"{name}.meta.json", "w", encoding="utf-8") as stream:
        json.dump(meta, stream, indent=2, ensure_ascii=False)
        stream.write("\n")


def read_user_sequences(folder, name):
    """Rebuild each user's sequence from the three ``.inter`` files of the canonical layout.

    Rows are taken in layout order (train longest prefix first, then valid, then test); the first
    row's history plus every row's target is the sequence, and every history must be a suffix of
    the sequence before its target. Returns ``({user: [item tokens]}, {user: test history length})``.
    """
    folder = Path(folder)
    rows = defaultdict(lambda: {split: [] for split in SPLITS})
    for split in SPLITS:
        path = folder / inter_file(name, split)
        for line_number, (user, history, target) in iter_tsv(path, INTER_HEADER):
            items = history.split()
            if not items or not target:
                raise DataFormatError(f"{path}:{line_number}: empty item_id_list or item_id")
            rows[user][split].append((items, target, f"{path}:{line_number}"))
    sequences, test_history = {}, {}
    for user, by_split in rows.items():
        ordered = by_split["train"][::-1] + by_split["valid"] + by_split["test"]
        sequence = list(ordered[0][0])
        for history, target, where in ordered:
            if sequence[len(sequence) - len(history):] != history:
                raise DataFormatError(f"{where}: history of user {user} does not continue the rows before it")
            sequence.append(target)
        sequences[user] = sequence
        test_history[user] = len(by_split["test"][-1][0]) if by_split["test"] else 0
    return sequences, test_history


def read_item_fields(folder, name):
    """``{item token: {field: text}}`` from ``{name}.item``, else from UniSRec's ``{name}.text`` + ``.item2index``.

    UniSRec's single text column counts as the title, as :func:`~adrec_recbole.data.importers.import_unisrec`
    writes it.
    """
    folder = Path(folder)
    if (folder / f"{name}.item").is_file():
        return {
            fields[0]: dict(zip(ITEM_TEXT_FIELDS, fields[1:]))
            for _, fields in iter_tsv(folder / f"{name}.item", ITEM_HEADER)
        }
    asin_to_index = read_index(folder / f"{name}.item2index")
    return {
        asin_to_index[asin]: {"title": text, "brand": "", "categories": ""}
        for _, (asin, text) in iter_tsv(folder / f"{name}.text", UNISREC_TEXT_HEADER)
        if asin in asin_to_index
    }


def report(folder, meta):
    """Print one line to stderr: where the dataset is, its size, and what each policy removed or flagged."""
    counts = meta["counts"]
    policy = ", ".join(f"{key}={value:,}" for key, value in meta["policy"].items())
    print(
        f"{meta['dataset']}: {counts['users']:,} users, {counts['items']:,} items, "
        f"{counts['interactions']:,} interactions -> {folder} ({policy})",
        file=sys.stderr,
    )
