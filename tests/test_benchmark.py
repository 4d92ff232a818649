"""The benchmark (python -m adrec_recbole.benchmark) on tiny data: one process per run, records,
resume, a failing model, mean/std from the records, CSV/Markdown/PNG, labelled anchors; and
GRU4Rec, BERT4Rec and FDSA (with the title feature) for one epoch on tiny data in both layouts; and the
training-speed step section (the old training step against the current one) on tiny data."""
import csv
import json
import math
import os
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT, write_canonical_dataset

from adrec_recbole.benchmark import anchors, report
from adrec_recbole.benchmark.compare import BenchmarkError, Settings, parse_seeds, plan

QUOTED_TITLE = '"Rock" guitar strings set'  # RecBole's default pandas reading breaks on this line
TITLES = [
    QUOTED_TITLE, "guitar capo clamp", "guitar tuner clip", "guitar picks pack",
    "acrylic paint set", "watercolor brush set", "canvas panels", "palette knife",
    "nitrile gloves box", "glass beaker 250 ml", "digital lab scale", "NA",
]
SMALL_CONFIG = """\
topk: [5, 10]
valid_metric: NDCG@10
train_batch_size: 32
eval_batch_size: 64
hidden_size: 32
n_layers: 1
n_heads: 2
inner_size: 64
embedding_size: 32
queue_size: 50
plm_cache_dir: {cache}
"""


def sequences():
    rows = []
    for user in range(45):
        family = user % 3
        items = [family * 4 + k for k in range(4)]
        rows.append([items[(user + step) % 4] for step in range(5 + user % 4)])
    return rows


def run_cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "adrec_recbole.benchmark", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_canonical_dataset(root / "data", "Bench", sequences(), TITLES)
    config = root / "small.yaml"
    config.write_text(SMALL_CONFIG.format(cache=root / "cache"))
    return root, config


@pytest.fixture(scope="module")
def first_and_second(workspace):
    """ADRec, SASRec, Pop and a model that does not exist, 2 seeds, 1 epoch; then the same command again."""
    root, config = workspace
    args = ["--dataset", "Bench", "--data_path", str(root / "data"), "--models", "ADRec,SASRec,Pop,NoSuchModel",
            "--seeds", "2", "--epochs", "1", "--out", str(root / "results"), "--config_files", str(config)]
    first = run_cli(args, cwd=root)
    folder = root / "results" / "Bench"
    mtimes = {path.name: path.stat().st_mtime_ns for path in (folder / "runs").glob("*.json")}
    second = run_cli(args, cwd=root)
    return first, second, folder, mtimes


def records(folder):
    data = {}
    for path in (folder / "runs").glob("*-seed*.json"):
        if path.name.endswith(".spec.json"):
            continue
        record = json.loads(path.read_text())
        data[(record["model"], record["seed"])] = record
    return data


def test_every_run_is_recorded_in_its_own_process_and_a_failure_does_not_stop_the_others(first_and_second):
    first, _, folder, _ = first_and_second
    assert first.returncode == 1, first.stdout + first.stderr  # 1: some run failed
    assert "[1/8 | 0:00:00] ADRec seed 2020: running" in first.stdout
    assert "[8/8 |" in first.stdout and "NoSuchModel seed 2021: FAILED" in first.stdout
    found = records(folder)
    assert set(found) == {(model, seed) for model in ("ADRec", "SASRec", "Pop", "NoSuchModel") for seed in (2020, 2021)}
    for (model, seed), record in found.items():
        if model == "NoSuchModel":
            assert record["status"] == "failed" and "unknown model 'NoSuchModel'" in record["error"]
            continue
        assert record["status"] == "ok", record.get("error")
        result = record["result"]
        assert result["seed"] == seed and result["epochs_run"] == 1
        assert set(result["test_result"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10)}
        for key in ("best_epoch", "seconds_per_epoch", "test_eval_seconds", "parameters", "peak_rss_mb"):
            assert result[key] is not None
        assert result["peak_rss_mb"] > 50 and result["checkpoint"] is None  # checkpoints removed by default
    pids = [record["pid"] for record in found.values()]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids  # a fresh process per run


def test_runs_csv_and_summary_are_computed_from_the_run_records(first_and_second):
    _, _, folder, _ = first_and_second
    found = records(folder)
    runs = read_csv(folder / "runs.csv")
    assert [(row["model"], int(row["seed"])) for row in runs] == [
        (model, seed) for seed in (2020, 2021) for model in ("ADRec", "SASRec", "Pop", "NoSuchModel")]
    summary = {row["model"]: row for row in read_csv(folder / "summary.csv")}
    assert list(summary) == ["ADRec", "SASRec", "Pop", "NoSuchModel"]
    for model in ("ADRec", "SASRec", "Pop"):
        assert (summary[model]["runs_ok"], summary[model]["runs_failed"]) == ("2", "0")
        for metric in ("recall@10", "ndcg@10", "mrr@10", "ndcg@5"):
            values = [found[(model, seed)]["result"]["test_result"][metric] for seed in (2020, 2021)]
            assert float(summary[model][f"{metric}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(summary[model][f"{metric}_std"]) == pytest.approx(statistics.stdev(values))
        epochs = [found[(model, seed)]["result"]["seconds_per_epoch"] for seed in (2020, 2021)]
        assert float(summary[model]["seconds_per_epoch_mean"]) == pytest.approx(statistics.fmean(epochs))
    assert (summary["NoSuchModel"]["runs_ok"], summary["NoSuchModel"]["runs_failed"]) == ("0", "2")
    assert summary["NoSuchModel"]["ndcg@10_mean"] == ""


def test_markdown_table_and_chart(first_and_second):
    _, _, folder, _ = first_and_second
    found = records(folder)
    text = (folder / "README.md").read_text()
    values = [found[("SASRec", seed)]["result"]["test_result"]["ndcg@10"] for seed in (2020, 2021)]
    expected = f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"
    sasrec_row = next(line for line in text.splitlines() if line.startswith("| SASRec |"))
    assert "| 2/2 |" in sasrec_row and expected in sasrec_row
    assert "| NoSuchModel | 0/2 |" in text and "## Failed runs" in text
    assert "![metrics and cost](chart.png)" in text
    assert "No published numbers for Bench" in text
    png = (folder / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_second_invocation_skips_finished_runs_and_retries_failed_ones(first_and_second):
    _, second, folder, mtimes = first_and_second
    assert second.stdout.count("finished before, skipped") == 6
    assert "0 run, 6 skipped, 2 failed" in second.stdout
    for path in (folder / "runs").glob("*-seed*.json"):
        if path.name.startswith("NoSuchModel") or path.name.endswith(".spec.json"):
            continue
        assert path.stat().st_mtime_ns == mtimes[path.name], f"{path.name} was rewritten"


def test_anchors_are_labelled_with_their_preprocessing_and_kept_out_of_our_table(tmp_path):
    rows = anchors.anchors_for("Scientific")
    assert {row["source"] for row in rows} == {anchors.RECFORMER, anchors.UNISREC}
    for row in rows:
        assert row["label"].startswith("published, ") and row["label"].endswith("— not our run")
    recformer_sasrec = next(row for row in rows if row["source"] == anchors.RECFORMER and row["model"] == "SASRec")
    assert (recformer_sasrec["ndcg@10"], recformer_sasrec["recall@10"], recformer_sasrec["mrr"]) == (.0797, .1305, .0696)
    assert "published, Recformer preprocessing — not our run" == recformer_sasrec["label"]
    assert anchors.anchors_for("games")[0]["model"] == "SASRec" and anchors.anchors_for("Tiny") == []

    settings = Settings(dataset="Scientific", models=["SASRec"], seeds=[2020], out=str(tmp_path))
    paths = report.write_report(settings, plan(settings, tmp_path / "data"), tmp_path / "data")
    text = paths["markdown"].read_text()
    ours, published = text.split("## Published anchors — not our runs")
    assert "0.0797" not in ours and "| SASRec | 0/1 | — |" in ours
    assert "| published, Recformer preprocessing — not our run | Recformer (KDD 2023) | SASRec | 0.1305 | 0.0797 | 0.0696 |" in published
    assert "| published, UniSRec preprocessing (the one of ../shared/datasets/Scientific) — not our run |" in published
    assert "IS UniSRec's preprocessing" in published
    assert len(read_csv(paths["anchors"])) == len(rows)
    assert read_csv(paths["summary"])[0]["runs_ok"] == "0"


def test_seeds_settings_and_fingerprints(tmp_path):
    assert parse_seeds("3") == [2020, 2021, 2022] and parse_seeds("2020,2025") == [2020, 2025]
    with pytest.raises(BenchmarkError):
        parse_seeds("x")
    base = Settings(dataset="Bench", models=["SASRec", "Pop"], seeds=[2020, 2021], out=str(tmp_path))
    runs = plan(base, tmp_path)
    assert [(run.model, run.seed) for run in runs] == [("SASRec", 2020), ("Pop", 2020), ("SASRec", 2021), ("Pop", 2021)]
    quick = plan(Settings(dataset="Bench", models=["SASRec", "Pop"], seeds=[2020, 2021], out=str(tmp_path), epochs=1), tmp_path)
    assert not {run.record_path for run in runs} & {run.record_path for run in quick}  # quick looks kept apart
    extra = tmp_path / "extra.yaml"
    extra.write_text("# a comment\nhidden_size: 32\n")
    with_extra = plan(Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path),
                               config_files=[str(extra)]), tmp_path)[0]
    extra.write_text("hidden_size: 32  # same value, other comment\n")
    same = plan(Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path),
                         config_files=[str(extra)]), tmp_path)[0]
    extra.write_text("hidden_size: 16\n")
    changed = plan(Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path),
                            config_files=[str(extra)]), tmp_path)[0]
    assert with_extra.fingerprint == same.fingerprint != changed.fingerprint


def test_recbole_reads_item_text_unquoted_as_adrec_does(workspace):
    from recbole.data import create_dataset

    from adrec_recbole.quick_start import build_config  # applies adrec_recbole.compat

    root, _ = workspace
    config = build_config("FDSA", "Bench", config_dict={"data_path": str(root / "data"), "state": "ERROR"})
    dataset = create_dataset(config)
    words = dataset.field2id_token["title"]

    def title(token):
        return [words[index] for index in dataset.item_feat["title"][dataset.token2id("item_id", token)].tolist() if index]

    assert title("0") == QUOTED_TITLE.split() and title("11") == ["NA"] and title("1") == ["guitar", "capo", "clamp"]


def write_unisrec_layout(folder, name):
    """The tiny data in UniSRec's layout: ``.text`` keyed by ASIN, ``.item2index``, ``.user2index``, no ``.item``.

    Train rows longest prefix first, as UniSRec writes them (the importer checks the order).
    """
    folder.mkdir(parents=True)
    rows = {"train": [], "valid": [], "test": []}
    for user, sequence in enumerate(sequences()):
        n = len(sequence)
        rows["train"] += [(user, sequence[:t], sequence[t]) for t in range(n - 3, 0, -1)]
        rows["valid"].append((user, sequence[:n - 2], sequence[n - 2]))
        rows["test"].append((user, sequence[:n - 1], sequence[n - 1]))
    for split, split_rows in rows.items():
        with open(folder / f"{name}.{split}.inter", "w") as handle:
            handle.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            handle.writelines(f"{user}\t{' '.join(map(str, history))}\t{target}\n" for user, history, target in split_rows)
    with open(folder / f"{name}.text", "w") as handle:
        handle.write("item_id:token\ttext:token_seq\n")
        handle.writelines(f"ASIN{item:04d}\t{title}\n" for item, title in enumerate(TITLES))
    with open(folder / f"{name}.item2index", "w") as handle:
        handle.writelines(f"ASIN{item:04d}\t{item}\n" for item in range(len(TITLES)))
    with open(folder / f"{name}.user2index", "w") as handle:
        handle.writelines(f"U{user}\t{user}\n" for user in range(len(sequences())))


def test_gru4rec_bert4rec_and_fdsa_train_on_tiny_data_in_unisrec_layout(tmp_path, workspace):
    _, config = workspace
    write_unisrec_layout(tmp_path / "data" / "Uni", "Uni")
    done = run_cli(["--dataset", "Uni", "--data_path", str(tmp_path / "data"), "--models", "GRU4Rec,BERT4Rec,FDSA",
                    "--seeds", "1", "--epochs", "1", "--out", str(tmp_path / "results"), "--config_files",
                    str(config)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is in UniSRec's layout" in done.stdout
    imported = tmp_path / "results" / "Uni" / "runs" / "data" / "Uni" / "Uni.item"
    lines = imported.read_text().splitlines()
    assert lines[1] == f"0\t{QUOTED_TITLE}\t\t"  # the UniSRec text is every model's title
    found = records(tmp_path / "results" / "Uni")
    assert {model for model, _ in found} == {"GRU4Rec", "BERT4Rec", "FDSA"}
    for record in found.values():
        assert record["status"] == "ok", record.get("error")
        assert record["result"]["epochs_run"] == 1
        assert record["settings"]["data_path"].endswith(os.path.join("runs", "data"))
    fdsa_log = next((tmp_path / "results" / "Uni" / "runs").glob("FDSA-*.log")).read_text()
    assert "selected_features = ['title', 'brand', 'categories']" in fdsa_log
    assert found[("FDSA", 2020)]["result"]["parameters"] > found[("GRU4Rec", 2020)]["result"]["parameters"]


def test_a_second_benchmark_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    from adrec_recbole.benchmark.compare import run_benchmark

    settings = Settings(dataset="Bench", models=[], seeds=[2020], out=str(tmp_path))
    lock = settings.runs_dir / "benchmark.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getpid()))  # a live process holds it
    with pytest.raises(BenchmarkError, match="another benchmark"):
        run_benchmark(settings, log=lambda line: None)
    assert lock.exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(str(gone.pid))  # its owner has exited
    with pytest.raises(BenchmarkError, match="--models is empty"):  # got past the lock
        run_benchmark(settings, log=lambda line: None)
    assert not lock.exists()


def test_a_worker_that_dies_without_a_record_is_recorded_as_failed(tmp_path, monkeypatch):
    from adrec_recbole.benchmark import compare

    real_popen = subprocess.Popen
    dying = [sys.executable, "-c", "print('out of memory, say'); import os; os._exit(9)"]
    monkeypatch.setattr(compare.subprocess, "Popen", lambda args, **kwargs: real_popen(dying, **kwargs))
    settings = Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path))
    settings.runs_dir.mkdir(parents=True)
    planned = plan(settings, tmp_path)[0]
    record = compare.execute(settings, planned, tmp_path)
    assert record["status"] == "failed" and "exited with status 9" in record["error"]
    assert "out of memory, say" in record["error"]
    assert json.loads(planned.record_path.read_text())["status"] == "failed"


def test_step_time_section_times_both_paths_and_the_old_step_gives_the_new_loss(quick_settings):
    """The training-speed step section for 2 steps on tiny data: finite times for the pre-change
    and the current step, and with dropout 0 and key_dropout true (paper loss) the same four
    loss terms from both on the same first batch."""
    from adrec_recbole.benchmark.step_time import STEP_CONFIGURATIONS, measure_step_times

    results = measure_step_times("Tiny", quick_settings, steps=2, repeats=2)
    assert list(results) == list(STEP_CONFIGURATIONS)
    for row in results.values():
        for path in ("old", "new"):
            assert math.isfinite(row[path]["median_ms"]) and row[path]["median_ms"] > 0
        assert math.isfinite(row["old_over_new"])
    assert results["default"]["new"]["builds"] == "online tower only"
    assert results["default"]["old"]["builds"] == "momentum copy, item queue, sequence queue"
    paper = results["paper loss (frozen)"]
    assert paper["settings"]["key_dropout"] is True and paper["settings"]["hidden_dropout_prob"] == 0.0
    old, new = paper["warmup_loss_terms"]["old"], paper["warmup_loss_terms"]["new"]
    assert all(term > 0 for term in new)
    assert old == pytest.approx(new, abs=1e-5)
