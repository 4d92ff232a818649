"""The one check of a dataset folder, run by ``data import``, ``data stats`` and the training path.

:func:`validate_dataset` reads every file a run reads (the three splits, the item text and the
index files) once, line by line, and stops at the first problem with a :class:`DataFormatError`
whose message is one line ``{file}:{line}: {what}``:

* encoding: a byte sequence that is not UTF-8 (line and byte column named);
* columns: a split's header must name ``user_id:token``, ``item_id_list:token_seq`` and
  ``item_id:token`` (any order, other columns allowed); ``.item``/``.text`` must name ``item_id``;
* truncated lines: a line whose number of tab-separated fields differs from its header's;
* empty input: an empty file, a header without rows (an empty split), an empty user id,
  history or target;
* duplicate ids: an item row repeated in ``.item`` or ``.text``, an id or index repeated in
  ``.item2index`` (and ``.user2index``);
* unknown items: an item token of a history or target that no item file knows. In the canonical
  layout the tokens are the rows of ``{name}.item``; in UniSRec's layout (``.text`` keyed by
  ASIN, no ``.item``) they are the indices of ``{name}.item2index``. Where ``{name}.user2index``
  exists, user tokens must be its indices.

The importers check their input files with the same functions (:func:`check_split`,
:func:`read_item_rows`), so a problem reads the same wherever it is found. Items without text
are allowed (they get a placeholder string and are counted); rows of ``.text`` whose ASIN has
no index are ignored, as UniSRec does.
"""
from dataclasses import dataclass
from pathlib import Path

from adrec_recbole.data.errors import DataFormatError, DatasetNotFoundError
from adrec_recbole.data.layout import INTER_HEADER, SPLITS, inter_file, iter_table, iter_tsv, missing_files, read_index


@dataclass
class DatasetCheck:
    """What :func:`validate_dataset` found: the layout (``canonical`` or ``unisrec``), the known
    item tokens and the file defining them, ``{item token: {column: text}}`` (column names without
    their ``:type``), the user tokens of ``.user2index`` (None without that file) and the rows per split."""

    layout: str
    items: set
    item_source: str
    item_fields: dict
    users: set
    rows: dict


def read_item_rows(path, key="item_id", required=()):
    """``{key value: {column: text}}`` of a tab-separated file with a header; each key once, none empty.

    Column names lose their ``:type`` suffix; ``required`` names further columns the header must have.
    """
    columns, positions, rows = iter_table(path, (key, *required))
    names = [column.split(":")[0] for column in columns]
    key_position = positions[0]
    table, first_line = {}, {}
    for line_number, fields in rows:
        token = fields[key_position]
        if not token:
            raise DataFormatError(f"{path}:{line_number}: empty {key}")
        if token in first_line:
            first = first_line[token]
            raise DataFormatError(f"{path}:{line_number}: duplicate {key} {token!r} (first on line {first})")
        first_line[token] = line_number
        table[token] = dict(zip(names, fields))
    return table


def check_split(path, items=None, users=None, items_in="the item file", users_in="user2index", on_row=None):
    """Check one ``.inter`` file (plain or gzipped) and return its number of rows.

    ``items``/``users`` are the known tokens (None: not checked), named ``items_in``/``users_in``
    in messages; ``on_row(line_number, user, history tokens, target)`` sees every row.
    """
    count = 0
    for line_number, (user, history, target) in iter_tsv(path, INTER_HEADER):
        tokens = history.split()
        if not (user and tokens and target):
            column = "user_id" if not user else "item_id_list" if not tokens else "item_id"
            raise DataFormatError(f"{path}:{line_number}: empty {column}")
        if users is not None and user not in users:
            raise DataFormatError(f"{path}:{line_number}: user {user!r} is not in {users_in}")
        if items is not None and not (target in items and items.issuperset(tokens)):
            unknown = next(token for token in tokens + [target] if token not in items)
            raise DataFormatError(f"{path}:{line_number}: item {unknown!r} is not in {items_in}")
        if on_row is not None:
            on_row(line_number, user, tokens, target)
        count += 1
    return count


def validate_dataset(folder, name, on_row=None):
    """Check the dataset ``{folder}`` (files ``{name}.*``) as described in the module; return a :class:`DatasetCheck`.

    Raises :class:`DatasetNotFoundError` if a required file is missing and :class:`DataFormatError`
    (one line naming file and line) at the first problem. ``on_row(split, line_number, user,
    history tokens, target)`` sees every row of the splits, in file order (train, valid, test).
    """
    folder = Path(folder)
    missing = missing_files(folder, name)
    if missing:
        raise DatasetNotFoundError(f"{folder}: not a complete dataset (missing {', '.join(missing)})")
    item_file, index_file = folder / f"{name}.item", folder / f"{name}.item2index"
    item_index = read_index(index_file) if index_file.is_file() else None
    if item_file.is_file():
        layout, item_fields = "canonical", read_item_rows(item_file)
        items, item_source = set(item_fields), item_file.name
    else:
        layout, item_source = "unisrec", index_file.name
        texts = read_item_rows(folder / f"{name}.text")
        item_fields = {item_index[asin]: fields for asin, fields in texts.items() if asin in item_index}
        items = set(item_index.values())
    user_file = folder / f"{name}.user2index"
    users = set(read_index(user_file).values()) if user_file.is_file() else None
    rows = {}
    for split in SPLITS:
        visit = None if on_row is None else (lambda *row, split=split: on_row(split, *row))
        rows[split] = check_split(folder / inter_file(name, split), items, users, item_source, user_file.name, visit)
    return DatasetCheck(layout, items, item_source, item_fields, users, rows)
