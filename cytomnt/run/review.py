"""A reviewed FlowJo workspace brought back (``--strategy reviewed.wsp``): a sample whose gates
nobody moved keeps the result it has in this output folder (the same analysis, with its CAR
call against the tube's own background), so only the samples a reviewer changed are analysed
again, on the reviewer's gates.
"""
from __future__ import annotations

import json

from cytomnt.inputs.files import item_key, item_name
from cytomnt.inputs.strategies import StrategyChoice, strategy_kind
from cytomnt.run.changes import same_gates
from cytomnt.run.store import ResultStore, dumps, result_key

#: Run-record keys that may differ between the run that wrote a workspace and the one that
#: brings it back (everything else deciding the numbers must be the same; a gate plot is kept
#: or missing as it was).
_STRATEGY_KEYS = ("strategy", "strategy_sha256", "wsp_group", "wsp_sample", "plots")


def kept_after_review(items: list, strategy: StrategyChoice, record: dict, store: ResultStore, hashes: dict, entry_of) -> dict[str, str]:
    """Input key -> the stored result key each unmoved sample keeps (empty unless the strategy is a
    workspace). A result is kept only when it is of the same file and manifest entry, under the
    same configuration but for the strategy, and its gates equal the workspace's for the file."""
    if strategy.kind != "workspace":
        return {}
    from gating.formats.strategy import read_gatingml
    src = strategy.load()
    record = json.loads(dumps(record))          # as stored (lists, not tuples)
    same_settings = {k: v for k, v in record.items() if k not in _STRATEGY_KEYS}
    kept = {}
    for item in items:
        sha = hashes.get(item_key(item))
        name = item_name(item)[1]
        # the file's results, newest first, from strategies that find their own gates (a
        # workspace's result carries no background estimate: not the one to keep)
        for key, cfg_hash, prev_record in (store.results_of_file(sha) if sha else []):
            if strategy_kind(str(prev_record.get("strategy", "auto"))) == "workspace":
                continue
            if result_key(sha, cfg_hash, entry_of(item)) != key or \
                    {k: v for k, v in prev_record.items() if k not in _STRATEGY_KEYS} != same_settings:
                continue
            res = store.get(key)
            try:
                fil = _fil(item)
                if res is not None and res.ok and res.gatingml and same_gates(
                        read_gatingml(res.gatingml), src.for_file(name, fil), src.hidden_for(name, fil)):
                    kept[item_key(item)] = key
            except Exception:  # noqa: BLE001 - anything unclear is analysed again
                pass
            break                    # the newest result of this configuration decides
    return kept


def _fil(item) -> str:
    """The file's $FIL keyword (the name FlowJo gives its sample), '' when it has none."""
    from pathlib import Path

    from gating.io.fcs import check_structure
    if not isinstance(item, (str, Path)):
        return str(item.get_metadata().get("fil", "") or "").strip()
    text, _ = check_structure(Path(item))
    return next((str(v).strip() for k, v in text.items() if k.upper() in ("$FIL", "FIL")), "")
