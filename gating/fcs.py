"""Reading FCS files into FlowKit samples, with every tolerated defect recorded.

Readers differ on malformed files; here the rule is: read the file as the standard says;
if it has a known, recoverable defect, read it anyway and return a note naming the defect
(it becomes a QC flag); otherwise raise :class:`FcsReadError` naming the file and the problem.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import flowio
import flowkit as fk
from flowio.exceptions import DataOffsetDiscrepancyError, FCSParsingError, MultipleDataSetsError

#: Extensions read when a folder is given.
FCS_EXTENSIONS = (".fcs", ".lmd")


class FcsReadError(ValueError):
    """A file could not be read as FCS; the message names the file and the problem."""


@dataclass
class LoadedSample:
    """A FlowKit sample plus the reader's notes (QC flag codes) about the file."""

    sample: fk.Sample
    notes: list[str] = field(default_factory=list)


def _pick_dataset(path: Path, sample_id: str) -> tuple[fk.Sample, list[str]]:
    """For multi-data-set files (Beckman .lmd): the data set with the highest FCS version."""
    samples = fk.read_multi_dataset_fcs(str(path), ignore_offset_error=True)
    best = max(range(len(samples)), key=lambda i: (float(samples[i].version or 0), i))
    s = samples[best]
    s.id = sample_id
    return s, [f"MULTI_DATASET:{len(samples)}:used_{best + 1}", "FCS_OFFSET_OFF_BY_ONE"]


def read_fcs(path: str | Path, sample_id: str | None = None) -> LoadedSample:
    """Read one FCS file as a FlowKit ``Sample`` whose id is ``sample_id`` (default: file stem).

    The id never comes from ``$FIL``: two tubes with the same ``$FIL`` must not collide.
    """
    path = Path(path)
    sid = sample_id or path.stem
    if not path.exists():
        raise FcsReadError(f"{path}: file not found")
    if path.stat().st_size < 58:
        raise FcsReadError(f"{path}: {path.stat().st_size} bytes is too short for an FCS HEADER (58 bytes)")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith(b"FCS"):
        raise FcsReadError(f"{path}: not an FCS file (HEADER starts with {magic!r}, expected 'FCS2.0', 'FCS3.0' or 'FCS3.1')")
    attempts = [({}, []), ({"ignore_offset_error": True}, ["FCS_OFFSET_OFF_BY_ONE"])]
    last: Exception | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs, notes in attempts:
            try:
                return LoadedSample(fk.Sample(str(path), sample_id=sid, **kwargs), list(notes))
            except MultipleDataSetsError:
                try:
                    s, notes = _pick_dataset(path, sid)
                    return LoadedSample(s, notes)
                except Exception as exc:  # noqa: BLE001 - reported with the file name below
                    raise FcsReadError(f"{path}: holds several data sets and none could be read ({exc})") from exc
            except DataOffsetDiscrepancyError as exc:
                return _read_discrepant(path, sid, exc)
            except FCSParsingError as exc:
                last = exc
                continue
            except Exception as exc:  # noqa: BLE001 - any reader failure becomes a named error
                raise FcsReadError(f"{path}: cannot be read as FCS: {exc}") from exc
    raise FcsReadError(f"{path}: cannot be read as FCS: {last}")


def _read_discrepant(path: Path, sid: str, first: Exception) -> LoadedSample:
    """HEADER and TEXT disagree on the DATA offsets: trust TEXT (FCS 3.x says it rules) if it parses."""
    try:
        fd = flowio.FlowData(str(path), ignore_offset_discrepancy=True)
        notes = ["FCS_OFFSET_DISCREPANCY"]
        ts = fd.text.get("timestep")
        if ts is not None:
            try:
                float(ts)
            except ValueError:
                del fd.text["timestep"]
                notes.append("FCS_BAD_TIMESTEP")
        return LoadedSample(fk.Sample(fd, sample_id=sid), notes)
    except Exception as exc:  # noqa: BLE001
        raise FcsReadError(f"{path}: HEADER and TEXT disagree on the data offsets ({first}); "
                           f"reading with the TEXT offsets also failed: {exc}") from exc


def find_fcs_files(paths) -> list[Path]:
    """Files given, plus every ``.fcs``/``.FCS``/``.lmd`` under given folders (recursive, sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in FCS_EXTENSIONS))
        else:
            out.append(p)
    return out
