#!/usr/bin/env bash
# The main job on the bundled sample corpus: install, ingest the lecture, ask a question with citations.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
. .venv/bin/activate
export OMP_WAIT_POLICY=PASSIVE
rag ingest corpora/lecture/docs --index .rag/index
rag ask "${1:-In which year did GANs appear, and what was their key innovation?}" --index .rag/index
