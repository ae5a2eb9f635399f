"""Queue-ordering policies (shared by the live priority daemon and the simulator)."""
