"""De-identification: which FCS keywords identify a person, and scrubbing them from outputs.

FCS TEXT segments often carry patient names, record numbers and operators. cytomnt never
copies keywords into its tables, reports or Gating-ML; with ``--deidentify`` it also keeps
file names and paths out of every output (sample ids come from the manifest, or a hash
pseudonym), scrubs identifying values from error messages, and exports FCS files with a
whitelist of keywords only.
"""
from __future__ import annotations

import re
from pathlib import Path

#: Keywords whose values may identify a patient or an operator (compared without '$', any case).
IDENTIFYING_KEYWORDS = (
    "$SRC", "$SMNO", "$OP", "$FIL", "$COM", "$EXP", "$PROJ", "$CELLS", "$DATE", "$BTIM", "$ETIM",
    "$LAST_MODIFIER", "$LAST_MODIFIED", "$INST", "$PLATEID", "$PLATENAME", "$WELLID", "$CARRIERID",
    "$LOCATIONID", "$ORIGINALITY",
    "PATIENT ID", "PATIENT_ID", "PATIENTID", "PATIENT NAME", "PATIENT", "NAME", "SUBJECT", "SUBJECT ID", "MRN",
    "MEDICAL RECORD", "DOB", "DATE OF BIRTH", "BIRTHDATE", "SAMPLE ID", "SAMPLE NAME", "SPECIMEN", "SPECIMEN ID",
    "ACCESSION", "CASE", "CASE NUMBER", "TUBE NAME", "EXPERIMENT NAME", "OPERATOR", "USER", "CREATOR", "FILENAME",
    "GUID", "ORIGINALGUID",
)
REDACTED = "[redacted]"


def normalise(key: str) -> str:
    return key.strip().lstrip("$").upper().replace("_", " ")


def keyword_values(metadata: dict, keywords) -> dict[str, str]:
    """The values of ``keywords`` (as the user wrote them: '$DATE', 'TUBE NAME') in a sample's
    TEXT, matched as FlowKit stores keys (lower case, no '$'); '' when the file has none."""
    have = {normalise(str(k)): str(v).strip() for k, v in metadata.items()}
    return {k: have.get(normalise(k), "") for k in keywords}


def read_keyword_list(path: str | Path) -> tuple[str, ...]:
    """A keyword list file: one keyword per line, '#' comments; extends the default list."""
    extra = [ln.split("#", 1)[0].strip() for ln in Path(path).read_text().splitlines()]
    return tuple(dict.fromkeys(list(IDENTIFYING_KEYWORDS) + [e for e in extra if e]))


def identifying_values(metadata: dict, keywords=IDENTIFYING_KEYWORDS) -> list[str]:
    """Values of the identifying keywords in a sample's TEXT (FlowKit lower-cases keys, drops '$')."""
    wanted = {normalise(k) for k in keywords}
    vals = []
    for k, v in metadata.items():
        if normalise(str(k)) in wanted and str(v).strip():
            vals.append(str(v).strip())
    return vals


def pseudonym(sha256: str) -> str:
    """A stable sample id that says nothing about the patient: 'S-' and 12 hex digits of the content hash."""
    return f"S-{sha256[:12]}"


def scrub(text: str, secrets, replacement: str = REDACTED) -> str:
    """``text`` with every secret (longest first; case-insensitive) replaced."""
    if not text:
        return text
    for s in sorted({str(x) for x in secrets if x and len(str(x)) >= 2}, key=len, reverse=True):
        text = re.sub(re.escape(s), replacement, text, flags=re.IGNORECASE)
    return text


def path_secrets(path: str | Path) -> list[str]:
    """A file's full path, name and stem: all possibly identifying."""
    p = Path(path)
    return [str(p), str(p.resolve()), p.name, p.stem]
