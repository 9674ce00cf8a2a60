"""Which gate of a user's strategy (Gating-ML, FlowJo) is T cells, CAR+, CD4, CD8.

``--gate-map`` takes ``key=gate`` pairs (comma separated) or a YAML file; a gate is named by
its name or by the end of its path (``CD4 T Cells/CD69+``). Keys not given are found by
common gate names. A CAR CD4/CD8 count with no gate of its own is the events in both the
CAR gate and the CD4/CD8 gate.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from gating.formats.strategy import Population, StrategyError, gml_id
from gating.io.yamlsafe import safe_load

#: gate-map key -> samples.csv count column
KEYS = {"singlets": "singlets", "live": "live", "lymphocytes": "lymphocytes", "t_cell": "t_cells",
        "car": "car_t", "cd4": "t_cd4", "cd8": "t_cd8", "car_cd4": "car_cd4", "car_cd8": "car_cd8",
        "beads": "beads"}

_DEFAULT_NAMES = {
    "singlets": ["singlets", "single cells", "singlet", "single"],
    "live": ["live", "live cells", "viable", "viable cells", "live singlets"],
    "lymphocytes": ["lymphocytes", "lymphs", "lymph", "lymphocyte"],
    "t_cell": ["t cells", "t_cells", "tcells", "cd3", "cd3+", "cd3+ t cells", "t", "cd3 t cells"],
    "car": ["car", "car+", "car t", "car t cells", "car+ t cells", "car_t", "cart", "bcma car", "bcma-car+"],
    "cd4": ["cd4", "cd4+", "cd4 t cells", "cd4+ t cells", "t_cd4", "cd4 t"],
    "cd8": ["cd8", "cd8+", "cd8 t cells", "cd8+ t cells", "t_cd8", "cd8 t"],
    "car_cd4": ["car_cd4", "car cd4", "car+ cd4+", "cd4+ car+", "car cd4+"],
    "car_cd8": ["car_cd8", "car cd8", "car+ cd8+", "cd8+ car+", "car cd8+"],
    "beads": ["beads", "counting beads", "countbright", "trucount"],
}


@functools.lru_cache(maxsize=4096)
def _norm(name: str) -> str:
    """Compare names as Gating-ML ids: 'CD69+ CD4 T Cells' equals its exported 'CD69pos_CD4_T_Cells'."""
    return gml_id(name).lower().replace("_", " ")


def parse_gate_map(spec: str | Path | dict | None) -> dict[str, str]:
    """``key=gate,key=gate``, a YAML file path, or a dict -> validated dict."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, dict):
        out = {str(k): str(v) for k, v in spec.items()}
    elif Path(str(spec)).suffix.lower() in (".yaml", ".yml") and Path(str(spec)).exists():
        data = safe_load(Path(str(spec)).read_text()) or {}
        if not isinstance(data, dict):
            raise StrategyError(f"gate map {spec}: expected a mapping of key: gate name")
        out = {str(k): str(v) for k, v in data.items()}
    else:
        out = {}
        for part in str(spec).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise StrategyError(f"gate map: '{part}' is not key=gate (keys: {', '.join(KEYS)})")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    bad = sorted(set(out) - set(KEYS))
    if bad:
        raise StrategyError(f"gate map: unknown key(s) {', '.join(bad)}; known keys are {', '.join(KEYS)}")
    return out


def _full_path(p: Population) -> str:
    return "/".join(p.path[1:] + (p.name,))


def _find(pops: list[Population], ref: str) -> list[Population]:
    ref_n = _norm(ref)
    exact = [p for p in pops if _norm(p.name) == ref_n]
    if exact:
        return exact
    return [p for p in pops if _norm(_full_path(p)).endswith(ref_n) and "/" in ref]


def _under(p: Population, anc: Population | None) -> bool:
    return anc is not None and anc.name in p.path and _full_path(p).startswith(_full_path(anc) + "/")


def resolve(pops: list[Population], user: dict[str, str], file: str = "<sample>") -> dict[str, Population]:
    """The population behind each gate-map key (keys without a match are left out)."""
    found: dict[str, Population] = {}
    for key, ref in user.items():
        hits = _find(pops, ref)
        if not hits:
            names = ", ".join(_full_path(p) for p in pops) or "(none)"
            raise StrategyError(f"{file}: gate map {key}='{ref}' matches no gate; the gates are {names}")
        if len(hits) > 1:
            raise StrategyError(f"{file}: gate map {key}='{ref}' matches several gates "
                                f"({', '.join(_full_path(p) for p in hits)}); give the path, e.g. parent/name")
        found[key] = hits[0]
    for key in ("singlets", "live", "lymphocytes", "t_cell", "car", "beads", "cd4", "cd8", "car_cd4", "car_cd8"):
        if key in found:
            continue
        names = {_norm(n) for n in _DEFAULT_NAMES[key]}
        hits = [p for p in pops if _norm(p.name) in names]
        car = found.get("car")
        if key in ("cd4", "cd8"):
            hits = [p for p in hits if not _under(p, car)]
        if key in ("car_cd4", "car_cd8"):
            sub = [p for p in pops if _norm(p.name) in {_norm(n) for n in _DEFAULT_NAMES[key[4:]]} and _under(p, car)]
            hits = hits + sub
        if len(hits) == 1:
            found[key] = hits[0]
    return found


def counts_from(pops: list[Population], user: dict[str, str], n_events: int, file: str = "<sample>") -> tuple[dict, list[str]]:
    """samples.csv counts from a user strategy's populations, and flags on how they were derived."""
    found = resolve(pops, user, file)
    counts: dict = {"events": n_events}
    flags: list[str] = []
    for key, col in KEYS.items():
        counts[col] = found[key].count if key in found else None
    car = found.get("car")
    if car is None and ("car_cd4" in found or "car_cd8" in found):
        mask = np.zeros(n_events, dtype=bool)
        for k in ("car_cd4", "car_cd8"):
            if k in found:
                mask |= found[k].membership
        counts["car_t"] = int(mask.sum())
        flags.append("CAR_T_FROM_SUBSETS")
    for sub, base in (("car_cd4", "cd4"), ("car_cd8", "cd8")):
        if sub not in found and car is not None and base in found:
            counts[KEYS[sub]] = int((car.membership & found[base].membership).sum())
    for key in ("t_cell", "car", "cd4", "cd8"):
        if key not in found and not (key == "car" and counts["car_t"] is not None):
            flags.append(f"GATE_UNMAPPED:{key}")
    # cytomnt's own acquisition-QC gate (a workspace it wrote, brought back): what it removed
    acquired = next((p for p in pops if p.name == "acquired" and tuple(p.path) == ("root",)), None)
    if acquired is not None:
        counts["qc_events_removed"] = n_events - acquired.count
    return counts, flags
