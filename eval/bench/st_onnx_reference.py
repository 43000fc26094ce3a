"""sentence-transformers' own ``SparseEncoder`` ONNX backend timed against its torch path (issue 22 item 4).

It cannot run in lsr's environment: the backend needs ``optimum-onnx``, whose only release pins transformers < 4.58,
while lsr runs transformers 5. So it runs in a venv of its own (sentence-transformers 5.2, transformers 4.57,
``optimum-onnx[onnxruntime]``), with no lsr import, and its ratios are set beside ``lsr bench onnx``'s from the same
hour on the same machine (eval/RESULTS.md, "ONNX encoding")::

    python -P eval/bench/st_onnx_reference.py MODEL_FOLDER BEIR_FOLDER DOCS ROUNDS   # MAXLEN=256 in the environment

(``-P``: this folder holds an ``onnx.py`` of lsr's, which would shadow the onnx package.)

Documents are the first DOCS of the corpus in file order, title and text joined as lsr joins them; the three
backends (torch, ONNX fp32, ONNX int8 quantised by sentence-transformers for AVX-512 VNNI) run in interleaved
rounds and the median documents/s is printed. The model folder is written to (the ONNX exports): pass a copy.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from typing import Any

from sentence_transformers import SparseEncoder, export_dynamic_quantized_onnx_model


def first_documents(beir: str, count: int) -> list[str]:
    docs: list[str] = []
    with gzip.open(os.path.join(beir, "corpus.jsonl.gz"), "rt", encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            docs.append(f"{doc.get('title', '')} {doc['text']}".strip())
            if len(docs) == count:
                break
    return docs


def encoders(model: str, max_length: int) -> dict[str, Any]:
    """torch, ONNX fp32 (exported on first load) and its dynamic int8 quantisation, each truncating at max_length."""
    out = {"torch": SparseEncoder(model, device="cpu"), "onnx": SparseEncoder(model, device="cpu", backend="onnx")}
    export_dynamic_quantized_onnx_model(out["onnx"], "avx512_vnni", model)
    int8 = {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
    out["onnx-int8"] = SparseEncoder(model, device="cpu", backend="onnx", model_kwargs=int8)
    for encoder in out.values():
        encoder.max_seq_length = max_length
    return out


def main() -> None:
    model, beir, count, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    docs = first_documents(beir, count)
    models = encoders(model, int(os.environ.get("MAXLEN", "256")))
    rates: dict[str, list[float]] = {name: [] for name in models}
    for number in range(rounds):
        for name, encoder in models.items():
            start = time.perf_counter()
            encoder.encode_document(docs, batch_size=32)
            rates[name].append(count / (time.perf_counter() - start))
        print("round", number, {k: round(v[-1], 2) for k, v in rates.items()}, "load", os.getloadavg()[0], flush=True)
    print(json.dumps({name: sorted(values)[len(values) // 2] for name, values in rates.items()}))


if __name__ == "__main__":
    main()
