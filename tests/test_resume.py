"""Run folders, the ``last`` checkpoint and resuming: a resumed run ends with exactly the
metrics of the uninterrupted one, including after SIGKILL in the middle of an epoch."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from recbole.utils import early_stopping

from adrec_recbole.checkpoint import (
    LAST_CHECKPOINT, EpochClock, capture_rng_states, load_last, restore_rng_states,
)
from adrec_recbole.quick_start import RunError, build_config, run
from adrec_recbole.run_folder import RunLock, run_folder
from conftest import ROOT, shared_dataset_or_skip

METRICS = ("best_valid_result", "test_result", "best_epoch")


def same_metrics(first, second):
    return all(first[key] == second[key] for key in METRICS)


@pytest.mark.parametrize("bigger, scores, best_epoch", [
    (True, [0.0300, 0.0412, 0.0412, 0.0405], 2),   # a 4-decimal tie: the later epoch, as RecBole saves it
    (False, [0.90, 0.71, 0.71, 0.75], 2),
])
def test_epoch_clock_names_the_epoch_whose_weights_recbole_kept(bigger, scores, best_epoch):
    clock = EpochClock(bigger)
    best, steps, last_saved = (-np.inf if bigger else np.inf), 0, None
    for epoch, score in enumerate(scores):
        clock(epoch, score)
        best, steps, _, saved = early_stopping(score, best, steps, max_step=10, bigger=bigger)
        last_saved = epoch if saved else last_saved
    assert clock.best_epoch == best_epoch == last_saved
    assert clock.best_score == scores[best_epoch] and clock.epochs == len(scores)


def test_run_folder_is_named_from_model_dataset_seed_and_settings(quick_settings):
    folders = {
        name: run_folder(build_config("ADRec", "Tiny", config_dict={**quick_settings, **overrides}))
        for name, overrides in {
            "base": {}, "same": {"epochs": 7, "state": "INFO"},  # budget and verbosity: the same run
            "lr": {"learning_rate": 5e-4}, "seed": {"seed": 7}, "named": {"run_name": "mine"},
        }.items()
    }
    assert os.path.basename(folders["base"]).startswith("ADRec-Tiny-seed2020-")
    assert folders["same"] == folders["base"]
    assert len({folders["base"], folders["lr"], folders["seed"]}) == 3
    assert os.path.basename(folders["named"]) == "mine"


def test_an_option_at_its_neutral_value_keeps_the_identity_of_earlier_runs(quick_settings, monkeypatch, tmp_path):
    """A new option registered with its neutral value (the old behaviour) leaves run folders and
    benchmark fingerprints as they were; any other value makes another run."""
    from adrec_recbole import run_folder as folders
    from adrec_recbole.benchmark import records

    def identity(**extra):
        return folders.settings_hash(build_config("ADRec", "Tiny", config_dict={**quick_settings, **extra}))

    def parsed(**extra):
        path = tmp_path / f"ADRec-{len(extra)}-{sorted(extra.values())}.yaml"
        path.write_text("".join(f"{key}: {value}\n" for key, value in {"learning_rate": 0.001, **extra}.items()))
        return records._parsed(str(path))

    before, yaml_before = identity(), parsed()
    monkeypatch.setitem(folders.NEUTRAL_SETTINGS, "lr_decay", "none")
    assert identity(lr_decay="none") == before and parsed(lr_decay="none") == yaml_before
    assert identity(lr_decay="cosine") != before and parsed(lr_decay="cosine") != yaml_before


def test_resuming_with_more_epochs_equals_the_uninterrupted_run(quick_settings):
    # dropout (and the adapter's noisy gate): the RNG streams must continue exactly; at this rate
    # the tiny run still improves in epochs 3-4, so the resumed epochs decide the result
    settings = {**quick_settings, "hidden_dropout_prob": 0.3, "learning_rate": 0.003}
    straight = run("ADRec", "Tiny", config_dict={**settings, "epochs": 4, "run_name": "straight"})
    first = run("ADRec", "Tiny", config_dict={**settings, "epochs": 2, "run_name": "split"})
    resumed = run("ADRec", "Tiny", config_dict={**settings, "epochs": 4, "run_name": "split", "resume": True})
    assert first["epochs_run"] == 2 and resumed["resumed_at_epoch"] == 2 and resumed["epochs_run"] == 4
    assert same_metrics(resumed, straight)
    assert not same_metrics(first, straight)  # the two extra epochs changed something
    last = load_last(os.path.join(resumed["run_folder"], LAST_CHECKPOINT))  # weights_only=True inside
    assert last["next_epoch"] == 4 and not last["stopped_early"]


@pytest.mark.parametrize("model", ["SASRec", "BERT4Rec"])  # BERT4Rec: loading its data adds config keys
def test_recbole_models_resume_through_the_same_path(quick_settings, model):
    straight = run(model, "Tiny", config_dict={**quick_settings, "epochs": 3, "run_name": "straight"})
    run(model, "Tiny", config_dict={**quick_settings, "epochs": 1, "run_name": "split"})
    resumed = run(model, "Tiny", config_dict={**quick_settings, "epochs": 3, "run_name": "split", "resume": True})
    assert resumed["resumed_at_epoch"] == 1 and same_metrics(resumed, straight)


def test_an_existing_run_is_never_silently_reused_or_overwritten(quick_settings):
    settings = {**quick_settings, "epochs": 1}
    first = run("ADRec", "Tiny", config_dict=settings)
    with pytest.raises(RunError, match="--resume to continue it, or --resume=False to start it over"):
        run("ADRec", "Tiny", config_dict=settings)
    again = run("ADRec", "Tiny", config_dict={**settings, "resume": True})  # finished: evaluated, not retrained
    assert again["resumed_at_epoch"] == 1 and again["epochs_run"] == 1 and same_metrics(again, first)
    over = run("ADRec", "Tiny", config_dict={**settings, "resume": False})
    assert over["resumed_at_epoch"] is None and same_metrics(over, first)


def test_an_early_stopped_run_resumes_without_training_more(quick_settings):
    settings = {**quick_settings, "epochs": 30, "stopping_step": 1, "learning_rate": 0.05}
    first = run("ADRec", "Tiny", config_dict=settings)
    assert first["epochs_run"] < 30
    again = run("ADRec", "Tiny", config_dict={**settings, "resume": True})
    assert again["epochs_run"] == first["epochs_run"] and same_metrics(again, first)


def test_a_run_name_reused_with_other_settings_is_not_resumed(quick_settings):
    run("ADRec", "Tiny", config_dict={**quick_settings, "epochs": 1, "run_name": "mine"})
    with pytest.raises(RunError, match="trained with other settings"):
        run("ADRec", "Tiny", config_dict={**quick_settings, "run_name": "mine", "resume": True, "hidden_size": 16})


def test_a_run_being_trained_cannot_be_started_twice(quick_settings):
    folder = run_folder(build_config("ADRec", "Tiny", config_dict=quick_settings))
    with RunLock(folder):
        with pytest.raises(RunError, match="being trained right now"):
            run("ADRec", "Tiny", config_dict=quick_settings)


def test_an_unreadable_last_checkpoint_is_one_line_not_a_crash(quick_settings):
    folder = run_folder(build_config("ADRec", "Tiny", config_dict=quick_settings))
    os.makedirs(folder)
    with open(os.path.join(folder, LAST_CHECKPOINT), "wb") as handle:
        handle.write(b"not a checkpoint")
    with pytest.raises(RunError, match="cannot resume from .*--resume=False to start over"):
        run("ADRec", "Tiny", config_dict={**quick_settings, "resume": True})


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    class Loader:
        generator = torch.Generator().manual_seed(3)

    loader = Loader()
    states = capture_rng_states(loader)
    torch.save(states, tmp_path / "rng.pth")
    draws = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=loader.generator).item())
    restore_rng_states(torch.load(tmp_path / "rng.pth", weights_only=True), loader)
    again = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=loader.generator).item())
    assert draws == again


def test_a_last_checkpoint_is_read_onto_the_cpu_whatever_the_run_device(tmp_path):
    """A run on a GPU resumes: the RNG setters take CPU tensors only, so ``last`` is read onto the
    CPU and the model/optimizer state copied onto the model's device by ``load_state_dict``
    (reading it onto the GPU failed with "can't convert cuda:0 device type tensor to numpy")."""
    class Loader:
        generator = torch.Generator().manual_seed(3)

    loader = Loader()
    path = tmp_path / LAST_CHECKPOINT
    torch.save({"format": 1, "state_dict": {"weight": torch.ones(2)}, "rng": capture_rng_states(loader)}, path)
    draws = (np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=loader.generator).item())
    checkpoint = load_last(path)
    tensors = [checkpoint["rng"]["torch"], checkpoint["rng"]["numpy"][1], checkpoint["rng"]["train_loader"],
               checkpoint["state_dict"]["weight"]]
    assert {tensor.device.type for tensor in tensors} == {"cpu"}
    restore_rng_states(checkpoint["rng"], loader)
    assert (np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=loader.generator).item()) == draws


# ---- the test that matters: SIGKILL in the middle of an epoch, on real data -------------------
def write_scientific_subset(source, target, users):
    """The first ``users`` users of UniSRec's Scientific files, in the same layout."""
    target.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        with open(source / f"Scientific.{split}.inter") as reader, open(target / f"SciSub.{split}.inter", "w") as writer:
            writer.write(next(reader))
            writer.writelines(line for line in reader if int(line.split("\t", 1)[0]) < users)
    for suffix in ("text", "item2index"):
        (target / f"SciSub.{suffix}").write_bytes((source / f"Scientific.{suffix}").read_bytes())


def cli(args):
    """``run_recbole.py`` in a subprocess on one thread: the setting under which CPU runs repeat
    bit for bit (with several threads MKL's kernels may sum in another order from run to run)."""
    return subprocess.Popen([sys.executable, str(ROOT / "run_recbole.py"), *args], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.real_data
def test_sigkill_in_the_middle_of_an_epoch_then_resume_gives_identical_metrics(tmp_path):
    data_root = shared_dataset_or_skip("Scientific")
    write_scientific_subset(data_root / "Scientific", tmp_path / "data" / "SciSub", users=600)
    common = [
        "--model=ADRec", "--dataset=SciSub", f"--data_path={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path / 'saved'}",
        f"--plm_cache_dir={tmp_path / 'cache'}", "--plm_layer=1", "--epochs=3", "--train_batch_size=64",
        "--hidden_dropout_prob=0.2", "--state=INFO",
    ]

    def finish(args):
        process = cli(common + args)
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-3000:]
        return json.loads((tmp_path / "saved" / args[0].split("=")[1] / "result.json").read_text())

    straight = finish(["--run_name=straight"])
    folder = tmp_path / "saved" / "killed"
    process = cli(common + ["--run_name=killed"])
    deadline = time.time() + 600
    while not (folder / LAST_CHECKPOINT).exists():  # written as epoch 1 starts
        assert process.poll() is None and time.time() < deadline, "run ended before epoch 1 started"
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    log = (folder / "run.log").read_text()
    assert "epoch 1 training" not in log, "the kill came after epoch 1 had finished training"
    assert not (folder / "result.json").exists()

    refused = cli(common + ["--run_name=killed"])
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and output.strip().splitlines()[-1].startswith("error: this run was started before")

    resumed = finish(["--run_name=killed", "--resume"])
    assert resumed["resumed_at_epoch"] == 1 and resumed["epochs_run"] == 3
    assert resumed["best_valid_result"] == straight["best_valid_result"]
    assert resumed["test_result"] == straight["test_result"]
