#!/usr/bin/env bash
# The test suite against llama.cpp built for no particular CPU (GGML_NATIVE=OFF).
#
# README's first command compiles llama-cpp-python for the CPU it runs on (-march=native: on
# this project's machines AVX-512, VNNI and AVX512-BF16 kernels). Users build it elsewhere for
# their own CPUs, and llama.cpp's kernels round differently per instruction set, so every
# numeric cross-check must hold on other builds too. GGML_NATIVE=OFF builds ggml's portable
# x86 baseline (SSE4.2, AVX, AVX2, FMA, F16C; no AVX-512). This script builds that wheel once
# (~10 min on 2 cores) into the model cache's wheels/ folder (not pip's cache, so it never
# replaces the native wheel there), installs the project with it into .venv-generic/, checks
# that the library it loads has no AVX-512, and runs the whole suite (extra pytest arguments
# pass through).
#
#     bash scripts/test_generic_llamacpp.sh            # after README's first command
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
cache="${SAMPLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sampler}"
wheels="$cache/wheels/llama-cpp-python-generic"
if ! compgen -G "$wheels/llama_cpp_python-$version-*.whl" >/dev/null; then
  mkdir -p "$wheels"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" python3.11 -m pip wheel --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$wheels" "llama-cpp-python==$version"
fi
[ -x .venv-generic/bin/python ] || python3.11 -m venv .venv-generic
.venv-generic/bin/pip install -q --find-links "$wheels" --only-binary llama-cpp-python -e '.[all]'
.venv-generic/bin/python - <<'PY'
import llama_cpp

info = llama_cpp.llama_print_system_info().decode()
print("llama.cpp under test:", info.strip())
assert "AVX512 = 1" not in info and "AVX512 : 1" not in info, "this build uses AVX-512"
PY
.venv-generic/bin/python -m pytest "$@"
