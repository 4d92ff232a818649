"""The benchmark says how its running runs progress: each run's newest validated epoch, read from
the lines RecBole writes into the run's log, at most once a minute, with the best and the end of
the run by RecBole's early-stopping rule."""
import re

from conftest import write_canonical_dataset

from adrec_recbole.benchmark import compare, progress
from adrec_recbole.benchmark.compare import Settings
from adrec_recbole.benchmark.progress import PROGRESS_SECONDS, RunProgress

# as RecBole 1.2.1 writes them (a BERT4Rec run of the benchmark)
HEADER = "06 Dec 17:44    INFO  ['/work/main/adrec_recbole/benchmark/worker.py']\n"
CONFIG = "\nTraining Hyper Parameters:\nepochs = {epochs}\neval_step = 1\nstopping_step = 10\n" \
         "\nEvaluation Hyper Parameters:\nvalid_metric = NDCG@10\nvalid_metric_bigger = True\n\n"
RESUMING = "06 Dec 17:44    INFO  resuming /work/runs/checkpoints/B/B-seed2022-daff6a0f at epoch 13\n"


def epoch_lines(epoch, train_seconds, valid_seconds, score, best):
    lines = (f"06 Dec 18:12    INFO  epoch {epoch} training [time: {train_seconds:.2f}s, train loss: 8421.2134]\n"
             f"06 Dec 18:12    INFO  epoch {epoch} evaluating [time: {valid_seconds:.2f}s, valid_score: {score:.6f}]\n"
             "06 Dec 18:12    INFO  valid result: \n"
             "recall@10 : 0.0729    recall@50 : 0.1461    ndcg@10 : 0.0396    ndcg@50 : 0.0554\n")
    if best:
        lines += "06 Dec 18:12    INFO  Saving current best: /work/runs/checkpoints/B/best.pth\n"
    return lines


def append(path, text):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def test_a_line_per_new_epoch_at_most_once_a_minute_with_recboles_best(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(HEADER + CONFIG.format(epochs=300))
    watch = RunProgress(log)
    assert watch.line(now=0) is None  # nothing validated yet
    append(log, epoch_lines(0, 140.4, 4.38, 0.0078, best=True))
    assert watch.line(now=1) == "epoch 0 done in 145 s, valid NDCG@10 0.0078 (the best so far)"
    assert watch.line(now=500) is None  # nothing new
    append(log, epoch_lines(1, 150.0, 3.0, 0.0120, best=True))
    assert watch.line(now=1 + PROGRESS_SECONDS - 1) is None  # too soon after the last line
    append(log, epoch_lines(2, 150.0, 3.0, 0.0101, best=False))
    # two epochs later: the newest one, and the best is epoch 1's, not the higher-numbered one's;
    # 10 more validations without a better one are allowed (epochs 2-11), the 11th (epoch 12) stops it
    assert watch.line(now=1 + PROGRESS_SECONDS) == ("epoch 2 done in 153 s, valid NDCG@10 0.0101; best 0.0120 at "
                                                    "epoch 1, so it ends after epoch 12 unless that is beaten")


def test_the_best_follows_recboles_rule_before_the_checkpoint_is_saved(tmp_path):
    """RecBole logs "Saving current best" only once the checkpoint is written: a better score
    without that line yet is the best already; a tie is an improvement; so is a smaller score
    where the config says smaller is better."""
    log = tmp_path / "run.log"
    log.write_text(HEADER + CONFIG.format(epochs=300) + epoch_lines(11, 213.7, 7.2, 0.0363, best=True)
                   + epoch_lines(12, 275.8, 10.5, 0.0391, best=False))  # 0.0391 is being saved
    watch = RunProgress(log)
    assert watch.line(now=0) == "epoch 12 done in 286 s, valid NDCG@10 0.0391 (the best so far)"
    append(log, epoch_lines(13, 1, 1, 0.0391, best=False))
    assert watch.line(now=PROGRESS_SECONDS).endswith("valid NDCG@10 0.0391 (the best so far)")
    smaller = tmp_path / "smaller.log"
    smaller.write_text(HEADER + CONFIG.format(epochs=300).replace("valid_metric_bigger = True", "valid_metric_bigger = False")
                       + epoch_lines(0, 1, 1, 0.50, best=True) + epoch_lines(1, 1, 1, 0.60, best=False))
    assert RunProgress(smaller).line(now=0).endswith("; best 0.5000 at epoch 0, so it ends after epoch 11 unless that is beaten")


def test_the_end_of_a_run_is_its_last_epoch_when_that_comes_before_early_stopping(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(HEADER + CONFIG.format(epochs=5) + epoch_lines(0, 1.0, 1.0, 0.05, best=True)
                   + epoch_lines(1, 1.0, 1.0, 0.04, best=False))
    assert RunProgress(log).line(now=0).endswith("best 0.0500 at epoch 0, so it ends after epoch 4 unless that is beaten")


def test_a_log_without_recboles_config_says_what_it_can(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(HEADER + epoch_lines(0, 1.0, 1.0, 0.05, best=True) + epoch_lines(1, 1.0, 1.0, 0.04, best=False))
    assert RunProgress(log).line(now=0) == "epoch 1 done in 2 s, valid score 0.0400; best 0.0500 at epoch 0"


def test_a_line_being_written_is_read_when_it_is_whole(tmp_path):
    log = tmp_path / "run.log"
    whole = epoch_lines(7, 100.0, 2.0, 0.0300, best=True)
    cut = whole.index("valid_score:") + len("valid_score: 0.03")
    log.write_text(HEADER + CONFIG.format(epochs=300) + whole[:cut])  # the worker is in the middle of the evaluating line
    watch = RunProgress(log)
    assert watch.line(now=0) is None
    append(log, whole[cut:])
    assert watch.line(now=0) == "epoch 7 done in 102 s, valid NDCG@10 0.0300 (the best so far)"


def test_a_resumed_run_reads_its_earlier_best_from_its_run_folders_log(tmp_path):
    """The worker's log starts at the resume; the run folder's run.log holds every stretch: there
    epoch 3 was the best, and epoch 12 was validated but its checkpoint lost (killed before the
    save), so the run resumes at 12 and that first evaluation of 12 does not count."""
    folder = tmp_path / "checkpoints" / "B" / "B-seed2022-daff6a0f"
    folder.mkdir(parents=True)
    history = CONFIG.format(epochs=300) + epoch_lines(0, 1, 1, 0.0300, best=True)
    history += "".join(epoch_lines(epoch, 1, 1, 0.0496 if epoch == 3 else 0.0400 + epoch / 1e4, best=epoch in (1, 3))
                       for epoch in range(1, 12))
    history += epoch_lines(12, 1, 1, 0.0501, best=True) + f"INFO  resuming {folder} at epoch 12\n"
    (folder / "run.log").write_text(history + epoch_lines(12, 288.19, 19.87, 0.0381, best=False))
    log = tmp_path / "run.log"
    log.write_text(HEADER + CONFIG.format(epochs=300) + f"06 Dec 17:44    INFO  resuming {folder} at epoch 12\n"
                   + epoch_lines(12, 288.19, 19.87, 0.0381, best=False))
    watch = RunProgress(log)
    assert watch.line(now=0) == ("epoch 12 done in 308 s, valid NDCG@10 0.0381; best 0.0496 at epoch 3, "
                                 "so it ends after epoch 14 unless that is beaten")
    append(log, epoch_lines(13, 290.0, 20.0, 0.0510, best=True))
    assert watch.line(now=PROGRESS_SECONDS) == "epoch 13 done in 310 s, valid NDCG@10 0.0510 (the best so far)"


def test_a_resumed_run_whose_folder_log_is_gone_says_so(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(HEADER + CONFIG.format(epochs=300) + RESUMING + epoch_lines(13, 288.19, 19.87, 0.0381, best=False))
    assert RunProgress(log).line(now=0) == ("epoch 13 done in 308 s, valid NDCG@10 0.0381; "
                                            "the best is from before epoch 13, where it resumed")


def test_a_missing_log_says_nothing(tmp_path):
    assert RunProgress(tmp_path / "not-yet.log").line(now=0) is None


def test_the_benchmark_prints_each_runs_epochs_before_its_result(tmp_path, monkeypatch):
    """Two tiny SASRec epochs: the last validated epoch is said before the run's "ok" line, with its
    best as the run's record has it."""
    data = tmp_path / "data"
    sequences = [[(user + step) % 12 for step in range(6)] for user in range(36)]
    write_canonical_dataset(data, "Tiny", sequences, [f"item {k}" for k in range(12)])
    small = tmp_path / "small.yaml"
    small.write_text("train_batch_size: 32\neval_batch_size: 64\nhidden_size: 16\ninner_size: 32\nn_layers: 1\n"
                     "topk: [5, 10]\nvalid_metric: NDCG@10\n")
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0)
    settings = Settings(dataset="Tiny", models=["SASRec"], seeds=[2020], out=str(tmp_path / "results"),
                        data_path=str(data), epochs=2, config_files=[str(small)])
    lines = []
    (record,) = compare.run_benchmark(settings, log=lines.append)
    said = [line for line in lines if " done in " in line and "SASRec seed 2020" in line]
    ok = next(index for index, line in enumerate(lines) if ": ok in " in line)
    assert said and lines.index(said[-1]) < ok
    last = re.search(r"epoch (\d+) done in \d+ s, valid NDCG@10 (\d\.\d{4})", said[-1])
    assert last[1] == "1"  # the second of --epochs 2, numbered from 0
    best_epoch = record["result"]["best_epoch"]
    best_score = record["result"]["best_valid_score"]
    if best_epoch == 1:
        assert said[-1].endswith("(the best so far)") and float(last[2]) == best_score
    else:
        assert said[-1].endswith(f"; best {best_score:.4f} at epoch 0, so it ends after epoch 1 unless that is beaten")
