"""Holdout groups of lifecycle templates and plays: who is held out, and what counts as a usable holdout.

One rule for both kinds of experiment, so the uplift report reads them the same way. Membership is a hash of
the experiment's key and the unit (a customer, or an account for account plays): sticky — the same unit is
always in or out, and raising the percentage only adds units to the control group. Every experiment holds
DEFAULT_HOLDOUT_PERCENT out unless someone chooses otherwise; 0 needs the explicit "no holdout" choice, so an
experiment nobody can measure is a decision rather than a default.
"""

from __future__ import annotations

import hashlib


def held_out(experiment_key: str, unit: object, percent: int) -> bool:
    """Whether the unit (a customer id, an alert's dedup key) is in the experiment's control group."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{experiment_key}:{unit}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def holdout_errors(percent: int, *, no_holdout: bool) -> dict[str, list[str]]:
    """Form errors of a holdout setting (field → messages): 1-100%, or 0 with "no holdout" ticked."""
    if percent > 100:
        return {"holdout_percent": ["At most 100."]}
    if percent == 0 and not no_holdout:
        return {"holdout_percent": ["Hold some customers out, or tick “No holdout” to send to everyone (unmeasured)."]}
    if percent > 0 and no_holdout:
        return {"no_holdout": ["“No holdout” needs a holdout of 0; untick it to keep this holdout."]}
    return {}
