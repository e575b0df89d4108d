#!/usr/bin/env bash
# Trains E2STR-lite on PP-OCRv4 tokens (issue 13, part 3), as measured in docs/results/scenetext_ppocr_e2str.md.
# The decoder starts from the CRNN-era default (its character decoder and attention carry over; the
# visual input layer starts fresh for the 217-wide PP-OCRv4 tokens). PP-OCRv4 stays frozen: its tokens
# are cached once in the feature store (docs/results/scenetext_ppocr_train_step.md says why).
# On 2 CPU cores, one thread per job: the store (2,000 synthetic groups + IIIT5K train, ~25k crops)
# ~12 min; stage 1, 600 + 2,400 steps of 64, ~4 + 18 min; stage 2, 800 steps of 32, ~13 min.
# Every step resumes where it stopped if killed (--resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
STR=(.venv/bin/unseen str train --encoder ppocr-v4-rec --store runs/str-ppocr/store --synthetic-groups 2000
     --real iiit5k:train --threads 1 --resume)
"${STR[@]}" --stage 1 --init src/unseen/scenetext/e2str/weights/e2str_lite.safetensors --out runs/str-ppocr/stage1 --steps 600 "$@"
"${STR[@]}" --stage 1 --init runs/str-ppocr/stage1 --out runs/str-ppocr/stage1b --steps 2400 "$@"
"${STR[@]}" --stage 2 --init runs/str-ppocr/stage1b --out runs/str-ppocr/stage2b --steps 800 --batch-size 32 --lr 3e-4 "$@"
