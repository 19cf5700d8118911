"""The one exception type that means "the user can fix this"."""


class UserError(Exception):
    """Bad input or environment: the CLI prints the message as one line and exits non-zero.

    The message should say what is wrong and how to fix it. Anything else that escapes is a
    bug and shows a traceback.
    """
