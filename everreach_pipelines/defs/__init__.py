"""One self-contained folder per domain: ads, organic, capi, messaging, dbt."""
