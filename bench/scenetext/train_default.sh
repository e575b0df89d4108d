#!/usr/bin/env bash
# Trains the shipped default recognizer, src/unseen/scenetext/e2str/weights/e2str_lite.safetensors.
# On 2 CPU cores: building the feature store (render 2,000 synthetic word groups, Split-and-Transform
# of IIIT5K train, encode ~20k images with the frozen CRNN) ~25-35 min, then stage 1 and stage 2
# ~15 min each on the cached features. Every step resumes where it stopped if killed (--resume).
# Fonts: Debian's fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-roboto-unhinted fonts-open-sans
# fonts-lato fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell fonts-comic-neue fonts-linuxlibertine
# (plus DejaVu); with fewer fonts it still runs, on less varied data.
set -euo pipefail
cd "$(dirname "$0")/../.."
STR=(.venv/bin/unseen str)
STORE=runs/str/store
COMMON=(--encoder easyocr-english-g2 --store "$STORE" --synthetic-groups 2000 --real iiit5k:train --threads 2 --resume)
"${STR[@]}" train --stage 1 --out runs/str/stage1 "${COMMON[@]}" --steps 1500 --batch-size 64 --lr 5e-4 "$@"
"${STR[@]}" train --stage 2 --init runs/str/stage1 --out runs/str/stage2 "${COMMON[@]}" --steps 800 --batch-size 32 --lr 3e-4 \
  --export src/unseen/scenetext/e2str/weights/e2str_lite.safetensors "$@"
