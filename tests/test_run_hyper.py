"""run_hyper.py: RecBole's flags over the project's tuner. A two-trial search of ADRec's own space
(hyper.test, found in the package from another folder) on the tiny dataset, RecBole's result file
and plot, and the one-line errors."""
import csv
import os
import re
import subprocess
import sys
import time

import yaml

from conftest import ROOT


def run_hyper(*args, cwd, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "run_hyper.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_two_trial_search_of_hyper_test_with_recbole_flags(tiny_data_root, tmp_path):
    completed = run_hyper(
        "--params_file", "hyper.test", "--model=ADRec", "--dataset=Tiny", f"--data_path={tiny_data_root}",
        "--epochs", "1", "--max_evals=2", "--output_file=hyper.result", "--display_file=hyper.html",
        "--out", "tuning", f"--plm_cache_dir={tmp_path / 'cache'}", "--topk", "[10]", "--state=ERROR",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    with open(tmp_path / "tuning" / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert float(rows[0]["valid_ndcg@10"]) >= float(rows[1]["valid_ndcg@10"])
    searched = [line.split()[0] for line in (ROOT / "adrec_recbole" / "properties" / "hyper.test").read_text().splitlines()]
    assert all(row[name] for row in rows for name in searched)  # every line of hyper.test was sampled

    # RecBole's result file: per trial its parameters, then valid and test results (export_result's format)
    result = (tmp_path / "hyper.result").read_text()
    trials = [block for block in result.split("\n\n") if block.strip()]
    assert len(trials) == 2
    for block in trials:
        lines = block.splitlines()
        assert [name.split(":")[0] for name in re.split(r", (?=[a-z_]+:)", lines[0])] == searched
        assert lines[1] == "Valid result:" and lines[3] == "Test result:"
        assert re.fullmatch(r"recall@10 : [0-9.]+    ndcg@10 : [0-9.]+    mrr@10 : [0-9.]+", lines[4])
    best_valid = max(float(re.search(r"ndcg@10 : ([0-9.]+)", block.splitlines()[2]).group(1)) for block in trials)
    assert abs(best_valid - float(rows[0]["valid_ndcg@10"])) < 1e-4  # dict2str prints 4 decimals
    assert "plotly" in (tmp_path / "hyper.html").read_text()

    best = yaml.safe_load((tmp_path / "tuning" / "best_config.yaml").read_text())
    assert best["epochs"] == 1 and best["topk"] == [10]  # settings given as flags: typed, as RecBole read them
    assert best["data_path"] == str(tiny_data_root)
    assert "best config:" in completed.stdout


def test_flags_that_cannot_be_used_stop_with_one_line(tiny_data_root, tmp_path):
    completed = run_hyper("--dataset=Tiny", f"--data_path={tiny_data_root}", "--learning_rat=0.1", cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: unknown setting --learning_rat (did you mean --learning_rate?): not a setting of RecBole, of ADRec "
        "or of this project's yaml files"]
    completed = run_hyper("--params_file", "absent.test", cwd=tmp_path)
    assert completed.returncode == 2 and completed.stderr.startswith("error: search space file not found: absent.test")
    completed = run_hyper("--tool", "Grid", cwd=tmp_path)
    assert completed.returncode == 2 and "invalid choice: 'grid'" in completed.stderr
    assert not (tmp_path / "tuning").exists()


def test_help_is_fast(tmp_path):
    start = time.time()
    completed = run_hyper("--help", cwd=tmp_path)
    assert completed.returncode == 0 and time.time() - start < 3
    for flag in ("--config_files", "--params_file", "--output_file", "--display_file", "--tool"):
        assert flag in completed.stdout
