"""Command-line flags (adrec_recbole/command_line.py) and run_recbole.py's use of them: both flag
forms reach RecBole, an argument that cannot be used stops with one line, a typo'd setting name is
reported instead of dropped, and --help answers at once."""
import json
import subprocess
import sys
import time

import pytest

from adrec_recbole.command_line import (
    FlagError,
    OneLineParser,
    add_common_settings,
    parse_command_line,
    parse_settings,
)
from conftest import ROOT


def run_cli(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "run_recbole.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_both_flag_forms_give_the_same_settings():
    spaced = parse_settings(["--data_path", "../x", "--learning_rate", "-1e-3", "--topk", "[10, 20]", "--resume"])
    joined = parse_settings(["--data_path=../x", "--learning_rate=-1e-3", "--topk=[10, 20]", "--resume=True"])
    assert spaced == joined == {"data_path": "../x", "learning_rate": "-1e-3", "topk": "[10, 20]", "resume": "True"}


@pytest.mark.parametrize("arguments, message", [
    (["stray"], "unexpected argument 'stray'"),
    (["--epochs"], "--epochs needs a value"),
    (["--epochs", "--seed=1"], "--epochs needs a value"),
    (["--data-path", "x"], r"--data-path: not a setting name \(--data_path\?\)"),
    (["--epochs=1", "--epochs", "2"], "--epochs is given twice, with '1' and '2'"),
    (["-x", "1"], "unexpected argument '-x'"),
])
def test_arguments_that_cannot_be_used_are_errors(arguments, message):
    with pytest.raises(FlagError, match=message):
        parse_settings(arguments)


def test_common_settings_and_other_settings_come_back_together():
    parser = OneLineParser(prog="x")
    parser.add_argument("--model", default="ADRec")
    add_common_settings(parser)
    options, settings = parse_command_line(parser, ["--epochs", "3", "--model", "SASRec", "--n_layers=2",
                                                    "--data_path=d", "--show_progress"])
    assert options.model == "SASRec" and not any(key.startswith("setting:") for key in vars(options))
    assert settings == {"epochs": "3", "data_path": "d", "show_progress": "True", "n_layers": "2"}
    with pytest.raises(FlagError, match="given twice"):
        parse_command_line(parser, ["--epochs", "3", "--epochs=4"])
    with pytest.raises(SystemExit):  # argparse's own errors go through OneLineParser.error
        parse_command_line(parser, ["--model"])


def test_help_is_fast_and_names_the_common_settings(tmp_path):
    start = time.time()
    completed = run_cli("--help", cwd=tmp_path)
    seconds = time.time() - start
    assert completed.returncode == 0
    for flag in ("--data_path", "--epochs", "--gpu_id", "--config_files", "--resume", "--nproc", "--ip", "--port",
                 "--world_size", "--group_offset"):
        assert flag in completed.stdout
    assert seconds < 3, f"--help took {seconds:.1f}s (torch must not be imported for it)"


@pytest.mark.parametrize("arguments, line", [
    (["stray"], "error: unexpected argument 'stray': settings are written --name=value or --name value"),
    (["--epochs"], "error: argument --epochs: expected one argument"),
    (["--nproc", "two"], "error: argument --nproc: invalid int value: 'two'"),
])
def test_unusable_flags_stop_with_one_line_before_any_work(tmp_path, arguments, line):
    completed = run_cli(*arguments, cwd=tmp_path)
    assert completed.returncode == 2 and completed.stderr.strip().splitlines() == [line]
    assert list(tmp_path.iterdir()) == []


def test_typo_in_a_setting_name_is_reported_not_dropped(tiny_data_root, tmp_path):
    completed = run_cli("--model=ADRec", "--dataset=Tiny", "--data_path", str(tiny_data_root), "--epoch", "1",
                        cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: unknown setting --epoch (did you mean --epochs?): not a setting of RecBole, of ADRec "
        "or of this project's yaml files"]
    assert not (tmp_path / "saved").exists()


def test_space_form_data_path_is_used(tiny_data_root, tmp_path):
    """`--data_path DIR --epochs 1` (RecBole alone dropped the space form and fell back to dataset/)."""
    result_file = tmp_path / "out.json"
    completed = run_cli(
        "--model", "ADRec", "--dataset", "Tiny", "--data_path", str(tiny_data_root), "--epochs", "1",
        "--checkpoint_dir", str(tmp_path / "saved"), "--plm_cache_dir", str(tmp_path / "cache"),
        "--result_file", str(result_file), "--hidden_size", "32", "--n_layers", "1", "--inner_size", "64",
        "--topk", "[10]", cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    output = completed.stdout + completed.stderr
    assert "will not be used" not in output and "not sharded" not in output  # no RecBole or transformers noise
    result = json.loads(result_file.read_text())
    assert result["dataset"] == "Tiny" and result["epochs_run"] == 1
    log = (tmp_path / "saved" / result["run_folder"].split("/")[-1] / "run.log").read_text()
    assert f"data_path = {tiny_data_root}/Tiny\n" in log  # the run read DIR
    assert not (tmp_path / "dataset").exists()  # the default data root was never touched
    assert set(result["test_result"]) == {"recall@10", "ndcg@10", "mrr@10"}  # --topk [10] arrived as a list
