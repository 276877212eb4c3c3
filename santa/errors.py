"""Errors that are the user's to fix (bad input, bad config): entry points print their message
without a traceback and exit with status 2."""


class SantaError(Exception):
    """Base class of every error whose message tells the user what is wrong and how to fix it."""


def print_error(exc: BaseException) -> None:
    """The one line an entry point prints for a user error, on stderr. The message is text, not
    rich markup: a path or an override such as ``pipeline.steps=[pii,basic]`` prints as it is."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}")


class RunRefused(SantaError):
    """A run refused before it touched its run directory (e.g. a resume from a checkpoint of
    another model configuration): the entry point puts back the files Hydra rewrote there."""


class RunInterrupted(SantaError):
    """A run stopped on SIGTERM / SIGINT after saving what it did (training: a checkpoint; the data
    pipeline: every unit of work finished); the message says how to resume. The process exits
    with 128 + the signal's number, as a shell reports a signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
