from django.apps import AppConfig


class TrialsConfig(AppConfig):
    """The trial-to-paid loop: the catalogue, subscriptions, trials with their stage and scores (kept current
    by a stored-batch hook and a beat sweep), and later templates and plays."""

    name = "trials"

    def ready(self) -> None:
        from audiences.pipeline import on_batch_stored
        from config.timers import register_timer_handler
        from segments.live.publish import on_audience_enter
        from trials.conditions import register_trial_conditions
        from trials.emails import MESSAGE_TIMER, messages_on_audience_enter, messages_on_batch, messages_on_timers
        from trials.loop import trials_on_batch

        register_trial_conditions()  # trial.*, score.*, sales.* properties and the trial reader of computed traits

        from audiences.panels import register_customer_panel
        from trials.profile_panels import SUBSCRIPTIONS_PANEL, TRIAL_PANEL

        register_customer_panel(SUBSCRIPTIONS_PANEL)  # the customer page's subscriptions and current trial
        register_customer_panel(TRIAL_PANEL)

        on_batch_stored(trials_on_batch)
        on_batch_stored(messages_on_batch)  # after trials_on_batch: arms timers for the trials it changed
        on_audience_enter(messages_on_audience_enter)
        register_timer_handler(MESSAGE_TIMER, messages_on_timers)  # time-based lifecycle emails, on time

        from audiences.merges import on_profile_merge
        from trials.merge_rules import current_trials_on_merge, message_locks_on_merge
        from trials.models import CustomerMessageLock, Trial

        on_profile_merge(Trial, current_trials_on_merge)
        on_profile_merge(CustomerMessageLock, message_locks_on_merge)

        from segments.usage import register_usage
        from trials.plays import plays_on_batch, plays_using_segment

        on_batch_stored(plays_on_batch)  # after trials_on_batch: plays read the refreshed trials
        register_usage(plays_using_segment)

        from audiences.privacy import register_erasure_rule, register_trace_collector
        from trials.privacy import ERASURE_RULES, stripe_traces

        # GDPR erasure: the Stripe ids a person is known by, their unlinked Stripe customers, teammates' briefs.
        register_trace_collector(stripe_traces)
        for rule in ERASURE_RULES:
            register_erasure_rule(rule)
