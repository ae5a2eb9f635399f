"""Foresight's prediction side: logs, history, features, models, registry, service."""

__version__ = "0.1.0"
