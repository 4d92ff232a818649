"""Bad settings stop before any data is loaded, in one line naming the key (exit code 2)."""
import subprocess
import sys

import pytest

from adrec_recbole.quick_start import RunError, build_config
from conftest import ROOT

BAD_SETTINGS = [
    ({"train_mode": "foo"}, "train_mode='foo': expected one of frozen, finetune"),
    ({"plm_layer": 99}, "plm_layer=99 is outside 0..6"),
    ({"plm_layer": [1, 9]}, "plm_layer=9 is outside 0..6"),
    ({"plm_layer": [6]}, "plm_layer=[6]: expected an integer (hidden_states index), or a list of two or more"),
    ({"plm_layer": [1, -1], "train_mode": "finetune", "seq_item_negatives": "batch"}, "plm_layer=[1, -1] (layer fusion) needs train_mode='frozen'"),
    ({"hidden_size": 131}, "hidden_size 131 is not divisible by n_heads=2"),
    ({"adapter": False, "adapter_experts": 1, "adapter_dropout": 0, "n_heads": 5}, "the PLM's hidden size (adapter off) 384 is not divisible by n_heads=5"),
    ({"queue_size": 0}, "queue_size=0: expected an integer >= 1"),
    ({"adapter_experts": 0}, "adapter_experts=0: expected an integer >= 1"),
    ({"adapter_dropout": 1}, "adapter_dropout=1: expected a number in [0, 1)"),
    ({"adapter_dropout": 0.2, "adapter_experts": 1}, "adapter_dropout=0.2 acts on the mixture-of-experts adapter only"),
    ({"adapter": False}, "adapter_experts=8 needs adapter: true (the experts are the adapter): with adapter: false set"),
    ({"adapter_experts": 1}, "adapter_dropout=0.2 acts on the mixture-of-experts adapter only"),
    ({"train_mode": "finetune", "seq_item_negatives": "batch"}, "plm_layer=[1, -1] (layer fusion) needs"),
    ({"learning_rate": -0.001}, "learning_rate=-0.001: expected a number in (0, inf)"),
    ({"train_batch_size": 0}, "train_batch_size=0: expected an integer >= 1"),
    ({"epochs": 1.5}, "epochs=1.5: expected an integer >= 0"),
    ({"loss_weights": [1.0, 0.0, 0.0]}, "loss_weights=[1.0, 0.0, 0.0]: expected four weights"),
    ({"loss_weights": [0, 0, 0, 0]}, "loss_weights=[0, 0, 0, 0]: expected four weights"),
    ({"loss_weights": [1, -1, 0, 0]}, "loss_weights=[1, -1, 0, 0]: expected four weights >= 0"),
    ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob=1.0: expected a number in [0, 1)"),
    ({"arc_margin": 2.0}, "arc_margin=2.0: expected a number in [0, 1.57"),
    ({"momentum": 1.5}, "momentum=1.5: expected a number in [0, 1]"),
    ({"key_dropout": "yes"}, "key_dropout='yes': expected True or False"),
    ({"seq_item_negatives": "all"}, "seq_item_negatives='all': expected one of queue, catalogue, batch"),
    ({"train_mode": "finetune", "seq_item_negatives": "catalogue"}, "re-encodes every item's text each step"),
    ({"item_whitening": True, "item_pooling": "attention"}, "item_whitening needs train_mode='frozen' and item_pooling='mean'"),
    ({"whitening_shrinkage": -1}, "whitening_shrinkage=-1: expected a number in (0, inf)"),
    ({"plm_path": "/no/such/folder"}, "plm_path='/no/such/folder': no such folder"),
    ({"resume": "maybe"}, "resume='maybe': expected True or False"),
]


@pytest.mark.parametrize("overrides, message", BAD_SETTINGS, ids=[next(iter(o)) for o, _ in BAD_SETTINGS])
def test_bad_setting_is_one_line_naming_it(quick_settings, overrides, message):
    with pytest.raises(RunError) as raised:
        build_config("ADRec", "Tiny", config_dict={**quick_settings, **overrides})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_good_settings_pass(quick_settings):
    build_config("ADRec", "Tiny", config_dict={**quick_settings, "loss_weights": [0.3, 0.3, 0.2, 0.2]})


def test_yaml_syntax_error_names_file_and_line(quick_settings, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nloss_weights: [1, 0\n")
    with pytest.raises(RunError, match=r"bad.yaml line 3, column 1: not valid yaml"):
        build_config("ADRec", "Tiny", config_file_list=[str(bad)], config_dict=quick_settings)


@pytest.mark.parametrize("flag, message", [
    ("--hidden_size=130", "error: hidden_size 130 is not divisible by n_heads=4"),
    ("--epochs=3 --epochs=4", "error: --epochs is given twice, with '3' and '4'"),
    ("--epoch=3", "error: unknown setting --epoch (did you mean --epochs?): not a setting of RecBole, of ADRec or of "
                   "this project's yaml files"),
])
def test_cli_stops_in_one_line_before_loading_anything(tiny_data_root, tmp_path, flag, message):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole.py"), "--model=ADRec", "--dataset=Tiny",
         f"--data_path={tiny_data_root}", f"--checkpoint_dir={tmp_path / 'saved'}",
         f"--plm_cache_dir={tmp_path / 'cache'}", *flag.split()],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [message]
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no checkpoint, cache or log folder
