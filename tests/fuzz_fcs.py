"""Fuzzing the FCS reader: mutated copies of valid generated files.

Each case is one mutation (truncation, flipped bytes in HEADER or TEXT, a wrong $PAR, $TOT,
$DATATYPE, $BYTEORD, $PnB, offsets past the end, an absurd $TOT, broken delimiters ...) and
must end, within the time limit, in either a read or a clean ``FcsReadError`` naming the file.
Anything else (another exception, a hang, a crash) is a failure.

    python -m tests.fuzz_fcs [--cases 10000] [--seed 1]        # the full run, figures printed

``tests/test_fuzz.py`` runs a few hundred cases of the same harness in the (slow) test suite.
"""
from __future__ import annotations

import argparse
import random
import re
import signal
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

KEYS = ("PAR", "TOT", "DATATYPE", "BYTEORD", "BEGINDATA", "ENDDATA", "P1B", "P2B", "P3R", "MODE", "NEXTDATA",
        "SPILLOVER", "P1N", "TIMESTEP")
ODD_VALUES = ("0", "-1", "1", "2", "3", "7", "99999999999999", "1e400", "NaN", "", " ", "abc", "4,3,2,1", "1,2",
              "1,2,3", "I", "D", "A", "F", "X", "64", "8", "16", "12", "0,0", "2,2", "L", "C", "U", "\x00", "ÿ")


def split_text(raw: bytes) -> tuple[int, int, bytes, int, int]:
    """TEXT start/stop from the HEADER, the TEXT bytes and the DATA offsets."""
    h = raw[:58].decode("latin-1")
    ts, te, ds, de = (int(h[i:i + 8].strip() or 0) for i in (10, 18, 26, 34))
    return ts, te, raw[ts:te + 1], ds, de


def mutate(base: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of a valid FCS file: (kind, mutated bytes)."""
    kind = rng.choice(["truncate", "flip_header", "flip_text", "keyword", "keyword_keep_offsets", "header_offsets",
                       "absurd_tot", "delimiter", "append_garbage", "zero_data", "flip_data", "duplicate_keyword"])
    b = bytearray(base)
    if kind == "truncate":
        return kind, bytes(b[:rng.randrange(0, len(b))])
    if kind == "flip_header":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(0, 58)] = rng.randrange(256)
        return kind, bytes(b)
    ts, te, text, ds, de = split_text(base)
    if kind == "flip_text":
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(ts, te + 1)] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "flip_data":
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(ds, de + 1)] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "append_garbage":
        return kind, bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    if kind == "zero_data":
        b[ds:de + 1] = bytes(de + 1 - ds)
        return kind, bytes(b)
    if kind == "header_offsets":
        field = rng.choice([10, 18, 26, 34])
        val = rng.choice([len(b) + rng.randint(1, 10**6), 0, 99999999, rng.randrange(0, len(b))])
        b[field:field + 8] = f"{val:>8}"[:8].encode()
        return kind, bytes(b)
    delim = text[:1]
    parts = text[1:].split(delim)
    if kind == "delimiter":
        text2 = bytes(text).replace(delim, rng.choice([b"|", b"//", b"", b"\x0c"]), rng.randint(1, 5))
        return kind, bytes(b[:ts]) + text2 + bytes(b[te + 1:])
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    idx = {p[0].decode("latin-1").upper().lstrip("$"): i for i, p in enumerate(pairs)}
    if kind == "duplicate_keyword":
        k = rng.choice(list(idx))
        pairs.append((pairs[idx[k]][0], rng.choice(ODD_VALUES).encode("latin-1")))
    else:
        key = "TOT" if kind == "absurd_tot" else rng.choice(KEYS)
        val = (rng.choice(["99999999999999", "4000000000", str(10**9), "-5"]) if kind == "absurd_tot"
               else rng.choice(ODD_VALUES + (str(rng.randint(0, 10**7)),)))
        name = ("$" + key).encode()
        if key in idx:
            pairs[idx[key]] = (pairs[idx[key]][0], val.encode("latin-1"))
        else:
            pairs.append((name, val.encode("latin-1")))
    new_text = delim + delim.join(k + delim + v for k, v in pairs) + delim
    if kind == "keyword_keep_offsets" or len(new_text) == len(text):
        # same offsets in HEADER and TEXT: the segments may now overlap or leave gaps
        return kind, bytes(b[:ts]) + new_text + bytes(b[te + 1:]) if len(new_text) <= len(text) else \
            bytes(b[:ts]) + new_text[:len(text)] + bytes(b[te + 1:])
    # consistent rewrite: new TEXT, data moved behind it, offsets updated in HEADER and TEXT
    data = bytes(b[ds:de + 1])
    for _ in range(3):
        nts = 58
        nte = nts + len(new_text) - 1
        nds, nde = nte + 1, nte + len(data)
        new_text = re.sub(rb"(\$BEGINDATA" + re.escape(delim) + rb")[^" + re.escape(delim) + rb"]*",
                          lambda m: m.group(1) + str(nds).encode(), new_text, flags=re.I)
        new_text = re.sub(rb"(\$ENDDATA" + re.escape(delim) + rb")[^" + re.escape(delim) + rb"]*",
                          lambda m: m.group(1) + str(nde).encode(), new_text, flags=re.I)
    header = bytearray(b[:58])
    for field, v in ((10, nts), (18, nte), (26, nds if nde < 10**8 else 0), (34, nde if nde < 10**8 else 0)):
        header[field:field + 8] = f"{v:>8}".encode()
    return kind, bytes(header) + new_text + data


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run(cases: int = 10_000, seed: int = 1, limit_s: float = 2.0, verbose: bool = True) -> dict:
    """Run the fuzz cases; returns the figures."""
    from cytomnt.synth import TubeSpec, write_tube
    from gating import FcsReadError, read_fcs
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz_fcs_"))
    bases = []
    for i, style in enumerate(("bd", "numbered")):
        p = tmp / f"base_{style}.fcs"
        write_tube(p, TubeSpec(events=500, style=style), 100 + i)
        bases.append((p.read_bytes(), read_fcs(p).sample.get_events(source="raw")))
    stats = Counter()
    by_kind: dict[str, Counter] = {}
    slowest = (0.0, "")
    crashes = []
    peak_mem = 0
    mem_by_kind: dict[str, int] = {}
    signal.signal(signal.SIGALRM, _alarm)
    f = tmp / "case.fcs"
    for n in range(cases):
        base, events = bases[n % 2]
        kind, data = mutate(base, rng)
        f.write_bytes(data)
        tracemalloc.start()
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, 10.0)
        outcome = ""
        try:
            s = read_fcs(f).sample
            ev = s.get_events(source="raw")
            outcome = "read_same" if ev.shape == events.shape and np.array_equal(ev, events) else "read_different"
        except FcsReadError as exc:
            outcome = "clean_error" if str(f) in str(exc) else "error_without_file_name"
        except Hang:
            outcome = "hang"
        except BaseException as exc:  # noqa: BLE001 - every other outcome is a finding
            outcome = "crash"
            crashes.append((kind, f"{type(exc).__name__}: {str(exc)[:150]}"))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peak_mem = max(peak_mem, peak)
        mem_by_kind[kind] = max(mem_by_kind.get(kind, 0), peak)
        if dt > slowest[0]:
            slowest = (dt, kind)
        if dt > limit_s and outcome != "hang":
            outcome = "slow"
        stats[outcome] += 1
        by_kind.setdefault(kind, Counter())[outcome] += 1
    figures = {"cases": cases, **dict(stats), "slowest_s": round(slowest[0], 3), "slowest_kind": slowest[1],
               "peak_traced_mib": round(peak_mem / 2**20, 1), "by_kind": {k: dict(v) for k, v in by_kind.items()},
               "crash_examples": crashes[:10]}
    if verbose:
        print(f"cases {cases}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
        print(f"slowest case {slowest[0]:.3f} s ({slowest[1]}); peak traced memory per case {peak_mem / 2**20:.1f} MiB")
        for k, v in sorted(by_kind.items()):
            print(f"  {k:<22} " + ", ".join(f"{a} {b}" for a, b in sorted(v.items())) +
                  f"  (peak {mem_by_kind.get(k, 0) / 2**20:.1f} MiB)")
        for c in crashes[:10]:
            print("  CRASH", c)
    return figures


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    run(a.cases, a.seed)
