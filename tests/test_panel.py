import pytest

from cytomnt.inputs.panel import Channel, Panel, PanelError, match_role

CH = [Channel(0, "FSC-A"), Channel(1, "SSC-A"), Channel(2, "B1-A", "CD3 BV421"), Channel(3, "R1-A", "CD38 APC"),
      Channel(4, "FITC-A", "CD45"), Channel(5, "PE-A", "BCMA-Fc PE"), Channel(6, "V1-A", "CD4"), Channel(7, "V2-A", "CD8a")]


def test_whole_word_in_pns_matches_never_decoy():
    assert match_role("t_cell", ["CD3"], CH).pnn == "B1-A"
    # CD38 contains CD3 but is a different marker
    assert match_role("x", ["CD3"], [c for c in CH if c.pnn != "B1-A"]) is None


def test_exact_pnn_and_case_insensitive():
    assert match_role("cd45", ["fitc-a"], CH).pnn == "FITC-A"
    assert match_role("cd45", ["cd45"], CH).pnn == "FITC-A"


def test_earlier_names_win_and_aliases():
    assert match_role("cd8", ["CD8", "CD8a"], CH).pnn == "V2-A"
    assert match_role("car", ["CAR", "BCMA-Fc"], CH).pnn == "PE-A"


def test_ambiguous_name_is_an_error_naming_channels():
    chans = CH + [Channel(8, "X-A", "CD4 PE")]
    with pytest.raises(PanelError, match="ambiguous.*V1-A.*X-A|ambiguous.*X-A.*V1-A"):
        match_role("cd4", ["CD4 PE", "CD4"], chans[:-1] + [Channel(8, "X-A", "CD4")])


def test_missing_required_role_names_role_names_and_channels():
    p = Panel.default()
    with pytest.raises(PanelError) as e:
        p.resolve([c for c in CH if c.pnn != "PE-A"], "tube.fcs")
    msg = str(e.value)
    assert "tube.fcs" in msg and "'car'" in msg and "BCMA-Fc" in msg and "B1-A (CD3 BV421)" in msg


def test_optional_roles_reported_missing():
    rp = Panel.default().resolve(CH, "tube.fcs")
    assert set(rp.missing) == {"fsc_h", "viability", "beads", "time"}
    assert rp.pnn("t_cell") == "B1-A" and rp.pnn("car") == "PE-A"


def test_user_panel_overrides_and_inherits(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("roles:\n  car: [CD38]\n  cd45: []\nbeads:\n  beads_per_test: 50000\n  test_volume_ul: 50\n")
    p = Panel.from_yaml(f)
    rp = p.resolve(CH, "t.fcs")
    assert rp.pnn("car") == "R1-A" and "cd45" in rp.missing and rp.pnn("t_cell") == "B1-A"
    assert p.beads_per_test == 50000


def test_bad_panel_files(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("roles:\n  tcell: [CD3]\n")
    with pytest.raises(PanelError, match="unknown role.*tcell"):
        Panel.from_yaml(f)
    f.write_text("roles: [1, 2]\n")
    with pytest.raises(PanelError, match="'roles' must map"):
        Panel.from_yaml(f)
    with pytest.raises(PanelError, match="cannot be read"):
        Panel.from_yaml(tmp_path / "none.yaml")


def test_markers_table_fills_missing_pns(tmp_path):
    (tmp_path / "m.csv").write_text('"Channel","Marker"\n"PE-A","Va2"\n"7-AAD-A","CD69"\n"FSC-A",NA\n')
    (tmp_path / "p.yaml").write_text("roles:\n  t_cell: [Va2]\n  car: [CD69]\nmarkers: m.csv\n")
    p = Panel.from_yaml(tmp_path / "p.yaml")
    assert p.markers == {"PE-A": "Va2", "7-AAD-A": "CD69"}
