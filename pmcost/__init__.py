"""PenguinMails cost analytics: embedded PostgreSQL, demo data, column DDL pre-hook and refresh."""

__version__ = "0.1.0"
