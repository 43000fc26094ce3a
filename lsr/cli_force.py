"""``--force`` and the output lock for every command that writes a folder.

By default a command refuses to replace an output that exists and was not written by lsr
(:func:`lsr.fsutil.check_replaceable`); ``--force`` lifts that for the whole command through
:func:`lsr.fsutil.forcing`, so the option does not have to be threaded through every function that writes.
The check runs before the command's work, not after minutes of encoding or hours of training, and the output's
lock is held for the whole command, so a second command writing the same output fails at once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lsr.fsutil import check_file_replaceable, check_replaceable, claim_dir, forcing, writing

ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Replace the output even if lsr did not write it (its files are lost)."),
]
Command = TypeVar("Command", bound=Callable[..., Any])


def writes(output: str, in_place: bool = False, file_kind: str | None = None) -> Callable[[Command], Command]:
    """Give a typer command ``--force``, and check and lock its parameter ``output`` before running it.

    ``in_place``: the command fills the folder file by file (an evaluation, a training run) rather than replacing
    it whole, so the folder is claimed (created and marked as lsr's) at once, and a rerun may write into it.
    ``file_kind``: the output is a file of this kind (:data:`lsr.fsutil.FILE_KINDS`), not a folder.
    """

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def wrapper(*args: Any, force: bool = False, **kwargs: Any) -> Any:
            target: Path | None = kwargs.get(output)
            with forcing(force):
                if target is None:  # optional outputs (``lsr encode``'s group callback without a command)
                    return command(*args, **kwargs)
                if file_kind is not None:
                    check_file_replaceable(target, file_kind)
                else:
                    (claim_dir if in_place else check_replaceable)(target)
                with writing(target):
                    return command(*args, **kwargs)

        signature = inspect.signature(command, eval_str=True)
        option = inspect.Parameter("force", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=ForceOption)
        wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), option])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**command.__annotations__, "force": ForceOption}
        return wrapper  # type: ignore[return-value]

    return decorate
