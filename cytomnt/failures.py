"""How a command's failures reach a person: one line that names the file, row or option and what
to do, and an exit code (2: the input or option; the README's table), never a traceback unless
asked for (``--debug`` or ``CYTOMNT_DEBUG=1``)."""
from __future__ import annotations

import argparse
import os
import sys

from cytomnt.errors import EXIT_USAGE, ConfigError

#: What an operating-system error means to someone who typed a path.
_OS_MEANING = {FileNotFoundError: "no such file or folder", IsADirectoryError: "a folder where a file was expected",
               NotADirectoryError: "a file where a folder was expected", PermissionError: "permission denied",
               FileExistsError: "a file is in the way"}


def _input_errors() -> tuple[type[Exception], ...]:
    """The errors that name a bad input themselves (all ValueErrors), loaded only when one happens."""
    from gating import FcsReadError

    from cytomnt.patients.clinical import ClinicalDataError
    from cytomnt.patients.cohort import CohortError
    from cytomnt.inputs.manifest import ManifestError
    from cytomnt.inputs.panel import PanelError
    from cytomnt.patients.risk import RulesError
    from cytomnt.patients.treatments import TreatmentsError
    return ClinicalDataError, CohortError, RulesError, ManifestError, PanelError, FcsReadError, TreatmentsError


def explain(exc: BaseException, command: str) -> tuple[int, str]:
    """(exit code, the one line) for a failure of ``command``."""
    if isinstance(exc, ConfigError) or (isinstance(exc, ValueError) and isinstance(exc, _input_errors())):
        return EXIT_USAGE, f"cytomnt: {exc}"
    if type(exc) in _OS_MEANING:
        return EXIT_USAGE, f"cytomnt: {exc.filename or exc}: {_OS_MEANING[type(exc)]}"
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_USAGE, (f"cytomnt: an input file is not text in UTF-8 ({exc.reason} at byte {exc.start}); "
                            f"save it as UTF-8 CSV")
    where = f" ({exc.filename})" if isinstance(exc, OSError) and getattr(exc, "filename", None) else ""
    return EXIT_USAGE, (f"cytomnt: {command}: {type(exc).__name__}{where}: {exc}. This is a bug or an input cytomnt "
                        f"does not know; run again with --debug (or CYTOMNT_DEBUG=1) for the details to report")


def debugging(flag: bool) -> bool:
    """Whether a failure shows its traceback (``--debug`` or CYTOMNT_DEBUG set to anything but 0)."""
    return flag or os.environ.get("CYTOMNT_DEBUG", "") not in ("", "0")


def silence_stdout() -> None:
    """After a closed pipe (`cytomnt ... | head`): point stdout at /dev/null so the last flush does
    not fail again; the command then ends quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class QuietWhenClosed:
    """A text stream that goes quiet when its reader goes away (`cytomnt analyze ... 2>&1 | head`):
    the run carries on and writes its files; only the messages stop."""

    def __init__(self, stream):
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except (BrokenPipeError, ValueError):
                self.closed_by_reader = True
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self.closed_by_reader = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Wrap stdout and stderr (once) so a closed pipe never stops a command midway."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, QuietWhenClosed):
            setattr(sys, name, QuietWhenClosed(stream))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistyped option is one line naming it and where help is, not the usage block."""

    def error(self, message: str):
        command = self.prog.removeprefix("cytomnt").strip()
        self.exit(EXIT_USAGE, f"cytomnt: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")
