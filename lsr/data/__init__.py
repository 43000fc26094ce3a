"""Datasets: BEIR folders and zips, the classic SMART collections, and their downloads."""

from lsr.data.beir import BeirDataset, Document
from lsr.data.textio import TextSource

__all__ = ["BeirDataset", "Document", "TextSource"]
