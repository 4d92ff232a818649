"""Verified-equivalent code versions (adrec_recbole.benchmark.equivalence): the chain logic, the
benchmark reusing and the report regrouping records of an equivalent version, and the command
itself, which trains both versions from git worktrees and compares them bit for bit."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, write_canonical_dataset

from adrec_recbole.benchmark.equivalence import (EQUIVALENCE_FILE, compare_runs, equivalent_versions, main,
                                                 representative)

ENTRIES = [
    {"models": {"SASRec": {"old": "aaaa", "new": "bbbb"}, "Pop": {"old": "aaaa", "new": "bbbb"}}},
    {"models": {"SASRec": {"old": "bbbb", "new": "cccc"}}},
    {"models": {"SASRec": {"old": "xxxx", "new": "yyyy"}}},
]


def run_module(module, args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_equivalence_follows_chains_per_model_and_shows_the_newest_version():
    assert equivalent_versions(ENTRIES, "SASRec", "aaaa") == {"aaaa", "bbbb", "cccc"}
    assert equivalent_versions(ENTRIES, "SASRec", "cccc") == {"aaaa", "bbbb", "cccc"}
    assert equivalent_versions(ENTRIES, "Pop", "aaaa") == {"aaaa", "bbbb"}  # only SASRec was verified at cccc
    assert equivalent_versions(ENTRIES, "GRU4Rec", "aaaa") == {"aaaa"}
    assert representative(ENTRIES, "SASRec", "aaaa") == "cccc"
    assert representative(ENTRIES, "Pop", "aaaa") == "bbbb"
    assert representative(ENTRIES, "SASRec", "xxxx") == "yyyy"
    assert representative(ENTRIES, "SASRec", "zzzz") == "zzzz"


def test_a_record_of_a_verified_version_is_reused_and_reported_under_the_newer_one(tmp_path):
    sequences = [[(user % 3) * 4 + (user + step) % 4 for step in range(6)] for user in range(30)]
    write_canonical_dataset(tmp_path / "data", "Eq", sequences, [f"item {k}" for k in range(12)])
    (tmp_path / "small.yaml").write_text("topk: [5, 10]\n")
    args = ["--dataset", "Eq", "--data_path", str(tmp_path / "data"), "--models", "Pop", "--seeds", "2020",
            "--out", str(tmp_path / "results"), "--config_files", str(tmp_path / "small.yaml")]
    first = run_module("adrec_recbole.benchmark", args, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = tmp_path / "results" / "Eq" / "runs"
    [path] = [path for path in runs.glob("Pop-seed2020-*.json") if not path.name.endswith(".spec.json")]
    record = json.loads(path.read_text())
    current = record["code_version"]
    record["code_version"] = "0123456789"  # pretend it was made by an older commit ...
    path.unlink()
    (runs / path.name.replace(current, "0123456789")).write_text(json.dumps(record))

    unverified = run_module("adrec_recbole.benchmark", args, tmp_path)
    assert "Pop seed 2020: running" in unverified.stdout  # ... which nobody verified: rerun
    (runs / path.name).unlink()
    (tmp_path / "results" / EQUIVALENCE_FILE).write_text(json.dumps(
        [{"models": {"Pop": {"old": "0123456789", "new": current}}}]))
    verified = run_module("adrec_recbole.benchmark", args, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Pop seed 2020: finished before with code 0123456789 (verified equivalent), skipped" in verified.stdout
    summary = (tmp_path / "results" / "Eq" / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and current in summary[1] and "0123456789" not in summary[1]
    assert f"Pop `0123456789` as `{current}`" in (tmp_path / "results" / "Eq" / "README.md").read_text()


def test_a_side_out_folder_sees_the_projects_pairs_and_keeps_its_own_file_its_own(tmp_path, monkeypatch):
    from adrec_recbole.benchmark import equivalence

    project, side = tmp_path / "project", tmp_path / "results-side"
    (project / "results").mkdir(parents=True)
    side.mkdir()
    monkeypatch.setattr(equivalence, "PROJECT_ROOT", str(project))
    verified = {"models": {"ADRec": {"old": "aaaa", "new": "bbbb"}}}
    (project / "results" / EQUIVALENCE_FILE).write_text(json.dumps([verified]))
    assert equivalence.load_equivalences(side) == [verified]
    assert equivalent_versions(equivalence.load_equivalences(side), "ADRec", "bbbb") == {"aaaa", "bbbb"}
    local = {"models": {"ADRec": {"old": "bbbb", "new": "cccc"}}}
    (side / EQUIVALENCE_FILE).write_text(json.dumps([local, verified]))
    assert equivalence.load_equivalences(side) == [local, verified]  # each pair once
    assert equivalence.recorded_equivalences(tmp_path / "elsewhere") == []  # what a new pair is appended to


def test_compare_runs_names_a_changed_metric_and_a_changed_tensor(tmp_path):
    def saved(name, weight):
        path = tmp_path / f"{name}.pth"
        torch.save({"state_dict": {"w": weight, "b": torch.zeros(2)}}, path)
        return str(path)

    base = {"best_valid_result": {"ndcg@10": 0.5}, "test_result": {"ndcg@10": 0.4}, "best_epoch": 3}
    old = dict(base, checkpoint=saved("old", torch.ones(3)))
    assert compare_runs(old, dict(base, checkpoint=saved("same", torch.ones(3)))) == ([], 2)
    nudged = torch.ones(3)
    nudged[1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    differences, _ = compare_runs(old, dict(base, checkpoint=saved("nudged", nudged),
                                            test_result={"ndcg@10": 0.41}))
    assert differences == ["test_result: {'ndcg@10': 0.4} vs {'ndcg@10': 0.41}", "tensor w differs"]


def test_data_in_unisrec_layout_is_refused_before_any_training_with_the_import_command(tmp_path, capsys):
    """The records were made on the benchmark's canonical copy; FDSA cannot read UniSRec's ``.text``."""
    folder = tmp_path / "raw" / "Uni"
    folder.mkdir(parents=True)
    for suffix in ("train.inter", "valid.inter", "test.inter", "text", "item2index", "user2index"):
        (folder / f"Uni.{suffix}").write_text("")
    code = main(["--dataset", "Uni", "--data_path", str(tmp_path / "raw"), "--old", "HEAD", "--models", "FDSA",
                 "--out", str(tmp_path / "results")])
    error = capsys.readouterr().err
    assert code == 2 and "is in UniSRec's layout" in error and len(error.strip().splitlines()) == 1
    assert (f"--format unisrec --src {folder} --dataset Uni --out {tmp_path / 'results' / 'Uni' / 'runs' / 'data'}"
            in error)
    assert not (tmp_path / "results").exists()  # nothing trained, nothing recorded


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the project's git history")
def test_the_command_trains_both_versions_and_records_an_identical_pair(tiny_data_root, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (tmp_path / "small.yaml").write_text("topk: [5, 10]\nhidden_size: 16\ninner_size: 32\n")
    done = run_module("adrec_recbole.benchmark.equivalence",
                      ["--dataset", "Tiny", "--data_path", str(tiny_data_root), "--old", "HEAD", "--new", head,
                       "--models", "Pop,SASRec", "--epochs", "1", "--out", str(tmp_path),
                       "--config_files", str(tmp_path / "small.yaml")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SASRec: identical (metrics and" in done.stdout
    [entry] = json.loads((tmp_path / EQUIVALENCE_FILE).read_text())
    assert entry["commits"] == {"old": head, "new": head} and set(entry["models"]) == {"Pop", "SASRec"}
    assert entry["models"]["SASRec"]["old"] == entry["models"]["SASRec"]["new"]
    assert entry["compared"]["SASRec"]["identical"] and entry["compared"]["SASRec"]["tensors"] > 5
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "adrec-equivalence-" not in worktrees  # the temporary worktrees are gone


def test_an_interrupted_run_of_an_equivalent_version_is_adopted_and_resumed(tmp_path):
    from adrec_recbole.benchmark.compare import PlannedRun, adopt_equivalent_checkpoints

    runs = tmp_path / "results" / "Sci" / "runs"
    old = runs / "checkpoints" / "SASRec-seed2020-abcd1234-aaaa"
    (old / "SASRec-Sci-seed2020-0000").mkdir(parents=True)
    (old / "SASRec-Sci-seed2020-0000" / "last.pth").write_bytes(b"state")
    unrelated = runs / "checkpoints" / "SASRec-seed2021-abcd1234-aaaa"
    unrelated.mkdir()

    def planned(version, seed=2020):
        return PlannedRun(1, "SASRec", "SASRec", seed, "abcd1234", runs / f"SASRec-seed{seed}-abcd1234-{version}.json",
                          code_version=version)

    assert adopt_equivalent_checkpoints(planned("cccc")) is None  # nothing verified yet: left alone
    (tmp_path / "results" / EQUIVALENCE_FILE).write_text(json.dumps(
        [{"models": {"SASRec": {"old": "aaaa", "new": "bbbb"}}}, {"models": {"SASRec": {"old": "bbbb", "new": "cccc"}}}]))
    assert adopt_equivalent_checkpoints(planned("cccc")) == "aaaa"
    moved = runs / "checkpoints" / "SASRec-seed2020-abcd1234-cccc" / "SASRec-Sci-seed2020-0000" / "last.pth"
    assert moved.read_bytes() == b"state" and not old.exists() and unrelated.is_dir()
    assert adopt_equivalent_checkpoints(planned("cccc")) is None  # its own folder exists now
