"""The benchmark report's cold-start table (adrec_recbole/benchmark/cold_start.py), from records alone:
means and sample standard deviations over seeds by hand; records without cold-start metrics left out."""
import csv
import json
import statistics

from adrec_recbole.benchmark import report
from adrec_recbole.benchmark.records import RECORD_FORMAT


def write_record(runs, label, seed, cold=None, zero_shot=None):
    result = {"test_result": {"recall@10": 0.1, "ndcg@10": 0.05}, "best_epoch": 3, "epochs_run": 5}
    if cold is not None:
        result["cold_start"] = {"rows": 37, "items": 11, "result": {"recall@10": cold[0], "ndcg@10": cold[1]}}
    if zero_shot is not None:
        result["zero_shot"] = {"rows": zero_shot[0], "items": zero_shot[1], "result": {"recall@10": zero_shot[2]}}
    record = {"format": RECORD_FORMAT, "label": label, "model": label, "dataset": "Scientific", "seed": seed,
              "status": "ok", "code_version": "abc", "settings_key": "k1", "fingerprint": f"f{seed}",
              "protocol": "p", "run_path_version": "r", "threads": 1, "finished": f"2026-11-28T0{seed - 2020}:00:00Z",
              "result": result}
    (runs / f"{label}-seed{seed}-f{seed}-abc.json").write_text(json.dumps(record))


def test_cold_start_table_averages_seeds_and_skips_records_without_it(tmp_path):
    folder = tmp_path / "Scientific"
    runs = folder / "runs"
    runs.mkdir(parents=True)
    write_record(runs, "ADRec", 2020, cold=(0.10, 0.04), zero_shot=(850, 430, 0.02))
    write_record(runs, "ADRec", 2021, cold=(0.20, 0.08), zero_shot=(830, 425, 0.04))
    write_record(runs, "SASRec", 2020, cold=(0.0, 0.0))
    write_record(runs, "SASRec", 2021)  # written before cold-start metrics existed
    paths = report.write_report(folder, "Scientific")

    with open(paths["cold_start"], newline="") as handle:
        lines = {(line["label"], line["subset"]): line for line in csv.DictReader(handle)}
    assert set(lines) == {("ADRec", "cold_start"), ("ADRec", "zero_shot"), ("SASRec", "cold_start")}
    adrec = lines[("ADRec", "cold_start")]
    assert (adrec["seeds"], adrec["rows"], adrec["items"]) == ("2020 2021", "37 37", "11 11")
    assert float(adrec["recall@10_mean"]) == statistics.fmean([0.10, 0.20])
    assert float(adrec["ndcg@10_std"]) == statistics.stdev([0.04, 0.08])
    assert lines[("ADRec", "zero_shot")]["rows"] == "850 830"
    assert (lines[("SASRec", "cold_start")]["seeds"], lines[("SASRec", "cold_start")]["ndcg@10_std"]) == ("2020", "")

    text = paths["markdown"].read_text()
    section = text[text.index("## Cold-start test rows"):text.index("## Compute spent")]
    assert "| ADRec | `abc` | `k1` | targets never in training | 2020, 2021 | 37, 37 | 11, 11 | 0.1500 ± 0.0707 |" \
        in section
    assert "| SASRec | `abc` | `k1` | targets never in training | 2020 | 37 | 11 | 0.0000 | 0.0000 |" in section
    with open(paths["runs"], newline="") as handle:
        runs_csv = {(row["label"], row["seed"]): row for row in csv.DictReader(handle)}
    assert runs_csv[("ADRec", "2021")]["cold_start_ndcg@10"] == "0.08" and runs_csv[("SASRec", "2021")]["cold_start_rows"] == ""
