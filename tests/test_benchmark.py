"""The benchmark (python -m adrec_recbole.benchmark) on tiny data: one process per run, two at a time,
committed records (small, portable, not git-ignored), code versions (redone, never averaged, unless
--reuse_any_code), a labelled variant as its own row, the paired difference against SASRec, CPU-hours,
--report_only from the records alone, Ctrl-C and resume, a failing model, mean/std from the records,
CSV/Markdown/PNG, labelled anchors; and GRU4Rec, BERT4Rec and FDSA (with the title feature) for one epoch
on tiny data in both layouts; and the training-speed step section (the old training step against the
current one) on tiny data."""
import csv
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, write_canonical_dataset

from adrec_recbole.arithmetic import AVX2_ENVIRONMENT
from adrec_recbole.benchmark import anchors, carry, records as records_module, report
from adrec_recbole.benchmark.compare import BenchmarkError, PlannedRun, Settings, parse_seeds, parse_variants, plan
from adrec_recbole.benchmark.equivalence import EQUIVALENCE_FILE
from adrec_recbole.benchmark.records import RECORD_FORMAT, code_paths, is_record_file

QUOTED_TITLE = '"Rock" guitar strings set'  # RecBole's default pandas reading breaks on this line
TITLES = [
    QUOTED_TITLE, "guitar capo clamp", "guitar tuner clip", "guitar picks pack",
    "acrylic paint set", "watercolor brush set", "canvas panels", "palette knife",
    "nitrile gloves box", "glass beaker 250 ml", "digital lab scale", "NA",
]
SMALL_CONFIG = """\
topk: [5, 10]
valid_metric: NDCG@10
train_batch_size: 32
eval_batch_size: 64
hidden_size: 32
n_layers: 1
n_heads: 2
inner_size: 64
embedding_size: 32
queue_size: 50
plm_cache_dir: {cache}
"""


def sequences():
    rows = []
    for user in range(45):
        family = user % 3
        items = [family * 4 + k for k in range(4)]
        rows.append([items[(user + step) % 4] for step in range(5 + user % 4)])
    return rows


def run_cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "adrec_recbole.benchmark", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_canonical_dataset(root / "data", "Bench", sequences(), TITLES)
    config = root / "small.yaml"
    config.write_text(SMALL_CONFIG.format(cache=root / "cache"))
    return root, config


VARIANT_CONFIG = "hidden_dropout_prob: 0.0\nn_layers: 1\n"
ROWS = ("ADRec", "SASRec", "Pop", "NoSuchModel", "ADRec-small")
INFORMATIONAL = ("command", "data", "config_files", "variant_files")  # may hold the paths the user typed


@pytest.fixture(scope="module")
def first_and_second(workspace):
    """ADRec, SASRec, Pop, a model that does not exist and a labelled ADRec variant, 2 seeds, 1 epoch,
    two runs at a time; then the same command again (one at a time)."""
    root, config = workspace
    variant = root / "variant.yaml"
    variant.write_text(VARIANT_CONFIG)
    args = ["--dataset", "Bench", "--data_path", str(root / "data"), "--models", "ADRec,SASRec,Pop,NoSuchModel",
            "--variant", f"ADRec-small=ADRec:{variant}", "--seeds", "2", "--epochs", "1",
            "--out", str(root / "results"), "--config_files", str(config)]
    first = run_cli(args + ["--jobs", "2"], cwd=root)
    folder = root / "results" / "Bench"
    mtimes = {path.name: path.stat().st_mtime_ns for path in (folder / "runs").glob("*.json")}
    second = run_cli(args, cwd=root)
    return first, second, folder, mtimes, args


def record_paths(folder):
    return [path for path in sorted((folder / "runs").glob("*.json")) if is_record_file(path)]


def records(folder):
    data = {}
    for path in record_paths(folder):
        record = json.loads(path.read_text())
        data[(record["label"], record["seed"])] = record
    return data


def test_every_run_is_recorded_in_its_own_process_and_a_failure_does_not_stop_the_others(first_and_second):
    first, _, folder, _, _ = first_and_second
    assert first.returncode == 1, first.stdout + first.stderr  # 1: some run failed
    assert "[1/10 | 0:00:00] ADRec seed 2020: running" in first.stdout
    assert "[10/10 |" in first.stdout and "NoSuchModel seed 2021: FAILED" in first.stdout
    found = records(folder)
    assert set(found) == {(label, seed) for label in ROWS for seed in (2020, 2021)}
    for (label, seed), record in found.items():
        assert record["format"] == RECORD_FORMAT and record["code_version"] and record["threads"] == 1
        if label == "NoSuchModel":
            assert record["status"] == "failed" and "unknown model 'NoSuchModel'" in record["error"]
            assert len(record["traceback"].splitlines()) <= 6
            continue
        assert record["status"] == "ok", record.get("error")
        result = record["result"]
        assert result["seed"] == seed and result["epochs_run"] == 1
        assert set(result["test_result"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10)}
        for key in ("best_epoch", "seconds_per_epoch", "test_eval_seconds", "parameters", "peak_rss_mb", "fit_seconds"):
            assert result[key] is not None
        assert result["peak_rss_mb"] > 50 and result["checkpoint_kept"] is False
        assert record["machine"]["pinned"] == AVX2_ENVIRONMENT  # --arithmetic avx2, the default
        if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):  # an x86 CPU: it computed as AVX2
            assert record["machine"]["cpu_capability"] == "AVX2"
    assert not (folder / "runs" / "checkpoints").exists() or not any((folder / "runs" / "checkpoints").iterdir())
    pids = [record["pid"] for record in found.values()]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids  # a fresh process per run


def test_records_are_small_portable_and_committed_while_the_rest_is_ignored(first_and_second, workspace):
    root, _ = workspace
    _, _, folder, _, _ = first_and_second
    for path in record_paths(folder):
        assert path.stat().st_size < 4096, path.name
        record = json.loads(path.read_text())
        portable = json.dumps({key: value for key, value in record.items() if key not in INFORMATIONAL})
        assert str(root) not in portable and str(ROOT) not in portable, path.name  # no machine-local path
        assert path.name == f"{record['label']}-seed{record['seed']}-{record['fingerprint']}-{record['code_version']}.json"
    # where these files would be in the repository: results/<Dataset>/runs/...
    names = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
    assert any(name.endswith(".spec.json") for name in names) and any(name.endswith(".log") for name in names)
    representative = ["runs/ADRec-seed2020-abc.json", "runs/checkpoints/a.pth", "runs/checkpoints/X/last.pth",
                      "runs/data/Bench/Bench.item", "runs/benchmark.lock", "runs/.tmp-1-x.json", "runs/x.result.json"]
    paths = [f"results/Bench/{name}" for name in names + representative]
    ignored = set(subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(paths),
                                 capture_output=True, text=True).stdout.split())
    for path in paths:
        parts = path.split("/")  # results, Bench, ...
        tracked = parts[2] != "runs" or (len(parts) == 4 and is_record_file(parts[3]))  # README.md, *.csv, records
        assert (path not in ignored) == tracked, path
    assert any(path.endswith(".json") and path not in ignored for path in paths)


def test_workers_compute_as_avx2_cpus_unless_told_otherwise_or_set_by_the_user():
    from adrec_recbole.benchmark.runner import worker_environment

    pinned = worker_environment(Settings(dataset="Bench", threads=3), {"PATH": "/bin"})
    assert {name: pinned[name] for name in AVX2_ENVIRONMENT} == AVX2_ENVIRONMENT and pinned["OMP_NUM_THREADS"] == "3"
    native = worker_environment(Settings(dataset="Bench", arithmetic="native"), {"PATH": "/bin"})
    assert not set(AVX2_ENVIRONMENT) & set(native)
    chosen = worker_environment(Settings(dataset="Bench"), {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    assert chosen["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and chosen["ATEN_CPU_CAPABILITY"] == "avx2"
    bad = run_cli(["--dataset", "Bench", "--arithmetic", "avx512"], cwd=ROOT)
    assert bad.returncode == 2 and "invalid choice: 'avx512'" in bad.stderr


def test_runs_on_a_gpu_count_gpu_hours_not_cpu_hours_and_name_their_device():
    from adrec_recbole.benchmark.tables import cpu_hours, device_of, gpu_hours

    def record(device, machine=None):
        return {"status": "ok", "threads": 2, "machine": machine or {},
                "result": {"fit_seconds": 3000.0, "test_eval_seconds": 600.0, "device": device}}

    on_cpu, on_gpu = record("cpu"), record("cuda", {"gpu": "NVIDIA H200"})
    assert (cpu_hours(on_cpu), gpu_hours(on_cpu), device_of(on_cpu)) == (2.0, 0.0, "cpu")
    assert (cpu_hours(on_gpu), gpu_hours(on_gpu), device_of(on_gpu)) == (0.0, 1.0, "cuda (NVIDIA H200)")
    assert device_of(record("cuda:1")) == "cuda" and gpu_hours({**on_gpu, "status": "failed"}) == 0.0
    assert device_of(record("cpu", {"cpu": "AMD EPYC", "cpu_capability": "AVX2"})) == "cpu (AVX2)"


def test_runs_csv_and_summary_are_computed_from_the_run_records(first_and_second):
    _, _, folder, _, _ = first_and_second
    found = records(folder)
    runs = read_csv(folder / "runs.csv")
    assert [(row["label"], int(row["seed"])) for row in runs] == [
        (label, seed) for label in ("ADRec", "ADRec-small", "SASRec", "Pop", "NoSuchModel") for seed in (2020, 2021)]
    summary = {row["label"]: row for row in read_csv(folder / "summary.csv")}
    assert list(summary) == ["ADRec", "ADRec-small", "SASRec", "Pop", "NoSuchModel"]
    for label in ("ADRec", "ADRec-small", "SASRec", "Pop"):
        assert (summary[label]["runs_ok"], summary[label]["runs_failed"]) == ("2", "0")
        assert summary[label]["code_version"] == found[(label, 2020)]["code_version"]
        for metric in ("recall@10", "ndcg@10", "mrr@10", "ndcg@5"):
            values = [found[(label, seed)]["result"]["test_result"][metric] for seed in (2020, 2021)]
            assert float(summary[label][f"{metric}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(summary[label][f"{metric}_std"]) == pytest.approx(statistics.stdev(values))
        epochs = [found[(label, seed)]["result"]["seconds_per_epoch"] for seed in (2020, 2021)]
        assert float(summary[label]["seconds_per_epoch_mean"]) == pytest.approx(statistics.fmean(epochs))
        cpu = sum((found[(label, seed)]["result"]["fit_seconds"] + found[(label, seed)]["result"]["test_eval_seconds"])
                  * found[(label, seed)]["threads"] for seed in (2020, 2021)) / 3600
        assert float(summary[label]["cpu_hours"]) == pytest.approx(cpu, abs=1e-4)
    assert (summary["NoSuchModel"]["runs_ok"], summary["NoSuchModel"]["runs_failed"]) == ("0", "2")
    assert summary["NoSuchModel"]["ndcg@10_mean"] == ""
    cost = {row["scope"]: row for row in read_csv(folder / "cost.csv")}
    total = sum(record["process_seconds"] for record in found.values()) / 3600
    assert float(cost["all"]["wall_hours"]) == pytest.approx(total, abs=1e-4) and cost["all"]["records"] == "10"


def test_a_variant_is_its_own_row_with_its_own_files_and_label(first_and_second):
    _, _, folder, _, _ = first_and_second
    found = records(folder)
    variant, plain = found[("ADRec-small", 2020)], found[("ADRec", 2020)]
    assert variant["model"] == "ADRec" and variant["variant_files"][0].endswith("variant.yaml")
    assert variant["fingerprint"] != plain["fingerprint"] and variant["settings_key"] != plain["settings_key"]
    assert variant["code_version"] == plain["code_version"] and variant["protocol"] == plain["protocol"]
    log = next((folder / "runs").glob("ADRec-small-seed2020-*.log")).read_text()
    assert "hidden_dropout_prob = 0.0" in log and "n_layers = 1" in log  # the variant's yaml was read
    text = (folder / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ADRec-small |"))
    values = [found[("ADRec-small", seed)]["result"]["test_result"]["ndcg@10"] for seed in (2020, 2021)]
    assert f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" in row
    key_line = next(line for line in text.splitlines() if line.startswith(f"- `{variant['settings_key']}`"))
    assert f"model yaml `properties/model/ADRec.yaml` of code `{variant['code_version']}`" in key_line
    assert "variant.yaml" in key_line  # what sets the variant apart from the plain row is named


def test_paired_difference_against_sasrec_matches_a_hand_computation(first_and_second):
    _, _, folder, _, _ = first_and_second
    found = records(folder)
    by_hand = {seed: found[("ADRec", seed)]["result"]["test_result"]["ndcg@10"]
               - found[("SASRec", seed)]["result"]["test_result"]["ndcg@10"] for seed in (2020, 2021)}
    mean = (by_hand[2020] + by_hand[2021]) / 2
    paired = {(row["label"], row["metric"]): row for row in read_csv(folder / "paired.csv")}
    row = paired[("ADRec", "ndcg@10")]
    assert row["seeds"] == "2020 2021" and row["SASRec_code_version"] == found[("SASRec", 2020)]["code_version"]
    assert float(row["mean_difference"]) == pytest.approx(mean, abs=1e-9)
    assert float(row["diff_seed2020"]) == pytest.approx(by_hand[2020], abs=1e-9)
    assert float(row["diff_seed2021"]) == pytest.approx(by_hand[2021], abs=1e-9)
    assert not any(label == "SASRec" for label, _ in paired) and not any(label == "NoSuchModel" for label, _ in paired)
    summary = {line["label"]: line for line in read_csv(folder / "summary.csv")}
    assert float(summary["ADRec"]["vs_SASRec_ndcg@10_mean"]) == pytest.approx(mean, abs=1e-9)
    text = (folder / "README.md").read_text()
    section = text.split("## Paired difference against SASRec")[1].split("\n## ")[0]
    line = next(line for line in section.splitlines() if line.startswith("| ADRec |"))
    header = next(line for line in section.splitlines() if line.startswith("| Row |")).split("|")
    cell = line.split("|")[[name.strip() for name in header].index("Δ NDCG@10")]
    shown = [float(value) for value in re.findall(r"[+-]\d\.\d{4}", cell)]
    assert shown == pytest.approx([mean, by_hand[2020], by_hand[2021]], abs=5.1e-5)  # 4 decimals shown


def test_markdown_table_cost_and_chart(first_and_second):
    _, _, folder, _, _ = first_and_second
    found = records(folder)
    text = (folder / "README.md").read_text()
    values = [found[("SASRec", seed)]["result"]["test_result"]["ndcg@10"] for seed in (2020, 2021)]
    expected = f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"
    sasrec_row = next(line for line in text.splitlines() if line.startswith("| SASRec |"))
    assert f"| `{found[('SASRec', 2020)]['code_version']}` |" in sasrec_row and "| 2020, 2021 |" in sasrec_row
    assert expected in sasrec_row
    assert "| NoSuchModel |" in text and "— (2 failed)" in text and "## Failed runs" in text
    assert "## Compute spent" in text and "CPU-hours" in text
    assert "`--epochs 1` (quick look)" in text
    assert "![metrics and cost](chart.png)" in text
    assert "No published numbers for Bench" in text
    png = (folder / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_second_invocation_skips_finished_runs_and_retries_failed_ones(first_and_second):
    _, second, folder, mtimes, _ = first_and_second
    assert second.stdout.count("finished before, skipped") == 8
    assert "0 run, 8 skipped, 2 failed" in second.stdout
    for path in record_paths(folder):
        if path.name.startswith("NoSuchModel"):
            continue
        assert path.stat().st_mtime_ns == mtimes[path.name], f"{path.name} was rewritten"


def test_two_jobs_run_at_once(first_and_second):
    first, _, folder, _, _ = first_and_second
    lines = first.stdout.splitlines()
    second_started = next(i for i, line in enumerate(lines) if line.startswith("[2/10 ") and line.endswith(")")
                          and ": running" in line)
    first_ended = min(i for i, line in enumerate(lines) if ": ok in " in line or ": FAILED in " in line)
    assert second_started < first_ended  # the second run started before any run ended
    assert "2 at a time with 1 thread(s) each" in first.stdout
    found = records(folder)
    assert found[("ADRec", 2020)]["status"] == found[("SASRec", 2020)]["status"] == "ok"


def test_report_only_rebuilds_the_same_tables_from_the_records_alone(first_and_second, tmp_path):
    _, _, folder, _, _ = first_and_second
    clone = tmp_path / "clone" / "Bench"
    (clone / "runs").mkdir(parents=True)
    for path in record_paths(folder):  # what a fresh clone has: the committed records, no data, no logs
        shutil.copy(path, clone / "runs" / path.name)
    done = run_cli(["--dataset", "Bench", "--out", str(tmp_path / "clone"), "--report_only"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("README.md", "runs.csv", "summary.csv", "paired.csv", "cost.csv", "anchors.csv"):
        assert (clone / name).read_text() == (folder / name).read_text(), name
    assert (clone / "chart.png").is_file()


def test_records_of_another_code_version_are_redone_and_never_averaged_unless_reused(first_and_second, tmp_path):
    _, _, folder, _, args = first_and_second
    copy = tmp_path / "results" / "Bench"
    (copy / "runs").mkdir(parents=True)
    for path in record_paths(folder):
        shutil.copy(path, copy / "runs" / path.name)
    args = [arg if arg != str(folder.parent) else str(copy.parent) for arg in args]
    args[args.index("--models") + 1] = "Pop"
    args = args[:args.index("--variant")] + args[args.index("--variant") + 2:]

    def age(seed, score):
        """Make Pop's record of ``seed`` one of an older code version, with a score of its own."""
        path = next((copy / "runs").glob(f"Pop-seed{seed}-*.json"))
        record = json.loads(path.read_text())
        record["code_version"] = "0123456789"
        record["result"]["test_result"]["ndcg@10"] = score
        path.unlink()
        (copy / "runs" / path.name.replace(f"-{record['fingerprint']}-{current}", f"-{record['fingerprint']}-0123456789")
         ).write_text(json.dumps(record))
        return record

    current = records(folder)[("Pop", 2020)]["code_version"]
    age(2020, 0.999)
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pop seed 2020: running" in done.stdout and "Pop seed 2021: finished before, skipped" in done.stdout
    lines = [line for line in read_csv(copy / "summary.csv") if line["label"] == "Pop"]
    assert [(line["code_version"], line["runs_ok"]) for line in lines] == [(current, "2"), ("0123456789", "1")]
    assert float(lines[1]["ndcg@10_mean"]) == 0.999 and float(lines[0]["ndcg@10_mean"]) < 0.99  # not averaged
    ours = [json.loads(path.read_text())["result"]["test_result"]["ndcg@10"]
            for path in (copy / "runs").glob(f"Pop-seed*-{current}.json")]
    assert float(lines[0]["ndcg@10_mean"]) == pytest.approx(statistics.fmean(ours))
    text = (copy / "README.md").read_text()
    assert "| Pop | `0123456789` |" in text and f"| Pop | `{current}` |" in text

    age(2021, 0.5)  # now seed 2021's only record is of the older code: --reuse_any_code keeps it
    done = run_cli(args + ["--reuse_any_code"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pop seed 2021: finished before with code 0123456789 (--reuse_any_code), skipped" in done.stdout
    assert "0 run, 2 skipped" in done.stdout


def interrupt_while_training(args, cwd, runs, how="ctrl-c to the process group"):
    """Start the benchmark as ``nohup ... &`` would, stop it once every run (2) is training its
    second epoch; its output and return code."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", "adrec_recbole.benchmark", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `nohup ... &`
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            logs = list(runs.glob("*.log")) if runs.is_dir() else []
            if len(logs) == 2 and all("epoch 1 training" in log.read_text() for log in logs):
                break
            time.sleep(0.2)
        if process.poll() is not None:  # say why: the benchmark's output and the runs' logs
            logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(runs.glob("*.log")))
            pytest.fail(f"the runs ended (exit code {process.returncode}) before they could be interrupted:\n"
                        f"{process.communicate()[0][-3000:]}{logs}")
        if how.startswith("ctrl-c"):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        else:
            process.send_signal(signal.SIGTERM)  # kill PID, a scheduler's time limit: the workers get nothing
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no worker left in the benchmark's process group
    return output, process.returncode


def assert_stopped_cleanly(output, returncode, runs):
    assert returncode == 130, output
    assert "interrupted after" in output and "run the same command again" in output
    assert not (runs / "benchmark.lock").exists() and not record_paths(runs.parent)
    assert len(list(runs.glob("checkpoints/*/*/last.pth"))) == 2  # resumable state


def interruptible_args(workspace, out):
    root, config = workspace
    return ["--dataset", "Bench", "--data_path", str(root / "data"), "--models", "SASRec", "--seeds", "2",
            "--epochs", "30", "--out", str(out), "--config_files", str(config), "--jobs", "2"]


def test_ctrl_c_stops_every_worker_and_the_same_command_resumes(workspace, tmp_path):
    args = interruptible_args(workspace, tmp_path / "results")
    runs = tmp_path / "results" / "Bench" / "runs"
    output, returncode = interrupt_while_training(args, tmp_path, runs)
    assert_stopped_cleanly(output, returncode, runs)
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(runs.parent)
    assert all(record["result"]["resumed_at_epoch"] >= 1 for record in found.values()), found


def test_sigterm_stops_the_benchmark_and_another_machine_resumes_the_runs_carried_to_it(workspace, tmp_path):
    args = interruptible_args(workspace, tmp_path / "results")
    folder = tmp_path / "results" / "Bench"
    output, returncode = interrupt_while_training(args, tmp_path, folder / "runs", how="SIGTERM to the benchmark alone")
    assert_stopped_cleanly(output, returncode, folder / "runs")
    packed = run_cli(["--dataset", "Bench", "--out", str(tmp_path / "results"), "--carry_checkpoints"], cwd=tmp_path)
    assert packed.returncode == 0 and packed.stdout.count("carried: SASRec-seed20") == 2, packed.stdout + packed.stderr
    next_epochs = sorted(torch.load(path, weights_only=True)["next_epoch"]
                         for path in folder.glob("carried/*/*/last.pth"))
    assert len(next_epochs) == 2 and all(epoch >= 1 for epoch in next_epochs)
    shutil.rmtree(folder / "runs")  # another machine: the records (none finished yet) and the carried/ folder copied to it
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("restored from its carried copy") == 2 and done.stdout.count("its carried checkpoint") == 2, done.stdout
    resumed = sorted(record["result"]["resumed_at_epoch"] for record in records(folder).values())
    assert resumed == next_epochs  # each went on from the epoch it was carried at, not from 0
    assert not any((folder / "carried").iterdir())  # both finished: their carried copies are gone


def test_anchors_are_labelled_with_their_preprocessing_and_kept_out_of_our_table(tmp_path):
    rows = anchors.anchors_for("Scientific")
    assert {row["source"] for row in rows} == {anchors.RECFORMER, anchors.UNISREC, anchors.VQREC}
    for row in rows:
        assert row["label"].startswith("published, ") and row["label"].endswith("— not our run")
    recformer_sasrec = next(row for row in rows if row["source"] == anchors.RECFORMER and row["model"] == "SASRec")
    assert (recformer_sasrec["ndcg@10"], recformer_sasrec["recall@10"], recformer_sasrec["mrr"]) == (.0797, .1305, .0696)
    assert "published, Recformer preprocessing — not our run" == recformer_sasrec["label"]
    vqrec = next(row for row in rows if row["source"] == anchors.VQREC)
    assert vqrec["label"] == "published, UniSRec's files — not our run" and vqrec["model"] == "VQ-Rec"
    assert (vqrec["recall@10"], vqrec["ndcg@10"], vqrec["recall@50"], vqrec["ndcg@50"]) == (.1211, .0643, .2369, .0897)
    assert anchors.anchors_for("games")[0]["model"] == "SASRec" and anchors.anchors_for("Tiny") == []

    paths = report.write_report(tmp_path / "Scientific", "Scientific")  # no records yet
    text = paths["markdown"].read_text()
    ours, published = text.split("## Published anchors — not our runs")
    assert "0.0797" not in ours and "0.2369" not in ours and "0 run records" in ours
    assert ("| published, Recformer preprocessing — not our run | Recformer (KDD 2023) | SASRec | 0.1305 | 0.0797 "
            "| — | — | 0.0696 |") in published
    assert "| published, UniSRec preprocessing (the one of ../shared/datasets/Scientific) — not our run |" in published
    assert "| published, UniSRec's files — not our run | VQ-Rec (WWW 2023) | VQ-Rec | 0.1211 | 0.0643 | 0.2369 | 0.0897 | — |" in published
    assert "IS UniSRec's preprocessing" in published
    assert len(read_csv(paths["anchors"])) == len(rows)


def test_seeds_variants_and_fingerprints(tmp_path):
    assert parse_seeds("3") == [2020, 2021, 2022] and parse_seeds("2020,2025") == [2020, 2025]
    with pytest.raises(BenchmarkError):
        parse_seeds("x")
    variants = parse_variants(["A-paper=ADRec:a.yaml,b.yaml", "B=SASRec:c.yaml; C=Pop:d.yaml e.yaml"])
    assert [(v.label, v.model, v.config_files) for v in variants.values()] == [
        ("A-paper", "ADRec", ["a.yaml", "b.yaml"]), ("B", "SASRec", ["c.yaml"]), ("C", "Pop", ["d.yaml", "e.yaml"])]
    for bad in ("ADRec:a.yaml", "X=ADRec", "ADRec=ADRec:a.yaml", "SASRec=ADRec:a.yaml", "a/b=ADRec:a.yaml",
                "X-seed1=ADRec:a.yaml"):
        with pytest.raises(BenchmarkError):
            parse_variants([bad])
    write_canonical_dataset(tmp_path / "data", "Bench", sequences(), TITLES)
    data = tmp_path / "data"
    base = Settings(dataset="Bench", models=["SASRec", "Pop"], seeds=[2020, 2021], out=str(tmp_path))
    runs = plan(base, data)
    assert [(run.label, run.seed) for run in runs] == [("SASRec", 2020), ("Pop", 2020), ("SASRec", 2021), ("Pop", 2021)]
    assert runs[0].settings_key == runs[2].settings_key != runs[1].settings_key  # seeds share a line
    assert len({run.protocol for run in runs}) == 1
    quick = plan(Settings(dataset="Bench", models=["SASRec", "Pop"], seeds=[2020, 2021], out=str(tmp_path), epochs=1), data)
    assert not {run.record_path for run in runs} & {run.record_path for run in quick}  # quick looks kept apart
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)  # the same data at another path (another machine): the same runs
    assert [run.record_path for run in plan(base, moved)] == [run.record_path for run in runs]
    with open(moved / "Bench" / "Bench.test.inter", "a") as handle:
        handle.write("0\t1 2\t3\n")
    assert plan(base, moved)[0].fingerprint != runs[0].fingerprint  # other data content: other runs
    extra = tmp_path / "extra.yaml"

    def first_run(text, **kwargs):
        extra.write_text(text)
        return plan(Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path),
                             config_files=[str(extra)], **kwargs), data)[0]

    with_extra = first_run("# a comment\nhidden_size: 32\nplm_cache_dir: /here\n")
    same = first_run("hidden_size: 32  # same value, other comment\nplm_cache_dir: /somewhere/else\n")
    changed = first_run("hidden_size: 16\n")
    assert with_extra.fingerprint == same.fingerprint != changed.fingerprint
    variant = plan(Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path),
                            variants=parse_variants([f"SASRec-x=SASRec:{extra}"])), data)
    assert [run.label for run in variant] == ["SASRec", "SASRec-x"] and variant[1].model == "SASRec"
    assert variant[1].variant_files == [str(extra)] and variant[1].fingerprint != variant[0].fingerprint
    assert variant[1].record_path.name.startswith("SASRec-x-seed2020-")


def test_code_version_follows_each_models_own_code(tmp_path, monkeypatch):
    def covered(model):
        return set(subprocess.run(["git", "ls-files", "--", *code_paths(model)], cwd=ROOT, capture_output=True,
                                  text=True).stdout.split())

    adrec, sasrec = covered("ADRec"), covered("SASRec")
    for path in ("adrec_recbole/quick_start.py", "adrec_recbole/run_folder.py", "adrec_recbole/data/layout.py",
                 "adrec_recbole/properties/overall.yaml", "adrec_recbole/paths.py"):
        assert path in adrec and path in sasrec
    assert "adrec_recbole/model.py" in adrec and "adrec_recbole/model.py" not in sasrec
    properties = "adrec_recbole/properties/"
    assert properties + "model/ADRec.yaml" in adrec and properties + "model/ADRec.yaml" not in sasrec
    assert properties + "model/SASRec.yaml" in sasrec and properties + "model/SASRec.yaml" not in adrec
    assert not any(path.startswith("adrec_recbole/benchmark/") for path in adrec | sasrec)
    assert not any(path.startswith("adrec_recbole/tune/") for path in adrec)
    assert properties + "ADRec-paper.yaml" not in adrec and properties + "hyper.test" not in adrec

    repo = tmp_path / "repo"
    (repo / "a").mkdir(parents=True)
    (repo / "b").mkdir()

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "a" / "x.py").write_text("1\n")
    (repo / "b" / "y.py").write_text("1\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    monkeypatch.setattr(records_module, "PROJECT_ROOT", str(repo))
    assert records_module.git_version(["a/"]) == first[:10]
    (repo / "b" / "y.py").write_text("2\n")
    git("commit", "-q", "-am", "b only")
    assert records_module.git_version(["a/"]) == first[:10]  # a commit elsewhere does not change a/'s version
    (repo / "a" / "x.py").write_text("2\n")
    dirty = records_module.git_version(["a/"])
    assert dirty.startswith(first[:10] + "+dirty-")
    (repo / "a" / "x.py").write_text("3\n")
    assert records_module.git_version(["a/"]) not in (dirty, first[:10])  # other uncommitted changes, other version
    monkeypatch.setattr(records_module, "PROJECT_ROOT", str(tmp_path))  # not a git checkout
    assert records_module.git_version(["a/"]) is None


def test_recbole_reads_item_text_unquoted_as_adrec_does(workspace):
    from recbole.data import create_dataset

    from adrec_recbole.quick_start import build_config  # applies adrec_recbole.compat

    root, _ = workspace
    config = build_config("FDSA", "Bench", config_dict={"data_path": str(root / "data"), "state": "ERROR"})
    dataset = create_dataset(config)
    words = dataset.field2id_token["title"]

    def title(token):
        return [words[index] for index in dataset.item_feat["title"][dataset.token2id("item_id", token)].tolist() if index]

    assert title("0") == QUOTED_TITLE.split() and title("11") == ["NA"] and title("1") == ["guitar", "capo", "clamp"]


def write_unisrec_layout(folder, name):
    """The tiny data in UniSRec's layout: ``.text`` keyed by ASIN, ``.item2index``, ``.user2index``, no ``.item``.

    Train rows longest prefix first, as UniSRec writes them (the importer checks the order).
    """
    folder.mkdir(parents=True)
    rows = {"train": [], "valid": [], "test": []}
    for user, sequence in enumerate(sequences()):
        n = len(sequence)
        rows["train"] += [(user, sequence[:t], sequence[t]) for t in range(n - 3, 0, -1)]
        rows["valid"].append((user, sequence[:n - 2], sequence[n - 2]))
        rows["test"].append((user, sequence[:n - 1], sequence[n - 1]))
    for split, split_rows in rows.items():
        with open(folder / f"{name}.{split}.inter", "w") as handle:
            handle.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            handle.writelines(f"{user}\t{' '.join(map(str, history))}\t{target}\n" for user, history, target in split_rows)
    with open(folder / f"{name}.text", "w") as handle:
        handle.write("item_id:token\ttext:token_seq\n")
        handle.writelines(f"ASIN{item:04d}\t{title}\n" for item, title in enumerate(TITLES))
    with open(folder / f"{name}.item2index", "w") as handle:
        handle.writelines(f"ASIN{item:04d}\t{item}\n" for item in range(len(TITLES)))
    with open(folder / f"{name}.user2index", "w") as handle:
        handle.writelines(f"U{user}\t{user}\n" for user in range(len(sequences())))


def test_gru4rec_bert4rec_and_fdsa_train_on_tiny_data_in_unisrec_layout(tmp_path, workspace):
    _, config = workspace
    write_unisrec_layout(tmp_path / "data" / "Uni", "Uni")
    done = run_cli(["--dataset", "Uni", "--data_path", str(tmp_path / "data"), "--models", "GRU4Rec,BERT4Rec,FDSA",
                    "--seeds", "1", "--epochs", "1", "--out", str(tmp_path / "results"), "--config_files",
                    str(config)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is in UniSRec's layout" in done.stdout
    imported = tmp_path / "results" / "Uni" / "runs" / "data" / "Uni" / "Uni.item"
    lines = imported.read_text().splitlines()
    assert lines[1] == f"0\t{QUOTED_TITLE}\t\t"  # the UniSRec text is every model's title
    found = records(tmp_path / "results" / "Uni")
    assert {model for model, _ in found} == {"GRU4Rec", "BERT4Rec", "FDSA"}
    for record in found.values():
        assert record["status"] == "ok", record.get("error")
        assert record["result"]["epochs_run"] == 1
        assert record["data"]["path"].endswith(os.path.join("runs", "data", "Uni"))
        assert record["data"]["source"].endswith(os.path.join("data", "Uni"))
    fdsa_log = next((tmp_path / "results" / "Uni" / "runs").glob("FDSA-*.log")).read_text()
    assert "selected_features = ['title', 'brand', 'categories']" in fdsa_log
    assert found[("FDSA", 2020)]["result"]["parameters"] > found[("GRU4Rec", 2020)]["result"]["parameters"]


def test_a_second_benchmark_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    from adrec_recbole.benchmark.compare import run_benchmark

    settings = Settings(dataset="Bench", models=[], seeds=[2020], out=str(tmp_path))
    lock = settings.runs_dir / "benchmark.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getpid()))  # a live process holds it
    with pytest.raises(BenchmarkError, match="another benchmark"):
        run_benchmark(settings, log=lambda line: None)
    assert lock.exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(str(gone.pid))  # its owner has exited
    with pytest.raises(BenchmarkError, match="--models is empty"):  # got past the lock
        run_benchmark(settings, log=lambda line: None)
    assert not lock.exists()


def test_a_worker_that_dies_without_a_record_is_recorded_as_failed(tmp_path, monkeypatch):
    from adrec_recbole.benchmark import runner

    real_popen = subprocess.Popen
    dying = [sys.executable, "-c", "print('out of memory, say'); import os; os._exit(9)"]
    monkeypatch.setattr(runner.subprocess, "Popen", lambda args, **kwargs: real_popen(dying, **kwargs))
    settings = Settings(dataset="Bench", models=["SASRec"], seeds=[2020], out=str(tmp_path))
    settings.runs_dir.mkdir(parents=True)
    planned = plan(settings, tmp_path)[0]
    record = runner.execute(settings, planned, tmp_path)
    assert record["status"] == "failed" and "exited with status 9" in record["error"]
    assert "out of memory, say" in record["error"]
    assert json.loads(planned.record_path.read_text())["status"] == "failed"


def test_step_time_section_times_both_paths_and_the_old_step_gives_the_new_loss(quick_settings):
    """The training-speed step section for 2 steps on tiny data: finite times for the pre-change
    and the current step, and with dropout 0 and key_dropout true (paper loss) the same four
    loss terms from both on the same first batch."""
    from adrec_recbole.benchmark.step_time import STEP_CONFIGURATIONS, measure_step_times

    results = measure_step_times("Tiny", quick_settings, steps=2, repeats=2)
    assert list(results) == list(STEP_CONFIGURATIONS)
    for row in results.values():
        for path in ("old", "new"):
            assert math.isfinite(row[path]["median_ms"]) and row[path]["median_ms"] > 0
        assert math.isfinite(row["old_over_new"])
    assert results["default"]["new"]["builds"] == "online tower only"
    assert results["default"]["old"]["builds"] == "momentum copy, item queue, sequence queue"
    paper = results["paper loss (frozen)"]
    assert paper["settings"]["key_dropout"] is True and paper["settings"]["hidden_dropout_prob"] == 0.0
    old, new = paper["warmup_loss_terms"]["old"], paper["warmup_loss_terms"]["new"]
    assert all(term > 0 for term in new)
    assert old == pytest.approx(new, abs=1e-5)


def test_a_commit_made_while_the_benchmark_runs_stops_it_before_its_next_run(workspace, tmp_path, monkeypatch):
    """Code versions are taken when the runs are planned; a run started after a commit would carry a
    version whose code it did not run, so the benchmark stops there and says to start it again."""
    from adrec_recbole.benchmark import compare

    root, config = workspace
    settings = Settings(dataset="Bench", models=["Pop"], seeds=[2020], out=str(tmp_path),
                        data_path=str(root / "data"), epochs=1, config_files=[str(config)])
    real_plan = compare.plan

    def plan_then_commit(*args):
        runs = real_plan(*args)
        monkeypatch.setattr(compare, "code_version", lambda model: "0123456789")
        return runs

    monkeypatch.setattr(compare, "plan", plan_then_commit)
    lines = []
    compare.run_benchmark(settings, log=lines.append)
    stopped = [line for line in lines if "not started" in line]
    assert len(stopped) == 1 and "the code of Pop changed since the benchmark started" in stopped[0]
    assert "-> 0123456789); run the same command again" in stopped[0]
    assert not record_paths(tmp_path / "Bench") and "0 run, 0 skipped" in lines[-1]


def test_unfinished_runs_are_carried_and_restored_without_overwriting_a_newer_checkpoint(tmp_path):
    folder = tmp_path / "results" / "Sci"
    runs = folder / "runs"

    def run_folder(stem, *files):
        run = runs / "checkpoints" / stem / "SASRec-Sci-seed2020-0000"
        run.mkdir(parents=True)
        for name in files:
            (run / name).write_bytes(f"{stem}/{name}".encode())
        return run

    run = run_folder("SASRec-seed2020-abcd1234-aaaa", "last.pth", "run.log", "run.lock")
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "optimizer": {"state": {0: torch.ones(1000)}}, "epoch": 4},
               run / "best.pth")
    run_folder("SASRec-seed2021-abcd1234-aaaa", "run.log")  # stopped in its first epoch: nothing to resume
    run_folder("SASRec-seed2022-abcd1234-aaaa", "last.pth", "best.pth")  # finished under an equivalent version
    (runs / "SASRec-seed2022-abcd1234-bbbb.json").write_text(json.dumps({"status": "ok", "format": RECORD_FORMAT}))

    [(stem, size)] = carry.pack(folder, log=lambda line: None)
    carried = folder / "carried" / "SASRec-seed2020-abcd1234-aaaa" / "SASRec-Sci-seed2020-0000"
    assert stem == "SASRec-seed2020-abcd1234-aaaa" and sorted(path.name for path in carried.iterdir()) == [
        "best.pth", "last.pth", "run.log"]  # no lock
    assert size == sum(path.stat().st_size for path in carried.iterdir()) < (run / "best.pth").stat().st_size
    best = torch.load(carried / "best.pth", weights_only=True)  # the weights, without the optimizer's state
    assert set(best) == {"state_dict", "epoch"} and best["state_dict"]["w"].tolist() == [0.0, 1.0, 2.0]
    assert [path.name for path in (folder / "carried").iterdir()] == ["SASRec-seed2020-abcd1234-aaaa"]

    def planned(version, seed=2020):
        return PlannedRun(1, "SASRec", "SASRec", seed, "abcd1234", runs / f"SASRec-seed{seed}-abcd1234-{version}.json",
                          code_version=version)

    assert carry.restore(planned("aaaa")) is None  # this machine still has the run's own checkpoint
    shutil.rmtree(runs / "checkpoints")  # another machine: only the records and carried/
    assert carry.restore(planned("cccc")) is None  # another code version, not verified equivalent
    (tmp_path / "results" / EQUIVALENCE_FILE).write_text(json.dumps(
        [{"models": {"SASRec": {"old": "aaaa", "new": "cccc"}}}]))
    assert carry.restore(planned("cccc")) == "aaaa"
    restored = runs / "checkpoints" / "SASRec-seed2020-abcd1234-aaaa" / "SASRec-Sci-seed2020-0000" / "last.pth"
    assert restored.read_bytes() == b"SASRec-seed2020-abcd1234-aaaa/last.pth"
    restored.write_bytes(b"a later epoch")
    assert carry.restore(planned("cccc")) is None and restored.read_bytes() == b"a later epoch"  # never overwritten

    (runs / "SASRec-seed2020-abcd1234-cccc.json").write_text(json.dumps({"status": "ok", "format": RECORD_FORMAT}))
    assert carry.drop_finished(folder) == ["SASRec-seed2020-abcd1234-aaaa"]  # finished under the newer version
    assert not any((folder / "carried").iterdir())
