"""Interference-aware placement: solo job profiles, placement hints, evaluation."""
