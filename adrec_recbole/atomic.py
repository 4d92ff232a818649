"""Atomic file writes: the new content goes to a temporary file in the same folder and is
renamed over the target, so a reader (or a run resumed after a kill) sees the old file or the
new one, never half of one. Import-light (torch only inside :func:`torch_save`).

A temporary file is named ``.tmp-<pid>-*``: one whose process is gone was left by a killed
writer, and :func:`remove_stale_temporaries` deletes it.
"""
import json
import os
import re
import tempfile

_TEMPORARY = re.compile(r"^\.tmp-(\d+)-|\.tmp(\d+)$")  # ours; ``{file}.tmp<pid>`` of earlier versions


def process_running(pid):
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder):
    """Delete the temporary files that writers killed midway left in ``folder``."""
    if not os.path.isdir(folder):
        return
    for entry in os.scandir(folder):
        match = _TEMPORARY.search(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not process_running(int(match.group(1) or match.group(2))):
            try:
                os.remove(entry.path)
            except FileNotFoundError:  # removed meanwhile
                pass


def _replace_with(path, write, suffix):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=suffix, dir=folder)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would hide results from the user's group
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json(path, data):
    """``data`` as indented JSON at ``path``."""
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, default=str)
            stream.write("\n")
    _replace_with(path, write, ".json")


def torch_save(obj, path):
    """``torch.save(obj)`` at ``path``."""
    import torch

    _replace_with(path, lambda temporary: torch.save(obj, temporary), ".pth")
