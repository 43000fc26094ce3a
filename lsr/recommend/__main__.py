"""``python -m lsr.recommend train ...``: the recommend commands alone, for machines without the rest of lsr."""

from lsr.recommend.cli import main

main()
