"""Errors that are the user's to fix (bad input, bad config): entry points print their message
without a traceback and exit with status 2."""


class SantaError(Exception):
    """Base class of every error whose message tells the user what is wrong and how to fix it."""
