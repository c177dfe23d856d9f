#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv outside the checkout, and use it from an empty folder:
# `rag --version`, ingest a sample corpus, ask with the extractive backend. Catches a package that only works
# from the source tree (missing subpackages, data files, undeclared dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WORK=$(mktemp -d /tmp/rag-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}
"$PY" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install -q --upgrade pip build
"$WORK/build-env/bin/python" -m build --wheel --outdir "$WORK/dist" "$REPO" >/dev/null
WHEEL=$(ls "$WORK"/dist/rag-*.whl)
echo "built $(basename "$WHEEL")"
# The wheel must carry every package and the web page.
unzip -Z1 "$WHEEL" > "$WORK/files.txt"
for f in rag/llm/local.py rag/server/static/index.html rag/server/routes/chat.py ingest/loaders/pdf.py eval/cli.py; do
    grep -qx "$f" "$WORK/files.txt" || { echo "the wheel lacks $f" >&2; exit 1; }
done
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q torch==2.13.0
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
    "$WORK/venv/bin/python" -m pip install -q -c "$REPO/constraints.txt" "$WHEEL"
mkdir -p "$WORK/empty" && cp -r "$REPO/corpora/lecture/docs" "$WORK/docs"
cd "$WORK/empty"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
"$WORK/venv/bin/rag" --version
"$WORK/venv/bin/rag" ingest "$WORK/docs" --index "$WORK/index"
"$WORK/venv/bin/rag" ask "In which year did GANs appear?" --index "$WORK/index" --llm extractive | tee "$WORK/answer.txt"
grep -q "2014" "$WORK/answer.txt"
"$WORK/venv/bin/rag" eval --help >/dev/null  # the eval command arrives through its entry point
"$WORK/venv/bin/rag" verify --help >/dev/null
echo "wheel check passed"
