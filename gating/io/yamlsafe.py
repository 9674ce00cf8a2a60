"""YAML read safely (no Python objects), by libyaml's C parser where PyYAML was built with it:
ten times the pure-Python parser (the built-in template 14 -> 1.5 ms, the MNT rules 32 -> 3 ms),
the same values and the same ``yaml.YAMLError`` on bad input."""
from __future__ import annotations

import yaml

#: PyYAML's safe loader on libyaml when it has it, else its pure-Python one.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str | bytes):
    """``yaml.safe_load(text)``, on :data:`SAFE_LOADER`."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
