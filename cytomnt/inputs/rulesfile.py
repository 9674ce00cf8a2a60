"""A rules file (``--rules R.yaml``, default ``data/mnt_rules.yaml``) read as the user wrote it: valid
YAML with a version, factors and tiers, and ``flow_calls`` as a mapping. What the factors and tiers
mean is the risk evaluator's (:mod:`cytomnt.patients.risk.rules`); a run only needs the version and
the flow-call thresholds, so it reads them here without loading the evaluator."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from gating.io.yamlsafe import safe_load

BUILT_IN_RULES = "data/mnt_rules.yaml"
BUILT_IN_SOURCE = "mnt_rules.yaml (built-in)"


class RulesError(ValueError):
    """A rules file is malformed; the message names the file and the entry."""


def rules_mapping(text: str, source: str) -> dict:
    """The rules file's mapping, checked for what every reader needs (raises :class:`RulesError`)."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {source}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "factors" not in data or "tiers" not in data:
        raise RulesError(f"rules file {source}: needs 'version', 'factors' and 'tiers'")
    if not data.get("version"):
        raise RulesError(f"rules file {source}: needs a 'version' (every assessment names it)")
    if not isinstance(data.get("flow_calls") or {}, dict):
        raise RulesError(f"rules file {source}: 'flow_calls' must map setting names to values")
    return data


def built_in_text() -> str:
    return resources.files("cytomnt").joinpath(BUILT_IN_RULES).read_text()


@lru_cache(maxsize=1)
def built_in_rules() -> dict:
    """The built-in rules file's mapping (read once per process)."""
    return rules_mapping(built_in_text(), BUILT_IN_SOURCE)
