#!/usr/bin/env bash
# The speed table on a lent GPU machine, in one call of the device tool (see benchmarks/README.md).
#
# That machine has torch and lightning but not pyfaidx, captum or jsonargparse (the CLI's), and
# the course data does not travel there: the project path reads the built-in synthetic data.
# Here, once, fetch their wheels (the project's other dependencies are there):
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl pyfaidx==0.9.2.2 captum==0.9.0 jsonargparse==4.53.0 \
#       docstring_parser==0.18.0 typeshed_client==2.15.0
# then run this with carry [".whl"], e.g. command "bash benchmarks/cuda_speed.sh": ~150 s on the H200
# (timeout 300 s), with TESTS=1 up to 300 s more (timeout 600 s).
# Results come back in $OUT/speed_cuda.{json,md} and loop_overhead_cuda.{json,md}: commit them to benchmarks/results/.
# TESTS=1 then runs the test suite there too (over 200 s on the H200; log in $OUT/pytest_cuda.txt).
# DEVICE=cpu REPEATS=1 ONLY=dense_regression runs the same steps on a CPU (a smoke test, here).
set -euo pipefail
OUT="${OUT:-/tmp/deepbio-speed}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/deepbio-site .whl/*.whl
export PYTHONPATH="/tmp/deepbio-site:$PWD" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.is_available() and torch.cuda.get_device_name())"
python3 benchmarks/speed.py --device "${DEVICE:-cuda}" --data synthetic --repeats "${REPEATS:-3}" \
    --out "$OUT" ${ONLY:+--only $ONLY} 2>&1 | tee "$OUT/speed_log.txt"
python3 benchmarks/loop_overhead.py --device "${DEVICE:-cuda}" --repeats "${REPEATS:-3}" --out "$OUT" 2>&1 | tail -8
if [ -n "${TESTS:-}" ]; then
    # The tour (and its test) reads deepbio's installed version.
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null || echo "pip install -e . failed"
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests > "$OUT/pytest_cuda.txt" 2>&1 || true
    tail -15 "$OUT/pytest_cuda.txt"
fi
