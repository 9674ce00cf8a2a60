"""Step 2 of a sample: who it is. Its id, patient and date (manifest), and its sample type
(manifest, ``--sample-type``, or inferred from keywords and the file name, flagged)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cytomnt.inputs.manifest import ManifestEntry, infer_sample_type
from cytomnt.sample.privacy import pseudonym


@dataclass(frozen=True)
class Identity:
    """A sample's id and its manifest entry (None when the manifest does not list it)."""

    sample_id: str
    entry: ManifestEntry | None


def identify(path: Path | None, name: str, manifest: dict, deidentify: bool, sha256: str | None) -> Identity:
    """Sample id from the manifest, else the file name (never ``$FIL``, which often repeats);
    when de-identifying, a hash-based pseudonym instead of the file name."""
    entry = manifest.get(name) or (manifest.get(str(path)) if path is not None else None)
    if entry is not None:
        return Identity(entry.sample_id, entry)
    if deidentify:
        return Identity(pseudonym(sha256 or ""), None)
    return Identity(Path(name).stem if path is not None else name, None)


def sample_type_of(entry: ManifestEntry | None, option: str | None, metadata: dict, name: str) -> tuple[str, str]:
    """(sample type, where it came from: manifest | option | inferred | unknown)."""
    if entry is not None and entry.sample_type:
        return entry.sample_type, "manifest"
    if option:
        return option, "option"
    inferred = infer_sample_type(metadata, name)
    return (inferred, "inferred") if inferred else ("unknown", "unknown")
