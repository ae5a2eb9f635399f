"""Loading, validating and repairing utilisation series."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from energy.series import SeriesError, load_series, load_steps, to_steps

HEADER = "time,active,total\n"


def write(tmp_path: Path, body: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def minutes(n: int, start: str = "2020-01-01 00:", busy: int = 5) -> str:
    return "".join(f"2020-01-01 00:{m:02d}:00,{busy + m % 3},10\n" for m in range(n))


def test_clean_series_has_no_repairs(tmp_path: Path) -> None:
    s = load_series(write(tmp_path, minutes(30)))
    assert s.format == "philly" and s.repairs == []
    steps = to_steps(s)
    assert list(steps["demand"]) == [7, 7, 7]  # 10-minute maxima of 5 + m % 3
    assert not steps["missing"].any()


def test_out_of_order_rows_are_sorted_and_reported(tmp_path: Path) -> None:
    lines = minutes(20).splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    s = load_series(write(tmp_path, "".join(lines)))
    assert s.frame.index.is_monotonic_increasing
    assert any("sorted" in r for r in s.repairs)


def test_exact_duplicates_dropped_conflicting_refused_with_lines(tmp_path: Path) -> None:
    body = minutes(5)
    s = load_series(write(tmp_path, body + body.splitlines(keepends=True)[2]))
    assert len(s.frame) == 5 and any("duplicate" in r for r in s.repairs)
    bad = body + "2020-01-01 00:02:00,9,10\n"
    with pytest.raises(SeriesError, match=r"conflicting.*lines 4, 7"):
        load_series(write(tmp_path, bad, "bad.csv"))


def test_unparseable_and_negative_values_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match=r"'time'.*line 3"):
        load_series(write(tmp_path, "2020-01-01 00:00:00,1,2\nnot-a-time,1,2\n"))
    with pytest.raises(SeriesError, match=r"'active'.*line 2"):
        load_series(write(tmp_path, "2020-01-01 00:00:00,-1,2\n", "neg.csv"))
    with pytest.raises(SeriesError, match="unknown series header"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        load_series(tmp_path / "x.csv")


def test_epoch_seconds_read_as_the_same_times(tmp_path: Path) -> None:
    dated = load_series(write(tmp_path, minutes(20)))
    epoch = "".join(f"{1577836800 + 60 * m},{5 + m % 3},10\n" for m in range(20))
    s = load_series(write(tmp_path, epoch, "epoch.csv"))
    assert s.repairs == [] and s.frame.index.equals(dated.frame.index)
    assert (s.frame["busy"] == dated.frame["busy"]).all()


def test_header_case_and_spaces_are_ignored_repeats_refused(tmp_path: Path) -> None:
    path = tmp_path / "caps.csv"
    path.write_text("\ufeffTime, Active ,TOTAL\n" + minutes(20))
    assert load_series(path).frame.equals(load_series(write(tmp_path, minutes(20))).frame)
    path.write_text("time,active,total,Total\n" + minutes(3).replace(",10\n", ",10,10\n"))
    with pytest.raises(SeriesError, match=r"\['total'\] appear more than once"):
        load_series(path)


def test_gap_is_kept_missing_not_invented(tmp_path: Path) -> None:
    body = minutes(10) + "2020-01-01 00:45:00,3,10\n"
    s = load_series(write(tmp_path, body))
    assert any("gap" in r for r in s.repairs)
    with pytest.raises(SeriesError, match="3 of 5 steps have no data"):
        to_steps(s)  # mostly gaps: refused rather than guessed
    body = minutes(30) + "".join(f"2020-01-01 01:{m:02d}:00,3,10\n" for m in range(10, 40))
    steps = to_steps(load_series(write(tmp_path, body, "gap.csv")))
    assert steps["missing"].tolist() == [False] * 3 + [True] * 4 + [False] * 3
    assert steps["demand"].iloc[4] == steps["demand"].iloc[2]  # carried forward, not scored


def test_a_series_sampled_more_coarsely_than_the_step_is_refused_saying_so(
    tmp_path: Path,
) -> None:
    hourly = "".join(f"2020-01-01 {h:02d}:00:00,3,10\n" for h in range(12))
    with pytest.raises(SeriesError, match=r"sampled every 60 min \(median\), "
                                          r"coarser than the 10-minute step"):
        to_steps(load_series(write(tmp_path, hourly)))


def test_helios_vc_nodes_are_gpus_over_8_rounded_up(tmp_path: Path) -> None:
    path = tmp_path / "vcA.csv.gz"
    rows = "time,running_gpu_num,total_gpu_num,pending_gpu_num\n"
    rows += "2020-05-01 00:00:00,9,64,1\n2020-05-01 00:01:00,16,64,0\n"
    with gzip.open(path, "wt") as fh:
        fh.write(rows)
    s = load_series(path)
    assert s.format == "helios-vc"
    assert s.frame["busy"].tolist() == [2, 2] and s.frame["total"].tolist() == [8, 8]
    assert s.frame["pending"].tolist() == [1, 0]
    steps, _, name = load_steps(tmp_path)
    assert name == tmp_path.name and steps["demand"].iloc[0] == 2


def test_a_vc_file_covering_part_of_the_time_adds_nothing_outside_it(tmp_path: Path) -> None:
    def vc(name: str, start: int, stop: int, running: int) -> None:
        rows = "time,running_gpu_num,total_gpu_num\n" + "".join(
            f"2020-05-01 {m // 60:02d}:{m % 60:02d}:00,{running},16\n" for m in range(start, stop)
        )
        (tmp_path / name).write_text(rows)

    vc("vcA.csv", 0, 60, 8)  # the whole hour: 1 busy node of 2
    vc("vcB.csv", 20, 40, 16)  # only 00:20-00:39: 2 busy of 2
    steps, repairs, _ = load_steps(tmp_path)
    assert repairs == ["vcB: covers 2020-05-01 00:20:00 .. 2020-05-01 00:30:00 only (the "
                       "folder: 2020-05-01 00:00:00 .. 2020-05-01 00:50:00); no nodes outside it"]
    assert steps["demand"].tolist() == [1, 1, 3, 3, 1, 1]
    assert steps["total"].tolist() == [2, 2, 4, 4, 2, 2]
    assert not steps["missing"].any()


def test_format_mismatch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="not 'helios-vc'"):
        load_series(write(tmp_path, minutes(3)), "helios-vc")


def test_real_philly_series_loads_and_reports_its_gap(data: Path) -> None:
    s = load_series(data / "utilization" / "philly_node_sequence.csv")
    assert any("gap of 0 days 10:00:00" in r for r in s.repairs)
    steps = to_steps(s)
    assert steps["missing"].sum() == 59 and steps["total"].max() == 552
