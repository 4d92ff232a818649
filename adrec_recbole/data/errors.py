"""Exceptions of the data pipeline; each one's ``str()`` is a single line meant for the user."""


class DataFormatError(ValueError):
    """An input file breaks its format; the message names the file and, where known, the line."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and cannot be prepared; the message says what to run or download."""


class DownloadError(OSError):
    """A download failed or produced a truncated or corrupt file."""
