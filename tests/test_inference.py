"""A saved model back in memory (adrec_recbole/inference.py) and `python -m adrec_recbole.evaluate`:
the metrics of the training run, exactly; RecBole's load_data_and_model habit; each kind of bad
input as one line, exit code 2, nothing written."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from adrec_recbole import load_checkpoint as exported_load_checkpoint
from adrec_recbole import safe_load
from adrec_recbole.evaluate import main as evaluate_main
from adrec_recbole.inference import checkpoint_config, evaluate, load_checkpoint
from conftest import ROOT, one_line_error


@pytest.mark.parametrize("model", ["ADRec", "SASRec"])
def test_evaluate_reproduces_the_training_run(model, trained_checkpoints):
    result = trained_checkpoints[model]
    loaded = exported_load_checkpoint(result["checkpoint"])
    assert type(loaded.model).__name__ == model and not loaded.model.training
    report = evaluate(loaded)
    assert report["valid_result"] == result["best_valid_result"]
    assert report["test_result"] == result["test_result"]
    assert report["cold_start"] == result["cold_start"]
    assert (report["valid_rows"], report["test_rows"]) == (60, 60)
    weights = torch.load(result["checkpoint"], weights_only=True)["state_dict"]
    assert all(torch.equal(loaded.model.state_dict()[name].cpu(), value) for name, value in weights.items())


def test_evaluate_command_prints_the_same_numbers(trained_checkpoints, capsys, tmp_path, monkeypatch):
    result = trained_checkpoints["ADRec"]
    monkeypatch.chdir(tmp_path)
    evaluate_main(["--checkpoint", result["checkpoint"], "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert report["test_result"] == result["test_result"] and report["cold_start"]["rows"] == 4
    evaluate_main(["--checkpoint", result["checkpoint"]])
    lines = capsys.readouterr().out.splitlines()
    test_line = next(line for line in lines if line.startswith("test: 60 rows"))
    assert test_line.split()[-3:] == [f"{result['test_result'][m]:.4f}" for m in ("recall@10", "ndcg@10", "mrr@10")]
    assert any(line.startswith("test, targets never in training: 4 rows, 1 items") for line in lines)
    assert os.listdir(tmp_path) == []  # no log, tensorboard or checkpoint folder


def test_stored_strings_come_back_as_stored(trained_checkpoints):
    """RecBole eval()s the strings of a config dict: '[1, 2]' would become a list, 'None' None."""
    path = trained_checkpoints["ADRec"]["checkpoint"]
    stored = safe_load.plain_config(torch.load(path, weights_only=True)["config"])
    stored.update(text_prompt="[1, 2]", missing_text_placeholder="None", run_name="123")
    config = checkpoint_config(stored, path)
    assert (config["text_prompt"], config["missing_text_placeholder"], config["run_name"]) == ("[1, 2]", "None", "123")
    assert config["data_path"] == stored["data_path"]


def test_recbole_load_data_and_model_and_full_sort_topk_work_on_our_checkpoint(trained_checkpoints):
    """RecBole's own habit, in a fresh process (the replacement is installed when RecBole's module loads)."""
    result = trained_checkpoints["ADRec"]
    script = (
        "import adrec_recbole.compat\n"
        "from recbole.quick_start import load_data_and_model\n"
        "from recbole.utils.case_study import full_sort_topk\n"
        f"config, model, dataset, train_data, valid_data, test_data = load_data_and_model({result['checkpoint']!r})\n"
        "uid = dataset.token2id(dataset.uid_field, ['0', '7'])\n"
        "scores, items = full_sort_topk(uid, model, test_data, k=3, device=config['device'])\n"
        "print(type(model).__name__, items.tolist())\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 0, completed.stderr[-2000:]
    name, items = completed.stdout.strip().split(" ", 1)
    loaded = load_checkpoint(result["checkpoint"])
    from recbole.utils.case_study import full_sort_topk
    uid = loaded.dataset.token2id(loaded.dataset.uid_field, ["0", "7"])
    expected = full_sort_topk(uid, loaded.model, loaded.test_data, k=3, device=loaded.config["device"])[1]
    assert name == "ADRec" and json.loads(items) == expected.tolist()


def bad_input(tmp_path, monkeypatch, capsys, *args):
    return one_line_error(evaluate_main, args, tmp_path, monkeypatch, capsys)


def test_bad_checkpoints_are_one_line_each(trained_checkpoints, tmp_path, monkeypatch, capsys):
    good = trained_checkpoints["SASRec"]["checkpoint"]
    missing = str(tmp_path / "nothing.pth")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", missing) == f"error: {missing}: no such checkpoint file"

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(good, "rb").read()[:5000])
    assert "not a readable checkpoint, truncated or damaged" in bad_input(
        tmp_path, monkeypatch, capsys, "--checkpoint", str(truncated))

    crafted = tmp_path / "crafted.pth"
    crafted.write_bytes(pickle.dumps({"config": {}, "state_dict": {}, "marker": os.system}))
    message = bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", str(crafted))
    assert "refused to load" in message and "--trust_checkpoint=True" in message

    last = os.path.join(os.path.dirname(good), "last.pth")
    assert "is a 'last' checkpoint" in bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", last)

    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", good, "--model", "ADRec") == (
        f"error: {good}: a checkpoint of SASRec on Cold, not of model ADRec")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", good, "--dataset", "Scientific") == (
        f"error: {good}: a checkpoint of SASRec on Cold, not of dataset Scientific")


def test_missing_or_other_data_is_one_line(trained_checkpoints, cold_data_root, tmp_path, monkeypatch, capsys):
    good = trained_checkpoints["SASRec"]["checkpoint"]
    message = bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", good, "--data_path", str(tmp_path / "none"))
    assert str(tmp_path / "none") in message and "does not exist" in message

    other = tmp_path / "other"
    shutil.copytree(cold_data_root / "Cold", other / "Cold")
    with open(other / "Cold" / "Cold.item", "a") as handle:
        handle.write("15\tone more item\t\t\n")  # the catalogue grows by one: SASRec's embedding no longer fits
    message = bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", good, "--data_path", str(other))
    assert message.startswith(f"error: {good} does not fit SASRec on the data in {other / 'Cold'}")
    assert "item_embedding.weight" in message
