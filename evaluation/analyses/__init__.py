"""Misalignment analyses logged on the parent run: data distribution, group data, values."""
