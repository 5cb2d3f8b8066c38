"""Organic content (Instagram media, Facebook Page posts): fetch from Graph and load to Postgres.

Dagster-free: ``everreach_pipelines.defs.organic`` wraps :mod:`everreach.organic.sync` in
assets; the benchmark and the tests call it directly.
"""
