"""The four backbones, by the name the CLI uses."""

from __future__ import annotations

from lsr.recommend.models.base import Recommender
from lsr.recommend.models.lightgcn import LightGCN
from lsr.recommend.models.mf import MF
from lsr.recommend.models.multvae import MultVAE
from lsr.recommend.models.neumf import NeuMF

MODELS: dict[str, type[Recommender]] = {"mf": MF, "neumf": NeuMF, "multvae": MultVAE, "lightgcn": LightGCN}

__all__ = ["MODELS", "LightGCN", "MF", "MultVAE", "NeuMF", "Recommender"]
