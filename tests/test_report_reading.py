"""The report explains itself: every flag where it appears, thresholds in words and units, and
charts that leave out what the call did not settle."""
import datetime as dt
import re

import pandas as pd

from cytomnt.exports import report
from cytomnt.sample.flags import MEANINGS, meaning

from .conftest import ROOT


def test_every_flag_of_the_readme_has_its_sentence():
    table = (ROOT / "README.md").read_text().split("### QC flags", 1)[1].split("\n\n", 2)[1]
    codes = {c for c in re.findall(r"`([A-Z_]+)[`:<]", table) if len(c) > 2}
    assert len(codes) > 20
    missing = [c for c in codes if not meaning(c)]
    assert not missing, missing
    assert meaning("QC_SATURATED:698") == MEANINGS["QC_SATURATED"]
    assert meaning("FCS_OFFSET_OFF_BY_ONE") == MEANINGS["FCS_"]
    assert meaning("SOMETHING_NEW") == ""


def test_thresholds_read_as_words():
    assert report.threshold_text("==", True, "") == "yes"
    assert report.threshold_text("in", ["MR", "SD", "PD"], "") == "one of MR, SD, PD"
    assert report.threshold_text(">", 3.0, "x10^3/uL") == "above 3 x10^3/uL"
    assert report.threshold_text(">=", 1800, "ng/mL") == "at least 1,800 ng/mL"
    assert report.threshold_text("==", "CD4", "") == "CD4"
    assert report._amount(1812.4) == "1,812" and report._amount(0.2734) == "0.273"
    assert report._with_unit(4.2, "x10^3/uL") == "4.2 x10^3/uL" and report._with_unit("SD", "") == "SD"
    assert report._with_unit(None, "%") == "-" and report._with_unit(True, "") == "yes"


def test_ratio_chart_leaves_undetermined_ratios_out(monkeypatch):
    figures = []
    from types import SimpleNamespace

    from cytomnt.exports import charts
    monkeypatch.setattr(charts, "png", lambda fig: figures.append(fig) or "")
    rows = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d"], "collection_date": ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"],
        "status": "ok", "sample_type": "pb", "alc_k_per_ul": [1.0, 2.0, 3.0, 2.0],
        "car_pct_of_t": [5.0, 20.0, 30.0, 10.0], "car_pct_of_t_ci_low": [4.0, 18.0, 28.0, 9.0],
        "car_pct_of_t_ci_high": [6.0, 22.0, 32.0, 11.0],
        "car_cd4_cd8_ratio": [3.5, 0.0, 0.8, 0.3], "car_predominance": ["CD4", "indeterminate", "indeterminate", "CD8"]})
    charts.patient_charts("P", rows, None, SimpleNamespace(infusion_date=dt.date(2026, 1, 1), mnt_onset_date=None))
    ratio_ax = figures[3].axes[0]
    drawn = sorted(y for line in ratio_ax.get_lines() if line.get_marker() not in (None, "None", "")
                   for y in line.get_ydata())
    assert drawn == [0.3, 3.5]
    texts = " ".join(t.get_text() for t in ratio_ax.texts)
    assert "2 sample(s) with an undetermined ratio not drawn" in texts and "CD4-predominant above" in texts
    assert any(abs(t) == 4 for t in ratio_ax.get_yticks())            # labelled beyond 1
