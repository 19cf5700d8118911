"""The one exception type that means "the user can fix this"."""


class UserError(Exception):
    """Bad input or environment: the CLI prints the message as one line and exits non-zero.

    The message should say what is wrong and how to fix it. Anything else that escapes is a
    bug and shows a traceback. :attr:`exit_code` is the process's exit status (1, or the
    shell's ``128 + signal`` for a run stopped by a signal).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
