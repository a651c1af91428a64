#!/bin/bash
# One GPU session's work (run on the device machine from the repository root, .whl/ carried; see wheels.sh):
#     bash scripts/device/session.sh train MINUTES   # both domains' pixel priors at once (scripts/train_priors.py)
#     bash scripts/device/session.sh paper [DOMAINS] # benchmarks/paper_scale.py (default: mri blackhole)
# Everything returned lands flat in $OUT (the device tool returns at most 8 files): per domain the float16
# image/video weights and one .tgz of logs, configs and prior-report; env.txt; paper_scale_<domain>.json.
# Stops each job $TLIM seconds (default 540) after the start so the outputs are packed inside the call's limit.
set -u
what=${1:?train or paper}; shift
O=${OUT:?OUT must name the output folder}
T0=$(date +%s); TLIM=${TLIM:-540}
if [ -z "${LOCALTEST:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 3
  export PYTHONPATH=$PWD:/tmp/site:$PWD/.whl/meta
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-7}
mkdir -p runs
{ nvidia-smi; python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'numpy', numpy.__version__)"
} > "$O/env.txt" 2>&1
tail -1 "$O/env.txt"
left() { echo $((TLIM - ($(date +%s) - T0))); }
if [ "$what" = train ]; then
  M=${1:-6}; shift || true
  for d in bh mri; do
    ( timeout "$(left)" python3 scripts/train_priors.py --domain $d --config "${CFGDIR:-configs/gpu}/prior_${d}_pixel_gpu.yaml" \
        --out runs/gpu_$d --minutes "$M" --ship runs/gpu_$d/ship "$@" > runs/gpu_${d}_log.txt 2>&1
      echo "rc $?" >> runs/gpu_${d}_log.txt ) &
  done
  while [ -n "$(jobs -r)" ]; do
    sleep 30; echo "[$(( $(date +%s) - T0 )) s]"
    for d in bh mri; do for s in image video; do tail -1 runs/gpu_$d/$s/log.jsonl 2>/dev/null; done; done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  done
  wait
  for d in bh mri; do
    tail -3 runs/gpu_${d}_log.txt; cp runs/gpu_${d}_log.txt runs/gpu_$d/train_log.txt
    for s in image video; do
      [ -f runs/gpu_$d/ship/$s.safetensors ] && cp runs/gpu_$d/ship/$s.safetensors "$O/${d}_$s.safetensors"
    done
    tar czf "$O/${d}_rest.tgz" --exclude='*.safetensors' -C runs/gpu_$d ship recipe_config.yaml train_log.txt \
        image/log.jsonl video/log.jsonl 2>/dev/null
  done
elif [ "$what" = paper ]; then
  for d in ${@:-mri blackhole}; do
    timeout "$(left)" python3 benchmarks/paper_scale.py $d ${PAPER_ARGS:-} --json "$O/paper_scale_$d.json" 2>&1 | tail -3
  done
else
  echo "session.sh: unknown job '$what' (train or paper)"; exit 2
fi
ls -la "$O"; echo "total $(( $(date +%s) - T0 )) s"
