from django.apps import AppConfig


class TrialsConfig(AppConfig):
    """The actions on trials: the trial-to-paid loop (trials.loop), lifecycle messaging (trials.messaging), sales
    assist (trials.plays) and measurement (trials.measurement). What the lower layers must know of them is
    registered here: segment properties, customer-page panels, batch hooks, timers, merge and erasure rules."""

    name = "trials"

    def ready(self) -> None:
        from audiences.panels import register_customer_panel
        from audiences.pipeline import on_batch_stored
        from config.timers import register_timer_handler
        from segments.live.publish import on_audience_enter
        from trials.loop.conditions import register_trial_conditions
        from trials.loop.hooks import trials_on_batch
        from trials.loop.panels import TRIAL_PANEL
        from trials.messaging.decide import messages_on_timers
        from trials.messaging.realtime import messages_on_audience_enter, messages_on_batch
        from trials.messaging.timers import MESSAGE_TIMER
        from trials.plays.conditions import register_sales_conditions

        register_sales_conditions()  # sales.meeting_logged
        register_trial_conditions()  # trial.*, score.* and the trial reader of computed traits
        register_customer_panel(TRIAL_PANEL)  # the customer page's current trial

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

        from audiences.privacy.rules import register_erasure_rule
        from audiences.privacy.traces import register_trace_collector
        from trials.privacy import ERASURE_RULES, stripe_traces

        # GDPR erasure: the Stripe ids a person is known by, their unlinked Stripe customers, teammates' briefs.
        register_trace_collector(stripe_traces)
        for rule in ERASURE_RULES:
            register_erasure_rule(rule)
