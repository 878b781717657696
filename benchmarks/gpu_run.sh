#!/usr/bin/env bash
# One prepared run on a lent GPU machine (H100/H200): every figure lands in a file under $OUT.
#
# What that machine has (see the device tool's KINDS.md): python3 with torch (CUDA), transformers,
# onnx, onnxscript, onnxruntime (the CPU build), httpx, numpy; no fastapi/uvicorn/pydantic-settings,
# no onnxruntime-gpu, and no network. So the wheels travel in .whl (ignored by git), prepared HERE:
#
#   echo /.whl/ >> .git/info/exclude    # (already in .gitignore)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl fastapi starlette uvicorn click pydantic pydantic-core pydantic-settings python-dotenv \
#       annotated-types typing-inspection typing-extensions opentelemetry-api   # ~3.5 MB; their Requires-Dist checked
#   # onnxruntime-gpu for CUDA EP / TensorRT EP: its wheel is ~300 MB, over the 64 MiB a call carries;
#   # without it the ORT CUDA rows are recorded as skipped and the PyTorch rows still measure the GPU.
#   # optional, real danmaku instead of generated texts (../shared/data does not travel): a 5,000-row sample
#   mkdir -p .bench-data && python3 -c "import csv, gzip, itertools
#   rows = csv.DictReader(gzip.open('../shared/data/danmaku/dd_center_vtuber.csv.gz', 'rt', encoding='utf-8'))
#   out = csv.writer(gzip.open('.bench-data/danmaku-sample.csv.gz', 'wt', encoding='utf-8', newline=''))
#   out.writerow(['text']); [out.writerow([row['text']]) for row in itertools.islice(rows, 5000)]"
#
# and run with the device tool:  run(command="bash benchmarks/gpu_run.sh", carry=[".whl", ".bench-data"],
# timeout_s=600). Each step is time-bounded; a failing step is recorded in summary.txt and the run goes
# on. Files under $OUT (at most 8 come back): summary.txt, machine.txt, run.log, gpu_inference.json,
# gpu_utilisation.json, http.txt.
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
WORK=$(mktemp -d /tmp/gpu-run.XXXXXX)
LOG=$OUT/run.log
SUMMARY=$OUT/summary.txt
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO
STARTED=$(date +%s)
echo "gpu_run.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >"$SUMMARY"

# step NAME SECONDS COMMAND...: run bounded, output to run.log, one line of outcome to summary.txt.
step() {
    local name=$1 limit=$2
    shift 2
    echo "===== $name (limit ${limit} s) $(date -u +%T)" >>"$LOG"
    local began=$(date +%s)
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    local outcome="ok"
    [ $rc -eq 124 ] && outcome="TIMED OUT"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && outcome="FAILED rc=$rc"
    echo "$name: $outcome in $(($(date +%s) - began)) s" | tee -a "$SUMMARY" >>"$LOG"
    return $rc
}

# 1. The machine: GPU, driver, CPU, packages.
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    nvidia-smi
    lscpu | grep -E 'Model name|^CPU\(s\)|Flags'
    $PY -c 'import sys, torch; print(sys.version); print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'
    $PY -m pip list 2>/dev/null | grep -i -E '^(onnxruntime|onnx|torch|transformers|fastapi|uvicorn|pydantic|tensorrt)'
} >"$OUT/machine.txt" 2>&1

# 2. Install what is missing, from the carried wheels only (no network there).
if ls .whl/*.whl >/dev/null 2>&1; then
    step install 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$REPO
else
    echo "install: no .whl folder carried; using what the machine has" >>"$SUMMARY"
fi
step imports 60 $PY -c 'import fastapi, uvicorn, pydantic_settings, onnxruntime as o; print(o.__version__, o.get_available_providers())'

# Real danmaku travel as a sample (../shared/data stays behind): .bench-data/danmaku-sample.csv.gz.
if [ -f .bench-data/danmaku-sample.csv.gz ]; then
    export DANMAKU_BENCH_CSV=$REPO/.bench-data/danmaku-sample.csv.gz
fi

# 3. A BERT-base-sized encoder (12 layers, hidden 768, FFN 3072, 12 heads, random weights): our two
#    bundles, their fp16 copies, and the same network as a Hugging Face checkpoint.
BUILT=0
step build 240 $PY - "$WORK" <<'PYTHON'
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from compare_servers import build_models
from gpu_inference import fp16_copy
from serving_throughput import load_texts
from service.bundle import load_bundle

work = Path(sys.argv[1])
texts, source = load_texts(5000, seed=0)
models, checkpoint = build_models(work, texts, hidden_size=768, layers=12, int8=False)
for name in ("emotion", "information"):
    copy = fp16_copy(load_bundle(models / name), models)
    print("fp16 bundle", copy.directory)
print("built", models, checkpoint, "texts:", source)
PYTHON
[ $? -eq 0 ] && BUILT=1
if [ $BUILT -eq 0 ]; then
    echo "no bundles: the steps below are skipped" | tee -a "$SUMMARY"
    rm -rf "$WORK"
    exit 0
fi

# 4. Offline through ONNX Runtime: CPU / CUDA fp32 / CUDA fp16 / TensorRT fp16 on the emotion bundle.
step gpu_inference 200 $PY benchmarks/gpu_inference.py --bundle "$WORK/models/emotion" \
    --batch-sizes 1,8,64,256,1024 --seconds 3 --json "$OUT/gpu_inference.json"

# 5. Offline through PyTorch fp32/fp16, and the fraction of peak FLOP/s of every row (ORT's too).
step gpu_utilisation 150 $PY benchmarks/gpu_utilisation.py --checkpoint "$WORK/hf-classifier" \
    --batch-sizes 64,256,1024 --seconds 3 --ort-json "$OUT/gpu_inference.json" --json "$OUT/gpu_utilisation.json"

# 6. Through HTTP at danmaku lengths: the service on CUDA, fp32 then fp16 bundles, 64 clients x 8 comments.
for precision in fp32 fp16; do
    elapsed=$(($(date +%s) - STARTED))
    if [ $elapsed -gt 480 ]; then
        echo "http-$precision: skipped, $elapsed s spent of the 10 minutes" >>"$SUMMARY"
        continue
    fi
    suffix=""
    [ $precision = fp16 ] && suffix="-fp16"
    {
        echo "### HTTP, $precision bundles, CUDA"
    } >>"$OUT/http.txt"
    DANMAKU_EXECUTION_PROVIDER=cuda DANMAKU_EMOTION_BUNDLE=emotion$suffix DANMAKU_INFORMATION_BUNDLE=information$suffix \
        step "http-$precision" 150 bash -c "set -o pipefail; $PY benchmarks/serving_throughput.py --models-dir '$WORK/models' \
        --clients 64 --comments-per-request 8 --duration 15 --warmup 5 --max-batch-size 256 --max-wait-ms 2 \
        --max-length 64 | tee -a '$OUT/http.txt'"
done

echo "total: $(($(date +%s) - STARTED)) s" >>"$SUMMARY"
cat "$SUMMARY"
rm -rf "$WORK"
