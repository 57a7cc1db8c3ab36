"""The Stripe mirror (intake layer): webhooks and backfill in, the billing catalogue, subscriptions, MRR and
lifecycle facts out.

It imports only config, audiences and itself; what the layers above need of billing they read from its models and
services, or receive as facts (config.facts) and through registries they fill from their AppConfig.ready.
"""
