#!/usr/bin/env bash
# The FLAN held-out NLI protocol at GPU scale, as run for docs/results/instruct_heldout_gpu*.md
# (one H100, about 25 minutes in all): full fine-tuning, 600 steps of 32 packed rows of 512
# tokens (~9.8M tokens, ~2.5 passes over the capped mixture), every template, SNLI 1000.
# Needs the assets installed (scripts/setup.sh) and the shared data; OUT defaults to runs/bench.
set -euo pipefail
OUT=${OUT:-runs/bench}
COMMON=(--steps 600 --full --lr 5e-5 --batch-size 32 --max-length 512 --save-every 100000
        --cap 5000 --snli-limit 1000 --templates all --eval-batch-size 64)

# Gemma 3 270M (the subject) and SmolLM2-135M-Instruct (the second model), 2 training seeds each
python bench/instruct/heldout_nli.py --models gemma3-270m,smollm2-135m-instruct --seeds 0,1 "${COMMON[@]}" \
    --out "$OUT/flan_gpu" --docs docs/results/instruct_heldout_gpu.md

# FLAN's ablations on Gemma, one seed, reusing the base evaluation: no template, one training cluster
python bench/instruct/heldout_nli.py --models gemma3-270m --seeds 0 "${COMMON[@]}" --base-from "$OUT/flan_gpu" \
    --raw-inputs --out "$OUT/flan_gpu_raw" --docs docs/results/instruct_heldout_gpu_ablation_raw_inputs.md
python bench/instruct/heldout_nli.py --models gemma3-270m --seeds 0 "${COMMON[@]}" --base-from "$OUT/flan_gpu" \
    --train-datasets sst2,mr,cr,mpqa --out "$OUT/flan_gpu_sentiment" --docs docs/results/instruct_heldout_gpu_ablation_one_cluster.md
