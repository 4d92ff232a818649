"""Amazon Review Data 2018 (Ni, Li and McAuley, EMNLP 2019): download a category, convert it.

The conversion is the field's preprocessing (ADREC_SPEC section 7), step by step:

1. Reviews: the category's 5-core review file; from each JSON line ``reviewerID``, ``asin`` and
   ``unixReviewTime``.
2. Items without a metadata line are dropped with their reviews (counted). When the metadata file
   repeats an ``asin``, its first line wins (counted).
3. Item text: ``title``, ``brand`` and ``categories``, each passed through
   :func:`~adrec_recbole.data.layout.clean_text`; ``categories`` is the metadata ``category`` list
   without the category's root name (e.g. "Arts, Crafts & Sewing"), entries joined by ``' '``.
   Items whose three fields are all empty are kept and counted (``items_without_text``).
4. Each user's reviews are ordered by ``unixReviewTime`` with a stable sort (file order breaks
   ties: the timestamps are per day); a repeated (user, item) pair keeps its earliest review (counted).
5. Users left with fewer than 3 interactions are dropped (counted); no further k-core filtering.
6. Users are numbered in order of first appearance in the review file, items in order of first
   appearance along the users' sequences (as in UniSRec's files), then split leave-one-out with
   histories capped at 50 items (:func:`~adrec_recbole.data.layout.leave_one_out`).
"""
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from adrec_recbole.data.download import fetch
from adrec_recbole.data.errors import DataFormatError
from adrec_recbole.data.layout import (
    MAX_HISTORY, building_dataset, check_splittable, check_target, clean_text, iter_lines, json_record, report,
    write_index,
    write_items, write_meta, write_splits,
)
from adrec_recbole.data.stats import dataset_stats


@dataclass(frozen=True)
class AmazonCategory:
    """One category of Amazon Review Data 2018: its file name stem and the root of its category tree."""

    stem: str
    root: str

    @property
    def reviews_file(self):
        """Path of the 5-core review file below the base URL."""
        return f"categoryFilesSmall/{self.stem}_5.json.gz"

    @property
    def metadata_file(self):
        """Path of the metadata file below the base URL."""
        return f"metaFiles2/meta_{self.stem}.json.gz"


AMAZON_2018 = {
    "Scientific": AmazonCategory("Industrial_and_Scientific", "Industrial & Scientific"),
    "Instruments": AmazonCategory("Musical_Instruments", "Musical Instruments"),
    "Arts": AmazonCategory("Arts_Crafts_and_Sewing", "Arts, Crafts & Sewing"),
    "Office": AmazonCategory("Office_Products", "Office Products"),
    "Games": AmazonCategory("Video_Games", "Video Games"),
    "Pet": AmazonCategory("Pet_Supplies", "Pet Supplies"),
}
DEFAULT_BASE_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/"
BASE_URL_ENV = "ADREC_AMAZON_BASE_URL"
RAW_DIR = "amazon2018_raw"
MIN_INTERACTIONS = 3
SOURCE = "Amazon Review Data 2018 (Ni, Li, McAuley, EMNLP 2019): 5-core reviews + metadata"


def resolve_base_url(base_url=None):
    """The base URL to download from: the argument, else ``$ADREC_AMAZON_BASE_URL``, else the official one."""
    return base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def download_command(dataset, out):
    """The shell command that downloads and converts ``dataset`` into ``out``."""
    return f"python -m adrec_recbole.data download --dataset {dataset} --out {out}"


def _required(record, field, path, line_number):
    """``record[field]`` as a non-empty string; DataFormatError with file:line if it is missing or empty."""
    value = record.get(field)
    if value is None or str(value) == "":
        raise DataFormatError(f"{path}:{line_number}: missing field {field!r}")
    return str(value)


def read_reviews(path):
    """The review file as a DataFrame with columns ``user``, ``item``, ``time`` (int), in file order."""
    path = Path(path)
    users, items, times = [], [], []
    for line_number, line in iter_lines(path, desc=f"reading {path.name}"):
        if not line.strip():
            continue
        record = json_record(path, line_number, line)
        users.append(_required(record, "reviewerID", path, line_number))
        items.append(_required(record, "asin", path, line_number))
        time = _required(record, "unixReviewTime", path, line_number)
        if not time.isdigit():
            raise DataFormatError(f"{path}:{line_number}: unixReviewTime {time!r} is not an integer")
        times.append(int(time))
    return pd.DataFrame({"user": users, "item": items, "time": np.array(times, dtype=np.int64)})


def _plain_text(value):
    """A metadata value as one cleaned string (lists are joined by spaces, missing values are empty)."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(part) for part in value)
    return clean_text(str(value))


def item_text(record, root):
    """``(title, brand, categories)`` of one metadata record, cleaned; ``root`` is left out of categories."""
    categories = record.get("category") or []
    if not isinstance(categories, list):
        categories = [categories]
    categories = [_plain_text(category) for category in categories]
    return (
        _plain_text(record.get("title")),
        _plain_text(record.get("brand")),
        " ".join(category for category in categories if category and category != root),
    )


def read_metadata(path, wanted, root):
    """``({asin: (title, brand, categories)}, duplicate lines)`` for the asins in ``wanted``; first line wins."""
    path = Path(path)
    texts, duplicates = {}, 0
    for line_number, line in iter_lines(path, desc=f"reading {path.name}"):
        if not line.strip():
            continue
        record = json_record(path, line_number, line)
        asin = _required(record, "asin", path, line_number)
        if asin not in wanted:
            continue
        if asin in texts:
            duplicates += 1
            continue
        texts[asin] = item_text(record, root)
    return texts, duplicates


def build_sequences(reviews, texts):
    """Apply steps 2, 4 and 5 of the module's recipe; return ``({user: [asin, ...]}, policy counts)``.

    The dict is ordered by each user's first appearance in the review file.
    """
    has_metadata = reviews["item"].isin(list(texts))
    policy = {
        "reviews_read": len(reviews),
        "reviews_dropped_no_metadata": int((~has_metadata).sum()),
        "items_dropped_no_metadata": int(reviews.loc[~has_metadata, "item"].nunique()),
    }
    reviews = reviews[has_metadata]
    user_order = pd.factorize(reviews["user"])[0]
    reviews = reviews.iloc[np.lexsort((reviews["time"].to_numpy(), user_order))]
    repeated = reviews.duplicated(["user", "item"], keep="first")
    policy["duplicate_reviews_dropped"] = int(repeated.sum())
    reviews = reviews[~repeated]
    short = reviews.groupby("user", sort=False)["item"].transform("size") < MIN_INTERACTIONS
    policy["users_dropped_fewer_than_3"] = int(reviews.loc[short, "user"].nunique())
    sequences = reviews[~short].groupby("user", sort=False)["item"].agg(list)
    return dict(sequences.items()), policy


def convert(dataset, reviews_path, metadata_path, out, sources=None, replace=False):
    """Convert a category's raw review and metadata files into ``{out}/{dataset}`` (canonical layout).

    ``sources`` describes the raw files for ``meta.json`` (URLs, sizes, sha256); ``replace`` rebuilds
    an existing folder. The folder appears only once complete. Returns its path.
    """
    category = AMAZON_2018[dataset]
    check_target(out, dataset, replace)
    reviews = read_reviews(reviews_path)
    texts, duplicate_metadata = read_metadata(metadata_path, set(reviews["item"]), category.root)
    sequences, policy = build_sequences(reviews, texts)
    policy["duplicate_metadata_lines"] = duplicate_metadata
    if not sequences:
        raise DataFormatError(f"{reviews_path}: no user keeps {MIN_INTERACTIONS} or more interactions after filtering")
    check_splittable(sequences.values(), reviews_path)
    user_index = {user: str(index) for index, user in enumerate(sequences)}
    item_index = {}
    for items in sequences.values():
        for item in items:
            item_index.setdefault(item, str(len(item_index)))
    item_rows = [(token, *texts[asin]) for asin, token in item_index.items()]
    policy["items_without_text"] = sum(1 for row in item_rows if not any(row[1:]))
    with building_dataset(out, dataset, replace) as staging:
        write_splits(staging, dataset, ((user_index[user], [item_index[item] for item in items])
                                        for user, items in sequences.items()))
        write_items(staging, dataset, item_rows)
        write_index(staging / f"{dataset}.item2index", item_index.items())
        write_index(staging / f"{dataset}.user2index", user_index.items())
        meta = {
            "dataset": dataset,
            "source": SOURCE,
            "category": category.stem,
            "files": sources or {"reviews": {"file": str(reviews_path)}, "metadata": {"file": str(metadata_path)}},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "preprocessing": "adrec_recbole.data.amazon (see its module docstring)",
            "max_history": MAX_HISTORY,
            "counts": dataset_stats(staging, dataset),
            "policy": policy,
        }
        write_meta(staging, dataset, meta)
    folder = Path(out) / dataset
    report(folder, meta)
    return folder


def prepare(dataset, out, base_url=None, force=False):
    """Download (resumable, verified) the raw files of ``dataset`` into ``{out}/amazon2018_raw``, then convert.

    Raises ``FileExistsError`` before downloading if ``{out}/{dataset}`` exists and ``force`` is off;
    ``force`` rebuilds it from raw files downloaded again.
    """
    category = AMAZON_2018[dataset]
    check_target(out, dataset, force)
    base = resolve_base_url(base_url).rstrip("/")
    raw_dir = Path(out) / RAW_DIR
    sources = {
        kind: fetch(f"{base}/{relative}", raw_dir / Path(relative).name, json_lines=True, force=force)
        for kind, relative in (("reviews", category.reviews_file), ("metadata", category.metadata_file))
    }
    return convert(
        dataset, raw_dir / sources["reviews"]["file"], raw_dir / sources["metadata"]["file"], out,
        sources=sources, replace=force,
    )
