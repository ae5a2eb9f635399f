"""Property: random garbage lines never crash a reader; each is parsed or reported."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from predictor.logs import FORMATS, SACCT_FIELDS, LogFormatError, read_log

HEADERS = {
    "swf": "; UnixStartTime: 1000\n",
    "sacct": "|".join(SACCT_FIELDS) + "\n",
    "philly": "timestamp,duration,num_gpus,gpu_time,cluster\n",
    "helios": "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,"
    "end_time,duration,queue\n",
    "sacct-json": "",
}
# Pieces that look like real fields, so garbage sometimes gets past the field-count check.
TOKENS = st.sampled_from(
    [
        "-1",
        "0",
        "1",
        "17",
        "3.5",
        "-7",
        "1e30",
        "nan",
        "inf",
        "abc",
        "",
        "|",
        ",",
        '"',
        "{1,2}",
        "2017-10-09 07:01:55",
        "Unknown",
        "COMPLETED",
        "CANCELLED by 5",
        "gres/gpu=2",
        "4G",
    ]
)
LINE = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.lists(TOKENS, max_size=24).map(" ".join),
    st.lists(TOKENS, max_size=24).map("|".join),
    st.lists(TOKENS, max_size=14).map(",".join),
).map(lambda s: s.replace("\r", " ").replace("\n", " "))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(FORMATS)), lines=st.lists(LINE, min_size=1, max_size=12))
@example(fmt="philly", lines=["1-01-01,60,1,60,vc", "9999-12-31,60,1,60,vc"])  # beyond ns dates
def test_garbage_lines_are_parsed_or_reported(fmt: str, lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log"
        path.write_text(HEADERS[fmt] + "\n".join(lines) + "\n", encoding="utf-8")
        if fmt == "sacct-json":
            try:
                result = read_log(path, fmt, chunk_rows=5)
            except LogFormatError as exc:  # valid JSON, but not sacct's
                assert 'no "jobs" array' in str(exc)
                return
            assert result.n_errors <= 1  # a syntax error stops the stream
            return
        result = read_log(path, fmt, chunk_rows=5)
        body = [line for line in lines if line.strip()]
        # Every non-blank line became a job, was reported, or is a skipped comment/step line.
        assert len(result.jobs) + result.n_errors <= len(body)
        reported = {e.line for e in result.errors}
        assert len(reported) == result.n_errors
        first = 2 if HEADERS[fmt] else 1
        assert all(first <= line <= first + len(lines) for line in reported)
        assert result.jobs["job_id"].is_unique
        assert (result.jobs["run_time"].dropna() >= 0).all()
