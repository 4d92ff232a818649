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
when complete (:func:`building_dataset`), so an interrupted run never leaves a half dataset; the
hidden folder carries its process id, and one whose process has ended is removed by the next
build or run (:func:`remove_stale_builds`).
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
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from adrec_recbole.atomic import process_running
from adrec_recbole.data.errors import DataFormatError, EncodingError

MAX_HISTORY = 50
SPLITS = ("train", "valid", "test")
INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")
ITEM_TEXT_FIELDS = ("title", "brand", "categories")
ITEM_HEADER = ("item_id:token",) + tuple(f"{field}:token_seq" for field in ITEM_TEXT_FIELDS)

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
                    raise EncodingError(path, line_number, error.start + 1, raw[error.start]) from None
                yield line_number, text.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataFormatError(f"{path}:{line_number + 1}: corrupt or truncated gzip data ({error})") from None


def json_record(path, line_number, text):
    """Parse a JSON object starting on line ``line_number``; DataFormatError with file:line if it is not one."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"{path}:{line_number + error.lineno - 1}: malformed JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise DataFormatError(f"{path}:{line_number}: expected a JSON object, found {type(record).__name__}")
    return record


def iter_table(path, required, desc=None):
    """Open a tab-separated file with a header: ``(columns, positions, rows)``.

    ``columns`` is the header split at tabs; ``positions`` the index in it of each ``required``
    column (a name with a type, ``item_id:token``, must match exactly; one without, ``asin``,
    matches any type); ``rows`` yields ``(line_number, fields)`` for every later line. An empty
    file, a missing or repeated column, a line whose field count differs from the header's
    (a truncated line) and a header without rows raise :class:`DataFormatError`.
    """
    lines = iter_lines(path, desc)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(f"{path}:1: empty file (expected a header with {', '.join(required)})")
    columns = first[1].split("\t")
    positions = []
    for wanted in required:
        matches = [index for index, column in enumerate(columns)
                   if (column if ":" in wanted else column.split(":")[0]) == wanted]
        if len(matches) != 1:
            problem = "missing column" if not matches else "repeated column"
            raise DataFormatError(f"{path}:1: {problem} {wanted} (header: {first[1][:200]!r})")
        positions.append(matches[0])
    return columns, positions, _rows(path, lines, len(columns), after_header=True)


def _rows(path, lines, n_fields, after_header):
    """``(line_number, fields)`` of each line, all with ``n_fields`` fields (and at least one after a header)."""
    count = 0
    for line_number, line in lines:
        fields = line.split("\t")
        if len(fields) != n_fields:
            raise DataFormatError(
                f"{path}:{line_number}: expected {n_fields} tab-separated fields, found {len(fields)}"
            )
        count += 1
        yield line_number, fields
    if after_header and not count:
        raise DataFormatError(f"{path}:2: no rows after the header")


def iter_tsv(path, header=None, n_fields=None, desc=None):
    """Yield ``(line_number, fields)`` of a tab-separated file with a fixed number of fields per line.

    With ``header``, the first line must name its columns (in any order, others may follow, see
    :func:`iter_table`) and ``fields`` come in ``header`` order; without it, every line (the first
    included) must have ``n_fields`` fields.
    """
    if header is None:
        yield from _rows(path, iter_lines(path, desc), n_fields, after_header=False)
        return
    columns, positions, rows = iter_table(path, header, desc)
    if positions == list(range(len(columns))):
        yield from rows
    else:
        for line_number, fields in rows:
            yield line_number, [fields[position] for position in positions]


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


def check_splittable(sequences, source):
    """Raise :class:`DataFormatError` unless some sequence is long enough for a train row (4 items):
    with 3 items each, leave-one-out leaves train empty. ``source`` names the input in the message."""
    if not any(len(sequence) > 3 for sequence in sequences):
        raise DataFormatError(f"{source}: no user has more than 3 interactions, so the train split would be empty")


def check_target(out, name, replace=False):
    """Raise ``FileExistsError`` if ``{out}/{name}`` exists and may not be replaced."""
    target = Path(out) / name
    if target.exists() and not replace:
        raise FileExistsError(f"{target} already exists; remove it or pass --force to rebuild it")


def remove_stale_builds(out, name):
    """Delete the hidden folders that builds of ``{out}/{name}`` killed midway left behind; return them.

    A build's staging folder is ``.{name}.partial-{pid}-*`` (and a replaced dataset waits in
    ``.{name}.old-{pid}-*``); one whose process has ended is stale. Folders named without a pid
    (by versions before the pid was recorded) count as stale too.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:partial|old)-(?:(\d+)-)?")
    stale = []
    for entry in Path(out).iterdir() if Path(out).is_dir() else []:
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not (match.group(1) and process_running(int(match.group(1)))):
            shutil.rmtree(entry, ignore_errors=True)
            stale.append(entry)
    return stale


@contextmanager
def building_dataset(out, name, replace=False):
    """Yield an empty staging folder; on success it becomes ``{out}/{name}``, on any error it is removed.

    The staging folder is a hidden sibling of the target, so the final step is a rename on the same
    file system. ``replace`` swaps out an existing ``{out}/{name}``; without it that is an error.
    """
    check_target(out, name, replace)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out, name)
    target = out / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-", dir=out))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp creates it private; the dataset should not be
    try:
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{name}.old-{os.getpid()}-", dir=out))
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


def report(folder, meta):
    """Print one line to stderr: where the dataset is, its size, and what each policy removed or flagged."""
    counts = meta["counts"]
    policy = ", ".join(f"{key}={value:,}" for key, value in meta["policy"].items())
    print(
        f"{meta['dataset']}: {counts['users']:,} users, {counts['items']:,} items, "
        f"{counts['interactions']:,} interactions -> {folder} ({policy})",
        file=sys.stderr,
    )
