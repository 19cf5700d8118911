"""One function per CLI command: resolve inputs, call the engine, write outputs.

These functions take validated :class:`~actcli.settings.Settings` plus the few
command-only arguments, print with rich and return what they wrote, so they are easy to
call from tests and notebooks as well as from :mod:`actcli.cli`.
"""
