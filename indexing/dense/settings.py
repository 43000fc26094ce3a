"""Which dense index a retriever builds and searches, and the knobs it overrides."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DenseSettings:
    """The dense index backend and any knob overrides (m, ef_construction, ef, nlist, nprobe, train); a knob the
    backend does not have is ignored, the rest keep the backend's defaults. ``device`` cuda puts a faiss flat or
    IVF index on the GPU (the gpu extra)."""

    backend: str = "hnsw"
    options: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"

    def _pick(self, defaults: dict[str, int]) -> dict[str, int]:
        return {name: self.options.get(name, value) for name, value in defaults.items()}

    def build(self) -> dict[str, int]:
        from lsr.indexing.dense import BACKENDS

        return self._pick(BACKENDS[self.backend].build_params)

    def search(self) -> dict[str, int]:
        from lsr.indexing.dense import BACKENDS

        return self._pick(BACKENDS[self.backend].search_params)
