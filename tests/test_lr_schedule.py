"""Learning-rate warm-up and cosine decay (adrec_recbole/lr_schedule.py): the rate at each step,
in a real run, after a resume, and the identity of runs that do not use it."""
import math
import os

import pytest
import torch

from adrec_recbole.checkpoint import LAST_CHECKPOINT, load_last
from adrec_recbole.lr_schedule import LearningRateSchedule, learning_rate_factor
from adrec_recbole.quick_start import RunError, build_config, run
from adrec_recbole.run_folder import settings_hash
from test_resume import same_metrics


def test_factor_warms_up_linearly_then_follows_the_cosine_to_its_floor():
    # 4 warm-up steps, decay reaching the floor .1 at step 12
    factors = [learning_rate_factor(step, 4, 12, 0.1) for step in range(14)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0                                     # the cosine starts at 1
    assert factors[8] == pytest.approx(0.1 + 0.9 * 0.5)          # halfway: p = 4 / 8
    assert factors[6] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    assert factors[12:] == [pytest.approx(0.1)] * 2              # the floor, kept
    assert learning_rate_factor(5, 0, 0, 0.1) == 1.0             # neither: constant


def test_the_optimizer_gets_the_rate_of_each_step_and_an_epoch_start_sets_the_step():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    schedule = LearningRateSchedule(optimizer, 0.5, warmup_epochs=0.5, decay_epochs=2, min_ratio=0.1)
    seen = []
    for epoch in (0, 1, 2):
        schedule.begin_epoch(epoch, steps_per_epoch=4)
        for _ in range(4):
            parameter.grad = torch.ones(1)
            optimizer.step()
            seen.append(optimizer.param_groups[0]["lr"])
    expected = [0.5 * learning_rate_factor(step, 2, 8, 0.1) for step in range(12)]
    assert seen == pytest.approx(expected)
    assert seen[:2] == pytest.approx([0.25, 0.5]) and seen[8:] == pytest.approx([0.05] * 4)
    assert schedule.begin_epoch(1, 4) == pytest.approx(expected[4])  # resuming at epoch 1: step 4


def test_a_run_trains_on_the_schedule_and_resumes_on_it(quick_settings):
    settings = {**quick_settings, "hidden_dropout_prob": 0.3, "lr_warmup_epochs": 0.5, "lr_decay_epochs": 2}
    straight = run("ADRec", "Tiny", config_dict={**settings, "epochs": 3, "run_name": "straight"})
    constant = run("ADRec", "Tiny", config_dict={**quick_settings, "hidden_dropout_prob": 0.3, "epochs": 3,
                                                 "run_name": "constant"})
    assert not same_metrics(straight, constant)
    # the third epoch trained at the floor: the optimizer's rate in the last checkpoint
    last = load_last(os.path.join(straight["run_folder"], LAST_CHECKPOINT))
    learning_rate = build_config("ADRec", "Tiny", config_dict=settings)["learning_rate"]
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.05 * learning_rate)
    run("ADRec", "Tiny", config_dict={**settings, "epochs": 1, "run_name": "split"})
    resumed = run("ADRec", "Tiny", config_dict={**settings, "epochs": 3, "run_name": "split", "resume": True})
    assert resumed["resumed_at_epoch"] == 1 and same_metrics(resumed, straight)


def test_runs_without_a_schedule_keep_their_identity_and_a_bad_value_is_one_line(quick_settings):
    config = build_config("SASRec", "Tiny", config_dict=quick_settings)
    assert config["lr_decay_epochs"] == 0 and config["lr_min_ratio"] == 0.05
    without = build_config("SASRec", "Tiny", config_dict=quick_settings)
    for key in ("lr_warmup_epochs", "lr_decay_epochs", "lr_min_ratio"):
        del without.final_config_dict[key]
    assert settings_hash(config) == settings_hash(without)   # as before the options existed
    decayed = build_config("SASRec", "Tiny", config_dict={**quick_settings, "lr_decay_epochs": 20})
    assert settings_hash(decayed) != settings_hash(config)
    with pytest.raises(RunError, match=r"^lr_min_ratio=0: expected a number in \(0, 1\]$"):
        build_config("SASRec", "Tiny", config_dict={**quick_settings, "lr_min_ratio": 0})
