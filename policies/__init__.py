"""Queue-ordering policies (shared by the live priority daemon and the simulator).

``get_policy(name)`` returns a policy: a pure function of a queue snapshot
and ``now`` giving one priority per job (higher = sooner). See
:mod:`policies.base` for the snapshot columns.
"""

from policies.base import (
    POLICY_NAMES,
    Policy,
    get_policy,
    job_size,
    priority_to_site_factor,
)

__all__ = ["POLICY_NAMES", "Policy", "get_policy", "job_size", "priority_to_site_factor"]
