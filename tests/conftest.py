"""Shared fixtures: a tiny dataset in the canonical layout, run settings for quick runs, and
the location of the real data (../shared/datasets, or $ADREC_SHARED_DATASETS)."""
import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("ADREC_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))

FAMILIES = {
    "guitar": ["electric guitar strings", "guitar capo clamp", "guitar tuner clip", "guitar picks pack"],
    "paint": ["acrylic paint set", "watercolor brush set", "canvas panels", "palette knife"],
    "lab": ["nitrile gloves box", "glass beaker 250 ml", "digital lab scale", "pipette tips rack"],
}


def write_canonical_dataset(root, name, sequences, titles):
    """Leave-one-out files of the canonical layout (UniSRec format) plus ``{name}.item``."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    rows = {"train": [], "valid": [], "test": []}
    for user, sequence in enumerate(sequences):
        for end in range(len(sequence) - 3, 0, -1):  # longest prefix first, as UniSRec's files
            rows["train"].append((user, sequence[:end][-50:], sequence[end]))
        rows["valid"].append((user, sequence[:-2][-50:], sequence[-2]))
        rows["test"].append((user, sequence[:-1][-50:], sequence[-1]))
    for split, split_rows in rows.items():
        with open(folder / f"{name}.{split}.inter", "w") as handle:
            handle.write(header)
            for user, history, target in split_rows:
                handle.write(f"{user}\t{' '.join(map(str, history))}\t{target}\n")
    with open(folder / f"{name}.item", "w") as handle:
        handle.write("item_id:token\ttitle:token_seq\tbrand:token_seq\tcategories:token_seq\n")
        for item, title in enumerate(titles):
            handle.write(f"{item}\t{title}\t\t\n")
    return folder


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """60 users whose histories walk through one item family each: text predicts the next item."""
    rng = random.Random(0)
    titles = [title for family in FAMILIES.values() for title in family]
    sequences = []
    for user in range(60):
        family = user % len(FAMILIES)
        items = [family * 4 + k for k in range(4)]
        start = rng.randrange(4)
        length = rng.randint(5, 9)
        sequences.append([items[(start + step) % 4] for step in range(length)])
    root = tmp_path_factory.mktemp("data")
    write_canonical_dataset(root, "Tiny", sequences, titles)
    return root


@pytest.fixture
def quick_settings(tiny_data_root, tmp_path):
    """Settings for a fast, isolated run on the tiny dataset (outputs under tmp_path)."""
    return {
        "data_path": str(tiny_data_root),
        "checkpoint_dir": str(tmp_path / "saved"),
        "plm_cache_dir": str(tmp_path / "cache"),
        "result_file": str(tmp_path / "result.json"),
        "log_wandb": False,
        "state": "ERROR",
        "epochs": 2,
        "train_batch_size": 32,
        "hidden_size": 32,
        "n_layers": 1,
        "n_heads": 2,
        "inner_size": 64,
        "queue_size": 50,
        "topk": [10],
    }


def shared_dataset_or_skip(name):
    folder = SHARED_DATASETS / name
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder} (set ADREC_SHARED_DATASETS)")
    return SHARED_DATASETS


COLD_ITEM_TITLE = "glass microscope slides"
TEXT_ONLY_TITLES = ["guitar strap leather", "lab safety goggles"]


@pytest.fixture(scope="session")
def cold_data_root(tmp_path_factory):
    """Tiny's users, plus: item 12 (a lab item) is the last item of four lab users only, so their test
    rows target an item never in training (4 cold rows, 1 item); items 13-14 have text and no interaction."""
    rng = random.Random(0)
    titles = [title for family in FAMILIES.values() for title in family] + [COLD_ITEM_TITLE] + TEXT_ONLY_TITLES
    sequences = []
    for user in range(60):
        family = user % len(FAMILIES)
        items = [family * 4 + k for k in range(4)]
        start = rng.randrange(4)
        sequences.append([items[(start + step) % 4] for step in range(rng.randint(5, 9))])
    for user in (2, 5, 8, 11):
        sequences[user].append(12)
    root = tmp_path_factory.mktemp("cold")
    write_canonical_dataset(root, "Cold", sequences, titles)
    return root


@pytest.fixture(scope="session")
def trained_checkpoints(cold_data_root, tmp_path_factory):
    """``{model: run result}`` of ADRec and SASRec trained 2 epochs on the cold dataset (best.pth kept)."""
    from adrec_recbole.quick_start import run

    folder = tmp_path_factory.mktemp("trained")
    settings = {
        "data_path": str(cold_data_root), "checkpoint_dir": str(folder / "saved"),
        "plm_cache_dir": str(folder / "cache"), "log_wandb": False, "state": "ERROR", "epochs": 2,
        "train_batch_size": 32, "hidden_size": 32, "n_layers": 1, "n_heads": 2, "inner_size": 64, "topk": [10],
    }
    return {model: run(model, "Cold", config_dict={**settings, "result_file": str(folder / f"{model}.json")})
            for model in ("ADRec", "SASRec")}


def one_line_error(command_main, args, tmp_path, monkeypatch, capsys):
    """Run an after-training command's ``main`` in an empty folder; its one stderr line (exit code 2,
    nothing written)."""
    import os

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as stop:
        command_main(list(args))
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert os.listdir(work) == []
    return lines[0]
