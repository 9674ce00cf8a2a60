"""What one tube's steps need from the run, unpacked once where the run starts
(:meth:`cytomnt.run.config.AnalysisConfig.sample_setup`): each step then takes its own part."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gating.auto.engine import LearnedCuts

from cytomnt.inputs.hashing import sha256_file
from cytomnt.inputs.strategies import StrategyChoice
from cytomnt.sample.gate import GateSettings
from cytomnt.sample.metrics import MetricSettings


@dataclass(frozen=True)
class Identification:
    """How a tube is named and typed, and what of it may appear in the outputs."""

    manifest: dict = field(default_factory=dict)     # file name or path -> manifest entry
    sample_type: str | None = None                    # --sample-type, for tubes the manifest leaves open
    deidentify: bool = False
    identifying_keywords: tuple = ()
    keywords: tuple = ()                              # FCS keywords copied into samples.csv


@dataclass(frozen=True)
class SampleSetup:
    """A run's settings as a tube's steps take them."""

    strategy: StrategyChoice
    gating: GateSettings
    metrics: MetricSettings
    identification: Identification
    learned: LearnedCuts = field(default_factory=LearnedCuts)   # the run's cuts (control tube, batch, file)
    controls: dict = field(default_factory=dict)               # manifest control tube -> its LearnedCuts
    control_file: str | None = None                             # the run's control tube, as run.json names it
    spillover: str | None = None
    plots: bool = False
    strategy_label: str = "auto"                                # samples.csv's ``strategy``

    def learned_for(self, entry) -> LearnedCuts:
        """The cuts a sample uses: the run's, with its own manifest control tube's over them."""
        own = self.controls.get(entry.control) if entry is not None and entry.control else None
        return self.learned.merge(own) if own is not None else self.learned

    def control_name(self, entry) -> str:
        """The control tube behind a sample's cuts (its own from the manifest, else the run's)."""
        deid = self.identification.deidentify
        if entry is not None and entry.control:
            return "sha256:" + sha256_file(Path(entry.control))[:16] if deid else Path(entry.control).name
        return Path(self.control_file).name if self.control_file and not deid else str(self.control_file or "")
