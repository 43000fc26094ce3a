"""sentence-transformers model folders: what their modules say a model is, and lsr encoders written in that layout.

Why by module types: naver's SPLADE models, OpenSearch's inference-free models and every ``SparseEncoder`` saved by
sentence-transformers v5+ all hold a ``modules.json``, so the presence of a file cannot tell a SPLADE model from a
dense one; the module types in ``modules.json`` (and, for a ``Router``, in ``router_config.json``) can:

- ``Transformer`` (task ``fill-mask``; ``MLMTransformer`` before sentence-transformers 5.4) then ``SpladePooling``:
  SPLADE, pooled as the pooling module says;
- ``Router`` whose query route is ``SparseStaticEmbedding`` and whose document route is the SPLADE pair:
  inference-free, the query side's weights being the IDF table;
- ``Transformer`` then ``Pooling`` (then ``Dense`` / ``Normalize``): dense.

Anything else is refused with the modules found, never guessed. Folders lsr writes hold the same modules (the type
strings sentence-transformers itself writes, tested against :data:`ST_REQUIREMENT`), so
``sentence_transformers.SparseEncoder(folder)`` loads them and computes the same vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.models.hub import LIBRARY_MODULES, read_json, refuse_remote_code

#: The sentence-transformers versions whose loading of the modules below tests/test_st_interop.py checked.
#: Declared in pyproject.toml too; written into every folder so an incompatible version says so when loading.
ST_REQUIREMENT = ">=6.3,<7"

TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
SPLADE_POOLING = "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
ROUTER = "sentence_transformers.base.modules.router.Router"
STATIC = "sentence_transformers.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding"

#: Sub-folders of an inference-free folder, named as sentence-transformers' own Router names them.
DOCUMENT_DIR = "document_0_Transformer"
QUERY_DIR = "query_0_SparseStaticEmbedding"
ACTIVATIONS = ("relu", "log1p_relu")
ST_CONFIG = "config_sentence_transformers.json"
MODULE_CONFIG = "sentence_bert_config.json"


@dataclass(frozen=True)
class Layout:
    """What a sentence-transformers folder holds, in lsr's terms."""

    kind: str
    transformer: Path
    """Folder of the (document) transformer's weights and tokenizer."""
    pooling: str = "max"
    activation: str = "relu"
    max_length: int | None = None
    top_k: int | None = None
    static: Path | None = None
    """Folder of the query side's static weights (inference-free only)."""


def _json(path: Path) -> dict[str, Any]:
    found = read_json(path) if path.is_file() else {}
    if not isinstance(found, dict):
        raise LsrError(f"{path}: expected a JSON object")
    return found


def _role(kind: str, where: Path) -> str:
    """A module's part in lsr's terms: its class name, with a Transformer's masked-LM task told apart."""
    if not kind.startswith(LIBRARY_MODULES):
        raise LsrError(f"{where}: module type {kind!r} is not part of sentence-transformers; lsr refuses it")
    name = kind.rsplit(".", 1)[-1]
    if name == "MLMTransformer":
        return "Transformer(fill-mask)"
    if name == "Transformer" and _json(where / MODULE_CONFIG).get("transformer_task") == "fill-mask":
        return "Transformer(fill-mask)"
    return name


def _placed(kind: object, where: Path) -> tuple[str, Path]:
    """A module's role and its folder."""
    return _role(str(kind or ""), where), where


def _splade(modules: list[tuple[str, Path]]) -> bool:
    return [role for role, _ in modules] == ["Transformer(fill-mask)", "SpladePooling"]


def _sequence(folder: Path) -> list[tuple[str, Path]]:
    entries = read_json(folder / "modules.json")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LsrError(f"{folder / 'modules.json'}: expected a list of modules")
    ordered = sorted(entries, key=lambda e: int(e.get("idx", 0)))
    return [_placed(e.get("type"), folder / str(e.get("path", ""))) for e in ordered]


def _routes(folder: Path) -> dict[str, list[tuple[str, Path]]]:
    config = _json(folder / "router_config.json")
    types, structure = config.get("types") or {}, config.get("structure") or {}
    routes = {route: [_placed(types.get(name), folder / name) for name in names] for route, names in structure.items()}
    for modules in routes.values():  # their configurations are checked for code as the root's are
        for _, where in modules:
            refuse_remote_code(where)
    return routes


def _describe(modules: list[tuple[str, Path]]) -> str:
    return " -> ".join(role for role, _ in modules) or "no modules"


def read_layout(folder: Path) -> Layout | None:
    """The layout of a sentence-transformers folder (``None`` without ``modules.json``); unknown ones are refused."""
    if not (folder / "modules.json").is_file():
        return None
    modules = _sequence(folder)
    roles = [role for role, _ in modules]
    if _splade(modules):
        return _sparse(folder, "splade", modules[0][1], modules[1][1], None)
    if roles == ["Router"]:
        routes = _routes(modules[0][1])
        query, document = routes.get("query", []), routes.get("document", [])
        if [role for role, _ in query] == ["SparseStaticEmbedding"] and _splade(document) and len(routes) == 2:
            return _sparse(folder, "inference-free", document[0][1], document[1][1], query[0][1])
        found = "; ".join(f"{route}: {_describe(mods)}" for route, mods in routes.items())
        raise LsrError(
            f"{folder}: a sentence-transformers Router lsr cannot load ({found}); lsr loads a Router whose query "
            "route is SparseStaticEmbedding and whose document route is Transformer(fill-mask) -> SpladePooling"
        )
    if roles[:2] == ["Transformer", "Pooling"] and set(roles[2:]) <= {"Dense", "Normalize"}:
        return Layout("dense", modules[0][1])
    raise LsrError(
        f"{folder}: a sentence-transformers layout lsr cannot load ({_describe(modules)}); lsr loads "
        "Transformer(fill-mask) -> SpladePooling (SPLADE), a Router of SparseStaticEmbedding queries and SPLADE "
        "documents (inference-free), and Transformer -> Pooling [-> Dense/Normalize] (dense)"
    )


def _sparse(folder: Path, kind: str, transformer: Path, pooling: Path, static: Path | None) -> Layout:
    """A sparse layout with its pooling settings and the model-wide ones; settings lsr cannot honour are refused."""
    settings = _json(pooling / "config.json")
    strategy, activation = settings.get("pooling_strategy", "max"), settings.get("activation_function", "relu")
    if strategy not in ("max", "sum") or activation not in ACTIVATIONS:
        raise LsrError(f"{pooling}: SpladePooling {strategy!r} / {activation!r}: lsr knows max or sum, {ACTIVATIONS}")
    if strategy == "sum" and activation == "log1p_relu":
        raise LsrError(f"{pooling}: lsr applies the log1p_relu activation with max pooling only, not sum")
    model = _json(folder / ST_CONFIG)
    prompts = {name: text for name, text in (model.get("prompts") or {}).items() if text}
    if prompts or model.get("default_prompt_name"):
        raise LsrError(f"{folder / ST_CONFIG}: prompts {prompts}: lsr encodes texts as given, without prompts")
    if model.get("similarity_fn_name") not in (None, "dot"):
        raise LsrError(
            f"{folder / ST_CONFIG}: similarity {model['similarity_fn_name']!r}; lsr's sparse indexes rank by dot"
        )
    length = _json(transformer / MODULE_CONFIG).get("max_seq_length")
    return Layout(kind, transformer, strategy, activation, length, model.get("max_active_dims"), static)


def static_weights(folder: Path) -> np.ndarray | None:
    """A SparseStaticEmbedding's weight vector, read without unpickling (``None`` when it keeps none of its own)."""
    from lsr.safeload import load_weights

    if (folder / "model.safetensors").is_file():
        from safetensors.numpy import load_file

        return load_file(folder / "model.safetensors")["weight"].astype(np.float32)
    if (folder / "pytorch_model.bin").is_file():
        state = load_weights(folder / "pytorch_model.bin", "load a copy whose weights are safetensors")
        return state["weight"].float().numpy()
    return None


# -- writing --------------------------------------------------------------------------------------------------------
def _write(path: Path, content: object) -> None:
    """One JSON file inside a folder being written under ``lsr.fsutil.atomic_dir`` (crash-safe as a whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")


def _transformer_config(max_length: int) -> dict[str, Any]:
    return {
        "transformer_task": "fill-mask",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
        "module_output_name": "token_embeddings",
        "max_seq_length": max_length,
    }


def _pooling_config(pooling: str, activation: str) -> dict[str, Any]:
    return {"pooling_strategy": pooling, "activation_function": activation, "embedding_dimension": None}


def _model_config(folder: Path, top_k: int | None) -> None:
    config: dict[str, Any] = {
        "model_type": "SparseEncoder",
        "prompts": {"query": "", "document": ""},
        "default_prompt_name": None,
        "similarity_fn_name": "dot",
        "requirements": {
            "sentence_transformers": {"specifier": ST_REQUIREMENT, "reason": "the module types lsr wrote were tested"}
        },
    }
    if top_k is not None:
        config["max_active_dims"] = top_k
    _write(folder / ST_CONFIG, config)


def write_splade_modules(folder: Path, pooling: str, activation: str, max_length: int, top_k: int | None) -> None:
    """The module files of a SPLADE folder whose weights and tokenizer are at its root."""
    _write(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": TRANSFORMER},
            {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": SPLADE_POOLING},
        ],
    )
    _write(folder / MODULE_CONFIG, _transformer_config(max_length))
    _write(folder / "1_SpladePooling" / "config.json", _pooling_config(pooling, activation))
    _model_config(folder, top_k)


def write_inference_free_modules(
    folder: Path, pooling: str, activation: str, max_length: int, top_k: int | None, idf: np.ndarray, tokenizer: Any
) -> None:
    """The Router files of an inference-free folder whose document weights are already in :data:`DOCUMENT_DIR`."""
    import torch
    from safetensors.torch import save_file

    query = folder / QUERY_DIR
    query.mkdir(parents=True, exist_ok=True)
    save_file(
        {"weight": torch.from_numpy(np.ascontiguousarray(idf, dtype=np.float32))}, str(query / "model.safetensors")
    )
    tokenizer.save_pretrained(query)
    _write(query / "config.json", {"frozen": True})
    _write(folder / DOCUMENT_DIR / MODULE_CONFIG, _transformer_config(max_length))
    _write(folder / "document_1_SpladePooling" / "config.json", _pooling_config(pooling, activation))
    _write(folder / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": ROUTER}])
    _write(
        folder / "router_config.json",
        {
            "types": {QUERY_DIR: STATIC, DOCUMENT_DIR: TRANSFORMER, "document_1_SpladePooling": SPLADE_POOLING},
            "structure": {"query": [QUERY_DIR], "document": [DOCUMENT_DIR, "document_1_SpladePooling"]},
            "parameters": {"default_route": "document", "allow_empty_key": True, "route_mappings": {}},
        },
    )
    _model_config(folder, top_k)
