"""Where the package finds its own files and keeps its cache, whatever the working directory.

* The project's yaml files (``overall.yaml``, ``model/<Model>.yaml``, ``ADRec-paper.yaml``, ...) and
  ADRec's search space ``hyper.test`` ship inside the package, in ``adrec_recbole/properties/``
  (package data: ``pip install .`` installs them). A file the user names (``--config_files``,
  ``--params_file``) is read from the working directory when it is there, else from the package:
  ``--config_files=properties/ADRec-paper.yaml`` and ``--params_file=hyper.test`` work from any
  folder, and a user's own file of the same name in the working directory wins.
* The PLM cache (tokenised item texts and frozen item vectors, keyed by their content:
  :mod:`adrec_recbole.text_encoder`) defaults to one folder per user, ``$ADREC_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/adrec_recbole``, else ``~/.cache/adrec_recbole`` (as transformers and torch
  keep theirs), so a run started from another folder reuses the vectors instead of encoding every
  item text again. ``plm_cache_dir`` in a yaml file or on the command line overrides it.

Run outputs stay where RecBole puts them, relative to the working directory (``checkpoint_dir``
``saved/``, RecBole's ``log/`` and ``log_tensorboard/``), as RecBole users expect.

Import-light (no torch, no RecBole): the command-line front ends use it before parsing.
"""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PROPERTIES_DIR = os.path.join(PACKAGE_DIR, "properties")
CACHE_DIR_ENV = "ADREC_CACHE_DIR"


def resolve_user_file(path):
    """The file ``path`` names: as given (relative to the working directory) when it exists, else
    the package's copy (``properties/X`` or just ``X`` under ``adrec_recbole/properties/``); None if
    there is neither."""
    path = os.path.expanduser(str(path))
    candidates = [path]
    if not os.path.isabs(path):
        candidates += [os.path.join(PACKAGE_DIR, path), os.path.join(PROPERTIES_DIR, path)]
    return next((candidate for candidate in candidates if os.path.isfile(candidate)), None)


def not_found_message(kind, path):
    """One line for a user's file that :func:`resolve_user_file` could not find."""
    return f"{kind} not found: {path} (looked in {os.getcwd()} and in the package's {PROPERTIES_DIR})"


def default_cache_dir():
    """The per-user PLM cache folder (see the module docstring)."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_DIR_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "adrec_recbole")


def resolve_cache_dir(cache_dir):
    """``plm_cache_dir`` as a folder: the default when unset, else the path given (``~`` expanded)."""
    if cache_dir in (None, ""):
        return default_cache_dir()
    return os.path.expanduser(str(cache_dir))
