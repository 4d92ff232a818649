"""A user subsample of a dataset in the canonical layout, for screening on a smaller copy.

``python -m adrec_recbole.data subsample --dataset Games --users 0.2 --name GamesU20`` keeps a
random share of the users (``--seed``) and, for each kept user, exactly the rows the dataset has
(train, valid and test lines, byte for byte); the item file keeps the items those rows name, so
full ranking runs over the items the kept users interacted with. ``item2index`` and
``user2index`` are filtered the same way when present; ``meta.json`` records the source files
(sha256), the share and the seed. Nothing is re-split: a kept user's validation and test targets
are the source's.
"""
import random
from datetime import datetime, timezone
from pathlib import Path

from adrec_recbole.data.errors import DatasetNotFoundError, DataFormatError
from adrec_recbole.data.layout import (
    SPLITS, building_dataset, check_target, describe_file, inter_file, iter_lines, report, write_meta,
)
from adrec_recbole.data.stats import dataset_stats


def _lines(path):
    return [text for _, text in iter_lines(path)]


def _first_field_kept(lines, kept):
    """The header and the lines whose first field is in ``kept``."""
    return lines[:1] + [line for line in lines[1:] if line.split("\t", 1)[0] in kept]


def _write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def subsample_users(data_path, name, share, seed, new_name, out, force=False):
    """Write ``{out}/{new_name}``: ``share`` (0 < share < 1) of ``{data_path}/{name}``'s users, drawn with ``seed``."""
    if not 0 < share < 1:
        raise DataFormatError(f"--users {share}: give the share of users to keep, between 0 and 1 (exclusive)")
    folder = Path(data_path) / name
    sources = {split: folder / inter_file(name, split) for split in SPLITS}
    sources["item"] = folder / f"{name}.item"
    missing = [path.name for path in sources.values() if not path.is_file()]
    if missing:
        raise DatasetNotFoundError(f"{folder} lacks {', '.join(missing)}: subsample reads a dataset in the canonical "
                                   "layout (`python -m adrec_recbole.data import --help` converts other layouts)")
    check_target(out, new_name, force)
    test_lines = _lines(sources["test"])
    users = sorted({line.split("\t", 1)[0] for line in test_lines[1:]})  # one test row per user
    kept_users = set(random.Random(seed).sample(users, max(1, round(share * len(users)))))
    splits = {split: _first_field_kept(test_lines if split == "test" else _lines(sources[split]), kept_users)
              for split in SPLITS}
    kept_items = set()
    for lines in splits.values():
        for line in lines[1:]:
            _, history, target = line.split("\t")
            kept_items.update(history.split())
            kept_items.add(target)
    all_item_lines = _lines(sources["item"])
    item_lines = _first_field_kept(all_item_lines, kept_items)
    with building_dataset(out, new_name, force) as staging:
        for split, lines in splits.items():
            _write_lines(staging / inter_file(new_name, split), lines)
        _write_lines(staging / f"{new_name}.item", item_lines)
        for kind, tokens in (("item2index", kept_items), ("user2index", kept_users)):
            if (folder / f"{name}.{kind}").is_file():  # raw id<TAB>token, no header
                sources[kind] = folder / f"{name}.{kind}"
                _write_lines(staging / f"{new_name}.{kind}",
                             [line for line in _lines(sources[kind]) if line.split("\t")[-1] in tokens])
        meta = {
            "dataset": new_name,
            "source": f"user subsample of {name}",
            "subsample": {"of": name, "users": share, "seed": seed},
            "files": {key: describe_file(path) for key, path in sources.items()},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "preprocessing": "adrec_recbole.data.subsample (see its module docstring)",
            "counts": dataset_stats(staging, new_name),
            "policy": {"users_kept": len(kept_users), "users_left_out": len(users) - len(kept_users),
                       "items_left_out": len(all_item_lines) - len(item_lines)},
        }
        write_meta(staging, new_name, meta)
    report(Path(out) / new_name, meta)
    return Path(out) / new_name
