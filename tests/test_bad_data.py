"""Bad input on the training path: every broken dataset ends in exit code 2 and one line naming file
and line, before anything is built, loaded or written; leftovers of killed runs are cleaned up.

Most cases call ``prepare_data`` in-process (what ``run_recbole.py`` calls before anything else);
three run ``run_recbole.py`` end to end. The leftover cases kill a real import with SIGKILL, plant
stale cache temporaries, and serve a gzip of garbage JSON from the local fixture server.
"""
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fixtures_amazon as fx
from adrec_recbole.data import DataFormatError, ensure_dataset, validate_dataset
from adrec_recbole.data.__main__ import main as data_main
from adrec_recbole.data.download import fetch
from adrec_recbole.data.errors import DownloadError
from adrec_recbole.quick_start import RunError, prepare_data
from conftest import ROOT, write_canonical_dataset

SEQUENCES = [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 0, 1, 2], [3, 5, 7, 9]]
TITLES = [f"item number {item}" for item in range(12)]
# Tiny.train.inter: 1 header, 2 "0\t0 1\t2", 3 "0\t0\t1", 4 "1\t5\t6", 5 "2\t9 10 11\t0", 6 "2\t9 10\t11",
# 7 "2\t9\t10", 8 "3\t3\t5". Tiny.item: line 2 + k is item k. Uni.item2index: line 1 + k maps ASINk to k.


def canonical(root):
    """The Tiny dataset in the canonical layout (``.item``), no index files."""
    return write_canonical_dataset(root, "Tiny", SEQUENCES, TITLES)


def unisrec(root):
    """The same data as ``Uni`` in UniSRec's layout: ``.text`` keyed by ASIN, ``.item2index``, ``.user2index``."""
    folder = write_canonical_dataset(root, "Uni", SEQUENCES, TITLES)
    (folder / "Uni.item").unlink()
    (folder / "Uni.text").write_text("item_id:token\ttext:token_seq\n" + "".join(
        f"ASIN{item}\t{title}\n" for item, title in enumerate(TITLES)))
    (folder / "Uni.item2index").write_text("".join(f"ASIN{item}\t{item}\n" for item in range(len(TITLES))))
    (folder / "Uni.user2index").write_text("".join(f"U{user}\t{user}\n" for user in range(len(SEQUENCES))))
    return folder


def set_line(path, number, content):
    """Replace line ``number`` (1-based) of ``path`` by ``content`` (bytes or str, without line end)."""
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(b"\n".join(lines))


def drop_column(path, column):
    lines = path.read_text().rstrip("\n").split("\n")
    path.write_text("".join("\t".join(line.split("\t")[:column] + line.split("\t")[column + 1:]) + "\n"
                            for line in lines))


def append(path, text):
    with open(path, "a") as handle:
        handle.write(text)


# (layout, how to break it, expected file:line and phrase, run end to end)
CASES = [
    pytest.param(canonical, lambda f: drop_column(f / "Tiny.test.inter", 2),
                 "Tiny.test.inter:1: missing column item_id:token", True, id="test-split-without-item_id"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.train.inter", 3, "0\t0"),
                 "Tiny.train.inter:3: expected 3 tab-separated fields, found 2", False, id="truncated-inter-line"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.item", 13, "11\titem num"),
                 "Tiny.item:13: expected 4 tab-separated fields, found 2", False, id="truncated-item-line"),
    pytest.param(canonical, lambda f: append(f / "Tiny.item", "5\tanother title\t\t\n"),
                 "Tiny.item:14: duplicate item_id '5' (first on line 7)", False, id="duplicate-item-row"),
    pytest.param(unisrec, lambda f: append(f / "Uni.text", "ASIN5\tanother title\n"),
                 "Uni.text:14: duplicate item_id 'ASIN5' (first on line 7)", False, id="duplicate-text-row"),
    pytest.param(unisrec, lambda f: set_line(f / "Uni.item2index", 3, "ASIN0\t2"),
                 "Uni.item2index:3: duplicate id 'ASIN0' (first on line 1)", True, id="duplicate-asin-item2index"),
    pytest.param(unisrec, lambda f: set_line(f / "Uni.item2index", 3, "ASIN2\t0"),
                 "Uni.item2index:3: duplicate index '0' (first on line 1)", False, id="duplicate-index-item2index"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.train.inter", 4, "1\t55\t6"),
                 "Tiny.train.inter:4: item '55' is not in Tiny.item", False, id="unknown-item-in-history"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.item", 13, ""),
                 "Tiny.item:13: expected 4 tab-separated fields, found 1", False, id="blank-line-in-item-file"),
    pytest.param(canonical, lambda f: (f / "Tiny.item").write_text(
                     "".join(line for line in (f / "Tiny.item").read_text().splitlines(True) if line[:3] != "11\t")),
                 "Tiny.train.inter:5: item '11' is not in Tiny.item", False, id="item-without-a-row"),
    pytest.param(unisrec, lambda f: set_line(f / "Uni.valid.inter", 3, "1\t5 6\t99"),
                 "Uni.valid.inter:3: item '99' is not in Uni.item2index", False, id="unknown-target-unisrec"),
    pytest.param(unisrec, lambda f: set_line(f / "Uni.test.inter", 2, "7\t0 1 2 3\t4"),
                 "Uni.test.inter:2: user '7' is not in Uni.user2index", False, id="unknown-user-unisrec"),
    pytest.param(canonical, lambda f: (f / "Tiny.valid.inter").write_text(""),
                 "Tiny.valid.inter:1: empty file", False, id="empty-split-file"),
    pytest.param(canonical, lambda f: (f / "Tiny.test.inter").write_text(
                     "user_id:token\titem_id_list:token_seq\titem_id:token\n"),
                 "Tiny.test.inter:2: no rows after the header", False, id="header-only-split"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.train.inter", 2, "0\t\t2"),
                 "Tiny.train.inter:2: empty item_id_list", False, id="empty-history"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.train.inter", 4, b"1\t5\xe9\t6"),
                 "Tiny.train.inter:4: not valid UTF-8 (byte 0xe9 at column 4)", False, id="non-utf8-inter"),
    pytest.param(canonical, lambda f: set_line(f / "Tiny.item", 3, b"1\tcaf\xe9 item\t\t"),
                 "Tiny.item:3: not valid UTF-8 (byte 0xe9 at column 6)", True, id="non-utf8-item"),
]


def tree(root):
    """Every path below ``root`` with its size and modification time: what a run may not change."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in Path(root).rglob("*")}


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "run_recbole.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("layout, damage, expected, end_to_end", CASES)
def test_bad_dataset_stops_with_one_line_and_writes_nothing(tmp_path, layout, damage, expected, end_to_end):
    folder = layout(tmp_path / "data")
    name = folder.name
    damage(folder)
    before = tree(tmp_path)
    if end_to_end:
        completed = run_cli(
            "--model=ADRec", f"--dataset={name}", f"--data_path={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'saved'}", f"--plm_cache_dir={tmp_path / 'cache'}", cwd=tmp_path,
        )
        assert completed.returncode == 2, completed.stderr[-2000:]
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {folder / expected}"), completed.stderr[-2000:]
    else:
        with pytest.raises(RunError) as caught:
            prepare_data({"data_path": str(folder), "dataset": name, "download": True})
        message = str(caught.value)
        assert message.startswith(str(folder / expected)) and "\n" not in message
    assert tree(tmp_path) == before  # no checkpoint folder, result, log or cache, data untouched


def test_the_data_commands_give_the_same_message(tmp_path, capsys):
    folder = canonical(tmp_path / "data")
    set_line(folder / "Tiny.train.inter", 4, "1\t55\t6")
    with pytest.raises(SystemExit) as caught:
        data_main(["stats", "--dataset", "Tiny", "--data_path", str(tmp_path / "data")])
    assert caught.value.code == 2
    assert capsys.readouterr().err == f"error: {folder / 'Tiny.train.inter'}:4: item '55' is not in Tiny.item\n"
    with pytest.raises(SystemExit) as caught:
        data_main(["import", "--format", "unisrec", "--src", str(unisrec_with_duplicate_asin(tmp_path / "src")),
                   "--dataset", "Uni", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert caught.value.code == 2 and error.count("\n") == 1 and error.startswith("error: ")
    assert error.endswith("Uni.item2index:3: duplicate id 'ASIN0' (first on line 1)\n")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def unisrec_with_duplicate_asin(root):
    folder = unisrec(root)
    set_line(folder / "Uni.item2index", 3, "ASIN0\t2")
    return folder


def test_valid_layouts_pass_and_report_what_they_hold(tmp_path):
    check = validate_dataset(canonical(tmp_path / "a"), "Tiny")
    assert (check.layout, len(check.items), check.users) == ("canonical", 12, None)
    assert check.rows == {"train": 7, "valid": 4, "test": 4}
    check = validate_dataset(unisrec(tmp_path / "b"), "Uni")
    assert (check.layout, check.item_source, len(check.users)) == ("unisrec", "Uni.item2index", 4)
    assert check.item_fields["3"]["text"] == "item number 3"


def test_columns_in_another_order_and_extra_columns_are_accepted(tmp_path):
    folder = canonical(tmp_path / "data")
    path = folder / "Tiny.test.inter"
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    path.write_text("".join(f"{target}\t{user}\textra\t{history}\n" for user, history, target in rows[:1]) +
                    "".join(f"{target}\t{user}\tx\t{history}\n" for user, history, target in rows[1:]))
    assert validate_dataset(folder, "Tiny").rows["test"] == 4


# ---------------------------------------------------------------- a data_path that does not exist

def test_missing_data_path_for_an_amazon_category_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(RunError, match=f"data_path {missing} does not exist"):
        prepare_data({"data_path": str(missing / "Scientific"), "dataset": "Scientific", "download": True})
    assert list(tmp_path.iterdir()) == []


def test_the_default_data_path_is_created_and_downloaded_into(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with fx.AmazonServer(fx.raw_files()) as server:
        monkeypatch.setenv("ADREC_AMAZON_BASE_URL", server.base_url)
        prepare_data({"data_path": os.path.join("dataset/", "Scientific"), "dataset": "Scientific", "download": True})
    assert (tmp_path / "dataset" / "Scientific" / "Scientific.item").is_file()


# ---------------------------------------------------------------- leftovers of killed runs

KILLED_IMPORT = """
import os, signal, sys
from adrec_recbole.data.layout import building_dataset
with building_dataset(sys.argv[1], "Tiny") as staging:
    (staging / "Tiny.train.inter").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_import_leaves_a_folder_that_the_next_run_removes(tmp_path):
    out = tmp_path / "data"
    killed = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, str(out)], cwd=ROOT)
    assert killed.wait(timeout=120) == -signal.SIGKILL
    partial = [entry.name for entry in out.iterdir()]
    assert len(partial) == 1 and partial[0].startswith(f".Tiny.partial-{killed.pid}-")
    legacy = out / ".Tiny.partial-k2x9q0ab"  # named by a version that did not record the pid
    legacy.mkdir()
    running = out / f".Tiny.partial-{os.getpid()}-abc"  # a build in progress: left alone
    running.mkdir()
    canonical(out)
    ensure_dataset("Tiny", str(out))
    assert sorted(entry.name for entry in out.iterdir()) == [running.name, "Tiny"]
    running.rmdir()
    src = unisrec(tmp_path / "src")
    (out / f".Uni.partial-{killed.pid}-xyz").mkdir()  # the importer cleans up too
    data_main(["import", "--format", "unisrec", "--src", str(src), "--dataset", "Uni", "--out", str(out)])
    assert sorted(entry.name for entry in out.iterdir()) == ["Tiny", "Uni"]


def test_stale_cache_temporaries_are_removed_and_a_failed_save_leaves_none(tmp_path, monkeypatch):
    import torch

    from adrec_recbole import text_encoder

    cache = tmp_path / "cache"
    cache.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = cache / f".tmp-{gone.pid}-k2x9q0ab.pth"  # atomic.torch_save's temporary of a dead process
    dead.write_bytes(b"half")
    legacy = cache / f"vectors-0123.pt.tmp{gone.pid}"  # an earlier version's temporary of a dead process
    legacy.write_bytes(b"half")
    fresh = cache / f".tmp-{os.getpid()}-being-written.pth"  # a live writer's
    fresh.write_bytes(b"half")
    monkeypatch.setattr(text_encoder, "_swept", set())
    assert text_encoder._load_cached(str(cache / "tokens-none.pt")) is None
    assert sorted(path.name for path in cache.iterdir()) == [fresh.name]

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    fresh.unlink()
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        text_encoder.torch_save({"x": torch.zeros(2)}, str(cache / "tokens-abc.pt"))
    assert list(cache.iterdir()) == []


def test_a_download_of_garbage_json_is_removed_and_force_refetches(tmp_path, monkeypatch):
    files = fx.raw_files()
    garbage = gzip.compress(b"<html>503 Service Unavailable</html>\n", mtime=0)  # valid gzip, not JSON lines
    with fx.AmazonServer({**files, fx.METADATA_PATH: garbage}) as server:
        url = server.base_url + fx.METADATA_PATH.split("/amazon_v2/")[1]
        with pytest.raises(DownloadError, match=r"meta.json.gz.part:1: malformed JSON.*removed it"):
            fetch(url, tmp_path / "meta.json.gz", json_lines=True)
        assert list(tmp_path.iterdir()) == []
        # A garbage file that an earlier version kept as "verified" is checked again, deleted, refetched.
        data_path = tmp_path / "dataset"
        raw = data_path / "amazon2018_raw" / Path(fx.METADATA_PATH).name
        raw.parent.mkdir(parents=True)
        raw.write_bytes(garbage)
        server.files[fx.METADATA_PATH] = files[fx.METADATA_PATH]
        monkeypatch.setenv("ADREC_AMAZON_BASE_URL", server.base_url)
        data_main(["download", "--dataset", "Scientific", "--out", str(data_path)])
        assert raw.read_bytes() == files[fx.METADATA_PATH]
        assert validate_dataset(data_path / "Scientific", "Scientific").rows["test"] == 3
        requests = len(server.requests)
        data_main(["download", "--dataset", "Scientific", "--out", str(data_path), "--force"])
        assert sorted(path for path, _ in server.requests[requests:]) == sorted(files)  # both fetched again
        assert [entry.name for entry in data_path.iterdir() if entry.name.startswith(".")] == []


def test_format_errors_are_data_errors_with_one_line(tmp_path):
    folder = canonical(tmp_path)
    set_line(folder / "Tiny.item", 3, b"1\tcaf\xe9\t\t")
    with pytest.raises(DataFormatError) as caught:
        validate_dataset(folder, "Tiny")
    assert "\n" not in str(caught.value) and caught.value.line == 3 and caught.value.column == 6
