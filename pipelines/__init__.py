"""Dagster definitions only: assets, checks, sensors, schedules and resources that call registry/ and laws/."""
