"""Errors a user can act on: one line that names the problem and the fix."""


class PmcostError(Exception):
    """A failure explained in one line; the CLI prints it without a traceback."""

    exit_code = 1


class UsageError(PmcostError):
    """The command was called with options that do not fit together."""

    exit_code = 2


class BusyError(PmcostError):
    """Another run holds the lock this command needs."""

    exit_code = 75  # EX_TEMPFAIL: a scheduler may retry later
