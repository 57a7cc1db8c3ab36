"""The intake layer: the Segment-compatible tracking API and everything about incoming events — the wire format,
tracking plans and their violations, the log of rejected calls, and historical imports. Imports only the
kernel (config), profiles (audiences) and itself."""
