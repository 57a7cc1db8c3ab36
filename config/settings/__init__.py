"""Settings split: base (shared), dev (embedded defaults), test, prod (everything from the environment)."""
