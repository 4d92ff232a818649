"""Import already-processed datasets published by other projects into the canonical layout.

* UniSRec format (e.g. ``../shared/datasets/Scientific``): ``{name}.train/valid/test.inter`` are
  copied as they are (after validation), ``{name}.text`` (ASIN-keyed ``text:token_seq``) becomes
  ``{name}.item`` keyed by index through ``{name}.item2index`` with the whole text as the title
  and empty brand/categories; ``item2index``/``user2index`` are copied.
* LC-Rec format (e.g. ``../shared/datasets/Games``): ``{name}.inter.json``
  (``{"user index": [item index, ...]}``, full chronological sequences), ``{name}.item2id``
  (``ASIN<TAB>index``) and ``{name}.user2id``; titles from a TSV file with a header naming
  ``asin`` and ``title`` columns (``--titles``; by default ``{name}.lcrec_item_titles.tsv[.gz]``
  in the source folder). Users with fewer than 3 items are dropped (counted), the rest split
  leave-one-out with histories capped at 50.

Every input may be plain or gzipped (``{file}`` or ``{file}.gz``). Items without text are kept
and counted in ``meta.json``; malformed input raises :class:`DataFormatError` naming file and line,
checked by :mod:`adrec_recbole.data.validate` (the imported folder passes
:func:`~adrec_recbole.data.validate.validate_dataset` before it is renamed into place).
"""
from datetime import datetime, timezone
from pathlib import Path

from adrec_recbole.data.errors import DataFormatError
from adrec_recbole.data.layout import (
    MAX_HISTORY, SPLITS, building_dataset, check_splittable, check_target, clean_text, copy_plain, describe_file,
    find_input, inter_file, iter_lines, json_record, read_index, report, write_items, write_meta, write_splits,
)
from adrec_recbole.data.stats import dataset_stats
from adrec_recbole.data.validate import check_split, read_item_rows

MIN_INTERACTIONS = 3


def read_unisrec_text(path, asin_to_index):
    """``({item index: cleaned text}, rows whose ASIN has no index)`` from UniSRec's ``.text`` file."""
    rows = read_item_rows(path, required=("text",))
    texts = {asin_to_index[asin]: clean_text(row["text"]) for asin, row in rows.items() if asin in asin_to_index}
    return texts, len(rows) - len(texts)


def _by_index(index):
    """``(raw id, index token)`` pairs of an index map, in numeric index order."""
    return sorted(index.items(), key=lambda pair: int(pair[1]))


def import_unisrec(src, name, out, force=False):
    """Import a UniSRec-format folder ``src`` as ``{out}/{name}``; return the new folder."""
    src = Path(src)
    check_target(out, name, force)
    paths = {key: find_input(src, f"{name}.{key}") for key in ("item2index", "user2index", "text")}
    paths.update({split: find_input(src, inter_file(name, split)) for split in SPLITS})
    item_index, user_index = read_index(paths["item2index"]), read_index(paths["user2index"])
    items, users = set(item_index.values()), set(user_index.values())
    for split in SPLITS:
        check_split(paths[split], items, users, paths["item2index"].name, paths["user2index"].name)
    texts, unmapped = read_unisrec_text(paths["text"], item_index)
    item_rows = [(token, texts.get(token, ""), "", "") for _, token in _by_index(item_index)]
    policy = {
        "items_without_text": sum(1 for row in item_rows if not row[1]),
        "text_rows_without_index": unmapped,
    }
    with building_dataset(out, name, force) as staging:
        for split in SPLITS:
            copy_plain(paths[split], staging / inter_file(name, split))
        copy_plain(paths["item2index"], staging / f"{name}.item2index")
        copy_plain(paths["user2index"], staging / f"{name}.user2index")
        write_items(staging, name, item_rows)
        meta = _import_meta(name, "UniSRec format", paths, staging, policy)
        write_meta(staging, name, meta)
    folder = Path(out) / name
    report(folder, meta)
    return folder


def read_lcrec_sequences(path, users, items):
    """``{user index: [item index tokens]}`` from an LC-Rec ``.inter.json``, checked against the index maps."""
    data = json_record(path, 1, "\n".join(line for _, line in iter_lines(path)))  # {user index: [item index, ...]}
    sequences = {}
    for user, sequence in data.items():
        if user not in users:
            raise DataFormatError(f"{path}: user {user!r} is not in user2id")
        if not isinstance(sequence, list) or not all(isinstance(item, int) for item in sequence):
            raise DataFormatError(f"{path}: user {user!r}: expected a list of integer item indices")
        tokens = [str(item) for item in sequence]
        unknown = next((token for token in tokens if token not in items), None)
        if unknown is not None:
            raise DataFormatError(f"{path}: user {user!r}: item {unknown!r} is not in item2id")
        sequences[user] = tokens
    return sequences


def read_titles(path):
    """``{asin: cleaned title}`` from a TSV whose header names ``asin`` and ``title`` columns (others ignored).

    Header names may carry a RecBole type suffix (``title:token_seq``). ASINs must be unique.
    """
    rows = read_item_rows(path, key="asin", required=("title",))
    return {asin: clean_text(row["title"]) for asin, row in rows.items()}


def default_titles_file(src, name):
    """The LC-Rec layout's titles file: ``{src}/{name}.lcrec_item_titles.tsv`` (or ``.tsv.gz``)."""
    try:
        return find_input(src, f"{name}.lcrec_item_titles.tsv")
    except DataFormatError:
        raise DataFormatError(
            f"{Path(src)}: no {name}.lcrec_item_titles.tsv[.gz]; pass --titles FILE "
            f"(TSV with a header naming 'asin' and 'title' columns)"
        ) from None


def import_lcrec(src, name, out, titles=None, force=False):
    """Import an LC-Rec-format folder ``src`` as ``{out}/{name}``; ``titles`` overrides the titles file."""
    src = Path(src)
    check_target(out, name, force)
    paths = {key: find_input(src, f"{name}.{key}") for key in ("item2id", "user2id", "inter.json")}
    paths["titles"] = Path(titles) if titles else default_titles_file(src, name)
    item_index, user_index = read_index(paths["item2id"]), read_index(paths["user2id"])
    sequences = read_lcrec_sequences(paths["inter.json"], set(user_index.values()), set(item_index.values()))
    titles_by_asin = read_titles(paths["titles"])
    kept = {user: sequences[user] for user in sorted(sequences, key=int) if len(sequences[user]) >= MIN_INTERACTIONS}
    item_rows = [(token, titles_by_asin.get(asin, ""), "", "") for asin, token in _by_index(item_index)]
    policy = {
        "users_dropped_fewer_than_3": len(sequences) - len(kept),
        "users_with_empty_sequence": sum(1 for sequence in sequences.values() if not sequence),
        "items_without_title": sum(1 for row in item_rows if not row[1]),
        "title_rows_without_index": len(titles_by_asin.keys() - item_index.keys()),
    }
    if not kept:
        raise DataFormatError(f"{paths['inter.json']}: no user has {MIN_INTERACTIONS} or more interactions")
    check_splittable(kept.values(), paths["inter.json"])
    with building_dataset(out, name, force) as staging:
        write_splits(staging, name, kept.items())
        copy_plain(paths["item2id"], staging / f"{name}.item2index")
        copy_plain(paths["user2id"], staging / f"{name}.user2index")
        write_items(staging, name, item_rows)
        meta = _import_meta(name, "LC-Rec format", paths, staging, policy)
        meta["max_history"] = MAX_HISTORY
        write_meta(staging, name, meta)
    folder = Path(out) / name
    report(folder, meta)
    return folder


def _import_meta(name, source, paths, staging, policy):
    """The ``meta.json`` record of an import: input files with sha256, counts of the result, policy counts."""
    return {
        "dataset": name,
        "source": f"{source} import",
        "files": {key: describe_file(path) for key, path in paths.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preprocessing": "adrec_recbole.data.importers (see its module docstring)",
        "counts": dataset_stats(staging, name),
        "policy": policy,
    }
