"""One exception type for every problem a user can fix.

The CLI prints ``UnseenError`` as a single line (no traceback unless ``--debug``),
so its message must name the file, line or field at fault.
"""


class UnseenError(Exception):
    """A user-facing error: bad input, a missing asset, an unknown name."""


class AssetMissingError(UnseenError):
    """A named asset is not installed; the message carries the install command."""


class DataError(UnseenError):
    """A data file or record is unreadable or malformed."""


class DivergenceError(UnseenError):
    """Training diverged: a loss became inf or nan (the message names the step and what to lower)."""
