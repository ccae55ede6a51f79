"""Errors the CLI turns into ``skelly: error: <what and what to do>`` and exit status 2."""


class SkellyError(Exception):
    """A user-facing error whose message says what was wrong and what to do."""
