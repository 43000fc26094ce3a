"""Third-party noise off unless ``lsr --verbose``: what a user sees is lsr's own progress, results and errors.

Every model load printed transformers' "Loading weights" bar and INFO lines, and libraries' warnings (beta APIs,
deprecations) filled the screen between lsr's lines; none of it is something a user of lsr can act on. Quiet mode
sets the libraries' own switches (environment variables, read when they are first imported, and their settings
when a library is already loaded), raises their loggers to ERROR, and leaves only lsr's warnings
(:class:`~lsr.errors.DataWarning`) on screen. ``--verbose`` leaves everything as the libraries have it.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from lsr.errors import DataWarning

QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also transformers' "Loading weights" bar, which follows the hub's switch
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning
}
"""Set (unless the user set them) before the libraries are imported."""
LIBRARY_LOGGERS = (
    "transformers",
    "sentence_transformers",
    "huggingface_hub",
    "peft",
    "torch",
    "numba",
    "pyserini",
    "jnius",
    "faiss",
    "httpx",
    "urllib3",
    "filelock",
)


def quiet_libraries() -> None:
    """Silence third-party progress bars, logs and warnings for the rest of this process."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported already (by a test, or a plugin): its switches were read
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", category=DataWarning)


def lift_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``--verbose`` anywhere on the command line (before a ``--``), taken out: it is global, and users type it
    after the sub-command as often as before it."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:cut] if a != "--verbose"]
    return head + argv[cut:], len(head) != cut
