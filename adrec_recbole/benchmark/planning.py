"""What one benchmark invocation runs: its settings, its data root and its planned runs.

:class:`Settings` holds the command line's options (:func:`parse_seeds`, :func:`parse_variants` and
:func:`user_yaml` read ``--seeds``, ``--variant`` and the yaml files named); :func:`check_settings`
stops a wrong invocation with one line (:class:`BenchmarkError`) before anything is written.
:func:`resolve_data_root` picks the data all runs read (a folder in UniSRec's layout is imported
once into a canonical copy: :mod:`adrec_recbole.benchmark.compare`, ITEM TEXT) and
:func:`ensure_data` completes it, since a run's fingerprint hashes the data's content.
:func:`plan` gives a :class:`PlannedRun` for every (seed, row), seed-major, each with its
fingerprint, settings and protocol keys, code version and record path
(:mod:`adrec_recbole.benchmark.records`).
"""
from dataclasses import dataclass, field
from pathlib import Path

from adrec_recbole.paths import resolve_user_file
from adrec_recbole.benchmark.records import (
    check_label, code_version, data_identity, fingerprint, protocol_key, run_path_version, run_stem, settings_key,
)

DEFAULT_MODELS = ("ADRec", "SASRec", "GRU4Rec", "BERT4Rec", "FDSA", "Pop")
FIRST_SEED = 2020  # overall.yaml's seed: --seeds 3 means 2020, 2021, 2022
#: ``--arithmetic``: each run computes as an AVX2 CPU (adrec_recbole/arithmetic.py: records then
#: reproduce across x86 machines with and without AVX-512), or with the CPU's own instruction set
ARITHMETICS = ("avx2", "native")


class BenchmarkError(Exception):
    """A problem with the benchmark's input, reported as one line."""


def parse_seeds(text):
    """``'3'`` -> ``[2020, 2021, 2022]``; ``'2020,2025'`` -> ``[2020, 2025]``."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise BenchmarkError(f"--seeds {text!r}: give a count (3) or a comma-separated list (2020,2021)") from None
    if len(numbers) == 1 and 0 < numbers[0] < 1000:
        return [FIRST_SEED + offset for offset in range(numbers[0])]
    if not numbers or len(set(numbers)) != len(numbers):
        raise BenchmarkError(f"--seeds {text!r}: give a count (3) or distinct seeds (2020,2021)")
    return numbers


@dataclass
class Variant:
    """A labelled row: ``model`` run with the extra yaml ``config_files`` (after the common ones)."""

    label: str
    model: str
    config_files: list


def user_yaml(path):
    """A yaml file named on the command line: in the working directory, else the package's copy
    (``properties/ADRec-paper.yaml`` from any folder); unchanged when neither exists (reported by
    the settings check)."""
    return resolve_user_file(path) or path


def parse_variants(values):
    """``['LABEL=MODEL:A.yaml,B.yaml', ...]`` (several per value may be separated by ``;``) ->
    ``{label: Variant}`` in the order given."""
    variants = {}
    for value in values:
        for text in (part.strip() for part in str(value).split(";")):
            if not text:
                continue
            label, equals, rest = text.partition("=")
            model, colon, files = rest.partition(":")
            label, model = label.strip(), model.strip()
            config_files = [user_yaml(path) for path in files.replace(",", " ").split() if path]
            if not equals or not colon or not label or not model or not config_files:
                raise BenchmarkError(f"--variant {text!r}: write LABEL=MODEL:FILE.yaml[,FILE.yaml...], "
                                     "e.g. ADRec-paper=ADRec:properties/ADRec-paper.yaml")
            try:
                check_label(label)
            except ValueError as error:
                raise BenchmarkError(f"--variant {text!r}: {error}") from None
            if label == model or label in DEFAULT_MODELS:
                raise BenchmarkError(f"--variant {text!r}: the label must differ from model names (e.g. {model}-paper)")
            if label in variants:
                raise BenchmarkError(f"--variant {label!r} is defined twice")
            variants[label] = Variant(label, model, config_files)
    return variants


@dataclass
class Settings:
    """Everything one benchmark invocation needs (the command line's options).

    ``models``: the rows, model names or labels of ``variants``; labels of ``variants`` that
    ``models`` does not name are appended (:meth:`rows`). ``arithmetic``: one of :data:`ARITHMETICS`.
    """

    dataset: str
    models: list = field(default_factory=lambda: list(DEFAULT_MODELS))
    seeds: list = field(default_factory=lambda: [2020, 2021, 2022])
    out: str = "results/"
    data_path: str = "dataset/"
    config_files: list = field(default_factory=list)
    epochs: int = None
    threads: int = 1
    force: bool = False
    keep_checkpoints: bool = False
    command: str = ""
    variants: dict = field(default_factory=dict)
    jobs: int = 1
    reuse_any_code: bool = False
    arithmetic: str = "avx2"

    @property
    def folder(self):
        return Path(self.out) / self.dataset

    @property
    def runs_dir(self):
        return self.folder / "runs"

    def rows(self):
        """``[(label, model, variant config files)]``: ``models`` in order, then unnamed variants."""
        labels = list(self.models) + [label for label in self.variants if label not in self.models]
        rows = []
        for label in labels:
            variant = self.variants.get(label)
            rows.append((label, variant.model, list(variant.config_files)) if variant else (label, label, []))
        return rows


def check_settings(settings):
    if not settings.rows():
        raise BenchmarkError("--models is empty")
    labels = [label for label, _, _ in settings.rows()]
    if len(set(labels)) != len(labels):
        raise BenchmarkError(f"--models {','.join(settings.models)!r} names a row twice")
    for label in labels:
        try:
            check_label(label)
        except ValueError as error:
            raise BenchmarkError(f"--models: {error}") from None
    variant_files = [path for variant in settings.variants.values() for path in variant.config_files]
    for path in list(settings.config_files) + variant_files:
        if not Path(path).is_file():
            raise BenchmarkError(f"config file not found: {path}")
    if settings.threads < 1:
        raise BenchmarkError("--threads must be at least 1")
    if settings.arithmetic not in ARITHMETICS:
        raise BenchmarkError(f"--arithmetic {settings.arithmetic!r}: expected one of {', '.join(ARITHMETICS)}")
    if settings.jobs < 1:
        raise BenchmarkError("--jobs must be at least 1")


@dataclass
class PlannedRun:
    index: int
    label: str
    model: str
    seed: int
    fingerprint: str
    record_path: Path
    settings_key: str = ""
    protocol: str = ""
    code_version: str = None
    run_path_version: str = None
    variant_files: list = field(default_factory=list)
    data_id: str = None

    @property
    def stem(self):
        return self.record_path.stem

    @property
    def prefix(self):
        """The record file name up to the code version: same row, seed and settings."""
        return self.stem[: len(self.stem) - len(self.code_version or "nogit") - 1]


def is_unisrec_layout(folder, name):
    """Whether ``folder`` holds ``name`` in UniSRec's layout (``.text`` keyed by ASIN, no ``.item``)."""
    needed = [f"{name}.{split}.inter" for split in ("train", "valid", "test")]
    needed += [f"{name}.text", f"{name}.item2index", f"{name}.user2index"]
    return not (folder / f"{name}.item").is_file() and all((folder / file).is_file() for file in needed)


def resolve_data_root(settings, log=print):
    """The data root all runs use: ``--data_path``, or the canonical copy of a UniSRec-layout folder."""
    source = Path(settings.data_path) / settings.dataset
    if not is_unisrec_layout(source, settings.dataset):
        return Path(settings.data_path)
    from adrec_recbole.data.importers import import_unisrec
    from adrec_recbole.data.layout import missing_files

    root = settings.runs_dir / "data"
    if (root / settings.dataset).is_dir() and not missing_files(root / settings.dataset, settings.dataset):
        log(f"{source} is in UniSRec's layout; using its canonical copy in {root / settings.dataset}")
        return root
    log(
        f"{source} is in UniSRec's layout (.text keyed by ASIN, no .item): importing it once into "
        f"{root / settings.dataset} so that every model, ADRec and FDSA alike, reads the same item text"
    )
    try:
        import_unisrec(source, settings.dataset, root, force=True)
    except Exception as error:  # DataFormatError and friends: one line, no stack trace
        raise BenchmarkError(f"could not import {source}: {error}") from None
    return root


def ensure_data(settings, data_root):
    """Make sure ``{data_root}/{dataset}`` is complete (downloading a known Amazon category, as a run
    would) before the runs are planned: the fingerprint hashes the data's content."""
    from adrec_recbole.data import DataFormatError, DatasetNotFoundError, ensure_dataset
    from adrec_recbole.data.ensure import is_default_data_path
    from adrec_recbole.data.layout import missing_files

    if not missing_files(Path(data_root) / settings.dataset, settings.dataset):
        return
    try:
        ensure_dataset(settings.dataset, str(data_root), create_root=is_default_data_path(str(data_root)))
    except (DatasetNotFoundError, DataFormatError) as error:
        raise BenchmarkError(str(error)) from None


def plan(settings, data_root):
    """``PlannedRun`` for every (seed, row), seed-major."""
    data_id = data_identity(data_root, settings.dataset)
    protocol = protocol_key(settings.dataset, data_id, settings.config_files, settings.epochs)
    versions, shared = {}, run_path_version()
    runs, index = [], 0
    for seed in settings.seeds:
        for label, model, variant_files in settings.rows():
            index += 1
            if model not in versions:
                versions[model] = code_version(model)
            extra = list(settings.config_files) + list(variant_files)
            key = fingerprint(label, model, settings.dataset, seed, data_id, extra, settings.epochs)
            stem = run_stem(label, seed, key, versions[model])
            runs.append(PlannedRun(
                index, label, model, seed, key, settings.runs_dir / f"{stem}.json",
                settings_key=settings_key(label, model, settings.dataset, data_id, extra, settings.epochs),
                protocol=protocol, code_version=versions[model], run_path_version=shared,
                variant_files=list(variant_files), data_id=data_id,
            ))
    return runs
