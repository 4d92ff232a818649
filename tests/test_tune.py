"""Hyperparameter search (``python -m adrec_recbole.tune``): the search-space file, the hyperopt
``exhaustive`` fix, and real searches with Ray Tune and with RecBole's HyperTuning on a tiny
subset of the real Scientific data (parallel trials, a failing trial, per-epoch reports for ASHA,
an interrupted search that resumes, an existing Ray cluster, reproducing best_config.yaml)."""
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adrec_recbole import tune
from adrec_recbole.quick_start import RunError, build_config
from conftest import SHARED_DATASETS

ROOT = Path(__file__).resolve().parents[1]
HYPER_TEST = ROOT / "adrec_recbole" / "properties" / "hyper.test"
TINY_USERS = 300  # users 0..299 of Scientific: ~1,700 training rows, ~1,650 items
RAY_TIMEOUT = 240

# Choices that make two trials fail (hidden_size 32 is not divisible by 3 heads).
FAILING_GRID = "learning_rate choice [0.001,0.003]\nn_heads choice [2,3]\n"
CONTINUOUS = "learning_rate loguniform -8,-5\narc_margin uniform 0.05,0.2\nloss_weights choice [[0.3,0.3,0.2,0.2],[0.5,0.2,0.15,0.15]]\n"


# ---- the search space file ---------------------------------------------------------------
def write(path, text):
    Path(path).write_text(text)
    return str(path)


def test_hyper_test_covers_adrec_settings_and_reads_the_same_in_recbole():
    from recbole.trainer import HyperTuning

    params = tune.read_space(HYPER_TEST)
    names = [param.name for param in params]
    for required in ("learning_rate", "queue_size", "arc_scale", "arc_margin", "loss_weights", "momentum",
                     "n_layers", "hidden_dropout_prob", "hidden_size", "plm_layer", "train_batch_size"):
        assert required in names
    known = build_config("ADRec", "Scientific").final_config_dict
    assert all(name in known for name in names)
    learning_rate = next(param for param in params if param.name == "learning_rate")
    low, high = (math.exp(bound) for bound in learning_rate.args)  # natural-log exponents
    assert low == pytest.approx(1e-4, rel=1e-3) and high == pytest.approx(5e-3, rel=1e-3)
    assert low < known["learning_rate"] < high
    assert sorted(HyperTuning._build_space_from_file(str(HYPER_TEST))) == sorted(names)


def test_hyper_test_contains_the_current_defaults():
    """The search starts from ADRec's defaults (properties/model/ADRec.yaml): each lies in the space."""
    defaults = build_config("ADRec", "Scientific").final_config_dict
    for param in tune.read_space(HYPER_TEST):
        value = defaults[param.name]
        if param.kind == "choice":
            assert value in param.args, f"{param.name}: default {value} is not among {param.args}"
        else:
            low, high = param.args[:2]
            if param.kind == "loguniform":
                low, high = math.exp(low), math.exp(high)
            assert low <= value <= high, f"{param.name}: default {value} is outside {low}..{high}"


@pytest.mark.parametrize("line, message", [
    ("learning_rate  loguniform -8,0", "single spaces"),
    ("learning_rate log -8,0", "unknown type"),
    ("n_layers choice [1,2", "Python list"),
    ("arc_margin uniform 0.3", "lo,hi"),
    ("arc_margin uniform 0.3,0.1", "out of order"),
    ("# a comment line", "unknown type"),
])
def test_space_file_errors_name_the_line(tmp_path, line, message):
    path = write(tmp_path / "space.test", f"hidden_size choice [32]\n{line}\n")
    with pytest.raises(RunError, match=message) as error:
        tune.read_space(path)
    assert "line 2" in str(error.value)


def test_repeated_parameter_is_an_error(tmp_path):
    with pytest.raises(RunError, match="already defined on line 1"):
        tune.read_space(write(tmp_path / "s.test", "n_layers choice [1]\nn_layers choice [2]\n"))


def test_ray_space_converts_recbole_semantics(tmp_path):
    from ray import tune as ray_tune

    params = tune.read_space(write(tmp_path / "s.test", "learning_rate loguniform -8,0\narc_margin uniform 0.0,0.3\n"
                                   "arc_scale quniform 10,30,5\nloss_weights choice [[1,0,0,0],[0.3,0.3,0.2,0.2]]\n"))
    space = tune.ray_space(params)
    assert isinstance(space["learning_rate"], ray_tune.search.sample.Float)
    assert space["learning_rate"].lower == pytest.approx(math.exp(-8)) and space["learning_rate"].upper == pytest.approx(1.0)
    samples = space["learning_rate"].sample(size=500)
    assert min(samples) >= math.exp(-8) and max(samples) <= 1.0
    assert (space["arc_margin"].lower, space["arc_margin"].upper) == (0.0, 0.3)
    assert space["loss_weights"].categories == [[1, 0, 0, 0], [0.3, 0.3, 0.2, 0.2]]
    assert tune.ray_space(params, grid=True)["loss_weights"] == {"grid_search": [[1, 0, 0, 0], [0.3, 0.3, 0.2, 0.2]]}
    assert tune.grid_size(params) == 2


def test_recbole_exhaustive_search_works_with_this_hyperopt():
    """RecBole issue #1868: without the fix in adrec_recbole.compat, hyperopt >= 0.2.7 raises
    "'RandomState' object has no attribute 'integers'" on the first exhaustive trial."""
    from recbole.trainer import HyperTuning

    seen = []

    def objective(config_dict, config_files):
        seen.append((config_dict["a"], config_dict["b"]))
        return {"model": "x", "best_valid_score": config_dict["a"] * 10 + config_dict["b"],
                "valid_score_bigger": True, "best_valid_result": {}, "test_result": {}}

    tuning = HyperTuning(objective, algo="exhaustive", params_dict={"choice": {"a": [1, 2], "b": [3, 4, 5]}})
    tuning.run()
    assert sorted(seen) == [(a, b) for a in (1, 2) for b in (3, 4, 5)]


def test_unknown_parameter_and_missing_space_file_fail_before_any_trial(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a setting of ADRec.*did you mean learning_rate"):
        tune.main(["--params_file", write(tmp_path / "s.test", "learning_rat choice [0.1]\n"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="search space file not found"):
        tune.main(["--params_file", str(tmp_path / "absent.test"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="make 4 combinations"):
        tune.main(["--params_file", write(tmp_path / "g.test", FAILING_GRID), "--algo", "exhaustive",
                   "--trials", "2", "--out", str(tmp_path)])


# ---- real searches on a tiny subset of Scientific ---------------------------------------------
@pytest.fixture(scope="module")
def scitiny(tmp_path_factory):
    """``SciTiny``: users 0..299 of ../shared/datasets/Scientific, plus settings for quick trials."""
    source = SHARED_DATASETS / "Scientific"
    if not source.is_dir():
        pytest.skip(f"real data not found at {source} (set ADREC_SHARED_DATASETS)")
    root = tmp_path_factory.mktemp("tune")
    folder = root / "data" / "SciTiny"
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        with open(source / f"Scientific.{split}.inter") as src, open(folder / f"SciTiny.{split}.inter", "w") as dst:
            dst.write(src.readline())
            dst.writelines(line for line in src if int(line.split("\t", 1)[0]) < TINY_USERS)
    for suffix in ("text", "item2index"):
        (folder / f"SciTiny.{suffix}").write_bytes((source / f"Scientific.{suffix}").read_bytes())
    settings = {
        "plm_cache_dir": str(root / "cache"), "plm_layer": 1, "text_length": 16,
        "hidden_size": 32, "n_layers": 1, "n_heads": 2, "inner_size": 64, "queue_size": 64,
        "train_batch_size": 64, "eval_batch_size": 512, "topk": [10], "log_wandb": False,
    }
    config_file = root / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    return {"root": root, "data_path": str(root / "data"), "config_file": str(config_file)}


def search_args(scitiny, space_file, out, *extra):
    return ["--params_file", str(space_file), "--dataset", "SciTiny", "--data_path", scitiny["data_path"],
            "--config_files", scitiny["config_file"], "--epochs", "2", "--cpus_per_trial", "1",
            "--gpus_per_trial", "0", "--out", str(out), *extra]


def child_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RAY_ADDRESS", None)
    return env


def run_cli(args, timeout=RAY_TIMEOUT):
    """``python -m adrec_recbole.tune ARGS`` in its own process group (killed whole on timeout,
    Ray's processes included)."""
    process = subprocess.Popen([sys.executable, "-m", "adrec_recbole.tune", *args], cwd=ROOT, env=child_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"search did not finish in {timeout}s:\n{output[-3000:]}")
    return process.returncode, output


def read_table(out):
    with open(Path(out) / "results.csv") as handle:
        return list(csv.DictReader(handle))


def ray_reports(trial_dir):
    """The results a Ray trial reported, in order (Ray's own result.json, one JSON per line)."""
    with open(Path(trial_dir) / "result.json") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def assert_sorted_by_valid(rows):
    scores = [float(row["valid_ndcg@10"]) for row in rows if row["valid_ndcg@10"]]
    assert scores == sorted(scores, reverse=True)
    assert all(row["valid_ndcg@10"] for row in rows[:len(scores)])  # scored trials first


@pytest.mark.real_data
def test_ray_search_runs_parallel_trials_apart_reports_every_epoch_and_survives_a_failure(scitiny):
    out = scitiny["root"] / "ray"
    space = write(scitiny["root"] / "grid.test", FAILING_GRID)
    code, output = run_cli(search_args(scitiny, space, out, "--tool", "ray", "--algo", "exhaustive", "--trials", "4"))
    assert code == 0, output[-3000:]
    rows = read_table(out)
    assert len(rows) == 4
    assert_sorted_by_valid(rows)
    failed = [row for row in rows if row["status"] == "error"]
    assert sorted(row["n_heads"] for row in failed) == ["3", "3"]
    assert all("hidden_size 32 is not divisible by n_heads=3" in row["error"] for row in failed)
    finished = [row for row in rows if row["status"] != "error"]
    assert len(finished) == 2 and {row["status"] for row in finished} <= {"completed", "stopped"}
    assert finished[0]["status"] == "completed"  # the best trial ran every epoch

    checkpoints = []
    for row in finished:
        trial_dir = Path(row["trial_dir"])
        own = sorted((trial_dir / "checkpoints").glob("*/best.pth"))  # in the trial's run folder
        assert own, f"no checkpoint in {trial_dir}"
        checkpoints += [str(path) for path in own]
        reports = ray_reports(trial_dir)
        assert [r["training_iteration"] for r in reports] == list(range(1, len(reports) + 1))
        assert [r["epoch"] for r in reports] == [r["training_iteration"] for r in reports]
        assert int(row["epochs_run"]) == reports[-1]["training_iteration"]
        if row["status"] == "completed":
            result = json.loads((trial_dir / "run_result.json").read_text())
            assert result["epochs_run"] == reports[-1]["training_iteration"] == 2
            assert Path(result["checkpoint"]).parent.parent == trial_dir / "checkpoints"
            assert Path(row["result_file"]) == trial_dir / "run_result.json"
            assert row["test_ndcg@10"] and row["stopped_early"] == "no"
        else:  # ASHA stopped it after its first epoch: no test evaluation
            assert row["stopped_early"] == "ASHA after epoch 1" and not row["test_ndcg@10"] and not row["result_file"]
    assert len(set(checkpoints)) == len(checkpoints) == len({str(Path(c).parent) for c in checkpoints})

    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["seed"] == 2020 and best["epochs"] == 2 and best["data_path"] == scitiny["data_path"]
    assert best["n_heads"] == 2 and best["learning_rate"] == float(finished[0]["learning_rate"])
    assert best["hidden_size"] == 32  # from the search's config file
    assert "checkpoint_dir" not in best and "result_file" not in best
    md = (out / "results.md").read_text()
    assert md.count("\n| ") == 5 and "hidden_size 32 is not divisible by n_heads=3" in md

    # The documented reproduction command gives the same validation score.
    saved = scitiny["root"] / "reproduce"
    reproduce = subprocess.run(
        [sys.executable, "run_recbole.py", "--model=ADRec", "--dataset=SciTiny",
         f"--config_files={out / 'best_config.yaml'}", f"--checkpoint_dir={saved}", "--state=WARNING"],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=180,
    )
    assert reproduce.returncode == 0, reproduce.stderr[-2000:]
    result = json.loads(next(saved.glob("*/result.json")).read_text())  # in the run's folder
    assert result["best_valid_score"] == pytest.approx(float(finished[0]["valid_ndcg@10"]), abs=1e-9)


@pytest.mark.real_data
def test_interrupted_ray_search_resumes_where_it_stopped(scitiny):
    out = scitiny["root"] / "resume"
    space = write(scitiny["root"] / "continuous.test", CONTINUOUS)
    args = search_args(scitiny, space, out, "--tool", "ray", "--trials", "2", "--max_concurrent", "1",
                       "--scheduler", "fifo", "--seed", "7", "--epochs", "3")
    process = subprocess.Popen([sys.executable, "-m", "adrec_recbole.tune", *args], cwd=ROOT, env=child_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Interrupt once the second trial has begun (one trial at a time: the first has ended).
        deadline = time.time() + RAY_TIMEOUT
        while process.poll() is None and time.time() < deadline and not (
                list(out.glob("ray-*/trial_*/run_result.json")) and len(list(out.glob("ray-*/trial_*/trial.log"))) == 2):
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a user would
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    first = read_table(out)
    assert "interrupted" in output and len(first) == 2, output[-3000:]
    done = [row for row in first if row["status"] == "completed"]
    assert len(done) == 1 and [row["status"] for row in first if row not in done] == ["unfinished"]
    done_result = Path(done[0]["trial_dir"]) / "run_result.json"
    written = done_result.stat().st_mtime_ns

    code, output = run_cli(args)
    assert code == 0 and "resuming the search" in output, output[-3000:]
    second = read_table(out)
    assert sorted(row["trial"] for row in second) == sorted(row["trial"] for row in first)
    assert [row["status"] for row in second] == ["completed", "completed"]
    assert done_result.stat().st_mtime_ns == written  # the finished trial did not run again
    assert (out / "best_config.yaml").is_file()

    changed = write(scitiny["root"] / "changed.test", CONTINUOUS.replace("0.05,0.2", "0.0,0.3"))
    code, output = run_cli([changed if arg == space else arg for arg in args], timeout=120)
    assert code != 0 and "different space" in output


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(1)
    return False


@pytest.mark.real_data
def test_ray_search_on_an_existing_cluster(scitiny):
    """A head node of our own on 127.0.0.1, stopped by ending its process group: ``ray stop``
    would also kill every other Ray cluster on the machine (a user's running search)."""
    port = free_port()
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    head = subprocess.Popen([*ray, "start", "--head", "--block", "--port", str(port), "--node-ip-address",
                             "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
                            cwd=scitiny["root"], env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for_port(port, 120), "the Ray head node did not start"
        out = scitiny["root"] / "cluster"
        space = write(scitiny["root"] / "cluster.test", CONTINUOUS)
        code, output = run_cli(search_args(scitiny, space, out, "--tool", "ray", "--trials", "2",
                                           "--address", f"127.0.0.1:{port}"))
        assert code == 0, output[-3000:]
        assert "Connecting to existing Ray cluster" in output
        rows = read_table(out)
        assert len(rows) == 2 and rows[0]["status"] == "completed"
        assert_sorted_by_valid(rows)
        assert math.exp(-8) <= float(rows[0]["learning_rate"]) <= math.exp(-5)
        assert (out / "best_config.yaml").is_file()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        current = Path("/tmp/ray/ray_current_cluster")  # `ray start` left our address there
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


@pytest.fixture
def restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.real_data
@pytest.mark.parametrize("algo", ["exhaustive", "random", "bayes"])
def test_hyperopt_search_through_recbole_hypertuning(scitiny, algo, capsys, restore_threads):
    out = scitiny["root"] / f"hyperopt-{algo}"
    if algo == "exhaustive":  # two of the four combinations fail; the search goes on
        space, trials = write(scitiny["root"] / "grid.test", FAILING_GRID), "4"
    else:
        space, trials = write(scitiny["root"] / "continuous.test", CONTINUOUS), "2"
    code = tune.main(search_args(scitiny, space, out, "--tool", "hyperopt", "--algo", algo, "--trials", trials))
    printed = capsys.readouterr().out
    assert code == 0
    rows = read_table(out)
    assert len(rows) == int(trials)
    assert_sorted_by_valid(rows)
    assert len([line for line in printed.splitlines() if line.startswith(f"[") and f"/{trials}] trial_" in line]) == int(trials)
    if algo == "exhaustive":
        assert sorted((row["learning_rate"], row["n_heads"]) for row in rows) == [
            (lr, heads) for lr in ("0.001", "0.003") for heads in ("2", "3")]
        assert [row["status"] for row in rows] == ["completed", "completed", "error", "error"]
        assert all("hidden_size 32 is not divisible by n_heads=3" in row["error"] for row in rows[2:])
    else:
        assert [row["status"] for row in rows] == ["completed", "completed"]
    checkpoints = {str(next((Path(row["trial_dir"]) / "checkpoints").glob("*/best.pth")).parent)
                   for row in rows if row["status"] == "completed"}
    assert len(checkpoints) == len([row for row in rows if row["status"] == "completed"])
    for row in rows:
        if row["status"] == "completed":
            result = json.loads((Path(row["trial_dir"]) / "run_result.json").read_text())
            assert float(row["valid_ndcg@10"]) == result["best_valid_score"]
            log = (Path(row["trial_dir"]) / "trial.log").read_text()
            assert "epoch 1 training" in log and "\x1b[" not in log  # each trial's own log, plain text
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["seed"] == 2020 and all(name in best for name in ("learning_rate",))
