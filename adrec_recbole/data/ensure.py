"""Make sure a dataset is on disk before RecBole builds it (what ``run_recbole.py`` calls first)."""
import os
from pathlib import Path

from adrec_recbole.data.amazon import AMAZON_2018, BASE_URL_ENV, RAW_DIR, download_command, prepare
from adrec_recbole.data.errors import DatasetNotFoundError, DownloadError
from adrec_recbole.data.layout import SPLITS, inter_file, missing_files, remove_stale_builds


DEFAULT_DATA_PATH = "dataset/"


def is_default_data_path(data_path):
    """Whether ``data_path`` is the default data root, ``dataset/`` below the working directory."""
    return os.path.abspath(data_path) == os.path.abspath(DEFAULT_DATA_PATH)


def is_lcrec_folder(folder, dataset):
    """Whether ``folder`` holds a dataset in LC-Rec's layout (``{dataset}.inter.json[.gz]``)."""
    return any((Path(folder) / f"{dataset}.inter.json{suffix}").is_file() for suffix in ("", ".gz"))


def canonical_copy_root(data_path):
    """Where an LC-Rec folder under ``data_path`` is best imported to: the default data root
    ``dataset/`` (then no ``--data_path`` is needed), or ``dataset-canonical/`` when it is that
    folder that holds the LC-Rec files (an import must not write into the folder it reads)."""
    return "dataset-canonical/" if is_default_data_path(data_path) else DEFAULT_DATA_PATH


def ensure_dataset(dataset, data_path, download=True, base_url=None, create_root=True):
    """Return ``{data_path}/{dataset}`` once it holds a complete dataset in the canonical layout.

    A known Amazon 2018 category that is absent is downloaded and converted when ``download`` is
    on (``base_url`` or ``$ADREC_AMAZON_BASE_URL`` overrides the official location); with
    ``create_root`` off, only into a ``data_path`` that exists. Otherwise, and on a network
    failure, raises :class:`DatasetNotFoundError` whose message is one line saying what to run or
    which files to put where. Hidden folders of builds killed midway are removed first.
    """
    folder = Path(data_path) / dataset
    remove_stale_builds(data_path, dataset)
    missing = missing_files(folder, dataset)
    if not missing:
        return folder
    if not create_root and not Path(data_path).is_dir():
        raise DatasetNotFoundError(
            f"data_path {data_path} does not exist (no folder to find or download {dataset} in); "
            f"check the path, or create the folder first"
        )
    command = download_command(dataset, data_path)
    if folder.exists():
        if is_lcrec_folder(folder, dataset):
            target = canonical_copy_root(data_path)
            raise DatasetNotFoundError(
                f"{folder} holds LC-Rec files ({dataset}.inter.json), not the canonical layout: convert them with "
                f"`python -m adrec_recbole.data import --format lcrec --src {folder} --dataset {dataset} --out {target}` "
                f"and run with `--data_path={target}`"
            )
        fix = f"rebuild it with `{command} --force`" if dataset in AMAZON_2018 else "complete or remove it"
        raise DatasetNotFoundError(f"{folder} is incomplete (missing {', '.join(missing)}); {fix}")
    if dataset not in AMAZON_2018:
        expected = ", ".join([inter_file(dataset, split) for split in SPLITS] + [f"{dataset}.item"])
        raise DatasetNotFoundError(
            f"unknown dataset {dataset!r}: put {expected} into {folder}/ "
            f"(`python -m adrec_recbole.data import --help` converts UniSRec and LC-Rec folders), "
            f"or use one of {', '.join(AMAZON_2018)}"
        )
    if not download:
        raise DatasetNotFoundError(f"dataset {dataset!r} is not in {folder}; run `{command}`")
    try:
        return prepare(dataset, data_path, base_url)
    except DownloadError as error:
        reason = " ".join(str(error).split())
        raise DatasetNotFoundError(
            f"could not download {dataset}: {reason}; run `{command}` again later, put the two files "
            f"into {Path(data_path) / RAW_DIR}/ yourself, or set {BASE_URL_ENV} to a mirror"
        ) from None
