"""Gating templates: a gating strategy as data (openCyto's gating-template idea), in YAML.

    name: my-strategy
    gates:
      - population: singlets        # the population this row makes
        parent: root                # 'root' or another row's population
        dims: [fsc_a, fsc_h]        # roles (resolved by the application), or {channel: "FSC-A"}
        method: singlets            # a registered gate-finding method (gating.auto.methods)
        args: {tail_sds: 4}         # the method's arguments
        optional: false             # true: skip the row (children attach to its parent) when a dim is absent
        learn: sample               # sample (default) | batch (pooled over the batch) | control
        control: {method: percentile, args: {q: 99.5}}   # how to learn from a negative control

Every problem is reported with the file and the line of the row: unknown key, parent or
method, a cycle, an unknown role, a duplicate population.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from gating.io.yamlsafe import SAFE_LOADER, safe_load

ROW_KEYS = {"population", "parent", "dims", "method", "args", "optional", "learn", "control", "populations"}
LEARN = ("sample", "batch", "control")
#: Largest template file read (a template is a few kB).
MAX_TEMPLATE_BYTES = 2 * 2**20


class TemplateError(ValueError):
    """A template is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Dim:
    """A template dimension: a role name, or a literal channel name."""

    name: str
    is_channel: bool = False

    def __str__(self) -> str:
        return f"channel:{self.name}" if self.is_channel else self.name


@dataclass(frozen=True)
class GateSpec:
    """One row of a template."""

    population: str
    parent: str
    dims: tuple[Dim, ...]
    method: str
    args: Mapping = field(default_factory=dict)
    optional: bool = False
    learn: str = "sample"
    control: Mapping | None = None
    line: int = 0


@dataclass
class Template:
    """A validated gating template; ``gates`` are in an order where parents come first."""

    name: str
    gates: list[GateSpec]
    source: str = "<template>"
    version: str = ""

    def spec(self, population: str) -> GateSpec:
        for g in self.gates:
            if g.population == population:
                return g
        raise KeyError(population)

    def without(self, populations) -> "Template":
        """The template with these rows left out; their children hang from the removed row's parent
        (e.g. without the acquisition-QC rows, the cell hierarchy starts at the root)."""
        drop = {p for p in populations if any(g.population == p for g in self.gates)}
        if not drop:
            return self
        parent = {g.population: g.parent for g in self.gates}

        def up(p: str) -> str:
            while p in drop:
                p = parent[p]
            return p
        from dataclasses import replace
        kept = [replace(g, parent=up(g.parent)) for g in self.gates if g.population not in drop]
        return Template(self.name, kept, self.source, self.version)

    def where(self, g: GateSpec) -> str:
        return f"{self.source}, line {g.line}"

    def to_frame(self):
        """The template as an openCyto-style table (population, parent, dims, method, args)."""
        import pandas as pd
        return pd.DataFrame([{"population": g.population, "parent": g.parent,
                              "dims": ",".join(str(d) for d in g.dims), "method": g.method,
                              "args": dict(g.args), "learn": g.learn} for g in self.gates])


def _line_numbers(text: str) -> list[int]:
    """1-based line of each item of the top-level 'gates' sequence."""
    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        return []
    if root is None or not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "gates" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_template(path: str | Path, roles: Iterable[str] | None = None, methods: Iterable[str] | None = None,
                  text: str | None = None) -> Template:
    """Read and validate a template. ``roles``: the role names a plain dim may use (None: any);
    ``methods``: the registered method names (default: :func:`gating.auto.methods.available`)."""
    source = str(path)
    if text is None:
        try:
            if Path(path).stat().st_size > MAX_TEMPLATE_BYTES:
                raise TemplateError(f"{source}: over the {MAX_TEMPLATE_BYTES // 2**20} MiB limit for a template")
            text = Path(path).read_text()
        except OSError as exc:
            raise TemplateError(f"{source}: cannot be read ({exc.strerror})") from exc
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise TemplateError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("gates"), list):
        raise TemplateError(f"{source}: expected a mapping with a 'gates' list")
    if methods is None:
        from gating.auto.methods import available
        methods = available()
    methods = set(methods)
    role_set = set(roles) if roles is not None else None
    lines = _line_numbers(text)
    specs: list[GateSpec] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(data["gates"]):
        line = lines[i] if i < len(lines) else 0
        where = f"{source}, line {line}"
        if not isinstance(row, dict):
            raise TemplateError(f"{where}: each gate is a mapping with population, parent, dims, method")
        unknown = sorted(set(row) - ROW_KEYS)
        if unknown:
            raise TemplateError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ROW_KEYS))}")
        for key in ("population", "parent", "method"):
            if not row.get(key):
                raise TemplateError(f"{where}: missing '{key}'")
        pop = str(row["population"])
        if pop == "root":
            raise TemplateError(f"{where}: 'root' is the whole file and cannot be a population name")
        if pop in seen:
            raise TemplateError(f"{where}: population '{pop}' is already defined on line {seen[pop]}")
        seen[pop] = line
        method = str(row["method"])
        if method not in methods:
            raise TemplateError(f"{where}: unknown method '{method}'; registered methods: {', '.join(sorted(methods))}")
        dims = []
        for d in row.get("dims") or []:
            if isinstance(d, dict) and set(d) == {"channel"}:
                dims.append(Dim(str(d["channel"]), True))
            elif isinstance(d, str):
                if role_set is not None and d not in role_set:
                    raise TemplateError(f"{where}: unknown role '{d}'; known roles: {', '.join(sorted(role_set))} "
                                        f"(write {{channel: NAME}} for a channel by name)")
                dims.append(Dim(d))
            else:
                raise TemplateError(f"{where}: a dim is a role name or {{channel: NAME}}, not {d!r}")
        args = row.get("args") or {}
        if not isinstance(args, dict):
            raise TemplateError(f"{where}: 'args' must be a mapping")
        learn = str(row.get("learn", "sample"))
        if learn not in LEARN:
            raise TemplateError(f"{where}: learn must be one of {', '.join(LEARN)}, not '{learn}'")
        control = row.get("control")
        if control is not None:
            if not isinstance(control, dict) or str(control.get("method", "")) not in methods:
                raise TemplateError(f"{where}: 'control' must name a registered method: {{method: NAME, args: {{...}}}}")
        specs.append(GateSpec(pop, str(row["parent"]), tuple(dims), method, dict(args), bool(row.get("optional", False)),
                              learn, dict(control) if control else None, line))
    return Template(str(data.get("name", Path(source).stem)), _ordered(specs, source), source,
                    str(data.get("version", "")))


#: Method arguments that name other populations (which must then be gated first).
REF_ARGS = ("of", "cuts_from", "population", "internal", "like")


def population_refs(g: GateSpec) -> list[str]:
    """The populations a row's arguments refer to (a '!' complement marker removed)."""
    out = []
    for key in REF_ARGS:
        v = g.args.get(key)
        for r in (v if isinstance(v, list) else ([v] if v else [])):
            out.append(str(r).lstrip("!"))
    return out


def _ordered(specs: list[GateSpec], source: str) -> list[GateSpec]:
    """Parents before children; unknown parents and cycles are errors naming lines."""
    by_pop = {g.population: g for g in specs}
    names = dict(by_pop)
    for g in specs:     # populations a row makes under other names (the quadrants of a quadrant row)
        for extra in (g.args.get("quadrants") or {}) if g.method == "quadrant" else {}:
            if extra in names:
                raise TemplateError(f"{source}, line {g.line}: population '{extra}' is defined twice")
            names[extra] = g
    refs: dict[str, list[str]] = {}
    for g in specs:
        if g.parent != "root" and g.parent not in names:
            raise TemplateError(f"{source}, line {g.line}: parent '{g.parent}' of population '{g.population}' is "
                                f"not defined; populations are: root, {', '.join(names)}")
        refs[g.population] = [g.parent] + population_refs(g)
    for g in specs:
        for r in refs[g.population][1:]:
            if r != "root" and r not in names:
                raise TemplateError(f"{source}, line {g.line}: population '{g.population}' refers to '{r}', "
                                    f"which is not defined")
    out: list[GateSpec] = []
    state: dict[str, int] = {}

    def visit(pop: str, chain: list[str]) -> None:
        pop = names[pop].population if pop in names else pop
        if pop == "root" or state.get(pop) == 2:
            return
        if state.get(pop) == 1:
            cyc = chain[chain.index(pop):] + [pop]
            lines = ", ".join(f"{p} (line {by_pop[p].line})" for p in cyc[:-1])
            raise TemplateError(f"{source}: cycle among populations: {' -> '.join(cyc)}; at {lines}")
        state[pop] = 1
        for r in refs[pop]:
            visit(r, chain + [pop])
        state[pop] = 2
        out.append(by_pop[pop])

    for g in specs:
        visit(g.population, [])
    return out
