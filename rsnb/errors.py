"""The errors a user can act on.

Every exception the command line reports as one ``rsnb: error: ...`` line (exit status 2) derives
from :class:`RsnbError`; its message names the file (and line or index) or the setting at fault.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RsnbError(Exception):
    """Base class of the expected errors (bad data, config, checkpoint or run folder)."""


class ConfigError(RsnbError, ValueError):
    """A config file, section, key or value is wrong; the message names the key."""


class RunFolderError(RsnbError, RuntimeError):
    """A run folder is in use, holds another run, or lacks what a command needs."""
