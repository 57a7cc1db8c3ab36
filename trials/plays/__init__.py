"""Sales assist: plays that turn customers meeting a condition into rep alerts, with briefs, an alert queue and
business hours. Above lifecycle messaging (briefs render with its templates), below offers."""
