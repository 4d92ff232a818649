"""Atomic file writes: the new content goes to a temporary file in the same folder and is
renamed over the target, so a reader (or a run resumed after a kill) sees the old file or the
new one, never half of one. Import-light (torch only inside :func:`torch_save`)."""
import json
import os
import tempfile


def _replace_with(path, write, suffix):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
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
