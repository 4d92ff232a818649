"""The user-facing run path: run_recbole.py for ADRec and RecBole's models, clear errors,
reproducibility, and a short real training run on Scientific that must beat popularity."""
import importlib
import json
import os
import subprocess
import sys

import pytest
import torch

from adrec_recbole.quick_start import build_config, run
from conftest import ROOT, shared_dataset_or_skip

RECBOLE_MODULES_MAKING_FOLDERS = ("recbole.utils.logger", "recbole.trainer.trainer", "recbole.data.utils",
                                  "recbole.data.dataset.dataset")


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "run_recbole.py"), *args], cwd=cwd, capture_output=True, text=True,
        timeout=600,
    )


def test_unknown_model_is_one_line_error(tmp_path):
    completed = run_cli("--model=NoSuchModel", "--dataset=Tiny", cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: unknown model 'NoSuchModel': use ADRec or a RecBole model name "
        "(SASRec, BERT4Rec, GRU4Rec, FDSA, Pop, ...)"
    ]


def test_missing_dataset_is_one_line_error_naming_the_command(tmp_path):
    completed = run_cli("--model=ADRec", "--dataset=Arts", f"--data_path={tmp_path}", "--download=False", cwd=tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "python -m adrec_recbole.data download --dataset Arts" in lines[0]


def test_cli_runs_adrec_and_writes_json_results(tiny_data_root, tmp_path):
    result_file = tmp_path / "out.json"
    completed = run_cli(
        "--model=ADRec", "--dataset=Tiny", f"--data_path={tiny_data_root}", "--epochs=1",
        f"--checkpoint_dir={tmp_path}", f"--plm_cache_dir={tmp_path / 'cache'}", f"--result_file={result_file}",
        "--hidden_size=32", "--n_layers=1", "--inner_size=64", "--queue_size=50", "--topk=[10]",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(result_file.read_text())
    assert result["model"] == "ADRec" and result["epochs_run"] == 1
    assert set(result["test_result"]) == {"recall@10", "ndcg@10", "mrr@10"}
    assert "train_loss4" in completed.stdout + completed.stderr  # the four terms are logged separately


def test_progress_bars_by_default_on_a_terminal_only(tiny_data_root, monkeypatch):
    def show_progress(**settings):
        return build_config("SASRec", "Tiny", config_dict={"data_path": str(tiny_data_root), **settings})["show_progress"]

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert show_progress() is True
    assert show_progress(show_progress=False) is False  # a setting given wins
    monkeypatch.setenv("CI", "true")
    assert show_progress() is False
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # output into a file or a pipe
    assert show_progress() is False


def test_recbole_models_run_by_name_on_the_same_data(quick_settings):
    for model in ("SASRec", "Pop"):
        result = run(model, "Tiny", config_dict={**quick_settings, "epochs": 1})
        assert result["model"] == model and result["test_result"]["ndcg@10"] >= 0


def test_fixed_seed_gives_identical_metrics(quick_settings):
    def settings(run_name, **overrides):  # own checkpoint folder: file names carry only seconds
        return {**quick_settings, "checkpoint_dir": f"{quick_settings['checkpoint_dir']}/{run_name}", **overrides}

    first = run("ADRec", "Tiny", config_dict=settings("first"))
    second = run("ADRec", "Tiny", config_dict=settings("second"))
    assert first["best_valid_result"] == second["best_valid_result"]
    assert first["test_result"] == second["test_result"]
    third = run("ADRec", "Tiny", config_dict=settings("third", seed=7))
    weights = [torch.load(r["checkpoint"], weights_only=True)["state_dict"] for r in (first, second, third)]
    name = "online.adapter.0.weight"
    assert torch.equal(weights[0][name], weights[1][name]) and not torch.equal(weights[0][name], weights[2][name])


@pytest.mark.real_data
def test_one_epoch_on_scientific_beats_popularity(tmp_path):
    data_root = shared_dataset_or_skip("Scientific")
    settings = {
        "data_path": str(data_root), "checkpoint_dir": str(tmp_path), "plm_cache_dir": str(tmp_path / "cache"),
        "epochs": 1, "result_file": str(tmp_path / "r.json"),
    }
    adrec = run("ADRec", "Scientific", config_dict=settings)
    pop = run("Pop", "Scientific", config_dict=settings)
    assert adrec["test_result"]["ndcg@10"] > 2 * pop["test_result"]["ndcg@10"]
    assert adrec["test_result"]["recall@10"] > pop["test_result"]["recall@10"]


@pytest.mark.parametrize("module", RECBOLE_MODULES_MAKING_FOLDERS)
def test_a_folder_another_process_makes_between_check_and_create_is_no_error(module, tmp_path, monkeypatch):
    """RecBole's ensure_dir checks, then creates: of two benchmark workers starting together in one
    folder, the slower could stop with FileExistsError on ./log/ (the fix is in adrec_recbole.compat)."""
    made_meanwhile, missing = tmp_path / "log", tmp_path / "log_tensorboard" / "run"
    made_meanwhile.mkdir()
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # what both processes saw
    ensure_dir = importlib.import_module(module).ensure_dir
    ensure_dir(str(made_meanwhile))
    ensure_dir(str(missing))
    assert made_meanwhile.is_dir() and missing.is_dir()
