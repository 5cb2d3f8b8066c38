"""`everreach demo`: the main job end to end on a fresh database, kept apart from production.

`cli.py` is the command; every other module is one stage, run in data-flow order, each a
`run_demo(ctx)` that returns its summary lines:

1. `ads`: the ads assets (objects, `ad_performance`, creatives, breakdowns) through Dagster.
2. `organic`: account insights in one range run, then a post snapshot per day.
3. `app_events`: the people behind Meta's numbers, as `auth.users` and `user_event` rows.
4. `messaging`: a burst of signed webhooks through a live receiver, then the webhook log.
5. `capi`: example conversions through the Python door, then the capi assets pick up the
   population's conversions and deliver them.
6. `dbt`: every dbt model through Dagster, and the story the marts tell.

`instance.py` holds what the stages share: the Dagster instance they record in (so the UI
shows everything the demo filled), the partition range, and their quiet output.
"""
