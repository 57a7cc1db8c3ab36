"""Measurement of the loop: read-only reports (cohorts, activation discovery, behaviour, uplift, retention) over
everything below, offers included. The top of the trials app: nothing else in it imports measurement."""
