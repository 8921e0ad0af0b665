"""One module per command: plain functions with keyword arguments, called by the thin CLI."""
