"""One reading of dates for every file a user hands in (manifest, clinical, labs, --as-of): ISO
YYYY-MM-DD, and the unambiguous DD.MM.YYYY, YYYY/MM/DD and YYYYMMDD; forms whose day and month
could be swapped (03/04/2026) are refused, never guessed."""
from __future__ import annotations

import datetime as dt

FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%Y%m%d")


def parse_date(value, where: str, error: type[Exception] = ValueError) -> dt.date | None:
    """The date in ``value`` (None when empty); ``error`` names ``where`` (file, row, column)."""
    s = str(value).strip()
    if not s or s.lower() in ("nan", "na", "none"):
        return None
    for fmt in FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise error(f"{where}: date '{s}' is not YYYY-MM-DD (also accepted: DD.MM.YYYY, YYYY/MM/DD); "
                f"forms like 03/04/2026 are refused because day and month are ambiguous")
