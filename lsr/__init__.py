"""lsr: learned sparse retrieval and recommendation."""

__version__ = "0.1.0"
