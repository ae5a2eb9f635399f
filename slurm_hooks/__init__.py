"""Everything that runs inside or beside Slurm: job_submit.lua, daemons, adapters."""
