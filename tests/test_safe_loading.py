"""Issue 9: no file the run path or RecBole's trainer reads can run code (adrec_recbole.safe_load).

A crafted pickle whose unpickling creates a marker file is put wherever RecBole would unpickle
something: saved datasets and dataloaders (default and configured paths), the best checkpoint
swapped during training, ``Trainer.evaluate(model_file=...)`` and ``Trainer.resume_checkpoint``.
The marker must never appear; each file is either ignored with a warning naming it or refused
in one line naming it. ``trust_checkpoint: True`` still loads a legitimate checkpoint written by
RecBole without this plugin (its ``Config`` pickled inside).
"""
import os
import pickle

import numpy
import pytest
import recbole.trainer.trainer as recbole_trainer_module
import torch
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

from adrec_recbole.quick_start import RunError, build_config, run
from adrec_recbole.safe_load import (
    UnsafeCheckpointError,
    create_dataset_without_pickles,
    data_preparation_without_pickles,
    plain_config,
    plain_other_parameter,
)


class Payload:
    """Unpickling this creates ``marker``: the stand-in for any code a crafted file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_pickle(path, marker):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump([(Payload(marker), None)], handle)


def write_checkpoint_payload(path, marker):
    torch.save({"config": {"model": "SASRec"}, "state_dict": Payload(marker), "other_parameter": None}, path)


def assert_one_line_refusal(error, path):
    message = str(error)
    assert isinstance(error, (UnsafeCheckpointError, RunError))
    assert len(message.splitlines()) == 1 and str(path) in message
    assert "refused to load" in message and "--trust_checkpoint=True" in message


def ignore_warnings(caplog):
    return [record.getMessage() for record in caplog.records
            if record.levelname == "WARNING" and record.getMessage().startswith("ignoring ")]


def test_the_payload_runs_its_code_when_unpickled(tmp_path):
    """The tests below would prove nothing with a payload that does nothing."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("model", ["ADRec", "SASRec"])
def test_saved_datasets_and_dataloaders_in_checkpoint_dir_are_ignored_and_best_is_weights_only(
        model, quick_settings, tmp_path, caplog):
    marker = tmp_path / "MARKER"
    saved = quick_settings["checkpoint_dir"]
    planted = [os.path.join(saved, name) for name in
               (f"Tiny-for-{model}-dataloader.pth", "Tiny-SequentialDataset.pth", "Tiny-ADRecDataset.pth")]
    for path in planted:
        write_pickle(path, marker)

    result = run(model, "Tiny", config_dict={**quick_settings, "epochs": 1})

    assert not marker.exists()
    assert result["test_result"]["ndcg@10"] >= 0
    read_by_recbole = planted[:2] if model == "SASRec" else [planted[0], planted[2]]
    warnings = ignore_warnings(caplog)
    assert len(warnings) == 2 and all(len(warning.splitlines()) == 1 for warning in warnings)
    for path in read_by_recbole:
        assert any(path in warning for warning in warnings)
    # the best checkpoint the run wrote: RecBole's keys, tensors and plain types only
    best = torch.load(result["checkpoint"], weights_only=True)
    assert set(best) == {"config", "epoch", "cur_step", "best_valid_score", "state_dict", "other_parameter",
                         "optimizer"}
    assert type(best["config"]) is dict and best["config"]["model"] == model
    assert best["config"]["MODEL_TYPE"] == "ModelType.SEQUENTIAL" and best["config"]["device"] == "cpu"


def test_configured_dataset_and_dataloader_save_paths_are_ignored(quick_settings, tmp_path, caplog):
    marker = tmp_path / "MARKER"
    dataset_file, dataloader_file = str(tmp_path / "elsewhere" / "d.pth"), str(tmp_path / "elsewhere" / "l.pth")
    write_pickle(dataset_file, marker)
    write_pickle(dataloader_file, marker)

    result = run("SASRec", "Tiny", config_dict={
        **quick_settings, "epochs": 1, "dataset_save_path": dataset_file, "dataloaders_save_path": dataloader_file,
    })

    assert not marker.exists()
    assert result["test_result"]["ndcg@10"] >= 0
    warnings = ignore_warnings(caplog)
    assert len(warnings) == 2
    assert any(dataset_file in w for w in warnings) and any(dataloader_file in w for w in warnings)


def test_best_checkpoint_swapped_during_training_is_refused_in_one_line(quick_settings, tmp_path):
    marker = tmp_path / "MARKER"
    swapped = []

    def swap_best_checkpoint(epoch_idx, valid_score):  # after the save, before the end-of-run reload
        for folder in os.listdir(quick_settings["checkpoint_dir"]):
            best = os.path.join(quick_settings["checkpoint_dir"], folder, "best.pth")
            if os.path.exists(best):
                write_checkpoint_payload(best, marker)
                swapped.append(best)

    with pytest.raises(Exception) as refused:
        run("ADRec", "Tiny", config_dict={**quick_settings, "epochs": 1}, callback_fn=swap_best_checkpoint)

    assert len(swapped) == 1
    assert_one_line_refusal(refused.value, swapped[0])
    assert not marker.exists()


@pytest.fixture
def sasrec_trainer(quick_settings):
    """A plain RecBole Trainer (no plugin trainer) for SASRec on the tiny data, and its test data."""
    config = build_config("SASRec", "Tiny", config_dict={**quick_settings, "epochs": 1})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset_without_pickles(config)
    train_data, _, test_data = data_preparation_without_pickles(config, dataset)
    model = get_model("SASRec")(config, train_data.dataset).to(config["device"])
    return Trainer(config, model), test_data


def test_recbole_trainer_refuses_payloads_in_one_line(sasrec_trainer, tmp_path):
    trainer, test_data = sasrec_trainer
    marker = tmp_path / "MARKER"
    payload = tmp_path / "payload.pth"
    write_checkpoint_payload(payload, marker)

    with pytest.raises(UnsafeCheckpointError) as refused:
        trainer.evaluate(test_data, model_file=str(payload))
    assert_one_line_refusal(refused.value, payload)
    with pytest.raises(UnsafeCheckpointError) as refused:
        trainer.resume_checkpoint(payload)
    assert_one_line_refusal(refused.value, payload)
    assert not marker.exists()


def test_recbole_trainer_writes_weights_only_checkpoints_in_a_plugin_process(sasrec_trainer, tmp_path):
    trainer, test_data = sasrec_trainer
    written = str(tmp_path / "plain.pth")
    trainer.best_valid_score = numpy.float64(0.25)  # what RecBole's early stopping keeps after fit
    trainer._save_checkpoint(0, saved_model_file=written)

    checkpoint = torch.load(written, weights_only=True)
    assert type(checkpoint["config"]) is dict and checkpoint["config"]["model"] == "SASRec"
    assert checkpoint["best_valid_score"] == 0.25
    assert trainer.evaluate(test_data, model_file=written)["ndcg@10"] >= 0
    trainer.resume_checkpoint(written)
    assert trainer.start_epoch == 1


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # RecBole writes protocol 4
def test_trust_checkpoint_loads_a_checkpoint_written_by_recbole_alone(sasrec_trainer, tmp_path, monkeypatch):
    trainer, test_data = sasrec_trainer
    old_style = str(tmp_path / "recbole.pth")
    with monkeypatch.context() as plain_recbole:  # RecBole's trainer as it is without the plugin
        plain_recbole.setattr(recbole_trainer_module, "torch", torch)
        trainer._save_checkpoint(0, saved_model_file=old_style)
    with pytest.raises(pickle.UnpicklingError):  # its Config is pickled inside
        torch.load(old_style, weights_only=True)

    with pytest.raises(UnsafeCheckpointError) as refused:
        trainer.evaluate(test_data, model_file=old_style)
    assert_one_line_refusal(refused.value, old_style)

    trainer.config["trust_checkpoint"] = True
    assert trainer.evaluate(test_data, model_file=old_style)["ndcg@10"] >= 0
    trainer.resume_checkpoint(old_style)
    assert trainer.start_epoch == 1


def test_plain_config_and_other_parameter_hold_only_what_weights_only_reads(sasrec_trainer, tmp_path):
    trainer, _ = sasrec_trainer
    other = plain_other_parameter({
        "counts": torch.ones(3), "max": 4, "layer": torch.nn.Linear(2, 2), "matrix": numpy.eye(2),
    })
    assert set(other) == {"counts", "max"}  # a submodule's weights are in state_dict; matrices are rebuilt
    path = tmp_path / "plain.pth"
    torch.save({"config": plain_config(trainer.config), "other_parameter": other}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["config"]["eval_type"] == "EvaluatorType.RANKING" and loaded["config"]["topk"] == [10]
