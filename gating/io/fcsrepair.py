"""FCS files that FlowIO misreads or refuses, read right: the DATA segment located by evidence,
integers of any byte width decoded and masked to ``$PnR``, padded keywords cleaned.

Such a file is decoded here and rebuilt in memory as a plain FCS 3.1 file (the same keywords,
32-bit integers or the original floats), which FlowIO then reads as usual: ``$PnE`` log
decoding, gains and the time step stay FlowIO's. Every repair is named in the notes; a file
whose layout cannot be settled by evidence is refused with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: A channel with more than this share of integer values above its ``$PnR`` is not what
#: ``$DATATYPE``/``$PnB`` say (e.g. float data labelled I): refused, never masked into range.
MAX_OUT_OF_RANGE = 0.01


class LayoutError(ValueError):
    """The file's layout contradicts itself in a way evidence cannot settle."""


@dataclass
class Layout:
    """HEADER and TEXT of the first data set: segment offsets and the keywords (keys stripped,
    upper case, without '$'), plus what was unusual about them."""

    size: int
    text: tuple[int, int]
    header_data: tuple[int, int]
    text_data: tuple[int, int] | None
    keywords: dict
    padded_keys: bool = False
    version: str = ""

    @property
    def events(self) -> int:
        return int(self.keywords["TOT"].strip())

    @property
    def params(self) -> int:
        return int(self.keywords["PAR"].strip())

    def bits(self) -> list[int]:
        return [int(self.keywords[f"P{i}B"].strip()) for i in range(1, self.params + 1)]


def read_layout(path: Path, parse_text) -> Layout:
    """HEADER offsets and TEXT keywords (``parse_text``: the TEXT parser of :mod:`gating.io.fcs`)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(58).decode("latin-1")
        ts, te = int(head[10:18]), int(head[18:26])
        ds = int(head[26:34].strip() or 0)
        de = int(head[34:42].strip() or 0)
        fh.seek(ts)
        raw = fh.read(te - ts + 1)
    kw = parse_text(raw, path)
    delim = raw[:1]
    padded = any(k != k.strip() for k in raw[1:].split(delim)[0::2][:200] if k)
    text_data = None
    if "BEGINDATA" in kw and "ENDDATA" in kw:
        text_data = (int(kw["BEGINDATA"].strip() or 0), int(kw["ENDDATA"].strip() or 0))
    return Layout(size, (ts, te), (ds, de), text_data, kw, padded, head[:6])


def data_segment(lay: Layout) -> tuple[tuple[int, int], list[str]]:
    """The DATA segment by evidence: it must start after TEXT, lie inside the file and hold
    exactly ``$TOT`` x the event's bytes (its end one byte long or past the file's end, as some
    writers have it, is tolerated). HEADER and TEXT offsets that agree are taken; when they
    disagree the one that fits is taken and named; when both or neither fit, the file is refused."""
    need = lay.events * sum(lay.bits()) // 8
    cands = {}
    if lay.header_data != (0, 0):
        cands["HEADER"] = lay.header_data
    if lay.text_data is not None and lay.text_data != (0, 0):
        cands["TEXT"] = lay.text_data
    if not cands:
        raise LayoutError("neither HEADER nor TEXT gives the DATA segment's offsets")

    def fits(seg) -> bool:
        start, end = seg
        length = end - start + 1
        return start > lay.text[1] and start + need <= lay.size and length in (need, need + 1, need - 1)

    good = {k: v for k, v in cands.items() if fits(v)}
    starts = {v[0] for v in good.values()}
    if len(starts) == 1:
        start = next(iter(starts))
        notes = []
        if len(cands) == 2 and len(set(cands.values())) == 2:
            wrong = next(k for k in cands if k not in good) if len(good) == 1 else ""
            notes.append(f"FCS_OFFSETS_FROM_{next(iter(good))}" if wrong else "FCS_OFFSET_OFF_BY_ONE")
        return (start, start + need - 1), notes
    if not good:
        raise LayoutError(f"no DATA offsets fit: {', '.join(f'{k} {v[0]}-{v[1]}' for k, v in cands.items())}, "
                          f"TEXT ends at {lay.text[1]}, {lay.events} events need {need} bytes, the file has "
                          f"{lay.size}")
    raise LayoutError(f"HEADER ({cands['HEADER'][0]}-{cands['HEADER'][1]}) and TEXT ({cands['TEXT'][0]}-"
                      f"{cands['TEXT'][1]}) DATA offsets disagree and both fit; the file is ambiguous")


def decode(buf: bytes, lay: Layout) -> tuple[np.ndarray, list[str]]:
    """Events x parameters from the DATA bytes: floats as stored; integers of any whole-byte width
    (8, 16, 24, 32, mixed) combined in ``$BYTEORD`` order and masked to ``$PnR``."""
    kw = lay.keywords
    n, par = lay.events, lay.params
    dtype = kw["DATATYPE"].strip().upper()
    big = big_endian(lay)
    if dtype in ("F", "D"):
        return np.frombuffer(buf, dtype=(">" if big else "<") + ("f4" if dtype == "F" else "f8")).reshape(n, par), []
    widths = [b // 8 for b in lay.bits()]
    if any(b % 8 for b in lay.bits()):
        raise LayoutError(f"integer widths {sorted(set(lay.bits()))} bits are not whole bytes")
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(n, sum(widths))
    out = np.zeros((n, par), dtype=np.uint64)
    notes, pos = [], 0
    for j, w in enumerate(widths):
        cols = rows[:, pos:pos + w].astype(np.uint64)
        order = range(w) if big else range(w - 1, -1, -1)
        v = np.zeros(n, dtype=np.uint64)
        for k in order:
            v = (v << np.uint64(8)) | cols[:, k]
        out[:, j] = v
        pos += w
    for j in range(par):
        bits = range_bits(lay, j)
        over = out_of_range(out[:, j], lay, j, bits)
        if over is not None and over.any():
            out[:, j] &= np.uint64((1 << bits) - 1)
            notes.append(f"FCS_MASKED_TO_RANGE:P{j + 1}")
    if set(widths) - {1, 2, 4, 8} or len(set(widths)) > 1:
        notes.append(f"FCS_INT_WIDTHS:{'/'.join(str(w * 8) for w in sorted(set(widths)))}")
    return out, notes


def big_endian(lay: Layout) -> bool:
    """Whether ``$BYTEORD`` says the most significant byte comes first (4,3,2,1; 2,1; 8,7,...)."""
    return lay.keywords["BYTEORD"].strip().replace(" ", "").startswith(("4,3", "2,1", "8,7"))


def range_bits(lay: Layout, j: int) -> int | None:
    """The bits parameter ``j`` (0-based) holds by its ``$PnR``; None when it is never masked (no
    range, or the time counter, which many writers let run past its ``$PnR``)."""
    kw = lay.keywords
    try:
        rng = float(kw.get(f"P{j + 1}R", "0").strip() or 0)
    except ValueError:
        raise LayoutError(f"$P{j + 1}R '{kw[f'P{j + 1}R'].strip()[:20]}' is not a number") from None
    if rng <= 0 or kw.get(f"P{j + 1}N", "").strip().lower() == "time":
        return None
    return max(1, math.ceil(math.log2(rng)))


def out_of_range(values: np.ndarray, lay: Layout, j: int, bits: int | None) -> np.ndarray | None:
    """Which integer ``values`` of parameter ``j`` reach past its ``range_bits`` (None: not
    checked); a LayoutError when more than MAX_OUT_OF_RANGE of them do: then they are not the
    integers the keywords declare (a wrong $DATATYPE, $PnB or $BYTEORD)."""
    if bits is None:
        return None
    over = values >= (1 << bits) if bits < 64 else np.zeros(values.shape, dtype=bool)
    if over.mean() > MAX_OUT_OF_RANGE:
        kw = lay.keywords
        raise LayoutError(f"parameter {j + 1} ({kw.get(f'P{j + 1}N', '?').strip()}): {100 * over.mean():.0f}% of "
                          f"its values exceed $P{j + 1}R = {float(kw[f'P{j + 1}R'].strip()):g}; the data are not the "
                          f"{lay.bits()[j]}-bit integers $DATATYPE/$P{j + 1}B declare")
    return over


def check_integers(values: np.ndarray, lay: Layout) -> None:
    """:func:`out_of_range`'s refusal over every parameter of events x parameters ``values`` (the
    channels whose largest value fits their range pass at a glance)."""
    if not values.size:
        return
    top = values.max(axis=0)
    for j in range(lay.params):
        bits = range_bits(lay, j)
        if bits is not None and bits < 64 and int(top[j]) >= (1 << bits):
            out_of_range(values[:, j], lay, j, bits)


def rebuild(lay: Layout, events: np.ndarray) -> bytes:
    """A plain FCS 3.1 file in memory: the same keywords, little-endian 32-bit integers (or the
    original floats), offsets that agree."""
    kw = {k: v for k, v in lay.keywords.items() if k}
    is_int = events.dtype.kind in "ui"
    if is_int:
        if events.size and int(events.max()) >= 2**32:
            raise LayoutError("integer values wider than 32 bits cannot be read")
        data = events.astype("<u4").tobytes()
        kw["DATATYPE"] = "I"
        for j in range(lay.params):
            kw[f"P{j + 1}B"] = "32"
    else:
        data = events.astype("<f4" if events.dtype.itemsize == 4 else "<f8").tobytes()
    kw["BYTEORD"] = "1,2,3,4"
    for k in ("NEXTDATA", "BEGINANALYSIS", "ENDANALYSIS", "BEGINSTEXT", "ENDSTEXT"):
        kw[k] = "0"

    def text_bytes(ds: int, de: int) -> bytes:
        kw["BEGINDATA"], kw["ENDDATA"] = str(ds), str(de)
        body = "".join(f"${k}|{str(v).replace('|', '||')}|" for k, v in kw.items() if not k.startswith("$"))
        return ("|" + body).encode("latin-1", errors="replace")

    ts, ds = 58, 0
    for _ in range(5):            # the offsets' digits change the TEXT's length: settle in a few passes
        text = text_bytes(ds, ds + len(data) - 1)
        new_ds = ts + len(text)
        if new_ds == ds:
            break
        ds = new_ds
    te, de = ds - 1, ds + len(data) - 1
    header = f"FCS3.1    {ts:>8}{te:>8}{ds if de < 10**8 else 0:>8}{de if de < 10**8 else 0:>8}{0:>8}{0:>8}"
    return header.encode() + text + data
