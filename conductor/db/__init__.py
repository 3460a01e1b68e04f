"""Database layer: tables (models), engine and migrations (session), conditional transitions (repository)."""
