"""A tube cytomnt did not write and a strategy it did not make: 13 channels written by FlowIO
(``flowio.create_fcs``, float32, ``$SPILLOVER``, ``$TIMESTEP``) and a Gating-ML strategy written
by FlowKit with two polygons (singlets, lymphocytes), four rectangles on compensated, logicle-
transformed channels and a quadrant gate. Shared by the benchmarks and the tests (small sizes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

FLUORO = ["FITC-A", "PE-A", "PE-Cy7-A", "APC-A", "APC-H7-A", "BV421-A", "BV510-A", "BV605-A", "PerCP-A"]
CHANNELS = ["FSC-A", "FSC-H", "SSC-A", *FLUORO, "Time"]
MARKERS = ["", "", "", "CD3", "CAR", "CD8", "CD4", "CD45", "LD", "CD19", "CD14", "CD56", ""]


def write_tube(path: Path, events: int, seed: int) -> Path:
    """Lymphocytes, monocytes, debris and doublets; T cells CD4/CD8 with CAR+ among them; spillover."""
    import flowio
    rng = np.random.default_rng(seed)
    n = events
    kind = rng.choice(4, size=n, p=[0.6, 0.2, 0.12, 0.08])       # lymph, mono, debris, doublet
    fsc_a = np.where(kind == 0, rng.normal(60e3, 8e3, n), np.where(kind == 1, rng.normal(110e3, 12e3, n),
                     np.where(kind == 2, rng.normal(15e3, 6e3, n), rng.normal(150e3, 20e3, n))))
    fsc_h = np.where(kind == 3, fsc_a * rng.normal(0.55, 0.05, n), fsc_a * rng.normal(0.85, 0.04, n))
    ssc_a = np.where(kind == 0, rng.normal(25e3, 6e3, n), np.where(kind == 1, rng.normal(80e3, 15e3, n),
                     rng.normal(20e3, 10e3, n)))
    t_cell = (kind == 0) & (rng.random(n) < 0.7)
    cd4 = t_cell & (rng.random(n) < 0.6)
    car = t_cell & (rng.random(n) < 0.15)
    true = np.empty((n, len(FLUORO)))
    true[:, 0] = np.where(t_cell, rng.lognormal(8.5, 0.4, n), rng.normal(100, 200, n))      # CD3
    true[:, 1] = np.where(car, rng.lognormal(8.0, 0.5, n), rng.normal(80, 150, n))          # CAR
    true[:, 2] = np.where(t_cell & ~cd4, rng.lognormal(8.2, 0.4, n), rng.normal(60, 150, n))  # CD8
    true[:, 3] = np.where(cd4, rng.lognormal(7.8, 0.4, n), rng.normal(60, 150, n))          # CD4
    for j in range(4, len(FLUORO)):
        true[:, j] = rng.normal(200, 300, n) + (kind == 1) * rng.lognormal(7, 0.5, n)
    spill = np.eye(len(FLUORO))
    for a, b, v in ((0, 1, 0.12), (1, 2, 0.05), (2, 1, 0.02), (3, 4, 0.08), (5, 6, 0.1), (1, 3, 0.03)):
        spill[a, b] = v
    observed = true @ spill
    time = np.sort(rng.uniform(0, 60_000, n))
    data = np.column_stack([np.clip(fsc_a, 0, 262143), np.clip(fsc_h, 0, 262143), np.clip(ssc_a, 0, 262143),
                            observed, time]).astype(np.float32)
    spill_text = ",".join([str(len(FLUORO)), *FLUORO, *(f"{v:g}" for v in spill.ravel())])
    with open(path, "wb") as fh:
        flowio.create_fcs(fh, data.ravel(), CHANNELS, opt_channel_names=MARKERS,
                          metadata_dict={"SPILLOVER": spill_text, "TIMESTEP": "0.01"})
    return path


def write_strategy(path: Path) -> Path:
    """Gating-ML of the polygon strategy, written by FlowKit."""
    import flowkit as fk
    from flowkit import Dimension, gates
    g = fk.GatingStrategy()
    logicle = fk.transforms.LogicleTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0)
    g.add_transform("logicle", logicle)
    singlets = gates.PolygonGate("singlets", [Dimension("FSC-A", compensation_ref="uncompensated"),
                                              Dimension("FSC-H", compensation_ref="uncompensated")],
                                 [(20e3, 14e3), (250e3, 190e3), (250e3, 240e3), (20e3, 30e3)])
    g.add_gate(singlets, ("root",))
    lymph = gates.PolygonGate("lymphocytes", [Dimension("FSC-A", compensation_ref="uncompensated"),
                                              Dimension("SSC-A", compensation_ref="uncompensated")],
                              [(35e3, 5e3), (90e3, 5e3), (95e3, 45e3), (60e3, 55e3), (35e3, 40e3)])
    g.add_gate(lymph, ("root", "singlets"))

    def rect(name, channel, lo, parent):
        g.add_gate(gates.RectangleGate(name, [Dimension(channel, compensation_ref="FCS", transformation_ref="logicle",
                                                        range_min=lo)]), parent)
    rect("t_cells", "FITC-A", 0.55, ("root", "singlets", "lymphocytes"))
    rect("car_t", "PE-A", 0.55, ("root", "singlets", "lymphocytes", "t_cells"))
    rect("cd8_any", "PE-Cy7-A", 0.55, ("root", "singlets", "lymphocytes", "t_cells"))
    rect("cd4_any", "APC-A", 0.55, ("root", "singlets", "lymphocytes", "t_cells"))
    quad_dims = [fk.QuadrantDivider("cd4_div", "APC-A", "FCS", [0.55], transformation_ref="logicle"),
                 fk.QuadrantDivider("cd8_div", "PE-Cy7-A", "FCS", [0.55], transformation_ref="logicle")]
    quads = [fk.gates.Quadrant(f"q_{a}_{b}", ["cd4_div", "cd8_div"], [r4, r8])
             for a, r4 in (("cd4pos", (0.55, None)), ("cd4neg", (None, 0.55)))
             for b, r8 in (("cd8pos", (0.55, None)), ("cd8neg", (None, 0.55)))]
    g.add_gate(gates.QuadrantGate("cd4_cd8", quad_dims, quads), ("root", "singlets", "lymphocytes", "t_cells"))
    fk.export_gatingml(g, str(path))
    return path
