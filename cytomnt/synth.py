"""Synthetic FCS files with known truth, deterministic by seed.

Each tube is simulated cell by cell: a cell type (debris, doublets, dead cells,
granulocytes, monocytes, B, NK, CD4 and CD8 T cells with CAR+ subsets, counting beads)
gives scatter and true marker intensities; the marker light then spills into other
detectors through a spillover matrix and picks up photon and electronic noise. The file
holds raw, uncompensated data plus ``$SPILLOVER``; a JSON of the true population counts
is written beside it (``<name>.truth.json``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gating import stable
from gating.io.files import write_fcs

#: Markers in fluorochrome order; each instrument style maps them to channels.
MARKERS = ("CD45", "VIA", "CD3", "CD4", "CD8", "CAR", "CD38", "CD19", "CD56")

#: Two instrument naming styles. Each entry: marker -> ($PnN, $PnS).
STYLES: dict[str, dict[str, tuple[str, str]]] = {
    # BD-like: detector named after the fluorochrome, marker alone in $PnS
    "bd": {
        "CD45": ("FITC-A", "CD45"),
        "CAR": ("PE-A", "BCMA-CAR"),
        "CD4": ("PerCP-Cy5.5-A", "CD4"),
        "CD8": ("PE-Cy7-A", "CD8"),
        "CD38": ("APC-A", "CD38"),
        "VIA": ("APC-Cy7-A", "Viability"),
        "CD3": ("BV421-A", "CD3"),
        "CD19": ("BV510-A", "CD19"),
        "CD56": ("BV605-A", "CD56"),
    },
    # Detector-numbered (CytoFLEX/Attune-like): $PnS holds marker and fluorochrome
    "numbered": {
        "CD3": ("B1-A", "CD3 BV421"),
        "CD19": ("B2-A", "CD19 BV510"),
        "CD56": ("B3-A", "CD56 BV605"),
        "CD45": ("C1-A", "CD45 FITC"),
        "CAR": ("D1-A", "BCMA-Fc PE"),
        "CD4": ("D2-A", "CD4 PerCP-Cy5.5"),
        "CD8": ("D3-A", "CD8 PE-Cy7"),
        "CD38": ("E1-A", "CD38 APC"),
        "VIA": ("E2-A", "Zombie NIR"),
    },
}
BEAD_CHANNEL = {"bd": ("PE-Cy5-A", "CountBright beads"), "numbered": ("D4-A", "Beads PE-Cy5")}

# Spillover between fluorochromes (source marker -> {target marker: fraction}); the
# matrix is written in detector terms for each style.
_SPILL = {
    "CD45": {"CAR": 0.22, "CD4": 0.06, "CD8": 0.01},           # FITC
    "CAR": {"CD4": 0.12, "CD8": 0.03, "CD45": 0.01},           # PE
    "CD4": {"CD8": 0.18, "CD38": 0.02},                        # PerCP-Cy5.5
    "CD8": {"VIA": 0.02, "CD4": 0.01},                         # PE-Cy7
    "CD38": {"VIA": 0.10, "CD4": 0.03},                        # APC
    "VIA": {"CD8": 0.04, "CD38": 0.02},                        # APC-Cy7
    "CD3": {"CD19": 0.14, "CD56": 0.02},                       # BV421
    "CD19": {"CD56": 0.09, "CD45": 0.02},                      # BV510
    "CD56": {"CAR": 0.03, "CD19": 0.02},                       # BV605
}

CHANNEL_RANGE = 262144.0


@dataclass(frozen=True)
class CellType:
    """Mean scatter and marker intensities (linear units) of one kind of event."""

    fsc: float
    ssc: float
    markers: dict
    autofluorescence: float = 150.0


CELL_TYPES: dict[str, CellType] = {
    "granulocyte": CellType(115e3, 135e3, {"CD45": 2500, "CD38": 400}, 400.0),
    "monocyte": CellType(118e3, 68e3, {"CD45": 7000, "CD4": 900, "CD38": 2500}, 300.0),
    "b_cell": CellType(68e3, 24e3, {"CD45": 9000, "CD19": 6000, "CD38": 1200}),
    "nk_cell": CellType(74e3, 30e3, {"CD45": 9000, "CD56": 5000, "CD38": 2000}),
    "t_cd4": CellType(70e3, 24e3, {"CD45": 10000, "CD3": 7000, "CD4": 5500, "CD38": 600}),
    "t_cd8": CellType(70e3, 25e3, {"CD45": 10000, "CD3": 7000, "CD8": 9000, "CD38": 900}),
    "t_dn": CellType(70e3, 25e3, {"CD45": 10000, "CD3": 7000, "CD38": 600}),
}


@dataclass
class TubeSpec:
    """What one synthetic tube holds. Fractions are of all events; T-cell subsets of T cells."""

    sample_type: str = "pb"
    events: int = 100_000
    style: str = "bd"
    car_frac_of_t: float = 0.2          # probability a T cell carries the CAR
    car_cd4_share: float = 0.5          # probability a CAR T cell is CD4 (of CD4+CD8)
    t_cd4_share: float = 0.65           # CD4 share among CAR-negative T cells (of CD4+CD8)
    t_dn_frac: float = 0.03             # double-negative share of T cells
    lymph_frac: float = 0.28            # lymphocytes among leukocytes
    t_frac_of_lymph: float = 0.72
    b_frac_of_lymph: float = 0.12
    debris_frac: float = 0.05
    doublet_frac: float = 0.03
    dead_frac: float = 0.04
    bead_events: int = 0
    patient_id: str = "P01"
    extra_keywords: dict = field(default_factory=dict)
    # stress knobs (defaults leave every earlier tube unchanged, bit for bit)
    car_mfi: float = 5000.0             # median CAR stain of CAR T cells (dim reagents: a few hundred)
    car_sigma: float = 0.5              # its log-normal spread (continuous stains: 1 or more)
    car_background: dict = field(default_factory=dict)   # cell type -> extra CAR-channel signal (all its cells)
    car_blasts: bool = False            # CAR T cells are activated blasts: FSC x1.3, SSC x1.6
    bead_scatter: tuple | None = None   # (FSC, SSC) of counting beads; default small and granular
    granulocyte_fsc: float | None = None  # granulocytes' FSC (e.g. near the top of the scale)
    viability: bool = True              # False: no viability channel in the file
    clog: tuple | None = None           # (start s, stop s): no events then; they all pass in the next second
    saturated_frac: float = 0.0         # share of events pinned at the top of FSC-A


def _lognormal(rng, mean, sigma, n):
    return mean * rng.lognormal(-0.5 * sigma**2, sigma, n)


def _leukocyte_labels(spec: TubeSpec, n: int, rng) -> tuple[np.ndarray, dict]:
    """Draw cell-type labels for ``n`` live leukocytes, and CAR flags for T cells."""
    if spec.sample_type == "csf":
        probs = {"granulocyte": 0.01, "monocyte": 0.14}
        lymph = 0.85
    else:
        lymph = spec.lymph_frac
        probs = {"granulocyte": (1 - lymph) * 0.88, "monocyte": (1 - lymph) * 0.12}
    t = lymph * spec.t_frac_of_lymph
    b = lymph * spec.b_frac_of_lymph
    probs.update({"b_cell": b, "nk_cell": lymph - t - b, "t": t})
    names = list(probs)
    p = np.array([probs[k] for k in names], dtype=float)
    labels = np.array(names, dtype=object)[rng.choice(len(names), size=n, p=p / p.sum())]
    is_t = labels == "t"
    n_t = int(is_t.sum())
    car = rng.random(n_t) < spec.car_frac_of_t
    dn = rng.random(n_t) < spec.t_dn_frac
    cd4_car = rng.random(n_t) < spec.car_cd4_share
    cd4_neg = rng.random(n_t) < spec.t_cd4_share
    cd4 = np.where(car, cd4_car, cd4_neg)
    sub = np.where(dn, "t_dn", np.where(cd4, "t_cd4", "t_cd8")).astype(object)
    labels[is_t] = sub
    car_all = np.zeros(n, dtype=bool)
    car_all[is_t] = car
    return labels, {"car": car_all}


def _cell_signals(labels, car, rng, spec: TubeSpec | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter (FSC-A, SSC-A) and true marker intensities for labelled cells."""
    spec = spec or TubeSpec()
    n = len(labels)
    fsc = np.empty(n)
    ssc = np.empty(n)
    marks = np.zeros((n, len(MARKERS)))
    for name, ct in CELL_TYPES.items():
        idx = np.flatnonzero(labels == name)
        if idx.size == 0:
            continue
        if name == "granulocyte" and spec.granulocyte_fsc is not None:
            ct = CellType(spec.granulocyte_fsc, ct.ssc, ct.markers, ct.autofluorescence)
        fsc[idx] = rng.normal(ct.fsc, ct.fsc * 0.09, idx.size)
        ssc[idx] = rng.normal(ct.ssc, ct.ssc * 0.16, idx.size)
        marks[idx] = _lognormal(rng, ct.autofluorescence, 0.4, idx.size)[:, None]
        for m, level in ct.markers.items():
            marks[idx, MARKERS.index(m)] += _lognormal(rng, level, 0.35, idx.size)
    ci = np.flatnonzero(car)
    marks[ci, MARKERS.index("CAR")] += _lognormal(rng, spec.car_mfi, spec.car_sigma, ci.size)
    for name, level in sorted(spec.car_background.items()):
        idx = np.flatnonzero(labels == name)
        marks[idx, MARKERS.index("CAR")] += _lognormal(rng, level, 0.6, idx.size)
    if spec.car_blasts:
        fsc[ci] *= 1.3
        ssc[ci] *= 1.6
    return fsc, ssc, marks


def spillover_matrix() -> np.ndarray:
    """The fluorochrome x detector spillover matrix (marker order), ones on the diagonal."""
    s = np.eye(len(MARKERS))
    for src, targets in _SPILL.items():
        for dst, frac in targets.items():
            s[MARKERS.index(src), MARKERS.index(dst)] = frac
    return s


def simulate(spec: TubeSpec, seed: int) -> tuple[list[str], list[str], np.ndarray, dict, dict]:
    """Simulate one tube: ($PnN list, $PnS list, events [n x channels], truth, keywords)."""
    rng = np.random.default_rng(seed)
    n = spec.events
    n_beads = spec.bead_events
    n_rest = n - n_beads
    n_debris = rng.binomial(n_rest, spec.debris_frac)
    n_doublet = rng.binomial(n_rest - n_debris, spec.doublet_frac)
    n_dead = rng.binomial(n_rest - n_debris - n_doublet, spec.dead_frac)
    n_live = n_rest - n_debris - n_doublet - n_dead

    labels, extra = _leukocyte_labels(spec, n_live, rng)
    fsc, ssc, marks = _cell_signals(labels, extra["car"], rng, spec)
    fsch = fsc * rng.normal(0.86, 0.02, n_live)

    # dead cells: shrunken leukocytes that take up the viability dye
    dl, dextra = _leukocyte_labels(spec, n_dead, rng)
    dfsc, dssc, dmarks = _cell_signals(dl, dextra["car"], rng, spec)
    dfsc *= 0.72
    dssc *= 1.15
    dmarks[:, MARKERS.index("VIA")] += _lognormal(rng, 25000, 0.4, n_dead)
    dfsch = dfsc * rng.normal(0.86, 0.02, n_dead)

    # doublets: two leukocytes passing together; area adds, height barely rises
    al, aex = _leukocyte_labels(spec, n_doublet, rng)
    bl, bex = _leukocyte_labels(spec, n_doublet, rng)
    af, as_, am = _cell_signals(al, aex["car"], rng, spec)
    bf, bs, bm = _cell_signals(bl, bex["car"], rng, spec)
    wfsc = af + bf
    wfsch = np.maximum(af, bf) * rng.normal(1.02, 0.04, n_doublet)
    wssc = as_ + bs
    wmarks = am + bm

    # debris: small particles piling up at the low end of scatter, no CD45
    efsc = rng.exponential(9000, n_debris) + 2000
    essc = rng.exponential(7000, n_debris) + 1000
    emarks = _lognormal(rng, 100, 0.6, n_debris)[:, None] * np.ones((1, len(MARKERS)))
    emarks[:, MARKERS.index("VIA")] += rng.exponential(3000, n_debris)
    efsch = efsc * rng.normal(0.86, 0.05, n_debris)

    # counting beads: small, bright in every fluorescence channel
    bead_fsc, bead_ssc = spec.bead_scatter or (18000, 60000)
    bfsc = rng.normal(bead_fsc, bead_fsc / 12, n_beads)
    bssc = rng.normal(bead_ssc, bead_ssc / 15, n_beads)
    bmarks = _lognormal(rng, 40000, 0.1, n_beads)[:, None] * np.ones((1, len(MARKERS)))
    bfsch = bfsc * rng.normal(0.86, 0.02, n_beads)

    fsc_all = np.concatenate([fsc, dfsc, wfsc, efsc, bfsc])
    fsch_all = np.concatenate([fsch, dfsch, wfsch, efsch, bfsch])
    ssc_all = np.concatenate([ssc, dssc, wssc, essc, bssc])
    true = np.concatenate([marks, dmarks, wmarks, emarks, bmarks])
    kind = np.concatenate([labels, np.full(n_dead, "dead"), np.full(n_doublet, "doublet"),
                           np.full(n_debris, "debris"), np.full(n_beads, "bead")]).astype(str)
    car_flag = np.concatenate([extra["car"], np.zeros(n - n_live, bool)])

    # detection: spillover, photon (shot) noise, electronic noise
    s = spillover_matrix()
    detected = stable.matmul(true, s)      # bit-identical on every CPU (no BLAS)
    detected += rng.normal(0, 1, detected.shape) * np.sqrt(4.0 * np.clip(detected, 0, None))
    detected += rng.normal(0, 60, detected.shape)
    scatter_noise = lambda v: v + rng.normal(0, 800, v.shape)  # noqa: E731
    cols = [np.clip(scatter_noise(fsc_all), 0, CHANNEL_RANGE - 1),
            np.clip(scatter_noise(fsch_all), 0, CHANNEL_RANGE - 1),
            np.clip(scatter_noise(ssc_all), 0, CHANNEL_RANGE - 1)]
    style = STYLES[spec.style]
    pnn = ["FSC-A", "FSC-H", "SSC-A"]
    pns = ["", "", ""]
    order = sorted(MARKERS, key=lambda m: style[m][0])
    if not spec.viability:
        order.remove("VIA")
    for m in order:
        pnn.append(style[m][0])
        pns.append(style[m][1])
        cols.append(np.clip(detected[:, MARKERS.index(m)], -CHANNEL_RANGE, CHANNEL_RANGE - 1))
    if n_beads:
        bname, blabel = BEAD_CHANNEL[spec.style]
        bead_sig = np.where(kind == "bead", _lognormal(rng, 50000, 0.1, n), _lognormal(rng, 120, 0.5, n))
        pnn.append(bname)
        pns.append(blabel)
        cols.append(bead_sig + rng.normal(0, 60, n))
    pnn.append("Time")
    pns.append("")
    events = np.column_stack(cols)
    perm = rng.permutation(n)
    events = events[perm]
    time = np.sort(rng.uniform(0, 600, n))
    if spec.clog is not None:            # a clog: nothing passes, then the held cells in a burst
        a, b = spec.clog
        held = (time >= a) & (time < b)
        time[held] = np.sort(b + (time[held] - a) / (b - a))
    if spec.saturated_frac:
        events[rng.random(n) < spec.saturated_frac, 0] = CHANNEL_RANGE - 1
    events = np.column_stack([events, time])
    kind = kind[perm]
    car_flag = car_flag[perm]

    det_names = [style[m][0] for m in MARKERS]
    spill_order = sorted((i for i, m in enumerate(MARKERS) if m in order), key=lambda i: det_names[i])
    s_det = s[np.ix_(spill_order, spill_order)]
    spill_kw = ",".join([str(len(spill_order))] + [det_names[i] for i in spill_order]
                        + [f"{v:.6g}" for v in s_det.ravel()])
    keywords = {"SPILLOVER": spill_kw, "CYT": f"cytomnt synthetic ({spec.style})",
                "SRC": "CSF" if spec.sample_type == "csf" else "Peripheral blood"}
    for i in range(len(pnn)):
        keywords[f"P{i + 1}R"] = str(int(CHANNEL_RANGE))
    keywords.update(spec.extra_keywords)
    truth = _truth(kind, car_flag, spec)
    return pnn, pns, events.astype(np.float32), truth, keywords


def _truth(kind: np.ndarray, car: np.ndarray, spec: TubeSpec) -> dict:
    counts = {k: int((kind == k).sum()) for k in
              ("debris", "doublet", "dead", "bead", "granulocyte", "monocyte", "b_cell", "nk_cell",
               "t_cd4", "t_cd8", "t_dn")}
    t_mask = np.isin(kind, ["t_cd4", "t_cd8", "t_dn"])
    car_t = int((t_mask & car).sum())
    t_cells = int(t_mask.sum())
    return {
        "spec": asdict(spec),
        "events": int(kind.size),
        "populations": counts,
        "singlets": int(kind.size - counts["doublet"]),
        "live_leukocytes": int(kind.size - counts["doublet"] - counts["debris"] - counts["dead"] - counts["bead"]),
        "lymphocytes": counts["b_cell"] + counts["nk_cell"] + t_cells,
        "t_cells": t_cells,
        "t_cd4": counts["t_cd4"],
        "t_cd8": counts["t_cd8"],
        "car_t": car_t,
        "car_cd4": int(((kind == "t_cd4") & car).sum()),
        "car_cd8": int(((kind == "t_cd8") & car).sum()),
        "car_dn": int(((kind == "t_dn") & car).sum()),
        "car_frac_of_t_true": spec.car_frac_of_t,
        "car_pct_of_t": 100.0 * car_t / t_cells if t_cells else None,
        "bead_events": counts["bead"],
    }


def write_tube(path: str | Path, spec: TubeSpec, seed: int) -> dict:
    """Simulate a tube, write ``path`` and ``path.truth.json``; return the truth."""
    pnn, pns, events, truth, keywords = simulate(spec, seed)
    truth["seed"] = seed
    write_fcs(path, pnn, pns, events, keywords)
    Path(str(path).removesuffix(".fcs") + ".truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True))
    return truth


def random_spec(rng: np.random.Generator, sample_type: str = "pb", style: str | None = None,
                events: int | None = None) -> TubeSpec:
    """A plausible patient tube: CAR share, CD4/CD8 pattern (CD4-, CD8-dominated or balanced),
    lymphocyte share, debris and dead cells all drawn at random."""
    pattern = rng.choice(["cd4", "cd8", "balanced"])
    ratio = {"cd4": rng.uniform(2.0, 5.0), "cd8": rng.uniform(0.15, 0.5), "balanced": rng.uniform(0.85, 1.2)}[pattern]
    style = style or str(rng.choice(list(STYLES)))
    if sample_type == "csf":
        return TubeSpec(sample_type="csf", events=int(events or rng.integers(300, 3000)), style=style,
                        car_frac_of_t=float(rng.uniform(0.02, 0.6)), car_cd4_share=float(ratio / (1 + ratio)),
                        t_cd4_share=float(rng.uniform(0.6, 0.75)), debris_frac=float(rng.uniform(0.02, 0.15)),
                        dead_frac=float(rng.uniform(0.02, 0.12)), doublet_frac=float(rng.uniform(0.0, 0.03)))
    return TubeSpec(sample_type=sample_type, events=int(events or 100_000), style=style,
                    car_frac_of_t=float(rng.choice([rng.uniform(0.01, 0.85), rng.uniform(0.002, 0.01)], p=[0.85, 0.15])),
                    car_cd4_share=float(ratio / (1 + ratio)), t_cd4_share=float(rng.uniform(0.45, 0.75)),
                    lymph_frac=float(rng.uniform(0.08, 0.5)), debris_frac=float(rng.uniform(0.01, 0.1)),
                    dead_frac=float(rng.uniform(0.01, 0.08)), doublet_frac=float(rng.uniform(0.01, 0.05)))
