"""Which files are FCS files: the files given, and under folders every file that starts with an
FCS HEADER. Light on purpose (no FlowKit): a command finds its inputs before it loads anything."""
from __future__ import annotations

from pathlib import Path

#: Extensions read when a folder is given.
FCS_EXTENSIONS = (".fcs", ".lmd")


def find_fcs_files(paths) -> list[Path]:
    """Files given, plus every file under given folders (recursive, sorted) that starts with an FCS
    HEADER, whatever its name (FACSCalibur's ``.001``, plate readers' ``.B08``, Beckman ``.LMD``)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            # .fcs/.lmd files always (a broken one must be reported, not skipped), any other file with
            # an FCS HEADER
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and
                              (q.suffix.lower() in FCS_EXTENSIONS or has_fcs_header(q))))
        else:
            out.append(p)
    return out


def has_fcs_header(path: Path) -> bool:
    """True when the file starts like an FCS file ('FCS2.0', 'FCS3.1'...)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return len(head) == 6 and head[:3] == b"FCS" and head[3:4].isdigit() and head[4:5] == b"." and head[5:6].isdigit()
