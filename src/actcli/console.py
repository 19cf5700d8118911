"""Terminal output shared by the commands: one console, progress bars, tables."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def silence() -> None:
    """Print nothing from this process (torchrun ranks other than 0; rank 0 speaks for all)."""
    console.quiet = errors.quiet = True


def progress() -> Progress:
    """A progress display with bar, count, elapsed time and ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def warn(message: str) -> None:
    """A yellow warning line on stderr."""
    errors.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True, highlight=False)


def table(title: str, columns: list[str], rows: list[list[object]]) -> Table:
    """A rich table with string cells."""
    out = Table(title=title, title_justify="left")
    for name in columns:
        out.add_column(name)
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    return out
