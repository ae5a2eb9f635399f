"""Energy saving: demand forecast -> power plan -> Slurm power_down/power_up."""
