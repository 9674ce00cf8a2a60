"""Which files are FCS files: the files given, and under folders every file that starts with an
FCS HEADER. Light on purpose (no FlowKit): a command finds its inputs before it loads anything."""
from __future__ import annotations

from pathlib import Path

#: Extensions read when a folder is given.
FCS_EXTENSIONS = (".fcs", ".lmd")


def find_fcs_files(paths, skipped: list | None = None) -> list[Path]:
    """Files given, plus every file under given folders (recursive, sorted) that starts with an FCS
    HEADER, whatever its name (FACSCalibur's ``.001``, plate readers' ``.B08``, Beckman ``.LMD``).
    Under folders, hidden files and folders (``.name``, such as macOS's AppleDouble ``._name.fcs``
    copies of resource forks) are left out and appended to ``skipped``; a file given by name is kept."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            # .fcs/.lmd files always (a broken one must be reported, not skipped), any other file with
            # an FCS HEADER
            for q in sorted(p.rglob("*")):
                if not q.is_file():
                    continue
                if is_hidden(q.relative_to(p)):
                    if skipped is not None and (q.suffix.lower() in FCS_EXTENSIONS or q.name.startswith("._")):
                        skipped.append(q)
                    continue
                if q.suffix.lower() in FCS_EXTENSIONS or has_fcs_header(q):
                    out.append(q)
        else:
            out.append(p)
    return out


def is_hidden(relative: Path) -> bool:
    """A hidden file or one inside a hidden folder (a name starting with '.': '._x.fcs', '.Trash')."""
    return any(part.startswith(".") for part in relative.parts)


def has_fcs_header(path: Path) -> bool:
    """True when the file starts like an FCS file ('FCS2.0', 'FCS3.1'...)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return len(head) == 6 and head[:3] == b"FCS" and head[3:4].isdigit() and head[4:5] == b"." and head[5:6].isdigit()
