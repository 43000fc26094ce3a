"""Allow ``python -m lsr`` as an alias of the ``lsr`` console script."""

from lsr.cli import main

main()
