#!/bin/bash
# Prepare, on the development machine, what a GPU session carries: wheels of the packages the GPU image lacks
# (Python 3.12, manylinux x86-64) and the stepvip entry points, into .whl/ of the repository root (git-ignored).
# Usage (repository root, project venv active, stepvip installed with `pip install -e .`):
#     bash scripts/device/wheels.sh
# then pass carry [".whl"] to the device run and start its command with `bash scripts/device/session.sh ...`.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl/meta
plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
# astropy (blackhole I/O), sigpy + PyWavelets (MRI), h5netcdf (posterior files), ehtim and its pure-Python needs
# (black-hole case simulation in benchmarks/paper_scale.py); versions = this venv's, so both machines agree
pins=$(python - <<'PY'
import importlib.metadata as m
names = ["astropy", "pyerfa", "astropy-iers-data", "sigpy", "PyWavelets", "h5netcdf", "ehtim", "future", "skyfield",
         "jplephem", "sgp4"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
PY
)
python -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d .whl $pins
python -m pip wheel -q --no-deps -w .whl "paramsurvey==$(python -c 'import importlib.metadata as m; print(m.version("paramsurvey"))')"
cp -r "$(python -c 'import importlib.metadata as m; print(m.distribution("stepvip")._path)')" .whl/meta/
du -sh .whl
