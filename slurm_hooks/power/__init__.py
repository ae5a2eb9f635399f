"""Slurm SuspendProgram/ResumeProgram: power nodes off and on (see :mod:`.program`)."""
