"""``lsr cache ls`` and ``lsr cache clear``: see and free the encodings and indexes commands share."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lsr.cache.keys import cache_root
from lsr.cache.store import clear as clear_entries
from lsr.cache.store import entries, parse_age

app = typer.Typer(help="The cache of corpus encodings and indexes (`$LSR_CACHE`).", no_args_is_help=True)
console = Console()
CacheOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Cache folder (default $LSR_CACHE, else the platform cache).")
]


def human_size(size: float) -> str:
    """Bytes as a short reading: 512 B, 3.4 MB, 12 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def ago(seconds: float) -> str:
    """An age as people say it: 40 s, 5 min, 3 h, 12 d."""
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} d ago"


@app.command("ls")
def ls(cache_dir: CacheOption = None) -> None:
    """List what the cache holds: what each entry is, its size, its key and when it was last used."""
    root = cache_root(cache_dir)
    found = entries(root)
    if not found:
        console.print(f"the cache at {root} is empty")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("what (its key below it)", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("last used", no_wrap=True)
    now = time.time()
    for entry in found:  # the key on a line of its own: beside the rest it folded mid-word at 80 columns
        table.add_row(entry.what, human_size(entry.size), ago(now - entry.last_used))
        table.add_row(Text(f" {entry.key}", style="dim"), "", "")
    console.print(table)
    total = human_size(sum(e.size for e in found))
    console.print(f"{len(found)} entries, {total} at {root}", highlight=False)


@app.command("clear")
def clear(
    key: Annotated[str | None, typer.Argument(help="Only this entry (a key from `lsr cache ls`, or a start).")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only entries last used longer ago than this: 30d, 12h, 90m, 2w.")
    ] = None,
    cache_dir: CacheOption = None,
) -> None:
    """Remove cached encodings and indexes (all of them, or those KEY and --older-than select); anything in the
    cache folder that lsr did not write is kept."""
    age = parse_age(older_than) if older_than is not None else None
    root = cache_root(cache_dir)
    removed, kept = clear_entries(root, key, age)
    for line in kept:
        console.print(f"[yellow]{line}[/]", highlight=False)
    freed = human_size(sum(e.size for e in removed))
    console.print(f"removed {len(removed)} entries ({freed}) from {root}", highlight=False)
