"""Meta ads insights and ad objects into Postgres, without Dagster (the Dagster assets in
`everreach_pipelines.defs.ads`, the tests and the benchmark call this package)."""
