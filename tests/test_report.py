"""Reports, statistics, exports and de-identification."""
import shutil
import zipfile

import flowkit as fk
import numpy as np
import pandas as pd
import pytest

import cytomnt
from cytomnt.cli import main
from cytomnt.exports.cells import to_anndata, to_fcs
from cytomnt.synth import TubeSpec, write_tube

from .conftest import FIXTURES, ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_out(demo_run):
    """The folder `cytomnt demo` wrote (read only: copy it to change it)."""
    return demo_run.out


def test_report_content(demo_out):
    html = (demo_out / "report.html").read_text()
    assert "Patient PT-A" in html and "Patient PT-B" in html and "MNT risk tier" in html
    assert "Research use only" in html and html.count("data:image/png;base64,") >= 8 + 6
    assert "http://" not in html and "https://" not in html and "<script" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_offline_in_headless_chromium(demo_out):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    left = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def route(r):
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                left.append(r.request.url)
                r.abort()
        page.route("**/*", route)
        page.on("request", lambda req: None if req.url.startswith(("file:", "data:")) else left.append(req.url))
        page.goto((demo_out / "report.html").as_uri())
        loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "report.png"), full_page=False)
        browser.close()
    assert len(loaded) >= 14 and all(loaded)
    assert left == []
    assert (ROOT / "test-artifacts" / "report.png").stat().st_size > 20_000


def test_report_command_rebuilds_from_store(demo_out, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(demo_out, out)
    (out / "report.html").unlink()
    for f in ("samples.csv", "populations.csv"):
        (out / f).unlink()                                   # the store alone is enough
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "PT-A_PB_d14" in html and "No clinical data given" in html


def test_statistics_table_matches_numpy(tmp_path):
    cytomnt.analyze([FIXTURES / "csf_bd.fcs"], out=tmp_path, xlsx=True)
    stats = pd.read_csv(tmp_path / "statistics.csv")
    for col in ("sample_id", "population", "parent", "count", "pct_parent", "pct_total", "channel", "marker",
                "median", "mean", "rcv_pct"):
        assert col in stats.columns
    a = to_anndata(tmp_path, "csf_bd")
    t = a.X[a.obs["t_cells"].values, list(a.var_names).index("BV421-A")].astype(float)
    row = stats[(stats.population == "t_cells") & (stats.channel == "BV421-A")].iloc[0]
    assert row["median"] == pytest.approx(np.median(t), rel=1e-5)
    assert row["mean"] == pytest.approx(t.mean(), rel=1e-5)
    q = np.percentile(t, [15.87, 84.13], method="inverted_cdf")
    assert row["rcv_pct"] == pytest.approx(100 * (q[1] - q[0]) / 2 / np.median(t), rel=1e-3)
    for name in ("samples", "populations", "statistics"):
        assert len(pd.read_parquet(tmp_path / f"{name}.parquet")) == len(pd.read_csv(tmp_path / f"{name}.csv"))
    assert set(pd.ExcelFile(tmp_path / "statistics.xlsx").sheet_names) == {"samples", "populations", "statistics"}
    cytomnt.analyze([FIXTURES / "csf_bd.fcs"], out=tmp_path)           # not asked for: no (stale) workbook
    assert not (tmp_path / "statistics.xlsx").exists()


def test_anndata_round_trip(tmp_path):
    pytest.importorskip("anndata")
    cytomnt.analyze([FIXTURES / "blood_numbered.fcs"], out=tmp_path)
    assert main(["export", str(tmp_path), "--sample", "blood_numbered", "--anndata", str(tmp_path / "b.h5ad")]) == 0
    import anndata as ad
    a = ad.read_h5ad(tmp_path / "b.h5ad")
    pops = pd.read_csv(tmp_path / "populations.csv").set_index("population")["count"]
    assert {c: int(a.obs[c].sum()) for c in a.obs.columns} == pops.to_dict()
    assert a.var.loc["B1-A", "marker"] == "CD3 BV421"


def test_fcs_export_of_one_population(tmp_path):
    cytomnt.analyze([FIXTURES / "blood_bd.fcs"], out=tmp_path)
    path = to_fcs(tmp_path, "blood_bd", "car_cd4", tmp_path / "car_cd4.fcs")
    s = fk.Sample(str(path))
    count = pd.read_csv(tmp_path / "populations.csv").set_index("population").loc["car_cd4", "count"]
    assert s.event_count == count and "spillover" in s.metadata
    # re-gating the exported events with the sample's own gates keeps every one of them
    again = cytomnt.analyze([path], strategy=tmp_path / "gates" / "blood_bd.xml")
    assert again.status[0] == "ok"


NAME = "Hortensia Quibblethwaite"


def test_deidentify_leaves_the_name_nowhere(tmp_path, capsys):
    src = tmp_path / "in"
    kw = {"SRC": f"{NAME} CSF", "PATIENT ID": NAME, "SMNO": "MRN-99812", "OP": "Dr Quibblethwaite"}
    write_tube(src / f"{NAME.replace(' ', '_')}_CSF.fcs", TubeSpec(sample_type="csf", events=1500, extra_keywords=kw), 5)
    write_tube(src / f"{NAME.replace(' ', '_')}_PB.fcs", TubeSpec(events=20000, extra_keywords=kw), 6)
    (src / f"{NAME.replace(' ', '_')}_broken.fcs").write_bytes(b"FCS3.1   nothing here")
    m = tmp_path / "m.csv"
    m.write_text("file,sample_id,patient_id,collection_date,sample_type\n"
                 f"{NAME.replace(' ', '_')}_CSF.fcs,P7-csf-1,P7,2026-02-01,csf\n")
    out = tmp_path / "out"
    rc = main(["analyze", str(src), "--out", str(out), "--manifest", str(m), "--deidentify", "--plots", "--xlsx"])
    assert rc == 1
    assert main(["report", str(out)]) == 0
    df = pd.read_csv(out / "samples.csv")
    assert set(df.sample_id) >= {"P7-csf-1"} and all(s.startswith(("P7", "S-")) for s in df.sample_id)
    pb = next(s for s in df.sample_id if s.startswith("S-") and df.set_index("sample_id").loc[s, "status"] == "ok")
    assert main(["export", str(out), "--sample", pb, "--fcs-input", str(next(src.glob("*_PB.fcs"))),
                 "--anndata", str(out / "pb.h5ad"), "--population", "t_cells", "--fcs", str(out / "pb_t.fcs"),
                 "--deidentify"]) == 0
    logs = capsys.readouterr()
    needles = [w.lower() for w in (NAME, "Quibblethwaite", "Hortensia", "MRN-99812")]
    for text in (logs.out, logs.err):
        assert not any(n in text.lower() for n in needles)
    assert _files_holding(out, needles) == []
    assert fk.Sample(str(out / "pb_t.fcs")).event_count > 0
    # the search does find the name when nothing is de-identified (file names, FCS export keywords)
    plain = tmp_path / "plain"
    main(["analyze", str(src), "--out", str(plain)])
    sid = next(s for s in pd.read_csv(plain / "samples.csv").sample_id if s.endswith("_PB"))
    to_fcs(plain, sid, "t_cells", plain / "t.fcs")
    held = _files_holding(plain, needles)
    assert any(h.endswith("samples.csv") for h in held) and any(h.endswith("t.fcs") for h in held)


def _files_holding(folder, needles) -> list[str]:
    """Files under ``folder`` whose bytes (or, for xlsx and parquet, decoded content) hold a needle."""
    found = []
    for f in folder.rglob("*"):
        if not f.is_file():
            continue
        blobs = [f.read_bytes()]
        if f.suffix == ".xlsx":
            with zipfile.ZipFile(f) as z:
                blobs += [z.read(n) for n in z.namelist()]
        if f.suffix == ".parquet":
            blobs.append(pd.read_parquet(f).to_csv().encode())
        if any(n.encode() in b.lower() for b in blobs for n in needles):
            found.append(str(f))
    return found


def test_report_and_risk_with_a_patient_without_tubes_and_an_older_flow_table(demo_out, tmp_path, capsys):
    """A clinical file naming a patient who has no tube yet: the report is written (the patient with
    their risk and no samples). A flow table from another tool without car_status_reason: one line
    per uncertain sample still, no traceback."""
    clinical = tmp_path / "clinical.csv"
    src = (demo_out / "data" / "clinical.csv").read_text().splitlines()
    clinical.write_text("\n".join(src + [src[-1].replace("PT-B", "PT-NEW", 1)]) + "\n")
    labs = demo_out / "data" / "labs.csv"
    out = tmp_path / "copy"
    shutil.copytree(demo_out, out)
    assert main(["report", str(out), "--clinical", str(clinical), "--labs", str(labs)]) == 0
    assert "PT-NEW" in (out / "report.html").read_text()
    flow = pd.read_csv(demo_out / "samples.csv").drop(columns=["car_status_reason"])
    flow.loc[flow.sample_type == "csf", "car_status"] = "uncertain"
    flow.to_csv(tmp_path / "flow.csv", index=False)
    capsys.readouterr()
    assert main(["risk", "--clinical", str(clinical), "--labs", str(labs), "--flow", str(tmp_path / "flow.csv"),
                 "--as-of", "2026-06-01"]) == 0
    out_text, err = capsys.readouterr()
    assert "Traceback" not in out_text + err and "no reason given" in out_text


def test_report_draws_car_expansion_with_interventions_and_onset(demo_out, tmp_path, monkeypatch):
    """Each patient's CAR T cells/uL (all, CD4, CD8) on a log axis with the ALC, the treatments and
    MNT onset; the kinetics and the treatments' note in the patient's section."""
    from cytomnt.exports import charts
    figures = []
    real = charts.png
    monkeypatch.setattr(charts, "png", lambda fig: figures.append(fig) or real(fig))
    data = demo_out / "data"
    out = tmp_path / "copy"
    shutil.copytree(demo_out, out)
    treatments = data / "treatments.csv"
    treatments.write_text(treatments.read_text() + "PT-B,2026-04-20,dexamethasone,10 mg,preemptive\n")
    assert main(["report", str(out), "--clinical", str(data / "clinical.csv"), "--labs", str(data / "labs.csv"),
                 "--treatments", str(treatments), "--as-of", "2026-06-01"]) == 0
    html = (out / "report.html").read_text()
    assert html.count("CAR T cells per uL (all, CD4, CD8)") == 2 and "Cmax" in html and "AUC 0-28" in html
    assert "preemptive dexamethasone from 2026-04-20" in html
    exp = [f for f in figures if "expansion" in f.axes[0].get_title()]
    ax = next(f.axes[0] for f in exp if "PT-A" in f.axes[0].get_title())
    assert ax.get_yscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert {"CAR T", "CAR CD4", "CAR CD8", "ALC"} <= set(labels)
    assert "day 6: tocilizumab (CRS)" in labels and "MNT onset, day 27" in labels
    assert "Treatments: 2026-03-08: tocilizumab 8 mg/kg (CRS)" in html
