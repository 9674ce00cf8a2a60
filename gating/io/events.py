"""An FCS file's keywords, channels and raw events, read at disk speed.

FlowKit's ``Sample`` reads the DATA segment through Python's ``array`` module, converts it, and
shuffles a million indices for a plot subsample on every read; for a 1M-event tube that is most
of the reading time. :class:`EventSample` has the attributes and methods of ``flowkit.Sample``
that gating needs, with the same values: the TEXT is parsed by FlowIO (FlowKit's own parser),
the events are FlowIO's ``as_array`` pre-processing (gain, log and time scaling, the same
expressions, and FlowIO's masking of integers to ``$PnR``) applied to the DATA segment decoded by
numpy in one pass from the page cache. Ordinary float, double and single-width integer files take
this path (see :func:`gating.io.fcs.read_fcs`); :meth:`EventSample.flowkit` gives FlowKit's own ``Sample`` of
the same events where a FlowKit call needs one.
"""
from __future__ import annotations

import functools
import mmap
import warnings
from pathlib import Path

import numpy as np

from gating.parallel import over_row_shares

#: $BYTEORD values read here, with the byte order FlowIO gives them (others go to FlowIO itself).
NUMPY_BYTEORDER = {"1,2,3,4": "<", "4,3,2,1": ">", "1,2": "<", "2,1": ">"}


class EventSample:
    """``flowkit.Sample``'s reading attributes (``pnn_labels``, ``pns_labels``,
    ``fluoro_indices``, ``scatter_indices``, ``time_index``, ``null_channels``, ``event_count``,
    ``metadata``, ``version``, ``id``) and methods (``get_events(source="raw")``,
    ``get_metadata``, ``get_channel_index``), from a FlowIO TEXT-only parse and numpy events."""

    def __init__(self, flow_data, events: np.ndarray, sample_id: str, path: Path, flowkit_sample=None):
        self._flow_data = flow_data
        self._path = Path(path)
        # no reference back to self (a cycle would keep the events alive until the cyclic GC ran)
        self._make_flowkit = flowkit_sample or functools.partial(flowkit_read, self._path, sample_id)
        self._raw = events
        self.id = sample_id
        self.version = flow_data.version
        self.event_count = int(events.shape[0])
        self.null_channels = flow_data.null_channels
        self.pnn_labels = flow_data.pnn_labels
        self.pns_labels = flow_data.pns_labels
        self.fluoro_indices = flow_data.fluoro_indices
        self.scatter_indices = flow_data.scatter_indices
        self.time_index = flow_data.time_index
        self.metadata = flow_data.text
        self.current_filename = self._path.name
        self.original_filename = self.metadata.get("fil", self._path.name)
        self.acquisition_date = self.metadata.get("date")
        self._flowkit = None
        self.plausible = False      # True: the reader found every value finite and within MAX_PLAUSIBLE

    def __repr__(self) -> str:
        return f"EventSample(v{self.version}, {self.id}, {len(self.pnn_labels)} channels, {self.event_count} events)"

    @property
    def channels(self):
        """The channel table as FlowKit builds it (channel_number, pnn, pns, png, pne, pnr)."""
        import pandas as pd
        ch = pd.DataFrame.from_dict(self._flow_data.channels, orient="index").sort_index()
        ch.insert(0, "channel_number", ch.index)
        return ch.reset_index(drop=True)

    def get_metadata(self) -> dict:
        return self.metadata

    def get_events(self, source: str = "raw") -> np.ndarray:
        """The raw (uncompensated, untransformed) events, events x channels, float64; the array
        itself, not a copy, as FlowKit returns it."""
        if source != "raw":
            return self.flowkit().get_events(source=source)
        return self._raw

    def get_channel_index(self, channel_label_or_number) -> int:
        if isinstance(channel_label_or_number, str):
            return self.pnn_labels.index(channel_label_or_number)
        if isinstance(channel_label_or_number, int):
            if channel_label_or_number < 1:
                raise ValueError(f"Channel numbers are indexed at 1, got {channel_label_or_number}")
            return channel_label_or_number - 1
        raise ValueError("x_label_or_number must be a label string or channel number")

    def flowkit(self):
        """FlowKit's own ``Sample`` of the same data (built by FlowKit once, on first use)."""
        if self._flowkit is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._flowkit = self._make_flowkit()
        return self._flowkit

    @classmethod
    def from_flow_data(cls, fd, sample_id: str, path: Path, flowkit_sample, keep_events: bool = False) -> "EventSample":
        """A sample of a data set FlowIO has read, with FlowIO's pre-processing (what FlowKit's
        ``Sample`` does with it); ``flowkit_sample()`` builds FlowKit's own from the same bytes.
        FlowIO's copy of the events is dropped unless ``flowkit_sample`` needs ``fd`` whole."""
        events = fd.as_array(preprocess=True)
        if not keep_events:
            fd.events = None
        return cls(fd, events, sample_id, path, flowkit_sample)


def flowkit_read(path: Path, sample_id: str, **kwargs):
    """FlowKit's own ``Sample`` of a file (``kwargs``: its reader options)."""
    import flowkit as fk
    return fk.Sample(str(path), sample_id=sample_id, **kwargs)


def flowkit_sample(sample):
    """FlowKit's ``Sample`` for ``sample`` (itself when it is one already)."""
    return sample.flowkit() if isinstance(sample, EventSample) else sample


def read_plain_events(path: Path, sample_id: str, data_start: int, tot: int) -> EventSample | None:
    """An ordinary FCS file (float, double, or integers of one width: 8, 16 or 32 bits) as an
    :class:`EventSample`; None when it is not one (mixed integer widths, an unusual byte order, a
    DATA segment that is not exactly $TOT events, a keyword FlowIO reads otherwise): those are
    read by FlowIO as before."""
    import flowio
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _read(flowio.FlowData(str(path), only_text=True), path, sample_id, data_start, tot)
    except Exception:  # noqa: BLE001 - a keyword FlowIO cannot take: the FlowIO path names the problem
        return None


def _read(fd, path: Path, sample_id: str, data_start: int, tot: int) -> EventSample | None:
    text = fd.text
    dtype_code = str(text.get("datatype", "")).strip().upper()
    order = NUMPY_BYTEORDER.get(str(text.get("byteord", "")))
    if order is None or fd.event_count != tot or fd.null_channels:
        return None
    par = fd.channel_count
    masks = None
    if dtype_code in ("F", "D"):
        dtype = np.dtype(order + ("f4" if dtype_code == "F" else "f8"))
    elif dtype_code == "I":
        plan = integer_plan(text, par, order)
        if plan is None:
            return None
        dtype, masks = plan
    else:
        return None
    # the DATA segment decoded once, straight from the page cache into float64 (no read buffer)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if data_start + tot * par * dtype.itemsize > len(mm):
            return None
        view = np.frombuffer(mm, dtype=dtype, count=tot * par, offset=data_start).reshape(tot, par)
        events = column_major(view, masks)
        # integers of 8 to 32 bits are finite and below 2^32; floats are checked in their file's
        # own width (half the bytes of the float64 events for float32 DATA)
        source_plausible = dtype.kind == "u" or within_plausible(view)
        del view
    changed = preprocess(fd, events)
    if changed is None:
        return None
    sample = EventSample(fd, events, sample_id, path)
    sample.plausible = source_plausible and all(within_plausible(events[:, i]) for i in changed)
    return sample


def integer_plan(text: dict, par: int, order: str) -> tuple[np.dtype, np.ndarray | None] | None:
    """How FlowIO reads integer DATA of one width (8, 16, 32 bits): the unsigned type, and the
    per-channel masks it applies to every channel when any ``$PnR`` (rounded up to a power of 2)
    holds fewer bits than ``$PnB`` (None: no masking). None: a file FlowIO reads another way
    (mixed widths) or refuses (a ``$PnR`` that is not an integer, a mask wider than the data)."""
    try:
        widths = {int(text[f"p{i}b"]) for i in range(1, par + 1)}
        ranges = [_next_power_of_2(int(text[f"p{i}r"])) for i in range(1, par + 1)]
    except (KeyError, ValueError):
        return None
    if len(widths) != 1 or next(iter(widths)) not in (8, 16, 32):
        return None
    bits = next(iter(widths))
    dtype = np.dtype(order + f"u{bits // 8}")
    if not any(2 ** bits > r for r in ranges):
        return dtype, None
    if any(r - 1 > 2 ** bits - 1 for r in ranges):      # FlowIO's mask array would not hold it
        return None
    return dtype, np.array([r - 1 for r in ranges], dtype=dtype.newbyteorder("="))


def _next_power_of_2(x: int) -> int:
    """FlowIO's rounding of ``$PnR`` for masking."""
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


#: Events converted per block of rows (the block's source stays in cache while it is spread over the columns).
_BLOCK_ROWS = 1 << 16


def column_major(view: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """``view`` (events x channels, optionally ANDed with per-channel integer ``masks``) as float64
    in column-major order: each channel one contiguous run of memory, so the per-channel work
    (compensation, gates, statistics) reads it in one sweep instead of one cache line per event.
    The values and indexing are the same as row-major."""
    events = np.empty(view.shape, dtype=np.float64, order="F")

    def convert(first: int, last: int) -> None:         # one share of the rows per thread
        for start in range(first, last, _BLOCK_ROWS):
            stop = min(last, start + _BLOCK_ROWS)
            block = view[start:stop]
            events[start:stop] = block if masks is None else block & masks
    over_row_shares(convert, view.shape[0], _BLOCK_ROWS)
    return events


def preprocess(fd, events: np.ndarray) -> list[int] | None:
    """FlowIO's ``as_array(preprocess=True)``, in place on the float64 events and with its very
    expressions (so the values are FlowIO's to the bit, tested): the time channel times
    $TIMESTEP, $PnE log decades to linear, division by $PnG. Returns the columns it changed;
    None: a keyword only FlowIO's own reading should judge (it names the problem)."""
    text = fd.text
    changed = []
    if "timestep" in text and fd.time_index is not None:
        try:
            time_step = float(text["timestep"])
        except ValueError:
            if str(text["timestep"]).strip():
                return None
            time_step = 1.0
        events[:, fd.time_index] *= time_step         # in place: the same single product
        changed.append(fd.time_index)
    for chan_num, chan in fd.channels.items():
        i = chan_num - 1
        decades, log0 = chan["pne"]
        if decades > 0:
            events[:, i] = (10 ** (decades * events[:, i] / chan["pnr"])) * log0
            changed.append(i)
        gain = chan["png"]
        if gain != 1.0 and gain != 0:
            events[:, i] = events[:, i] / gain
            changed.append(i)
    return sorted(set(changed))


#: No cytometer writes values this large; such values mean a wrong $BYTEORD or $DATATYPE.
MAX_PLAUSIBLE = 1e12


def within_plausible(values: np.ndarray) -> bool:
    """Every value finite and within +-MAX_PLAUSIBLE (True when there are none)."""
    if not values.size:
        return True
    lo, hi = float(values.min()), float(values.max())
    return bool(np.isfinite(lo) and np.isfinite(hi) and max(-lo, hi) <= MAX_PLAUSIBLE)
