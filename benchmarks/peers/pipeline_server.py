"""Peer for benchmarks/compare_servers.py: FastAPI + transformers ``pipeline("text-classification")``.

The server a user writes in ten minutes: one Hugging Face checkpoint, one pipeline, each request's
texts classified in one call with ``batch_size`` (batching inside a request, none across requests).
One call runs at a time (a lock), so concurrent requests do not oversubscribe torch's threads.

    python benchmarks/peers/pipeline_server.py --model DIR --port 8001 --threads 2

POST /classify {"texts": ["...", ...]} -> {"results": [{"label": ..., "score": ...}, ...]}; GET /health.
Needs torch, transformers, fastapi and uvicorn (the ``bench`` extra).
"""

# No ``from __future__ import annotations``: FastAPI must see the request model defined inside main().
import argparse
import threading
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hugging Face checkpoint directory (sequence classifier)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--batch-size", type=int, default=64, help="pipeline batch_size (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()

    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = pipeline("text-classification", model=args.model, tokenizer=args.model, device="cpu")
    lock = threading.Lock()
    app = FastAPI()

    class Request(BaseModel):
        texts: list[str]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # A plain ``def`` route: FastAPI runs it in its thread pool, so the event loop keeps accepting.
    @app.post("/classify")
    def classify(request: Request) -> dict[str, Any]:
        with lock, torch.inference_mode():
            results = classifier(request.texts, batch_size=args.batch_size, truncation=True, max_length=64)
        return {"results": results}

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
