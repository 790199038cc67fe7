"""The error of a start that cannot go on (an address in use): one log line, exit status 1."""


class StartupError(RuntimeError):
    """The service cannot start; the message says why in one line."""
