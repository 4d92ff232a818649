"""Paths that do not depend on the working directory (adrec_recbole/paths.py): the package's yaml
files found from any folder, a user's own file first, and one PLM cache per user, so that a run
started from another folder gives the same result without encoding the item texts again."""
import json
import os
import subprocess
import sys

import pytest

from adrec_recbole.paths import PROPERTIES_DIR, default_cache_dir, resolve_cache_dir, resolve_user_file
from adrec_recbole.quick_start import RunError, build_config
from conftest import ROOT


def test_package_files_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paper = os.path.join(PROPERTIES_DIR, "ADRec-paper.yaml")
    assert resolve_user_file("properties/ADRec-paper.yaml") == paper
    assert resolve_user_file("ADRec-paper.yaml") == paper
    assert resolve_user_file("hyper.test") == os.path.join(PROPERTIES_DIR, "hyper.test")
    assert resolve_user_file("properties/nothing.yaml") is None
    (tmp_path / "properties").mkdir()
    (tmp_path / "properties" / "ADRec-paper.yaml").write_text("n_layers: 1\n")
    assert resolve_user_file("properties/ADRec-paper.yaml") == "properties/ADRec-paper.yaml"  # the user's own wins


def test_config_files_resolve_in_the_run_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = ["properties/ADRec-paper.yaml", "ADRec-paper-frozen-minilm.yaml"]  # both spellings
    config = build_config("ADRec", "Scientific", files, {"data_path": str(tmp_path)})
    assert config["n_layers"] == 3 and config["inner_size"] == 1024  # the authors' values, not the defaults (2, 256)
    assert config["train_mode"] == "frozen" and config["seed"] == 22
    with pytest.raises(RunError, match=r"config file not found: nope.yaml \(looked in .* and in the package's"):
        build_config("ADRec", "Scientific", ["nope.yaml"])


def test_cache_folder_is_per_user_not_per_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("ADREC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "adrec_recbole")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "adrec_recbole")
    monkeypatch.setenv("ADREC_CACHE_DIR", "~/mine")
    assert resolve_cache_dir(None) == str(tmp_path / "home" / "mine")
    assert resolve_cache_dir("elsewhere/") == "elsewhere/"  # a folder the user names is theirs


def test_run_from_another_folder_reuses_the_cache_and_gives_the_same_result(tiny_data_root, tmp_path):
    """The same command from two working directories, plm_cache_dir left at its default: the item
    texts are encoded by the first run only, and both runs end with the same metrics."""
    env = dict(os.environ, ADREC_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    results = []
    for folder in ("first", "second"):
        cwd = tmp_path / folder
        cwd.mkdir()
        completed = subprocess.run(
            [sys.executable, str(ROOT / "run_recbole.py"), "--model=ADRec", "--dataset=Tiny",
             f"--data_path={tiny_data_root}", "--epochs=1", "--hidden_size=32", "--n_layers=1", "--inner_size=64",
             "--topk=[10]", "--config_files=properties/ADRec-paper-frozen-minilm.yaml"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        run_folder = next((cwd / "saved").glob("*/"))
        results.append(((run_folder / "run.log").read_text(), json.loads((run_folder / "result.json").read_text())))
    assert "encoding 13 item texts" in results[0][0]  # 12 items and the padding item
    assert "encoding" not in results[1][0]
    assert sorted(os.listdir(tmp_path / "cache"))[-1].startswith("vectors-")
    assert results[0][1]["test_result"] == results[1][1]["test_result"]
    assert results[0][1]["best_valid_result"] == results[1][1]["best_valid_result"]
