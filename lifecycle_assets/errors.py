"""The base of every error the CLI reports as one line (`lifecycle CMD: error: …`)."""


class LifecycleError(Exception):
    """An expected failure whose message says what is wrong and how to fix it."""
