"""Panels: marker roles resolved to channels of an FCS file from $PnN/$PnS with aliases.

A panel is configuration, not code: a YAML file maps each role (``t_cell``, ``car``...) to
a list of names. See ``data/default_panel.yaml`` for the format and the matching rule.
"""
from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from gating.io.yamlsafe import safe_load

#: Every role a panel can fill, in gating order.
ROLES = ("fsc_a", "fsc_h", "ssc_a", "cd45", "viability", "t_cell", "cd4", "cd8", "car", "beads", "time")
#: Roles whose channels are scatter: kept linear, whatever their names (FS INT, FSC, ...).
SCATTER_ROLES = ("fsc_a", "fsc_h", "ssc_a")
#: Roles without which the CAR-T metrics cannot be computed.
REQUIRED_ROLES = ("fsc_a", "ssc_a", "t_cell", "cd4", "cd8", "car")
#: The top-level keys of a panel file; anything else is a typo that would silently change nothing.
PANEL_KEYS = ("name", "roles", "markers", "beads")
#: The keys of a panel file's ``beads:`` section.
BEADS_KEYS = ("beads_per_test", "test_volume_ul")


class PanelError(ValueError):
    """A panel file is malformed, or a file lacks a required role."""


@dataclass(frozen=True)
class Channel:
    """One channel of a file: its 0-based index, $PnN and $PnS (empty when absent)."""

    index: int
    pnn: str
    pns: str = ""

    def label(self) -> str:
        return f"{self.pnn} ({self.pns})" if self.pns else self.pnn


@dataclass(frozen=True)
class Panel:
    """Role -> candidate names, plus counting-bead constants."""

    roles: Mapping[str, tuple[str, ...]]
    name: str = "default"
    beads_per_test: float | None = None
    test_volume_ul: float | None = None
    source: str = "built-in"
    markers: Mapping[str, str] = field(default_factory=dict)   # $PnN -> marker, for files without $PnS

    @classmethod
    def default(cls) -> "Panel":
        text = resources.files("cytomnt").joinpath("data/default_panel.yaml").read_text()
        return cls._from_mapping(safe_load(text), source="built-in")

    @classmethod
    def from_yaml(cls, path: str | Path, base: "Panel | None" = None) -> "Panel":
        """Read a panel file; roles it does not list are inherited from ``base`` (the default)."""
        path = Path(path)
        try:
            data = safe_load(path.read_text())
        except OSError as exc:
            raise PanelError(f"panel file {path}: cannot be read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise PanelError(f"panel file {path}: not valid YAML ({_yaml_problem(exc)})") from exc
        return cls._from_mapping(data, source=str(path), base=base or cls.default())

    @classmethod
    def _from_mapping(cls, data, source: str, base: "Panel | None" = None) -> "Panel":
        if not isinstance(data, dict):
            raise PanelError(f"panel {source}: expected a mapping with a 'roles' key, got {type(data).__name__}")
        _check_keys(data, PANEL_KEYS, f"panel {source}")
        roles_in = data.get("roles", {}) or {}
        if not isinstance(roles_in, dict):
            raise PanelError(f"panel {source}: 'roles' must map role names to lists of channel names")
        unknown = sorted(set(map(str, roles_in)) - set(ROLES))
        if unknown:
            named = ", ".join(k + _did_you_mean(k.lower(), ROLES) for k in unknown)
            raise PanelError(f"panel {source}: unknown role(s) {named}; known roles are {', '.join(ROLES)}")
        roles = dict(base.roles) if base else {r: () for r in ROLES}
        for role, names in roles_in.items():
            if names is None:
                names = []
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names):
                raise PanelError(f"panel {source}: role '{role}' must be a list of names, got {names!r}")
            roles[role] = tuple(str(n) for n in names)
        beads = data.get("beads", {}) or {}
        if not isinstance(beads, dict):
            role = " (the 'beads' role, a list of channel names, goes under 'roles:')" if isinstance(beads, list) \
                else ""
            raise PanelError(f"panel {source}: 'beads' must be a mapping with keys {' and '.join(BEADS_KEYS)}, "
                             f"got {beads!r}{role}")
        _check_keys(beads, BEADS_KEYS, f"panel {source}", "beads")
        bpt = beads.get("beads_per_test", base.beads_per_test if base else None)
        vol = beads.get("test_volume_ul", base.test_volume_ul if base else None)
        for key, val in (("beads_per_test", bpt), ("test_volume_ul", vol)):
            if val is not None and (not isinstance(val, (int, float)) or val <= 0):
                raise PanelError(f"panel {source}: beads.{key} must be a positive number, got {val!r}")
        return cls(roles=roles, name=str(data.get("name", source)), beads_per_test=bpt,
                   test_volume_ul=vol, source=source, markers=_read_markers(data.get("markers"), source))

    def resolve(self, channels: Sequence[Channel], file: str = "<sample>", strict: bool = True) -> "ResolvedPanel":
        """Find the channel of every role; raise :class:`PanelError` for a missing required role.

        With ``strict=False`` (user strategies, which name their own channels) every role is optional.
        """
        mapping: dict[str, Channel] = {}
        missing: list[str] = []
        for role in ROLES:
            names = self.roles.get(role, ())
            try:
                ch = match_role(role, names, channels, file)
            except PanelError:
                if strict:
                    raise
                ch = None       # user strategies name their own channels; roles only label medians
            if ch is None:
                if strict and role in REQUIRED_ROLES:
                    available = ", ".join(c.label() for c in channels)
                    hint = "" if any(c.pns for c in channels) else (
                        " The file has no $PnS marker names: name channels by $PnN, or add a 'markers:' "
                        "section (channel: marker) to the panel file.")
                    tried = ", ".join(names) if names else "(none: the role is switched off)"
                    raise PanelError(
                        f"{file}: required panel role '{role}' not found; names tried: {tried}; "
                        f"channels in the file: {available}. Add the marker's name to role "
                        f"'{role}' in a panel file (--panel).{hint}"
                    )
                missing.append(role)
            else:
                mapping[role] = ch
        seen: dict[int, str] = {}
        for role, ch in mapping.items():
            if ch.index in seen and strict:
                raise PanelError(
                    f"{file}: channel {ch.label()} matches both role '{seen[ch.index]}' and role "
                    f"'{role}'; make the names in the panel more specific"
                )
            seen[ch.index] = role
        return ResolvedPanel(channels=mapping, missing=tuple(missing), panel=self)


@dataclass(frozen=True)
class ResolvedPanel:
    """The channel found for each role of a panel in one file."""

    channels: Mapping[str, Channel]
    missing: tuple[str, ...] = ()
    panel: Panel = field(default_factory=Panel.default)

    def pnn(self, role: str) -> str | None:
        ch = self.channels.get(role)
        return ch.pnn if ch else None

    def has(self, role: str) -> bool:
        return role in self.channels

    def describe(self) -> str:
        """A readable table: role, channel, marker."""
        lines = [f"{'role':<10} {'channel ($PnN)':<18} marker ($PnS)"]
        for role in ROLES:
            ch = self.channels.get(role)
            if ch is None:
                req = "required" if role in REQUIRED_ROLES else "optional"
                lines.append(f"{role:<10} {'-':<18} not found ({req}; tried: {', '.join(self.panel.roles.get(role, ())) or 'none'})")
            else:
                lines.append(f"{role:<10} {ch.pnn:<18} {ch.pns}")
        return "\n".join(lines)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: problem' for a YAML syntax error, so the user can find the spot."""
    mark = getattr(exc, "problem_mark", None)
    problem = ": ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
    if mark is None or not problem:
        return str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def describe_channels(channels: Sequence[Channel]) -> str:
    """A readable table of a file's channels: FCS parameter number n ($PnN/$PnS), $PnN, marker.

    So a user writing a panel can copy the exact names the file has.
    """
    width = max([len(c.pnn) for c in channels] + [len("channel ($PnN)")])
    lines = [f"{'n':>3}  {'channel ($PnN)':<{width}}  marker ($PnS)"]
    lines += [f"{c.index + 1:>3}  {c.pnn:<{width}}  {c.pns or '-'}" for c in channels]
    return "\n".join(lines)


def _check_keys(data: Mapping, known: Sequence[str], where: str, section: str = "") -> None:
    """Refuse keys not in ``known``: a misspelt key (``role:``) would otherwise be silently ignored."""
    unknown = [str(k) for k in data if str(k) not in known]
    if not unknown:
        return
    notes = [f"'{key}'{_did_you_mean(key, known)}" for key in unknown]
    kind, inside = ("key(s)", f" in '{section}:'") if section else ("top-level key(s)", "")
    hint = "" if section else _roles_hint(unknown, known)
    raise PanelError(f"{where}: unknown {kind} {', '.join(notes)}{inside}; known keys are {', '.join(known)}{hint}")


def _roles_hint(keys: Sequence[str], known: Sequence[str]) -> str:
    """For role names written at the top level (``t_cell: [CD3]``): say that roles go under ``roles:``."""
    roles = [(k, r) for k, r in ((k, _role_like(k, known)) for k in keys) if r]
    if not roles:
        return ""
    exact = [f"'{k}'" for k, r in roles if k.lower() == r]
    said = [f"{', '.join(exact)} {'is a role' if len(exact) == 1 else 'are roles'}"] if exact else []
    said += [f"'{k}' looks like role '{r}'" for k, r in roles if k.lower() != r]
    return (f". {'; '.join(said)}: roles go indented under 'roles:', e.g. 'roles:' then "
            f"'  {roles[0][1]}: [...]' on the next line")


def _did_you_mean(key: str, choices: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, or '' when none is close."""
    from cytomnt.inputs.tables import near_miss          # (pandas loads with it: only on this error's path)
    close = near_miss(key, choices, cutoff=0.6)
    return f" (did you mean '{close}'?)" if close else ""


def _role_like(key: str, known: Sequence[str]) -> str | None:
    """The role a stray top-level key names (exactly, or as a near miss like ``tcell``), else None."""
    if key.lower() in ROLES:
        return key.lower()
    if difflib.get_close_matches(key, known, n=1):
        return None             # a misspelt known key ('role', 'marker'), not a role
    close = difflib.get_close_matches(key.lower(), ROLES, n=1)
    return close[0] if close else None


@functools.lru_cache(maxsize=4096)
def _word_pattern(name: str) -> re.Pattern:
    """``name`` as a whole word, any case (compiled once per name: every file of a batch asks)."""
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])", re.IGNORECASE)


def compile_names(panel: "Panel") -> None:
    """Compile the whole-word pattern of every name of ``panel`` now (e.g. in a batch's parent
    before its workers fork, so they share the compiled patterns instead of each compiling them)."""
    for names in panel.roles.values():
        for name in names:
            _word_pattern(name.strip())


def _matches(name: str, channels: Sequence[Channel]):
    """The channels ``name`` points to, level by level (exact $PnN, exact $PnS, whole word in $PnS);
    a level is looked at only when the ones before it found none."""
    key = name.strip().lower()
    yield [c for c in channels if c.pnn.strip().lower() == key]
    yield [c for c in channels if c.pns.strip().lower() == key]
    yield [c for c in channels if c.pns and _word_pattern(name.strip()).search(c.pns)]


def match_role(role: str, names: Sequence[str], channels: Sequence[Channel], file: str = "<sample>") -> Channel | None:
    """The channel that the first matching name points to.

    For each name in order: an exact $PnN match wins, then an exact $PnS match, then a
    whole-word match inside $PnS. Two channels matching one name at the same level is an error.
    """
    for name in names:
        for hits in _matches(name, channels):
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1 and len({c.pnn.strip().lower() for c in hits}) == 1:
                raise PanelError(
                    f"{file}: {len(hits)} channels share the name ($PnN) '{hits[0].pnn}' "
                    f"({', '.join(f'$P{c.index + 1}N' for c in hits)}), so none can be told apart by name; channel names "
                    f"must be unique: correct the file's $PnN keywords or export it again from the instrument"
                )
            if len(hits) > 1:
                raise PanelError(
                    f"{file}: panel role '{role}' is ambiguous: name '{name}' matches "
                    f"{', '.join(c.label() for c in hits)}; list the exact $PnN in the panel file"
                )
    return None


def _read_markers(spec, source: str) -> dict[str, str]:
    """``markers``: a mapping $PnN -> marker, or a CSV (columns Channel, Marker) beside the panel file."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {str(k): str(v) for k, v in spec.items() if v is not None}
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_absolute() and source not in ("built-in", ""):
            path = Path(source).parent / path
        try:
            import csv
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise PanelError(f"panel {source}: markers file {path} cannot be read ({exc.strerror})") from exc
        keys = {k.lower(): k for k in (rows[0].keys() if rows else [])}
        if "channel" not in keys or "marker" not in keys:
            raise PanelError(f"panel {source}: markers file {path} needs columns Channel and Marker")
        return {r[keys["channel"]]: r[keys["marker"]] for r in rows
                if r[keys["marker"]] and r[keys["marker"]].upper() != "NA"}
    raise PanelError(f"panel {source}: 'markers' must map channel names to markers, or name a CSV file")


def channels_of(sample, panel: "Panel | None" = None) -> list[Channel]:
    """The channels of a FlowKit ``Sample``; the panel's ``markers`` fill (or replace) $PnS."""
    markers = dict(panel.markers) if panel is not None else {}
    return [Channel(i, str(n), markers.get(str(n), str(s or ""))) for i, (n, s) in
            enumerate(zip(sample.pnn_labels, sample.pns_labels))]
