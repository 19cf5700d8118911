"""actcli: train, fine-tune, test and benchmark video action models from one command."""

__version__ = "0.1.0"
