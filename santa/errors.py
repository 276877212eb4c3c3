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
