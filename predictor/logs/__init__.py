"""Readers for job logs into the canonical job table (see :mod:`predictor.logs.schema`)."""

from predictor.logs.schema import JOB_COLUMNS, empty_jobs, to_canonical

__all__ = ["JOB_COLUMNS", "empty_jobs", "to_canonical"]
