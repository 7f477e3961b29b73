"""Runs: run directory, list/diff, sweeps, plots, alarms, config io."""
