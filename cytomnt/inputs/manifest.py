"""The manifest (which file is which patient, date and sample type) and sample-type inference."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from cytomnt.inputs import dates
from cytomnt.inputs.tables import read_table

SAMPLE_TYPES = ("pb", "csf", "bm", "product")
MANIFEST_COLUMNS = ("file", "sample_id", "patient_id", "collection_date", "sample_type")
OPTIONAL_COLUMNS = ("alc_k_per_ul", "control")
#: An ALC above this in a x10^3/uL column can only be cells/uL (peak ALCs are rarely above 50).
ALC_K_PER_UL_MAX = 100.0

# Keyword/file-name patterns for inference, checked in this order.
_TYPE_PATTERNS = (
    ("csf", re.compile(r"(?<![a-z0-9])(csf|liquor|cerebrospinal)(?![a-z0-9])", re.I)),
    ("bm", re.compile(r"(?<![a-z0-9])(bm|marrow|bone[ _-]?marrow)(?![a-z0-9])", re.I)),
    ("product", re.compile(r"(?<![a-z0-9])(product|infusion[ _-]?bag|drug[ _-]?product)(?![a-z0-9])", re.I)),
    ("pb", re.compile(r"(?<![a-z0-9])(pb|blood|peripheral[ _-]?blood|wb)(?![a-z0-9])", re.I)),
)


class ManifestError(ValueError):
    """The manifest is malformed; the message names the file, row and column."""


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    sample_id: str
    patient_id: str = ""
    collection_date: str = ""
    sample_type: str = ""
    alc_k_per_ul: float | None = None
    control: str = ""                   # the CAR-negative control tube for this sample (path)


def normalise_sample_type(value: str, where: str) -> str:
    v = str(value).strip().lower()
    aliases = {"blood": "pb", "peripheral blood": "pb", "marrow": "bm", "bone marrow": "bm", "cerebrospinal fluid": "csf"}
    v = aliases.get(v, v)
    if v not in SAMPLE_TYPES:
        raise ManifestError(f"{where}: sample_type '{value}' is not one of {', '.join(SAMPLE_TYPES)}")
    return v


def check_collection_date(value: str, where: str) -> str:
    """``value`` as an ISO date (any form of :mod:`cytomnt.inputs.dates`; empty stays empty), else :class:`ManifestError`.

    Checked when the manifest is read, so a bad date stops the run before any file is analysed,
    instead of failing later in the risk or report step. Day/month order is never guessed.
    """
    d = dates.parse_date(value, f"{where}, column collection_date", ManifestError)
    return d.isoformat() if d else ""


def read_manifest(path: str | Path) -> dict[str, ManifestEntry]:
    """Entries keyed by file name (and by the path as written), validated row by row."""
    path = Path(path)
    df = read_table(path, MANIFEST_COLUMNS, "manifest", ManifestError, OPTIONAL_COLUMNS)
    out: dict[str, ManifestEntry] = {}
    ids: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False), start=2):
        where = f"manifest {path}, row {i}"
        r = row._asdict()
        if not r["file"].strip():
            raise ManifestError(f"{where}: column 'file' is empty")
        sid = r["sample_id"].strip() or Path(r["file"]).stem
        if sid in ids:
            raise ManifestError(f"{where}: sample_id '{sid}' already used on row {ids[sid]}")
        ids[sid] = i
        stype = normalise_sample_type(r["sample_type"], where) if r["sample_type"].strip() else ""
        date = check_collection_date(r["collection_date"], where)
        alc = None
        if "alc_k_per_ul" in r and str(r["alc_k_per_ul"]).strip():
            try:
                alc = float(r["alc_k_per_ul"])
            except ValueError:
                raise ManifestError(f"{where}: alc_k_per_ul '{r['alc_k_per_ul']}' is not a number") from None
            if not math.isfinite(alc) or alc < 0:
                raise ManifestError(f"{where}: alc_k_per_ul {alc} must be a non-negative number (x10^3 cells/uL)")
            if alc > ALC_K_PER_UL_MAX:
                raise ManifestError(
                    f"{where}: alc_k_per_ul {alc:g} is not plausible in x10^3 cells/uL (it looks like cells/uL: "
                    f"{alc:g} cells/uL = {alc / 1000:g} x10^3/uL); convert the column")
        control = _control_path(str(r.get("control", "") or "").strip(), path, where)
        e = ManifestEntry(r["file"].strip(), sid, r["patient_id"].strip(), date, stype, alc, control)
        for key in {e.file, Path(e.file).name}:
            if key in out:
                raise ManifestError(f"{where}: file '{e.file}' is listed twice")
            out[key] = e
    return out


def _control_path(value: str, manifest: Path, where: str) -> str:
    """A control tube named in the manifest: as written, or relative to the manifest's folder."""
    if not value:
        return ""
    for cand in (Path(value), manifest.parent / value):
        if cand.is_file():
            return str(cand)
    raise ManifestError(f"{where}: control '{value}' is not a file (looked for it as written and in "
                        f"{manifest.parent}); name the sample's CAR-negative control tube (FMO, CAR-negative "
                        f"donor or pre-infusion sample)")


def infer_sample_type(metadata: dict, file_name: str) -> str | None:
    """Sample type from $SRC, tube name, $FIL or the file name; None when nothing says."""
    texts = [str(metadata.get(k, "")) for k in ("src", "tube name", "tube_name", "fil", "smno")] + [Path(file_name).stem]
    for text in texts:
        for stype, pat in _TYPE_PATTERNS:
            if pat.search(text.replace("_", " ")):
                return stype
    return None


def check_manifest(paths, manifest: dict, hashes: dict) -> list[str]:
    """Problems between a manifest and the files given, each naming the file or sample:
    MISSING_FILE, NOT_IN_MANIFEST, DUPLICATE_SAMPLE_ID, SAME_CONTENT (``hashes``: path -> sha256)."""
    from collections import Counter
    issues = []
    names = {Path(p).name for p in paths} | {str(p) for p in paths}
    if manifest:
        listed = {e.file: e for e in manifest.values()}
        for f, e in sorted(listed.items()):
            if f not in names and Path(f).name not in names:
                issues.append(f"MISSING_FILE: manifest lists '{f}' (sample {e.sample_id}) but it is not among the inputs")
        for p in paths:
            if Path(p).name not in manifest and str(p) not in manifest:
                issues.append(f"NOT_IN_MANIFEST: '{p}' is not listed in the manifest")
        ids = Counter(e.sample_id for e in {id(e): e for e in manifest.values()}.values())
        for sid, n in sorted(ids.items()):
            if n > 1:
                issues.append(f"DUPLICATE_SAMPLE_ID: sample id '{sid}' is used {n} times in the manifest")
    by_hash: dict[str, list[str]] = {}
    for p in paths:
        h = hashes.get(str(p))
        if h:
            by_hash.setdefault(h, []).append(str(p))
    for h, ps in sorted(by_hash.items()):
        if len(ps) > 1:
            issues.append(f"SAME_CONTENT: {', '.join(ps)} are the same file (sha256 {h[:12]}...)")
    return issues
