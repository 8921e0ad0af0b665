"""fleetchange: push one change across thousands of git repositories."""

__version__ = "0.1.0"
