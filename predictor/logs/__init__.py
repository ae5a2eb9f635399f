"""Readers for job logs into the canonical job table (see :mod:`predictor.logs.schema`).

``read_log(path, fmt="auto")`` reads SWF (incl. MetaCentrum's extended
variant), Slurm ``sacct --parsable2`` and ``sacct --json``, Philly-style and
Helios-style CSV; ``iter_log`` streams the same in chunks. See ``docs/logs.md``.
"""

from predictor.logs.detect import detect_format
from predictor.logs.errors import ErrorSink, LogError, LogFormatError
from predictor.logs.reader import FORMATS, LogReadResult, iter_log, read_log
from predictor.logs.sacct import SACCT_FIELDS
from predictor.logs.schema import JOB_COLUMNS, empty_jobs, to_canonical

__all__ = [
    "FORMATS",
    "JOB_COLUMNS",
    "SACCT_FIELDS",
    "ErrorSink",
    "LogError",
    "LogFormatError",
    "LogReadResult",
    "detect_format",
    "empty_jobs",
    "iter_log",
    "read_log",
    "to_canonical",
]
