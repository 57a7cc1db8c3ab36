"""`manage.py seed_demo`: load the demo data set (trials, accounts, events, subscriptions) once, or rebuild it."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.demo.definitions import demo_definitions_ensure
from config.demo.plan import DemoSummary
from config.demo.seed import demo_seed
from config.demo.vocabulary import DEFAULT_CUSTOMERS, DEFAULT_SEED, DEMO_SOURCE_NAME, MIN_CUSTOMERS
from trials.loop.lifecycle import trials_backfill


class Command(BaseCommand):
    help = (
        "Seed a realistic demo data set: products and plans, a few thousand trials over the last 120 days, "
        "accounts with seats, events and subscriptions in every status, plus ended trials with known effects for the "
        "measurement reports; then trials with their stages and scores, and starter computed traits and live "
        "audiences. Does nothing if demo data exists, unless --reset."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
        parser.add_argument(
            "--customers",
            type=int,
            default=DEFAULT_CUSTOMERS,
            help=f"people who signed up, teammates included (default {DEFAULT_CUSTOMERS}, at least {MIN_CUSTOMERS})",
        )
        parser.add_argument(
            "--effect-trials",
            type=int,
            default=None,
            help="extra ended trials carrying known effects for the measurement reports "
            "(default: as many as --customers; fewer make the planted readings less certain)",
        )
        parser.add_argument("--reset", action="store_true", help="delete the existing demo data first")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < MIN_CUSTOMERS:
            raise CommandError(f"--customers must be at least {MIN_CUSTOMERS}.")
        effect_trials = options["effect_trials"]
        if effect_trials is None:
            effect_trials = options["customers"]
        if effect_trials < 0:
            raise CommandError("--effect-trials cannot be negative.")
        summary = demo_seed(
            customers=options["customers"], seed=options["seed"], reset=options["reset"], effect_trials=effect_trials
        )
        if summary.deleted:
            deleted = ", ".join(f"{count} {label}" for label, count in sorted(summary.deleted.items()))
            self.stdout.write(f"Deleted the previous demo data: {deleted}.")
        if not summary.created:
            self.stdout.write(
                f'Demo data already exists (source "{DEMO_SOURCE_NAME}"); nothing done. Use --reset to rebuild it.'
            )
        else:
            self._print_summary(summary)
        trials = trials_backfill()
        self.stdout.write(f"Trials derived (stages, fit and PQL scores) for {trials:,} customers.")
        created = demo_definitions_ensure()
        if any(created.values()):
            self.stdout.write(
                f"Starter definitions: {created['computed_traits']} computed traits (backfilled), "
                f"{created['live_audiences']} live audiences (evaluated)."
            )

    def _print_summary(self, summary: DemoSummary) -> None:
        """Counts, statuses and the activation effect, so whoever seeds sees what the demo will show."""
        self.stdout.write(f"Seeded the demo data set (seed {summary.seed}, now = {summary.now:%Y-%m-%d %H:%M} UTC).")
        for label, count in summary.counts.items():
            self.stdout.write(f"  {label:<22}{count:>8,}")
        self.stdout.write("Subscriptions by status:")
        for status, count in summary.subscriptions_by_status.items():
            self.stdout.write(f"  {status:<22}{count:>8,}")
        self.stdout.write("Conversion of finished trials:")
        for label, rate in summary.conversion.items():
            self.stdout.write(f"  {label:<22}{rate.converted:>5,} / {rate.trials:<5,} = {rate.rate:6.1%}")
        self.stdout.write(self.style.SUCCESS(f"Done in {summary.elapsed_seconds:.1f} s."))
