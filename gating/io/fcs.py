"""Reading FCS files into FlowKit samples, with every tolerated defect recorded.

Readers differ on malformed files; here the rule is: read the file as the standard says;
if it has a known, recoverable defect, read it anyway and return a note naming the defect
(it becomes a QC flag); otherwise raise :class:`FcsReadError` naming the file and the problem.
"""
from __future__ import annotations

import functools
import io
import mmap
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import flowio
import numpy as np
from flowio.exceptions import FCSParsingError, MultipleDataSetsError

from gating.io import fcsrepair
from gating.io.inputs import FCS_EXTENSIONS, find_fcs_files, has_fcs_header  # noqa: F401 - part of this module's API
from gating.io.events import MAX_PLAUSIBLE, EventSample, flowkit_read, read_plain_events, within_plausible

if TYPE_CHECKING:          # FlowKit (and its plotting stack) loads only where it is used
    import flowkit as fk

#: Files larger than this are refused before reading (a denial-of-service guard; raise it for huge files).
MAX_FCS_BYTES = 4 * 2**30
_BYTEORDS = {"1,2,3,4", "4,3,2,1", "1,2", "2,1", "1,2,3,4,5,6,7,8", "8,7,6,5,4,3,2,1", "1", "2,1,4,3", "3,4,1,2"}


class FcsReadError(ValueError):
    """A file could not be read as FCS; the message names the file and the problem."""


@dataclass
class LoadedSample:
    """A sample (FlowKit's ``Sample``, or :class:`gating.io.events.EventSample` with the same
    attributes) plus the reader's notes (QC flag codes) about the file."""

    sample: fk.Sample
    notes: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)   # the file's own version and keywords when it was rebuilt


def _pick_dataset(path: Path, sample_id: str) -> tuple[EventSample, list[str]]:
    """For multi-data-set files (Beckman .lmd): the data set with the highest FCS version."""
    sets = flowio.read_multiple_data_sets(str(path), ignore_offset_error=True)
    best = max(range(len(sets)), key=lambda i: (float(sets[i].version or 0), i))
    fd = sets[best]

    def flowkit_sample():
        import flowkit as fk
        return fk.Sample(fd, sample_id=sample_id)
    s = EventSample.from_flow_data(fd, sample_id, path, flowkit_sample, keep_events=True)
    _check_dataset_size(s, path, best + 1)
    return s, [f"MULTI_DATASET:{len(sets)}:used_{best + 1}", "FCS_OFFSET_OFF_BY_ONE"]


def _check_dataset_size(s: fk.Sample, path: Path, number: int) -> None:
    """A data set's DATA segment must hold $TOT events of its $PnB bits (one byte of slack), as
    for single-data-set files; otherwise its $TOT or offsets are wrong and nothing is read."""
    meta = s.get_metadata()
    try:
        bits = sum(int(str(meta[f"p{i}b"]).strip()) for i in range(1, len(s.pnn_labels) + 1))
        have = int(str(meta["enddata"]).strip()) - int(str(meta["begindata"]).strip()) + 1
        tot = int(str(meta["tot"]).strip())
    except (KeyError, ValueError):
        return
    need = tot * bits // 8
    if bits % 8 == 0 and have not in (need - 1, need, need + 1):
        raise FcsReadError(f"{path}: data set {number}: $TOT = {tot} events of {bits} bits need {need} bytes of "
                           f"DATA, but its DATA segment holds {have}: a wrong $TOT/$PnB or a truncated file")


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
    kw, lay = check_structure(path)
    if not _next_data(kw):
        found = _read_by_evidence(path, sid, lay)
        if isinstance(found, LoadedSample):
            return _plausible(found, path)
        if isinstance(found, PlainData):          # most files: numpy reads DATA in one call
            fast = read_plain_events(path, sid, found.data_start, found.tot)
            if fast is not None:
                return _plausible(LoadedSample(fast), path)
    # the files numpy does not read: FlowIO, FlowKit's own reader, as FlowKit's Sample calls it
    attempts = [({}, []), ({"ignore_offset_error": True}, ["FCS_OFFSET_OFF_BY_ONE"])]
    last: Exception | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs, notes in attempts:
            try:
                fd = flowio.FlowData(str(path), **kwargs)
                s = EventSample.from_flow_data(fd, sid, path, functools.partial(flowkit_read, path, sid, **kwargs))
                return _plausible(LoadedSample(s, list(notes)), path)
            except MultipleDataSetsError:
                try:
                    s, notes = _pick_dataset(path, sid)
                    return _plausible(LoadedSample(s, notes), path)
                except Exception as exc:  # noqa: BLE001 - reported with the file name below
                    if isinstance(exc, FcsReadError):
                        raise
                    raise FcsReadError(f"{path}: holds several data sets and none could be read ({exc}); the file "
                                       f"may be truncated") from exc
            except FCSParsingError as exc:
                last = exc
                continue
            except Exception as exc:  # noqa: BLE001 - any reader failure becomes a named error
                raise FcsReadError(f"{path}: cannot be read as FCS: {exc}") from exc
    raise FcsReadError(f"{path}: cannot be read as FCS: {last}")


@dataclass(frozen=True)
class PlainData:
    """A float, double or single-width integer file whose DATA segment is exactly $TOT events
    where HEADER and TEXT say (integers checked against ``$PnR``)."""

    data_start: int
    tot: int


def _plain_integers(path: Path, ds: int, de: int, lay: fcsrepair.Layout) -> bool:
    """Integers of one width numpy can view in place (8, 16, 32 bits, exactly $TOT events),
    checked against their ``$PnR`` as :func:`fcsrepair.decode` checks them (a LayoutError names a
    parameter whose values are not the integers the keywords declare)."""
    width = lay.bits()[0]
    if width not in (8, 16, 32) or (de - ds + 1) != lay.events * lay.params * width // 8:
        return False
    big = fcsrepair.big_endian(lay)
    refused = None
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if de >= len(mm):
            return False
        values = np.frombuffer(mm, dtype=(">" if big else "<") + f"u{width // 8}", count=lay.events * lay.params,
                               offset=ds).reshape(lay.events, lay.params)
        try:
            fcsrepair.check_integers(values, lay)
        except fcsrepair.LayoutError as exc:       # raised once the map is closed (no view of it left)
            refused = str(exc)
        del values
    if refused is not None:
        raise fcsrepair.LayoutError(refused)
    return True


def _read_by_evidence(path: Path, sid: str, lay: fcsrepair.Layout | None = None) -> LoadedSample | PlainData | None:
    """Files FlowIO would misread or refuse (HEADER and TEXT offsets that disagree, padded
    keywords, 24-bit or mixed-width integers) decoded by :mod:`gating.io.fcsrepair`; integer data
    always checked against ``$PnR``. ``PlainData``: read by :mod:`gating.io.events`; None: an
    ordinary file, for FlowIO as it is. ``lay``: the layout :func:`check_structure` read."""
    try:
        lay = lay or fcsrepair.read_layout(path, parse_text)
        for key in ("TOT", "PAR"):
            _int(lay.keywords[key], f"${key}", path)
        (ds, de), notes = fcsrepair.data_segment(lay)
        bits = lay.bits()
        dtype = lay.keywords["DATATYPE"].strip().upper()
        unnamed = [i for i in range(1, lay.params + 1) if not lay.keywords.get(f"P{i}N", "").strip()]
        for i in unnamed:         # FlowKit drops an empty $PnN and shifts every later name: name it
            lay.keywords[f"P{i}N"] = f"P{i}"
        # FlowIO reads an 8-byte $BYTEORD in this machine's order: 8-byte data stored the other
        # way round would be misread, so it is decoded here and rebuilt
        order = lay.keywords["BYTEORD"].strip().replace(" ", "")
        misread = order == ("8,7,6,5,4,3,2,1" if sys.byteorder == "little" else "1,2,3,4,5,6,7,8")
        standard = len(set(bits)) == 1 and bits[0] in (8, 16, 32, 64) and not unnamed and not misread
        agree = lay.text_data in (None, (0, 0), lay.header_data) or lay.header_data == (0, 0)
        if standard and not lay.padded_keys and agree:
            exact = all(seg[1] - seg[0] + 1 == de - ds + 1 for seg in (lay.header_data, lay.text_data)
                        if seg not in (None, (0, 0)))
            if exact and not notes and (dtype != "I" or _plain_integers(path, ds, de, lay)):
                return PlainData(ds, int(lay.keywords["TOT"].strip()))
            if dtype != "I":
                return None
        with open(path, "rb") as fh:
            fh.seek(ds)
            buf = fh.read(de - ds + 1)
        events, dnotes = fcsrepair.decode(buf, lay)
        if standard and not lay.padded_keys and agree:
            return None                   # integers within range: FlowIO reads them as they are
        ts = lay.keywords.get("TIMESTEP")
        if ts is not None and not _is_number(ts):
            del lay.keywords["TIMESTEP"]          # junk: time stays in its stored units
            dnotes.append("FCS_BAD_TIMESTEP")
        data = fcsrepair.rebuild(lay, events)
    except fcsrepair.LayoutError as exc:
        raise FcsReadError(f"{path}: {exc}") from exc
    except (ValueError, KeyError) as exc:          # a HEADER or keyword that is not what it must be
        raise FcsReadError(f"{path}: cannot be read as FCS: {type(exc).__name__}: {exc}") from exc
    notes = notes + dnotes + (["FCS_KEYWORDS_PADDED"] if lay.padded_keys else []) + \
        [f"FCS_UNNAMED_PARAMETER:P{i}" for i in unnamed]
    def flowkit_sample():
        import flowkit as fk
        return fk.Sample(io.BytesIO(data), sample_id=sid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sample = EventSample.from_flow_data(flowio.FlowData(io.BytesIO(data)), sid, path, flowkit_sample)
        except Exception as exc:  # noqa: BLE001 - a keyword FlowIO needs is missing or malformed
            raise FcsReadError(f"{path}: cannot be read as FCS: {type(exc).__name__}: {exc}") from exc
    return LoadedSample(sample, notes or ["FCS_REBUILT"], {"version": lay.version, "keywords": dict(lay.keywords)})


def _next_data(kw: dict) -> bool:
    """True when $NEXTDATA points to another data set ('0', '00000000' and empty mean none)."""
    try:
        return int(str(kw.get("NEXTDATA", "0")).strip() or 0) != 0
    except ValueError:
        return True


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _int(text: str, what: str, path: Path) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FcsReadError(f"{path}: {what} is '{text.strip()[:20]}', not a whole number") from None


def parse_text(raw: bytes, path: Path | str = "<fcs>") -> dict[str, str]:
    """Keywords of a TEXT segment (upper-case, without '$'); the first byte is the delimiter and a
    doubled delimiter stands for the character itself. A keyword given twice with different
    values is an error: readers disagree on which one wins."""
    if len(raw) < 2:
        return {}
    delim = raw[:1]
    body = raw[1:].replace(delim + delim, b"\x00ESC\x00")
    parts = [p.replace(b"\x00ESC\x00", delim) for p in body.split(delim)]
    out: dict[str, str] = {}
    for k, v in zip(parts[0::2], parts[1::2]):
        key = k.decode("latin-1").strip().upper().lstrip("$")
        val = v.decode("latin-1")
        if key in out and out[key].strip() != val.strip() and key:
            raise FcsReadError(f"{path}: keyword ${key} appears twice in TEXT with different values "
                               f"('{out[key][:30]}' and '{val[:30]}')")
        out[key] = val
    return out


def check_structure(path: Path) -> tuple[dict[str, str], fcsrepair.Layout | None]:
    """Check HEADER and TEXT before anything is read into memory; return the TEXT keywords.

    Offsets must lie inside the file, $PAR/$TOT/$DATATYPE/$BYTEORD/$MODE/$PnB must be present and
    supported, and the DATA segment must hold exactly $TOT events of $PnB bits (one byte of slack
    for writers known to be off by one). So a truncated transfer, an absurd $TOT or an offset
    past the end is a specific error, not a silently different number or a huge allocation.
    """
    size = path.stat().st_size
    if size > MAX_FCS_BYTES:
        raise FcsReadError(f"{path}: {size / 2**30:.1f} GiB is over the {MAX_FCS_BYTES / 2**30:.0f} GiB limit "
                           f"(gating.io.fcs.MAX_FCS_BYTES)")
    with open(path, "rb") as fh:
        head = fh.read(58).decode("latin-1")
        version = head[:6]
        if version not in ("FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2"):
            raise FcsReadError(f"{path}: unsupported version '{version}' in the HEADER (FCS2.0, 3.0, 3.1, 3.2 are read)")
        ts = _int(head[10:18], "the HEADER's TEXT start", path)
        te = _int(head[18:26], "the HEADER's TEXT end", path)
        for name, v in (("TEXT start", ts), ("TEXT end", te)):
            if not 0 <= v < size:
                raise FcsReadError(f"{path}: the HEADER's {name} ({v}) lies outside the file ({size} bytes): "
                                   f"truncated or corrupt")
        if te <= ts:
            raise FcsReadError(f"{path}: the HEADER's TEXT segment is empty or reversed ({ts}-{te})")
        fh.seek(ts)
        kw = parse_text(fh.read(te - ts + 1), path)
    for key in ("PAR", "TOT", "DATATYPE", "BYTEORD", "MODE"):
        if key not in kw:
            raise FcsReadError(f"{path}: required keyword ${key} is missing from TEXT")
    if _next_data(kw):
        return kw, None      # several data sets (e.g. Beckman .lmd): checked by the multi-data-set reader
    par = _int(kw["PAR"], "$PAR", path)
    tot = _int(kw["TOT"], "$TOT", path)
    if not 1 <= par <= 10_000:
        raise FcsReadError(f"{path}: $PAR = {par} parameters is not plausible (1 to 10000)")
    if tot < 0:
        raise FcsReadError(f"{path}: $TOT = {tot} is negative")
    dtype = kw["DATATYPE"].strip().upper()
    if dtype not in ("I", "F", "D"):
        raise FcsReadError(f"{path}: $DATATYPE '{kw['DATATYPE']}' is not supported (I, F or D; ASCII data is not read)")
    if kw["MODE"].strip().upper() != "L":
        raise FcsReadError(f"{path}: $MODE '{kw['MODE']}' is not list mode (L); histogram modes are not read")
    if kw["BYTEORD"].strip().replace(" ", "") not in _BYTEORDS:
        raise FcsReadError(f"{path}: $BYTEORD '{kw['BYTEORD']}' is not a byte order")
    bits = 0
    for n in range(1, par + 1):
        b = kw.get(f"P{n}B")
        if b is None:
            raise FcsReadError(f"{path}: $P{n}B (bits of parameter {n}) is missing")
        if f"P{n}DATATYPE" in kw and kw[f"P{n}DATATYPE"].strip().upper() != dtype:
            raise FcsReadError(f"{path}: parameter {n} has its own $P{n}DATATYPE ({kw[f'P{n}DATATYPE']}) unlike "
                               f"$DATATYPE {dtype}; mixed-type FCS 3.2 files are not read (they would be misread)")
        nb = _int(b, f"$P{n}B", path)
        if (dtype == "F" and nb != 32) or (dtype == "D" and nb != 64) or (dtype == "I" and not 1 <= nb <= 64):
            raise FcsReadError(f"{path}: $P{n}B = {nb} bits does not fit $DATATYPE {dtype}")
        bits += nb
    _int(head[26:34] or "0", "the HEADER's DATA start", path)
    _int(head[34:42] or "0", "the HEADER's DATA end", path)
    for key in ("BEGINDATA", "ENDDATA"):
        if key in kw:
            _int(kw[key] or "0", f"${key}", path)
    lay = None
    if tot and bits % 8 == 0:
        try:        # where DATA is, by evidence (HEADER, TEXT, where TEXT ends, $TOT x the event's bytes)
            lay = fcsrepair.read_layout(path, parse_text)
            fcsrepair.data_segment(lay)
        except fcsrepair.LayoutError as exc:
            raise FcsReadError(f"{path}: {exc}: truncated, or a wrong $TOT/$PAR/$PnB or offset") from exc
        except (ValueError, KeyError) as exc:
            raise FcsReadError(f"{path}: HEADER or TEXT is malformed ({type(exc).__name__}: {exc})") from exc
    return kw, lay


def _plausible(loaded: LoadedSample, path: Path) -> LoadedSample:
    """Refuse data no instrument produces (NaN/inf, |x| > 1e12): a misread, not numbers to gate.
    A sample its reader already found plausible is not scanned again."""
    if getattr(loaded.sample, "plausible", False):
        return loaded
    ev = loaded.sample.get_events(source="raw")
    if not within_plausible(ev):
        finite = np.isfinite(ev)          # something is wrong: find the channel to name it
        bad_col = None
        if not finite.all():
            bad_col = int(np.flatnonzero(~finite.all(axis=0))[0])
            what = "non-finite values (NaN or infinity)"
        else:
            big = np.abs(ev).max(axis=0) > MAX_PLAUSIBLE
            if big.any():
                bad_col = int(np.flatnonzero(big)[0])
                what = f"values up to {np.abs(ev[:, bad_col]).max():.3g}"
        if bad_col is not None:
            raise FcsReadError(f"{path}: channel {loaded.sample.pnn_labels[bad_col]} holds {what}, which no "
                               f"cytometer writes: a wrong $BYTEORD or $DATATYPE, or a corrupt DATA segment")
    return loaded
