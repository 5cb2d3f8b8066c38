"""Dagster resources: the warehouse and the Meta Graph API client."""
