"""The training core: exact resume after SIGKILL, 1 vs 2 processes, LoRA, checkpoints."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unseen.core.errors import DivergenceError, UnseenError
from unseen.core.training import TrainConfig, apply_lora, best_device, count_parameters, global_batch_indices, train

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "scripts" / "tiny_lm_train.py"


def _run(out, *args, launcher=(sys.executable,)):
    command = [*launcher, str(SCRIPT), "--out", str(out), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, data_dir):
    args = ["--steps", "24", "--save-every", "4"]
    _run(tmp_path / "straight", *args)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(interrupted), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (interrupted / "checkpoints" / "step-000008").exists():
        assert process.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.safetensors").exists()
    _run(interrupted, *args, "--resume")

    straight_weights = load_file(tmp_path / "straight" / "model.safetensors")
    resumed_weights = load_file(interrupted / "model.safetensors")
    assert straight_weights.keys() == resumed_weights.keys()
    for name, tensor in straight_weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    assert _losses(interrupted) == _losses(tmp_path / "straight")  # metrics log has no duplicate or missing step


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, data_dir):
    args = ["--steps", "5", "--dropout", "0", "--batch-size", "8", "--grad-accum", "2", "--save-every", "0"]
    _run(tmp_path / "one", *args)
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    _run(tmp_path / "two", *args, launcher=accelerate)
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), abs=1e-4)
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-4, rtol=1e-4)


def test_run_directory_has_config_manifest_metrics(tmp_path, data_dir):
    _run(tmp_path / "run", "--steps", "3", "--save-every", "2")
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["packages"]["torch"].startswith("2.")
    assert len(manifest["data"]["sst2/train"]) == 16
    assert "steps: 3" in (run / "config.yaml").read_text()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-000003"
    assert len(_losses(run)) == 3


def test_a_finished_run_is_not_overwritten(tmp_path):
    model = torch.nn.Linear(2, 1)
    data = [torch.randn(2) for _ in range(8)]
    config = TrainConfig(out_dir=str(tmp_path / "r"), steps=2, batch_size=4)
    train(model, lambda m, b: m(b).pow(2).mean(), data, config)
    with pytest.raises(UnseenError, match="already holds a run"):
        train(model, lambda m, b: m(b).pow(2).mean(), data, config)


def test_lora_trains_only_the_adapters(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    model = apply_lora(LlamaForCausalLM(config), r=2, alpha=4)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total / 5
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    sequences = [torch.randint(0, 64, (8,)) for _ in range(8)]
    train(model, lambda m, b: m(input_ids=b, labels=b).loss, sequences,
          TrainConfig(out_dir=str(tmp_path / "lora"), steps=3, batch_size=4, lr=1e-2))
    for name, parameter in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(parameter, frozen_before[name]), name
    saved = load_file(tmp_path / "lora" / "model.safetensors")
    assert saved and all("lora_" in name for name in saved)


def test_global_batches_cover_each_epoch_once():
    seen = sum((global_batch_indices(10, 5, seed=3, step=s) for s in range(2)), [])
    assert sorted(seen) == list(range(10))
    assert global_batch_indices(10, 5, seed=3, step=2) != global_batch_indices(10, 5, seed=3, step=0)
    with pytest.raises(UnseenError, match="fewer than one batch"):
        global_batch_indices(3, 5, seed=0, step=0)


def test_diverging_loss_is_a_clear_error(tmp_path):
    model = torch.nn.Linear(2, 1)
    with pytest.raises(DivergenceError, match="diverged"):
        train(model, lambda m, b: m(b).sum() * float("inf"), [torch.ones(2)] * 4,
              TrainConfig(out_dir=str(tmp_path / "d"), steps=1, batch_size=2))


def test_best_device_follows_unseen_device_then_the_hardware(monkeypatch):
    monkeypatch.setenv("UNSEEN_DEVICE", "meta")
    assert best_device() == torch.device("meta")
    monkeypatch.delenv("UNSEEN_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert best_device().type == expected
