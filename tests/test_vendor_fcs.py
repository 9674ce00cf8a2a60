"""Every instrument's files read right, or refused with the reason: real files from many vendors
against an independent reader's numbers, and the layouts that fooled readers before."""
import shutil

import numpy as np
import pandas as pd
import pytest

from gating import FcsReadError, find_fcs_files, read_fcs
from gating.preprocess import compensation_for

from .conftest import FIXTURES, shared


def _used_dataset(notes) -> int:
    used = [n for n in notes if n.startswith("MULTI_DATASET")]
    return int(used[0].split("used_")[1]) if used else 1


@pytest.mark.slow
def test_vendor_files_give_the_independent_readers_numbers():
    d = shared("vendor_fcs")
    truth = pd.read_csv(d / "truth.csv")
    chans = pd.read_csv(d / "truth_channels.csv")
    checked = 0
    for f in sorted((d / "files").iterdir()):
        loaded = read_fcs(f)
        ds = _used_dataset(loaded.notes)
        t = truth[(truth.file == f.name) & (truth.dataset == ds)].iloc[0]
        ev = loaded.sample.get_events(source="raw")
        assert loaded.sample.event_count == t.n_events, f.name
        step = float(t.timestep) if pd.notna(t.timestep) else 1.0
        for c in chans[(chans.file == f.name) & (chans.dataset == ds)].itertuples():
            exp = np.array([c.scaled_min, c.scaled_max, c.scaled_mean]) * (step if str(c.name).lower() == "time" else 1)
            v = ev[:, c.index - 1]
            got = np.array([v.min(), v.max(), v.mean()])
            assert np.allclose(got, exp, rtol=1e-4, atol=1e-6), (f.name, c.name, got, exp)
        checked += 1
    assert checked == 12


def test_numbered_spillover_detectors_and_any_extension(tmp_path):
    d = shared("vendor_fcs") / "files"
    gallios = read_fcs(d / "cytoflow__Beckman Coulter - Gallios.LMD")
    assert "MULTI_DATASET:2:used_2" in gallios.notes
    assert compensation_for(gallios.sample).matrix is not None           # detectors '2,3,...' by number
    shutil.copy(d / "flowCore__0877408774.B08", tmp_path / "plate.B08")
    shutil.copy(FIXTURES / "csf_bd.fcs", tmp_path / "tube.001")
    (tmp_path / "notes.txt").write_text("not cytometry")
    found = {p.name for p in find_fcs_files([tmp_path])}
    assert found == {"plate.B08", "tube.001"}


def _fcs_bytes():
    return (FIXTURES / "csf_bd.fcs").read_bytes()


def _set_text(data: bytes, key: str, value: str) -> bytes:
    """Replace a keyword's value keeping the TEXT's length (padded with spaces)."""
    delim = data[int(data[10:18]):int(data[10:18]) + 1]
    k = b"$" + key.encode() + delim
    i = data.index(k) + len(k)
    j = data.index(delim, i)
    old = data[i:j]
    new = value.encode().ljust(len(old))
    assert len(new) == len(old)
    return data[:i] + new + data[j:]


def test_text_offsets_off_by_46_bytes_are_not_read(tmp_path):
    """A CyAn file's TEXT data offsets 46 bytes off, its HEADER right: the HEADER is taken, by
    evidence, and the numbers are the original's (before: shifted garbage, flagged only)."""
    data = _fcs_bytes()
    ds, de = int(data[26:34]), int(data[34:42])
    bad = _set_text(_set_text(data, "BEGINDATA", str(ds + 46)), "ENDDATA", str(de + 46))
    (tmp_path / "cyan.fcs").write_bytes(bad)
    got = read_fcs(tmp_path / "cyan.fcs")
    ref = read_fcs(FIXTURES / "csf_bd.fcs").sample.get_events(source="raw")
    assert np.array_equal(got.sample.get_events(source="raw"), ref)
    assert "FCS_OFFSETS_FROM_HEADER" in got.notes


def test_float_data_labelled_integer_is_refused(tmp_path):
    data = _set_text(_fcs_bytes(), "DATATYPE", "I")
    (tmp_path / "f2i.fcs").write_bytes(data)
    with pytest.raises(FcsReadError, match=r"f2i.fcs: parameter \d+ \(.*\): \d+% of its values exceed \$P\d+R"):
        read_fcs(tmp_path / "f2i.fcs")


def test_clog_and_saturation_are_removed_and_counted(tmp_path):
    """A clog (30 s without events, then a burst) and 1% of events pinned at the top of FSC: the
    segment and the saturated events are removed and counted, and the CAR share stays the clean
    tube's (the same cells otherwise)."""
    import cytomnt
    from cytomnt.synth import TubeSpec, write_tube
    spec = dict(events=80_000, car_frac_of_t=0.25)
    write_tube(tmp_path / "clean.fcs", TubeSpec(**spec), 6060)
    write_tube(tmp_path / "clog.fcs", TubeSpec(**spec, clog=(250.0, 280.0), saturated_frac=0.01), 6060)
    df = cytomnt.analyze([tmp_path / "clean.fcs", tmp_path / "clog.fcs"]).set_index("sample_id")
    clean, clog = df.loc["clean"], df.loc["clog"]
    assert "QC_FLOW_RATE" in clog.qc_flags and "QC_FLOW_RATE" not in clean.qc_flags
    burst = 80_000 * 30 / 600 * 0.9                        # about 4,000 held cells pass in one second
    assert clog.qc_events_removed - clean.qc_events_removed > burst + 0.9 * 800   # burst + ~800 saturated
    assert "QC_SATURATED" in clog.qc_flags
    diff = abs(clog.car_pct_of_t - clean.car_pct_of_t)
    assert diff < 0.5 * (clean.car_pct_of_t_ci_high - clean.car_pct_of_t_ci_low), diff


def test_scatter_by_role_stays_linear_and_log_channels_use_their_decoded_top(tmp_path):
    from cytomnt.sample.autogate import auto_gate
    from cytomnt.inputs.panel import Panel, channels_of
    from gating.preprocess import channel_top
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    panel = Panel.default()
    run = auto_gate(s, panel.resolve(channels_of(s, panel)), compensation_for(s))
    for role in ("fsc_a", "ssc_a", "time"):
        assert panel.resolve(channels_of(s, panel)).pnn(role) not in run.transforms, role
    astrios = read_fcs(shared("vendor_fcs") / "files" / "FlowCal__Data001.fcs")      # FACScan, $PnE 4,0
    meta = astrios.sample.get_metadata()
    logs = [i for i in range(len(astrios.sample.pnn_labels))
            if float(str(meta.get(f"p{i + 1}e", "0,0")).split(",")[0]) > 0]
    assert logs
    for i in logs:
        top = channel_top(astrios.sample, astrios.sample.pnn_labels[i])
        assert top >= astrios.sample.get_events(source="raw")[:, i].max() * 0.999
        assert top != float(meta[f"p{i + 1}r"])


@pytest.mark.slow
def test_inspect_every_vendor_file(capsys):
    """`cytomnt inspect` on each vendor file: no traceback, the data-set choice said, the file's
    own version and widths (not the rebuilt copy's)."""
    import json

    from cytomnt.cli import main
    files = sorted(str(f) for f in (shared("vendor_fcs") / "files").iterdir())
    assert main(["inspect", *files]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out and out.count("data set") >= len(files)
    assert "2 data sets; data set 2 read (FCS3.0, list mode)" in out
    assert main(["inspect", "--json", *files]) == 0
    doc = {d["file"].rsplit("/", 1)[-1]: d for d in json.loads(capsys.readouterr().out)}
    d003 = doc["FlowCal__Data003.fcs"]
    assert d003["fcs_version"] == "FCS3.0" and {c["bits"] for c in d003["channels"]} == {"24"}
    assert doc["cytoflow__Accuri - C6.fcs"]["reader_notes"][0] == "FCS_OFFSETS_FROM_HEADER"


def test_inspect_says_why_a_file_cannot_be_read(tmp_path, capsys):
    from cytomnt.cli import main
    (tmp_path / "x.fcs").write_bytes(b"FCS3.1" + b" " * 80)
    assert main(["inspect", str(tmp_path / "x.fcs")]) == 1
    out = capsys.readouterr().out
    assert "cannot be read" in out and "x.fcs" in out


def test_acquisition_qc_can_be_switched_off(tmp_path):
    import cytomnt
    from cytomnt.synth import TubeSpec, write_tube
    write_tube(tmp_path / "clog.fcs", TubeSpec(events=30_000, clog=(250.0, 280.0)), 6161)
    on = cytomnt.analyze([tmp_path / "clog.fcs"])
    off = cytomnt.analyze([tmp_path / "clog.fcs"], acquisition_qc=False)
    assert on.qc_events_removed[0] > 1000 and "QC_FLOW_RATE" in on.qc_flags[0]
    assert pd.isna(off.qc_events_removed[0]) and "QC_FLOW" not in off.qc_flags[0]
    assert "ACQUISITION_QC_OFF" in off.qc_flags[0]          # empty is not "nothing removed"
    assert off.singlets[0] > on.singlets[0]


def test_unnamed_parameter_keeps_names_and_data_aligned():
    """flowCore's .B08 leaves $P6N empty: FlowKit would drop the name and shift FL4-H and Time
    onto the wrong columns. Named P6, every name stays over its own data."""
    loaded = read_fcs(shared("vendor_fcs") / "files" / "flowCore__0877408774.B08")
    s = loaded.sample
    assert len(s.pnn_labels) == s.get_events(source="raw").shape[1] == 8
    assert s.pnn_labels[5] == "P6" and "FCS_UNNAMED_PARAMETER:P6" in loaded.notes
    assert s.get_events(source="raw")[:, s.get_channel_index("Time")].max() == pytest.approx(626, abs=1)


def test_wrong_tot_in_a_multi_data_set_file_is_refused(tmp_path):
    data = (shared("fcs_edge_cases") / "coulter.lmd").read_bytes()
    i = data.rindex(b"$TOT")               # the second (FCS 3.0) data set's $TOT
    delim = data[i - 1:i]
    j = data.index(delim, i + 5)
    tot = int(data[i + 5:j])
    new = str(tot + 1).encode().ljust(j - (i + 5))
    assert len(new) == j - (i + 5)
    (tmp_path / "bad.lmd").write_bytes(data[:i + 5] + new + data[j:])
    with pytest.raises(FcsReadError, match=r"bad.lmd: data set 2: \$TOT = \d+ events"):
        read_fcs(tmp_path / "bad.lmd")


@pytest.mark.slow
def test_files_read_without_flowkit_are_flowkits_samples_value_for_value():
    """Files are read without FlowKit (numpy for ordinary float data, FlowIO otherwise): on every
    real file of the shared data, each attribute gating uses and every raw event value equal
    FlowKit's own ``Sample`` of the same bytes (the file; the chosen data set of a multi-data-set
    file; the repaired bytes of a rebuilt one)."""
    from gating.io.events import EventSample
    files = [p for p in sorted(shared("").rglob("*")) if p.is_file() and p.read_bytes()[:3] == b"FCS"]
    read = 0
    for f in files:
        try:
            loaded = read_fcs(f)
        except FcsReadError:
            continue
        s = loaded.sample
        assert isinstance(s, EventSample), f.name
        read += 1
        ref = s.flowkit()
        for attr in ("pnn_labels", "pns_labels", "fluoro_indices", "scatter_indices", "time_index", "null_channels",
                     "event_count", "version", "metadata", "acquisition_date"):
            assert getattr(s, attr) == getattr(ref, attr), (f.name, attr)
        assert s.id == ref.id, f.name
        assert np.array_equal(s.get_events(source="raw"), ref.get_events(source="raw"), equal_nan=True), f.name
        assert s.channels.equals(ref.channels), f.name
    assert read >= 50, f"only {read} real files read"


def _write_fcs(path, keywords: dict, data: bytes) -> None:
    """A minimal FCS 3.1 file: HEADER, a '|'-delimited TEXT with the DATA offsets, DATA."""
    def text_for(begin: int, end: int) -> bytes:
        kw = {**keywords, "$BEGINDATA": str(begin), "$ENDDATA": str(end), "$BEGINANALYSIS": "0",
              "$ENDANALYSIS": "0", "$BEGINSTEXT": "0", "$ENDSTEXT": "0", "$NEXTDATA": "0"}
        return ("|" + "".join(f"{k}|{v}|" for k, v in kw.items())).encode("latin-1")
    text_start, begin = 58, 58
    while True:                                   # the offsets' own digits change TEXT's length
        text = text_for(begin, begin + len(data) - 1)
        if text_start + len(text) == begin:
            break
        begin = text_start + len(text)
    header = b"FCS3.1    " + b"".join(f"{v:>8}".encode() for v in (
        text_start, text_start + len(text) - 1, begin, begin + len(data) - 1, 0, 0))
    path.write_bytes(header + text + data)


@pytest.mark.parametrize("variant", ["float_le", "float_be", "double_le", "double_be", "timestep", "gain", "log"])
def test_numpy_read_equals_flowkits_for_every_layout(tmp_path, variant):
    """Byte orders, double data, $TIMESTEP, $PnG gain and $PnE log decades: the sample read
    without FlowKit has FlowKit's events and attributes, value for value; big-endian doubles,
    which FlowKit misreads, are read right."""
    import warnings

    import flowkit as fk
    rng = np.random.default_rng(hash(variant) % 2**32)
    n, par = 5000, 4
    ev = np.column_stack([rng.uniform(0, 262143, n), rng.normal(500, 300, n), rng.uniform(1, 1023, n),
                          np.sort(rng.uniform(0, 6000, n))])
    double = variant.startswith("double")
    big = variant.endswith("_be")
    dtype = np.dtype((">" if big else "<") + ("f8" if double else "f4"))
    kw = {"$BYTEORD": ("4,3,2,1" if big else "1,2,3,4") if not double else
          ("8,7,6,5,4,3,2,1" if big else "1,2,3,4,5,6,7,8"),
          "$DATATYPE": "D" if double else "F", "$MODE": "L", "$PAR": str(par), "$TOT": str(n)}
    for i, (name, marker) in enumerate([("FSC-A", ""), ("PE-A", "CD4"), ("FL1-H", "CD8"), ("Time", "")], 1):
        kw.update({f"$P{i}N": name, f"$P{i}B": "64" if double else "32", f"$P{i}R": "262144", f"$P{i}E": "0,0"})
        if marker:
            kw[f"$P{i}S"] = marker
    if variant == "timestep":
        kw["$TIMESTEP"] = "0.01"
    if variant == "gain":
        kw["$P2G"] = "2.5"
    if variant == "log":
        kw["$P3E"] = "4,1"
        kw["$P3R"] = "1024"
    f = tmp_path / f"{variant}.fcs"
    _write_fcs(f, kw, ev.astype(dtype).tobytes())
    loaded = read_fcs(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fk.Sample(str(f), sample_id=loaded.sample.id)
    s = loaded.sample
    if variant == "double_be":
        # FlowIO (and so FlowKit) read '8,7,6,5,4,3,2,1' in this machine's order: garbage; read right here
        assert not np.array_equal(ref.get_events(source="raw"), ev)
        assert np.array_equal(s.get_events(source="raw"), ev) and "FCS_REBUILT" in loaded.notes
        return
    assert np.array_equal(s.get_events(source="raw"), ref.get_events(source="raw")), variant
    for attr in ("pnn_labels", "pns_labels", "fluoro_indices", "scatter_indices", "time_index", "event_count"):
        assert getattr(s, attr) == getattr(ref, attr), (variant, attr)
    if variant == "timestep":
        assert s.get_events(source="raw")[:, 3].max() < 61      # stored units x 0.01
    if variant == "gain":
        assert np.allclose(s.get_events(source="raw")[:, 1], ev[:, 1].astype(dtype) / 2.5)


def test_a_sample_is_freed_as_soon_as_it_is_dropped(monkeypatch, tmp_path):
    """No reference cycle keeps a file's events alive after its analysis: with the cyclic garbage
    collector off, the sample and its event matrix are gone as soon as the pipeline returns
    (a batch's memory stays flat; a cycle once kept ~300 MiB of old events per worker)."""
    import gc
    import weakref

    import gating.io.fcs
    from cytomnt.run.config import make_config
    from cytomnt.run.batch import analyze_sample
    seen = []
    real = gating.io.fcs.read_fcs

    def spy(*a, **k):
        loaded = real(*a, **k)
        seen.extend([weakref.ref(loaded.sample), weakref.ref(loaded.sample.get_events(source="raw"))])
        return loaded
    cfg = make_config(plots=True)
    analyze_sample(FIXTURES / "blood_bd.fcs", cfg)   # first use: libraries' one-time imports and caches
    monkeypatch.setattr(gating.io.fcs, "read_fcs", spy)
    gc.collect()
    gc.disable()
    try:
        result = analyze_sample(FIXTURES / "blood_bd.fcs", cfg)
        assert result.row["status"] == "ok" and len(seen) == 2
        assert all(r() is None for r in seen)
    finally:
        gc.enable()


def test_reading_equals_flowio_on_files_written_by_flowio_flowkit_and_by_hand(tmp_path):
    """The fast reader's events are FlowIO's ``as_array(preprocess=True)`` to the bit, on files
    written by FlowIO (a $PnG gain, $TIMESTEP), by FlowKit (``Sample.export``), by fcswrite (FCS
    3.0, big-endian), and by hand in
    float64, big-endian, with $PnE log decades (FlowIO's writer cannot make those)."""
    import flowio
    import flowkit as fk

    from gating.io.events import EventSample

    from .conftest import write_float64_fcs
    rng = np.random.default_rng(24_2512)
    data = rng.uniform(-50, 1000, (3000, 4)).astype(np.float32)
    by_flowio = tmp_path / "flowio.fcs"
    with open(by_flowio, "wb") as fh:
        flowio.create_fcs(fh, data.ravel(), ["FSC-A", "FL1-A", "FL2-A", "Time"],
                          metadata_dict={"P2G": "2.5", "TIMESTEP": "0.01"})
    by_flowkit = tmp_path / "flowkit.fcs"
    fk.Sample(data.astype(np.float64), sample_id="k", channel_labels=["FSC-A", "FL1-A", "FL2-A", "Time"]) \
        .export(str(by_flowkit), source="raw")
    by_hand = write_float64_fcs(tmp_path / "f64.fcs", rng.uniform(0, 1024, (2000, 3)), ["FSC-A", "FL1-A", "Time"],
                                {"$P2E": "4,1", "$P2R": "1024", "$P1G": "0.5", "$TIMESTEP": "0.002"})
    swapped = tmp_path / "f64_big.fcs"                   # the same file in big-endian byte order
    raw = by_hand.read_bytes()
    cut = raw.index(b"1,2,3,4")
    start = int(raw[26:34])
    body = np.frombuffer(raw[start:], dtype="<f8").astype(">f8").tobytes()
    swapped.write_bytes(raw[:cut] + b"4,3,2,1" + raw[cut + 7:start] + body)
    import fcswrite
    by_fcswrite = tmp_path / "fcswrite.fcs"             # FCS 3.0, big-endian float32
    fcswrite.write_fcs(str(by_fcswrite), ["FSC-A", "FL1-A", "FL2-A", "Time"], data, compat_negative=False)
    for f in (by_flowio, by_flowkit, by_fcswrite, by_hand, swapped):
        s = read_fcs(f).sample
        assert isinstance(s, EventSample), f
        ref = flowio.FlowData(str(f)).as_array(preprocess=True)
        assert np.array_equal(s.get_events(source="raw"), ref), f.name
        assert s.get_events(source="raw").flags.f_contiguous, f.name   # each channel read in one sweep
    assert not np.array_equal(read_fcs(by_hand).sample.get_events(source="raw")[:, 1],
                              flowio.FlowData(str(by_hand)).as_array(preprocess=False)[:, 1])   # log applied


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "u1", "<u4", ">u4"])
def test_integer_files_are_read_in_place_as_flowio_reads_them(tmp_path, dtype):
    """Integer DATA of one width (8, 16, 32 bits, either byte order) is viewed by numpy in place
    and gives FlowIO's ``as_array(preprocess=True)`` to the bit: with FlowIO's masking of every
    channel to its ``$PnR`` (rounded up to a power of 2) when one range is narrower than ``$PnB``
    (a few values above it, as instruments write), a $PnG gain, $PnE log decades and $TIMESTEP."""
    import flowio

    from gating.io.events import EventSample

    from .conftest import write_list_fcs
    bits = 8 * np.dtype(dtype).itemsize
    top = min(2 ** bits, 2 ** 20)
    rng = np.random.default_rng(bits * 7 + (dtype[0] == ">"))
    events = rng.integers(0, top, (4000, 4), dtype=np.uint64)
    narrow = {"$P2R": str(top // 4)} if bits > 8 else {}               # 10-bit data in 16-bit words ...
    if narrow:
        events[:, 1] = rng.integers(0, top // 4, 4000)
        events[rng.choice(4000, 12, replace=False), 1] += top // 4       # ... a few past the range: masked
    plain = write_list_fcs(tmp_path / "plain.fcs", events, ["FSC-A", "FL1-A", "FL2-A", "Time"], dtype,
                           {**narrow, "$P1G": "2.0", "$P3E": "4,1", "$TIMESTEP": "0.01"})
    s = read_fcs(plain).sample
    ref = flowio.FlowData(str(plain)).as_array(preprocess=True)
    assert isinstance(s, EventSample) and s.get_events(source="raw").flags.f_contiguous   # the in-place path
    assert np.array_equal(s.get_events(source="raw"), ref)
    if narrow:
        assert s.get_events(source="raw")[:, 1].max() < top // 4 <= events[:, 1].max()
    assert not np.array_equal(s.get_events(source="raw")[:, 2], flowio.FlowData(str(plain)).as_array(preprocess=False)[:, 2])


def test_integers_that_are_not_what_the_keywords_say_are_refused_by_name(tmp_path):
    """16-bit integers whose values mostly exceed their $PnR (floats labelled integers, a wrong
    $PnB): the same one-line refusal on the in-place path as when the file is decoded."""
    from .conftest import write_list_fcs
    events = np.random.default_rng(5).integers(2000, 60000, (3000, 3), dtype=np.uint64)
    bad = write_list_fcs(tmp_path / "bad.fcs", events, ["FSC-A", "FL1-A", "Time"], "<u2", {"$P2R": "1024"})
    with pytest.raises(FcsReadError, match=r"bad.fcs: parameter 2 \(FL1-A\): \d+% of its values exceed \$P2R = 1024"):
        read_fcs(bad)


def test_implausible_values_are_judged_after_gains_and_named(tmp_path):
    """The reader judges plausibility on the values gated (after $PnG), scanning the file's own
    width: NaN or a value past 1e12 is refused naming its channel; 2e12 divided by a gain of 1000
    is a plausible 2e9; an ordinary file is scanned once, by the reader."""
    from .conftest import write_list_fcs
    rng = np.random.default_rng(77)
    ev = rng.uniform(0, 5e4, (2000, 3))
    ok = read_fcs(write_list_fcs(tmp_path / "ok.fcs", ev, ["FSC-A", "FL1-A", "Time"], "<f4")).sample
    assert ok.plausible and np.isfinite(ok.get_events(source="raw")).all()
    nan = ev.copy()
    nan[17, 1] = np.nan
    with pytest.raises(FcsReadError, match=r"nan.fcs: channel FL1-A holds non-finite values"):
        read_fcs(write_list_fcs(tmp_path / "nan.fcs", nan, ["FSC-A", "FL1-A", "Time"], "<f4"))
    big = ev.copy()
    big[5, 1] = 2e12
    with pytest.raises(FcsReadError, match=r"big.fcs: channel FL1-A holds values up to 2e\+12"):
        read_fcs(write_list_fcs(tmp_path / "big.fcs", big, ["FSC-A", "FL1-A", "Time"], "<f4"))
    gained = read_fcs(write_list_fcs(tmp_path / "gained.fcs", big, ["FSC-A", "FL1-A", "Time"], ">f4",
                                     {"$P2G": "1000"})).sample
    assert gained.get_events(source="raw")[5, 1] == pytest.approx(2e9, rel=1e-6)
    too_big = big.copy()
    too_big[6, 0] = 3e12                                    # no gain on FSC-A: still refused, by name
    with pytest.raises(FcsReadError, match=r"too_big.fcs: channel FSC-A holds values up to 3e\+12"):
        read_fcs(write_list_fcs(tmp_path / "too_big.fcs", too_big, ["FSC-A", "FL1-A", "Time"], "<f8",
                                {"$P2G": "1000"}))
    tiny_gain = ev.copy()
    tiny_gain[9, 1] = 4e7                                   # plausible as written, 4e13 once divided by 1e-6
    with pytest.raises(FcsReadError, match=r"tiny_gain.fcs: channel FL1-A holds values up to 4e\+13"):
        read_fcs(write_list_fcs(tmp_path / "tiny_gain.fcs", tiny_gain, ["FSC-A", "FL1-A", "Time"], "<f4",
                                {"$P2G": "0.000001"}))
