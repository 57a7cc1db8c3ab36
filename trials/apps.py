from django.apps import AppConfig


class TrialsConfig(AppConfig):
    """The trial-to-paid loop: the catalogue, subscriptions, trials with their stage and scores (kept current
    by a stored-batch hook and a beat sweep), and later templates and plays."""

    name = "trials"

    def ready(self) -> None:
        from audiences.live import on_audience_enter
        from audiences.pipeline import on_batch_stored
        from config.timers import register_timer_handler
        from trials.loop.hooks import trials_on_batch
        from trials.messaging.decide import messages_on_timers
        from trials.messaging.realtime import messages_on_audience_enter, messages_on_batch
        from trials.messaging.timers import MESSAGE_TIMER

        on_batch_stored(trials_on_batch)
        on_batch_stored(messages_on_batch)  # after trials_on_batch: arms timers for the trials it changed
        on_audience_enter(messages_on_audience_enter)
        register_timer_handler(MESSAGE_TIMER, messages_on_timers)  # time-based lifecycle emails, on time

        from audiences.merges import on_profile_merge
        from trials.loop.merges import current_trials_on_merge
        from trials.loop.models import Trial
        from trials.messaging.merges import message_locks_on_merge
        from trials.messaging.models import CustomerMessageLock

        on_profile_merge(Trial, current_trials_on_merge)
        on_profile_merge(CustomerMessageLock, message_locks_on_merge)

        from segments.usage import register_usage
        from trials.plays.plays import plays_on_batch, plays_using_segment

        on_batch_stored(plays_on_batch)  # after trials_on_batch: plays read the refreshed trials
        register_usage(plays_using_segment)

        from integrations.stripe.customers import free_mail_domains_register
        from trials.loop.scores import score_settings

        # A Stripe customer is never mapped to an account by a free-mail domain: the score settings' list.
        free_mail_domains_register(lambda: score_settings().free_mail_domains.split())

        from audiences.privacy import register_erasure_rule, register_trace_collector
        from trials.privacy import ERASURE_RULES, stripe_traces

        # GDPR erasure: the Stripe ids a person is known by, their unlinked Stripe customers, teammates' briefs.
        register_trace_collector(stripe_traces)
        for rule in ERASURE_RULES:
            register_erasure_rule(rule)
