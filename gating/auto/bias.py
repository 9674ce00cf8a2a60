"""Do pre-gates bias a marker call? For each gate on the way to a target population (singlets,
debris, live, lymphocytes...), the share of marker-positive and of marker-negative target cells
it removes.

Positive and negative target cells are judged on every event with the target's and the
markers' own gates (their parents ignored), so a cell a pre-gate removed is still seen. A
pre-gate that removes positives preferentially (activated CAR T cells are large blasts) biases
the count, whatever it does to the cells as a whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gating.auto.build import StrategyBuilder

#: A pre-gate removing this many percentage points more of the positives than of the negatives
#: (with enough positives to tell) is flagged. Judged without pre-gates, "positives" also hold some
#: autofluorescent myeloid cells that a scatter gate rightly removes (up to ~10 points on generated
#: blood); a lymphocyte gate clipping activated blasts removed ~50 points more (real files).
MAX_EXCESS_PCT = 20.0
MIN_POSITIVES = 20


@dataclass(frozen=True)
class PregateEffect:
    """What one pre-gate removes of the target's marker-positive and marker-negative cells that
    reach it (its parent's events)."""

    gate: str
    positives_in: int
    positives_removed: int
    negatives_in: int
    negatives_removed: int

    @property
    def removed_positive_pct(self) -> float:
        return 100.0 * self.positives_removed / self.positives_in if self.positives_in else float("nan")

    @property
    def removed_negative_pct(self) -> float:
        return 100.0 * self.negatives_removed / self.negatives_in if self.negatives_in else float("nan")

    @property
    def biased(self) -> bool:
        """Removes positives preferentially (by more than ``MAX_EXCESS_PCT`` points)."""
        return (self.positives_in >= MIN_POSITIVES and
                self.removed_positive_pct - self.removed_negative_pct > MAX_EXCESS_PCT)


def flagged(effects: list[PregateEffect], doublet_gates: tuple[str, ...] = ()) -> list[str]:
    """Gates that remove positives preferentially. A doublet gate is left out: doublets are brighter
    in every channel, so they look marker-positive and are rightly removed; its figures stay an
    upper bound on its bias (judge it on known truth, e.g. generated blasts)."""
    return [e.gate for e in effects if e.biased and e.gate not in doublet_gates]


def pregate_effects(b: StrategyBuilder, target: str, positives: list[str]) -> list[PregateEffect]:
    """Effects of every gate on the path to ``target``.

    ``positives``: marker-positive populations below ``target`` (e.g. ``car_cd4``); a target
    cell is positive when it is in any of them, each judged with its own gate and the gates
    between it and the target.
    """
    target_all = b.free_membership(target)
    pos = np.zeros_like(target_all)
    for name in positives:
        chain = b.path(name)
        inside = chain[chain.index(target) + 1:] if target in chain else (name,)
        m = np.ones_like(target_all)
        for g in inside:
            m &= b.free_membership(g)
        pos |= m
    pos &= target_all
    neg = target_all & ~pos
    out = []
    path = b.path(target)
    for parent, gate in zip(path[:-1], path[1:-1]):
        reach = b.members(parent)
        kept = b.members(gate)
        out.append(PregateEffect(gate, int((reach & pos).sum()), int((reach & pos & ~kept).sum()),
                                 int((reach & neg).sum()), int((reach & neg & ~kept).sum())))
    return out
