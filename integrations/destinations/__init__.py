"""The outbound layer (the top of the house): fact destinations. Trialloop's results (audience entered/exited,
trait changes, billing events, alerts, accepted offers) are sent to signed webhooks or to any Segment-compatible
API. Nothing imports this package but integrations/apps.py (which subscribes it to config.facts), faces, urls
and tests.

The flow: a producer records facts (config.facts) inside its own transaction and `emit.outbound_emit`, subscribed
to them, runs there; one DestinationDelivery row is written per
message and subscribed destination (set-based, duplicates ignored by idempotency key, withdrawn consent
recorded as a skip), and once the transaction commits a task flushes each destination. A flush sends the
due deliveries of one destination in order — one POST per webhook message, signed by the Standard Webhooks
scheme (receivers verify with that project's official libraries), or `/v1/batch` posts of up
to 100 calls for a Segment destination — and records every outcome: 2xx delivered; a 4xx other than 408/429
failed for good; anything else retried with exponential backoff and jitter. A transient failure ends the
flush, so a receiver that is down is probed by the next run instead of being hammered. The beat sweep
(`tasks.deliveries_dispatch`) starts flushes for every destination with due deliveries, so retries and anything a
lost task left behind go out. Delivery is at least once: the idempotency key is sent with every message.
"""
