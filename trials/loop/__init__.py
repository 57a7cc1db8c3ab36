"""The trial lifecycle: trials, their stages (trigger → activate → habit → signal → convert → recover), fit and
intent scores, and the settings that define them. The lowest layer of the trials app: it knows nothing of the
messages, plays or reports built on it."""
