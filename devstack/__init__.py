"""The local stack without Docker: a real Kafka broker from the official jars
plus the three services as supervised processes. Used by `make run` and tests."""


class StartFailed(Exception):
    """The stack cannot start; the message, one line, says why and what to do."""
