"""The trials app's models, as Django finds them (`<app>.models`): a face over the packages that define them —
the trial loop (trials.loop.models), lifecycle messaging (trials.messaging.models) and sales-assist plays
(trials.plays.models). Code imports from the package modules, never from here: this face reaches every layer of
the app, so importing it from a lower one would break the contract. The billing mirror that used to live here is
integrations.stripe.models (intake)."""

from trials.loop.models import ActivationDefinition, FitRule, ScoreSettings, Trial, TrialStage, TrialStageChange
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.plays.models import Alert, BusinessHours, Holiday, Play, RepProfile

__all__ = [
    "ActivationDefinition",
    "Alert",
    "BusinessHours",
    "CustomerMessageLock",
    "EmailSettings",
    "FitRule",
    "Holiday",
    "MessageSend",
    "MessageTemplate",
    "Play",
    "RepProfile",
    "ScoreSettings",
    "Trial",
    "TrialStage",
    "TrialStageChange",
]
