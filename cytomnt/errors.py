"""Errors that stop a run before it starts, and the exit codes of ``cytomnt analyze``."""
from __future__ import annotations

#: Exit codes of ``cytomnt analyze`` (documented in the README): every file analysed; the run
#: finished but some files failed; the run could not start (nothing written).
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class ConfigError(ValueError):
    """The run cannot start: a bad option, panel, strategy, manifest or control file."""
