"""Schedules, the run queue and the worker that executes source syncs and exchange jobs."""
