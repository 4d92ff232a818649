"""Exceptions of the data pipeline; each one's ``str()`` is a single line meant for the user."""


class DataFormatError(ValueError):
    """An input file breaks its format; the message names the file and, where known, the line."""


class EncodingError(DataFormatError):
    """A text file holds a byte sequence that is not UTF-8; ``line``, ``column`` (1-based, in bytes)
    and ``byte`` say where."""

    def __init__(self, path, line, column, byte):
        super().__init__(f"{path}:{line}: not valid UTF-8 (byte 0x{byte:02x} at column {column})")
        self.path, self.line, self.column, self.byte = path, line, column, byte


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and cannot be prepared; the message says what to run or download."""


class DownloadError(OSError):
    """A download failed or produced a truncated or corrupt file."""
