"""Computed traits: per-customer values derived from events, defined in the condition language and kept current
as events arrive — definitions, folding, evaluation (after each batch, on a sweep, by backfill), and their pages
and API. The rows are profile data (audiences.models); see docs/architecture.md for why they are evaluated here."""
