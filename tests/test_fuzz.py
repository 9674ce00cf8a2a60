"""A few hundred cases of the FCS fuzzer (the 10,000-case run: python -m tests.fuzz_fcs)."""
import pytest

from .fuzz_fcs import run

pytestmark = pytest.mark.slow


def test_mutated_fcs_files_end_in_a_read_or_a_clean_error():
    f = run(cases=600, seed=7, limit_s=2.0, verbose=False)
    assert f.get("crash", 0) == 0, f["crash_examples"]
    assert f.get("hang", 0) == 0 and f.get("slow", 0) == 0 and f.get("error_without_file_name", 0) == 0
    assert f["slowest_s"] < 2.0 and f["peak_traced_mib"] < 50
    assert f.get("clean_error", 0) > 200 and f.get("read_same", 0) > 50
    assert f["by_kind"]["absurd_tot"] == {"clean_error": f["by_kind"]["absurd_tot"]["clean_error"]}
    assert set(f["by_kind"]["truncate"]) == {"clean_error"}


def test_a_bad_file_never_stops_the_batch(tmp_path):
    import random

    import cytomnt
    from cytomnt.synth import TubeSpec, write_tube

    from .fuzz_fcs import mutate
    good = tmp_path / "good.fcs"
    write_tube(good, TubeSpec(events=3000), 3)
    rng = random.Random(11)
    for i in range(25):
        (tmp_path / f"bad{i:02d}.fcs").write_bytes(mutate(good.read_bytes(), rng)[1])
    df = cytomnt.analyze([tmp_path], jobs=2)
    assert len(df) == 26 and df.set_index("sample_id").loc["good", "status"] == "ok"
    errors = df[df.status == "error"]
    assert len(errors) > 5 and all(e for e in errors.error)
