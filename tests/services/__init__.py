"""Throw-away servers the tests start themselves (PostgreSQL for the team backend)."""
