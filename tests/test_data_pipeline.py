"""Tests of adrec_recbole.data: Amazon download + conversion, imports, stats, errors, atomicity.

Everything runs offline against a local HTTP server (tests/fixtures_amazon.py); the imports of
the real Scientific and Games folders run when ../shared/datasets (or $ADREC_SHARED_DATASETS)
is there and are skipped otherwise.
"""
import contextlib
import gzip
import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

import fixtures_amazon as fx
from adrec_recbole.data import DataFormatError, DatasetNotFoundError, ensure_dataset
from adrec_recbole.data import amazon, importers
from adrec_recbole.data.__main__ import main
from adrec_recbole.data.download import fetch
from adrec_recbole.data.errors import DownloadError
from adrec_recbole.data.layout import SPLITS, write_splits
from adrec_recbole.data.stats import dataset_stats, read_user_sequences

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("ADREC_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
INTER_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"
ITEM_HEADER = "item_id:token\ttitle:token_seq\tbrand:token_seq\tcategories:token_seq"


@pytest.fixture
def server():
    with fx.AmazonServer(fx.raw_files()) as running:
        yield running


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The fixture category downloaded and converted once: ``(data_path, server requests)``."""
    data_path = tmp_path_factory.mktemp("prepared") / "dataset"
    with fx.AmazonServer(fx.raw_files()) as running:
        folder = ensure_dataset("Scientific", str(data_path), base_url=running.base_url)
        assert folder == data_path / "Scientific"
        assert ensure_dataset("Scientific", str(data_path), base_url=running.base_url) == folder
        return data_path, list(running.requests)


def lines(path):
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def write_gz(path, data):
    Path(path).write_bytes(gzip.compress(data, mtime=0))
    return Path(path)


def hidden_leftovers(data_path):
    return [entry.name for entry in Path(data_path).iterdir() if entry.name.startswith(".")]


# ---------------------------------------------------------------- Amazon download and conversion

@contextlib.contextmanager
def exits_2(capsys, message):
    """The command stops with exit status 2 and one ``error: ...`` line containing ``message``."""
    capsys.readouterr()  # what earlier commands printed
    with pytest.raises(SystemExit) as raised:
        yield
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error


def test_download_and_convert_gives_exact_layout(prepared):
    data_path, requests = prepared
    folder = data_path / "Scientific"
    assert sorted(path for path, _ in requests) == sorted(fx.raw_files())  # second call downloads nothing
    assert lines(folder / "Scientific.train.inter") == [INTER_HEADER] + fx.EXPECTED_TRAIN
    assert lines(folder / "Scientific.valid.inter") == [INTER_HEADER] + fx.EXPECTED_VALID
    assert lines(folder / "Scientific.test.inter") == [INTER_HEADER] + fx.EXPECTED_TEST
    assert lines(folder / "Scientific.item") == [ITEM_HEADER] + ["\t".join(row) for row in fx.EXPECTED_ITEM_ROWS]
    assert lines(folder / "Scientific.item2index") == ["\t".join(pair) for pair in fx.EXPECTED_ITEM2INDEX]
    assert lines(folder / "Scientific.user2index") == ["\t".join(pair) for pair in fx.EXPECTED_USER2INDEX]
    meta = json.loads((folder / "Scientific.meta.json").read_text())
    assert meta["policy"] == fx.EXPECTED_POLICY
    assert (meta["counts"]["users"], meta["counts"]["items"], meta["counts"]["interactions"]) == (3, 60, 62)
    assert meta["files"]["reviews"]["url"].endswith("categoryFilesSmall/Industrial_and_Scientific_5.json.gz")
    assert len(meta["files"]["metadata"]["sha256"]) == 64
    assert sorted(entry.name for entry in data_path.iterdir()) == ["Scientific", "amazon2018_raw"]


def test_stats_command_prints_json(prepared, capsys):
    data_path, _ = prepared
    main(["stats", "--dataset", "Scientific", "--data_path", str(data_path)])
    stats = json.loads(capsys.readouterr().out)
    assert stats["users"] == 3 and stats["items"] == 60 and stats["interactions"] == 62
    assert stats["items_with_text"] == 59 and stats["max_sequence_length"] == 54
    assert stats["max_test_history_length"] == 50


def test_recbole_loads_the_canonical_layout(prepared, tmp_path, monkeypatch):
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    torch.set_num_threads(1)
    monkeypatch.setattr(sys, "argv", ["pytest"])  # RecBole's Config parses --key=value from argv
    data_path, _ = prepared
    config = Config(model="SASRec", dataset="Scientific", config_dict={
        "data_path": str(data_path), "checkpoint_dir": str(tmp_path / "saved"),
        "benchmark_filename": list(SPLITS), "alias_of_item_id": ["item_id_list"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "train_neg_sample_args": None, "epochs": 1, "show_progress": False, "state": "ERROR",
    })
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    assert (dataset.user_num, dataset.item_num) == (3 + 1, 60 + 1)  # + PAD
    assert (train_data.dataset.inter_num, valid_data.dataset.inter_num, test_data.dataset.inter_num) == (53, 3, 3)


def test_download_command_honours_env_base_url_and_force(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADREC_AMAZON_BASE_URL", server.base_url)
    data_path = tmp_path / "dataset"
    main(["download", "--dataset", "Scientific", "--out", str(data_path)])
    assert lines(data_path / "Scientific" / "Scientific.test.inter") == [INTER_HEADER] + fx.EXPECTED_TEST
    with exits_2(capsys, "already exists"):
        main(["download", "--dataset", "Scientific", "--out", str(data_path)])
    (data_path / "Scientific" / "Scientific.item").write_text("stale")
    main(["download", "--dataset", "Scientific", "--out", str(data_path), "--force"])
    assert lines(data_path / "Scientific" / "Scientific.item")[0] == ITEM_HEADER
    assert hidden_leftovers(data_path) == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.modes[fx.REVIEWS_PATH] = "cut"
    url, dest = server.base_url + fx.REVIEWS_PATH.split("/amazon_v2/")[1], tmp_path / "reviews.json.gz"
    part = tmp_path / "reviews.json.gz.part"
    with pytest.raises(DownloadError, match="kept in"):
        fetch(url, dest, retries=0)
    size = part.stat().st_size
    assert 0 < size < len(server.files[fx.REVIEWS_PATH]) and not dest.exists()
    record = fetch(url, dest, retries=0)
    assert server.requests[-1] == (fx.REVIEWS_PATH, f"bytes={size}-")
    assert dest.read_bytes() == server.files[fx.REVIEWS_PATH] and not part.exists()
    assert record["bytes"] == len(server.files[fx.REVIEWS_PATH])
    dest.unlink()
    fetch(url, dest, retries=1)  # one call: cut, then resumed automatically
    assert dest.read_bytes() == server.files[fx.REVIEWS_PATH]


def test_corrupt_download_is_detected_and_removed(server, tmp_path):
    server.modes[fx.METADATA_PATH] = "corrupt"
    url, dest = server.base_url + fx.METADATA_PATH.split("/amazon_v2/")[1], tmp_path / "meta.json.gz"
    with pytest.raises(DownloadError, match="corrupt"):
        fetch(url, dest)
    assert not dest.exists() and not (tmp_path / "meta.json.gz.part").exists()
    data_path = tmp_path / "dataset"
    with pytest.raises(DatasetNotFoundError) as caught:
        ensure_dataset("Scientific", str(data_path), base_url=server.base_url)
    assert "corrupt" in str(caught.value) and "\n" not in str(caught.value)
    assert not (data_path / "Scientific").exists()


def test_network_failure_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatasetNotFoundError) as caught:
        ensure_dataset("Arts", str(tmp_path), base_url=f"http://127.0.0.1:{port}/")
    message = str(caught.value)
    assert "\n" not in message and "python -m adrec_recbole.data download --dataset Arts" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_http_404_is_one_line(server, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="HTTP 404") as caught:
        ensure_dataset("Pet", str(tmp_path), base_url=server.base_url)
    assert "\n" not in str(caught.value)


def test_unknown_missing_and_incomplete_datasets_are_one_line(tmp_path):
    with pytest.raises(DatasetNotFoundError) as unknown:
        ensure_dataset("Nope", str(tmp_path))
    assert "Nope.train.inter" in str(unknown.value) and "Nope.item" in str(unknown.value)
    with pytest.raises(DatasetNotFoundError) as offline:
        ensure_dataset("Arts", str(tmp_path), download=False)
    assert f"python -m adrec_recbole.data download --dataset Arts --out {tmp_path}" in str(offline.value)
    (tmp_path / "Office").mkdir()
    (tmp_path / "Office" / "Office.train.inter").write_text(INTER_HEADER + "\n")
    with pytest.raises(DatasetNotFoundError, match="incomplete.*Office.valid.inter.*--force"):
        ensure_dataset("Office", str(tmp_path))
    for error in (unknown.value, offline.value):
        assert "\n" not in str(error)


def test_failed_conversion_leaves_no_dataset(server, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(amazon, "write_items", broken)
    data_path = tmp_path / "dataset"
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_dataset("Scientific", str(data_path), base_url=server.base_url)
    assert not (data_path / "Scientific").exists() and hidden_leftovers(data_path) == []
    monkeypatch.undo()
    requests_before = len(server.requests)
    ensure_dataset("Scientific", str(data_path), base_url=server.base_url)  # raw files are reused
    assert len(server.requests) == requests_before
    assert lines(data_path / "Scientific" / "Scientific.valid.inter") == [INTER_HEADER] + fx.EXPECTED_VALID


# ---------------------------------------------------------------- bad raw Amazon input

REVIEW_FILE = "Industrial_and_Scientific_5.json.gz"


@pytest.mark.parametrize("bad_line, message", [
    (b'{"reviewerID": "U9", "asin": "A", "unixReviewTime": 5\n', r":3: malformed JSON"),
    (b'{"asin": "A", "unixReviewTime": 5}\n', r":3: missing field 'reviewerID'"),
    (b'{"reviewerID": "U9", "asin": "A", "unixReviewTime": "soon"}\n', r":3: unixReviewTime 'soon'"),
    (b'["U9", "A", 5]\n', r":3: expected a JSON object"),
])
def test_bad_review_lines_name_file_and_line(tmp_path, bad_line, message):
    good = fx.json_lines(fx.review_records()[:2])
    reviews = write_gz(tmp_path / REVIEW_FILE, good + bad_line)
    metadata = write_gz(tmp_path / "meta.json.gz", fx.json_lines(fx.metadata_records()))
    with pytest.raises(DataFormatError, match=REVIEW_FILE + message):
        amazon.convert("Scientific", reviews, metadata, tmp_path / "out")
    assert not (tmp_path / "out" / "Scientific").exists()


def test_non_utf8_metadata_names_file_and_line(tmp_path):
    reviews = write_gz(tmp_path / REVIEW_FILE, fx.json_lines(fx.review_records()))
    latin1 = '{"asin": "Q", "title": "Caf\u00e9"}\n'.encode("latin-1")
    metadata = write_gz(tmp_path / "meta_bad.json.gz", fx.json_lines(fx.metadata_records()[:3]) + latin1)
    with pytest.raises(DataFormatError, match=r"meta_bad.json.gz:4: not valid UTF-8 \(byte 0xe9"):
        amazon.convert("Scientific", reviews, metadata, tmp_path / "out")


def test_truncated_gzip_is_a_format_error(tmp_path):
    data = gzip.compress(fx.json_lines(fx.review_records()), mtime=0)
    reviews = tmp_path / REVIEW_FILE
    reviews.write_bytes(data[: len(data) // 2])
    metadata = write_gz(tmp_path / "meta.json.gz", fx.json_lines(fx.metadata_records()))
    with pytest.raises(DataFormatError, match=REVIEW_FILE + r":\d+: corrupt or truncated gzip"):
        amazon.convert("Scientific", reviews, metadata, tmp_path / "out")


def test_no_user_left_is_a_format_error(tmp_path):
    reviews = write_gz(tmp_path / REVIEW_FILE, fx.json_lines(fx.review_records()[:3]))
    metadata = write_gz(tmp_path / "meta.json.gz", fx.json_lines(fx.metadata_records()))
    with pytest.raises(DataFormatError, match="no user keeps 3 or more"):
        amazon.convert("Scientific", reviews, metadata, tmp_path / "out")


# ---------------------------------------------------------------- UniSRec and LC-Rec imports

def make_unisrec(folder, name="Mini"):
    """A small UniSRec-format folder: 2 users, 4 items (item 3 has no text), text with an entity."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item2index").write_text("P1\t0\nP2\t1\nP3\t2\nP4\t3\n")
    (folder / f"{name}.user2index").write_text("ua\t0\nub\t1\n")
    (folder / f"{name}.train.inter").write_text(f"{INTER_HEADER}\n0\t0\t1\n")
    (folder / f"{name}.valid.inter").write_text(f"{INTER_HEADER}\n0\t0 1\t2\n1\t3\t0\n")
    write_gz(folder / f"{name}.test.inter.gz", f"{INTER_HEADER}\n0\t0 1 2\t3\n1\t3 0\t1\n".encode())
    (folder / f"{name}.text").write_text("item_id:token\ttext:token_seq\nP1\tPens &amp; pencils. \nP2\tPaper\n"
                                         "P3\tGlue\nP9\tnot indexed\n")
    return folder


def test_unisrec_import(tmp_path):
    src = make_unisrec(tmp_path / "src")
    folder = importers.import_unisrec(src, "Mini", tmp_path / "out")
    assert lines(folder / "Mini.item") == [
        ITEM_HEADER, "0\tPens & pencils.\t\t", "1\tPaper\t\t", "2\tGlue\t\t", "3\t\t\t",
    ]
    assert (folder / "Mini.test.inter").read_text() == f"{INTER_HEADER}\n0\t0 1 2\t3\n1\t3 0\t1\n"
    assert (folder / "Mini.item2index").read_bytes() == (src / "Mini.item2index").read_bytes()
    meta = json.loads((folder / "Mini.meta.json").read_text())
    assert meta["policy"] == {"items_without_text": 1, "text_rows_without_index": 1}
    assert (meta["counts"]["users"], meta["counts"]["items"], meta["counts"]["interactions"]) == (2, 4, 7)


@pytest.mark.parametrize("file_name, content, message", [
    ("Mini.item2index", "P1\t0\nP2\t1\nP1\t2\nP4\t3\n", r"Mini.item2index:3: duplicate id 'P1' \(first on line 1\)"),
    ("Mini.user2index", "ua\t0\nub\t0\n", r"Mini.user2index:2: duplicate index '0'"),
    ("Mini.train.inter", f"{INTER_HEADER}\n0\t0\n", r"Mini.train.inter:2: expected 3 tab-separated fields, found 2"),
    ("Mini.train.inter", f"{INTER_HEADER}\n0\t\t1\n", r"Mini.train.inter:2: empty item_id_list"),
    ("Mini.train.inter", f"{INTER_HEADER}\n0\t0\t7\n", r"Mini.train.inter:2: item '7' is not in Mini.item2index"),
    ("Mini.train.inter", "user_id:token\titem_id:token\n", r"Mini.train.inter:1: missing column item_id_list"),
    ("Mini.text", "item_id:token\ttext:token_seq\nP1\ta\nP1\tb\n", r"Mini.text:3: duplicate item_id 'P1' \(first"),
])
def test_unisrec_bad_input(tmp_path, file_name, content, message):
    src = make_unisrec(tmp_path / "src")
    (src / file_name).write_text(content)
    with pytest.raises(DataFormatError, match=message):
        importers.import_unisrec(src, "Mini", tmp_path / "out")
    assert not (tmp_path / "out" / "Mini").exists()


def make_lcrec(folder, sequences, titles="lcrec_item_id\tasin\ttitle\n0\tP1\tRed &amp; Blue\n1\tP2\tGreen\n"):
    """A small LC-Rec-format folder with gzipped sequences and a titles file in the default place."""
    folder.mkdir(parents=True, exist_ok=True)
    write_gz(folder / "Mini.inter.json.gz", json.dumps(sequences).encode())
    (folder / "Mini.item2id").write_text("P1\t0\nP2\t1\nP3\t2\n")
    (folder / "Mini.user2id").write_text("ua\t0\nub\t1\nuc\t2\n")
    (folder / "Mini.lcrec_item_titles.tsv").write_text(titles)
    return folder


def test_lcrec_import(tmp_path):
    src = make_lcrec(tmp_path / "src", {"1": [0, 1, 2, 0], "0": [], "2": [2, 1]})
    folder = importers.import_lcrec(src, "Mini", tmp_path / "out")
    assert lines(folder / "Mini.train.inter") == [INTER_HEADER, "1\t0\t1"]
    assert lines(folder / "Mini.valid.inter") == [INTER_HEADER, "1\t0 1\t2"]
    assert lines(folder / "Mini.test.inter") == [INTER_HEADER, "1\t0 1 2\t0"]
    assert lines(folder / "Mini.item") == [ITEM_HEADER, "0\tRed & Blue\t\t", "1\tGreen\t\t", "2\t\t\t"]
    assert lines(folder / "Mini.user2index") == ["ua\t0", "ub\t1", "uc\t2"]
    meta = json.loads((folder / "Mini.meta.json").read_text())
    assert meta["policy"] == {"users_dropped_fewer_than_3": 2, "users_with_empty_sequence": 1,
                              "items_without_title": 1, "title_rows_without_index": 0}


def test_lcrec_folder_gets_the_import_command_not_a_download(tmp_path, monkeypatch):
    """LC-Rec files where a dataset is expected (Games, an Amazon category): the advice is
    `data import --format lcrec` into another folder, never `download --force` (which would replace
    the user's folder with differently processed data), and the advised commands work as printed."""
    src = make_lcrec(tmp_path / "lcrec", {"1": [0, 1, 2, 0], "2": [2, 1, 0]})
    games = tmp_path / "root" / "Games"
    games.mkdir(parents=True)
    for path in src.iterdir():
        (games / path.name.replace("Mini", "Games")).write_bytes(path.read_bytes())
    before = {path.name: path.read_bytes() for path in games.iterdir()}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as caught:
        ensure_dataset("Games", str(tmp_path / "root"))
    message = str(caught.value)
    assert "download" not in message and "\n" not in message
    command = re.search(r"`python -m adrec_recbole.data (import [^`]*)`", message).group(1).split()
    assert command == ["import", "--format", "lcrec", "--src", str(games), "--dataset", "Games", "--out", "dataset/"]
    assert message.endswith("run with `--data_path=dataset/`")
    main(command)
    assert ensure_dataset("Games", "dataset/") == Path("dataset/Games")  # complete: no error
    assert {path.name: path.read_bytes() for path in games.iterdir()} == before  # the source is untouched
    (tmp_path / "dataset" / "Games").rename(tmp_path / "elsewhere")
    (tmp_path / "dataset" / "Games").mkdir()
    for name, data in before.items():
        (tmp_path / "dataset" / "Games" / name).write_bytes(data)
    with pytest.raises(DatasetNotFoundError, match="--out dataset-canonical/` and run with `--data_path=dataset-canonical/`"):
        ensure_dataset("Games", "dataset/")  # LC-Rec files in the default root: the copy goes beside it


def test_lcrec_titles_option(tmp_path):
    src = make_lcrec(tmp_path / "src", {"0": [0, 1, 2, 1]})
    titles = write_gz(tmp_path / "titles.tsv.gz", b"asin\ttitle:token_seq\nP3\t<i>Blue</i> pen\n")
    main(["import", "--format", "lcrec", "--src", str(src), "--dataset", "Mini", "--out", str(tmp_path / "out"),
          "--titles", str(titles)])
    assert lines(tmp_path / "out" / "Mini" / "Mini.item")[1:] == ["0\t\t\t", "1\t\t\t", "2\tBlue pen\t\t"]


@pytest.mark.parametrize("sequences, titles, message", [
    ('{"0": [0, 1, 2]', None, r"Mini.inter.json.gz:1: malformed JSON"),
    ('{"7": [0, 1, 2]}', None, r"user '7' is not in user2id"),
    ('{"0": [0, 1, 9]}', None, r"item '9' is not in item2id"),
    ('{"0": [0, 1, 2]}', "asin\tname\nP1\tx\n", r"Mini.lcrec_item_titles.tsv:1: missing column title"),
    ('{"0": [0, 1, 2]}', "asin\ttitle\nP1\tx\nP1\ty\n", r"lcrec_item_titles.tsv:3: duplicate asin 'P1'"),
    ('{"0": [0, 1, 2]}', "asin\ttitle\nP1\n", r"lcrec_item_titles.tsv:2: expected 2 tab-separated fields"),
])
def test_lcrec_bad_input(tmp_path, sequences, titles, message):
    src = make_lcrec(tmp_path / "src", {})
    write_gz(src / "Mini.inter.json.gz", sequences.encode())
    if titles is not None:
        (src / "Mini.lcrec_item_titles.tsv").write_text(titles)
    with pytest.raises(DataFormatError, match=message):
        importers.import_lcrec(src, "Mini", tmp_path / "out")
    assert not (tmp_path / "out" / "Mini").exists()


def test_lcrec_without_titles_file_says_what_to_pass(tmp_path, capsys):
    src = make_lcrec(tmp_path / "src", {"0": [0, 1, 2]})
    (src / "Mini.lcrec_item_titles.tsv").unlink()
    with exits_2(capsys, "pass --titles FILE"):
        main(["import", "--format", "lcrec", "--src", str(src), "--dataset", "Mini", "--out", str(tmp_path / "out")])


# ---------------------------------------------------------------- the real shared datasets

def shared(name):
    if not (SHARED_DATASETS / name).is_dir():
        pytest.skip(f"shared dataset folder {SHARED_DATASETS / name} not found (set ADREC_SHARED_DATASETS)")
    return SHARED_DATASETS / name


def test_import_shared_scientific(tmp_path):
    src = shared("Scientific")
    folder = importers.import_unisrec(src, "Scientific", tmp_path)
    stats = dataset_stats(folder, "Scientific")
    assert (stats["users"], stats["items"], stats["interactions"]) == (8442, 4385, 59427)
    assert stats["items_with_title"] == 4385
    # Re-splitting the rebuilt sequences reproduces UniSRec's files byte for byte.
    sequences, _ = read_user_sequences(src, "Scientific")
    write_splits(tmp_path, "Resplit", sorted(sequences.items(), key=lambda pair: int(pair[0])))
    for split in SPLITS:
        assert (tmp_path / f"Resplit.{split}.inter").read_bytes() == (src / f"Scientific.{split}.inter").read_bytes()


def test_import_shared_games(tmp_path):
    src = shared("Games")
    folder = importers.import_lcrec(src, "Games", tmp_path)
    stats = dataset_stats(folder, "Games")
    assert (stats["users"], stats["items"], stats["interactions"]) == (50546, 16859, 452989)
    assert stats["items_with_title"] == stats["catalog_items"] == 16859


def test_subsample_keeps_the_drawn_users_rows_verbatim_and_only_their_items(tmp_path, capsys):
    from conftest import write_canonical_dataset

    sequences = [[user % 7, (user + 1) % 7, 7 + user % 5, 12 + user % 3, user % 4] for user in range(40)]
    source = write_canonical_dataset(tmp_path / "data", "Src", sequences, [f"item {k}" for k in range(20)])
    (source / "Src.user2index").write_text("".join(f"U{user}\t{user}\n" for user in range(40)))
    main(["subsample", "--dataset", "Src", "--data_path", str(tmp_path / "data"), "--users", "0.25",
          "--seed", "3", "--name", "Small", "--out", str(tmp_path / "data")])
    small = tmp_path / "data" / "Small"
    kept = {line.split("\t")[0] for line in (small / "Small.test.inter").read_text().splitlines()[1:]}
    assert len(kept) == 10
    for split in SPLITS:
        original = (source / f"Src.{split}.inter").read_text().splitlines()
        assert (small / f"Small.{split}.inter").read_text().splitlines() == \
            original[:1] + [line for line in original[1:] if line.split("\t")[0] in kept]
    named = {token for split in SPLITS for line in (small / f"Small.{split}.inter").read_text().splitlines()[1:]
             for token in line.split("\t")[1].split() + [line.split("\t")[2]]}
    items = [line.split("\t")[0] for line in (small / "Small.item").read_text().splitlines()[1:]]
    assert set(items) == named and len(items) < 20 and items == sorted(items, key=int)
    assert {line.split("\t")[1] for line in (small / "Small.user2index").read_text().splitlines()} == kept
    meta = json.loads((small / "Small.meta.json").read_text())
    assert meta["subsample"] == {"of": "Src", "users": 0.25, "seed": 3} and meta["counts"]["users"] == 10
    assert meta["policy"]["items_left_out"] == 20 - len(items) and "Small: 10 users" in capsys.readouterr().err
    # the same draw again gives the same users; another seed another draw
    main(["subsample", "--dataset", "Src", "--data_path", str(tmp_path / "data"), "--users", "0.25",
          "--seed", "4", "--name", "Other", "--out", str(tmp_path / "data")])
    other = {line.split("\t")[0] for line in (tmp_path / "data/Other/Other.test.inter").read_text().splitlines()[1:]}
    assert other != kept
    with exits_2(capsys, "between 0 and 1"):
        main(["subsample", "--dataset", "Src", "--data_path", str(tmp_path / "data"), "--users", "1.5",
              "--name", "Bad", "--out", str(tmp_path / "data")])
    with exits_2(capsys, "already exists"):
        main(["subsample", "--dataset", "Src", "--data_path", str(tmp_path / "data"), "--users", "0.25",
              "--seed", "3", "--name", "Small", "--out", str(tmp_path / "data")])
