"""``danmaku-serve serve``: run the HTTP API under uvicorn, with a drain phase on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve POST /classify (the default command)",
        description="Serve the models of --models-dir over HTTP. Flags override DANMAKU_* environment variables.",
    )
    parser.add_argument("--host", help="interface to listen on (DANMAKU_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (DANMAKU_PORT, default 8000)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="directory with the emotion/ and information/ bundles, or one joint emotion/ bundle (default models/)",
    )
    parser.add_argument(
        "--log-level", choices=["critical", "error", "warning", "info", "debug"], help="(DANMAKU_LOG_LEVEL)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.lifecycle import DrainingServer
    from service.limits import LimitedHttpProtocol
    from service.settings import SettingsError, load_settings

    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("models_dir", args.models_dir),
            ("log_level", args.log_level),
        )
        if value is not None
    }
    try:
        settings = load_settings(**overrides)
        app = create_app(settings)
    except SettingsError as exc:
        print(f"danmaku-serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # After the drain, connections still open (keep-alive, late 503s) get what is left of the drain deadline
        # (DrainingServer sets it); this value only applies to a shutdown without a drain (SIGINT).
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s)),
        http=LimitedHttpProtocol.configured(settings),
        access_log=settings.log_level == "debug",
        timeout_keep_alive=settings.keep_alive_s,
    )
    server = DrainingServer(config, app.state.service.lifecycle, drain_timeout_s=settings.drain_timeout_s)
    server.run()
    return 0 if server.started else 1
