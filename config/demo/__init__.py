"""The demo data set behind `manage.py seed_demo`: a SaaS trial funnel realistic enough to explore every screen.
Entry points in config.demo.seed; the parts of the simulation in the other modules of this package.

Why it is shaped this way: segments, plays and conversion analytics are only convincing on data in which
something is *true*. Here conversion depends on activation and habit the way the trial-to-paid loop says it
should: trials that create a project within 3 days AND invite a teammate convert at about 45%, the others at
about 8%, and trials with at least 3 high-intent actions in their first 7 days convert more on either side.
The activation-event analysis should rediscover the rule the generator used.

Everything is drawn from one `random.Random(seed)` against a fixed "now" (today, midnight UTC), so a seed gives
the same data set all day long. Rows are planned in memory first, then written with bulk_create in one
transaction: a few thousand trials take seconds, on SQLite as on PostgreSQL.

Demo rows are recognisable by their ids, which is what `demo_data_delete` (`--reset`) relies on: the source named
"Demo web app", Stripe ids `prod_demo_…`, `price_demo_…`, `cus_demo_…`, `sub_demo_…`, `si_demo_…`, user ids
`usr_demo_…` and group ids `org_demo_…`. Company emails use the reserved `.example` domain so nothing can be
delivered to them; free-mail and `.edu` addresses are kept because fit scoring needs them.
"""
