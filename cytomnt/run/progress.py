"""Progress of a batch: a tqdm bar on a terminal, one timestamped log line per file otherwise
(pipelines, CI logs)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Counts finished files; shows a bar or log lines; calls ``callback(result)`` for each."""

    def __init__(self, total: int, enabled: bool = True, callback=None):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.callback = callback
        self.bar = None
        self.enabled = enabled and total > 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)

    def update(self, result, reused: bool = False) -> None:
        self.done += 1
        if self.callback:
            self.callback(result)
        if not self.enabled:
            return
        r = result.row
        if self.bar is not None:
            self.bar.set_postfix_str(f"{r['sample_id']}: {r['status']}", refresh=False)
            self.bar.update(1)
            return
        el = time.monotonic() - self.start
        eta = el / self.done * (self.total - self.done)
        what = "ok" if r["status"] == "ok" else f"ERROR {r['error']}"
        what = f"{what} (stored result reused)" if reused else what
        print(f"[{self.done}/{self.total}] {r['sample_id']}: {what} ({el:.1f}s elapsed, ~{eta:.0f}s left)",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
