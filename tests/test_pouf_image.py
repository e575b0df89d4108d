"""POUF on image-text models: the dual-encoder adapters on tiny random CLIPs, image tasks, bad input."""

import importlib.util

import pytest
import torch

from unseen.core.errors import DataError, UnseenError
from unseen.pouf.adapt import AdaptConfig
from unseen.pouf.dual import ImageRef, augment
from unseen.pouf.dual_models import HFCLIP, load_dual_encoder
from unseen.pouf.image import ImageSetup, evaluate_run, image_items, run_adapt, zeroshot
from unseen.pouf.tasks import load_image_task, read_class_names
from unseen.pouf.testing import image_folder, tiny_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pouf-image")
    folder = image_folder(root / "images")
    (root / "classes.txt").write_text("dog\ncat: kitten\ncar\n")
    return {"clip": tiny_clip(root / "clip"), "folder": folder, "classes": root / "classes.txt", "root": root}


def test_class_name_file_and_mismatches(tiny, tmp_path):
    task = load_image_task(str(tiny["folder"]), tiny["classes"])
    assert task.classes == ["dog", "cat", "car"] and task.prompt_names == ["dog", "kitten", "car"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("dog\ncta\ncar\n")
    with pytest.raises(DataError, match=r"wrong.txt: class 'cta' has no folder in .* \(folders: car, cat, dog\)"):
        load_image_task(str(tiny["folder"]), wrong)
    short = tmp_path / "short.txt"
    short.write_text("dog\ncat\n")
    with pytest.raises(DataError, match=r"folder 'car' is not in .*short.txt"):
        load_image_task(str(tiny["folder"]), short)
    twice = tmp_path / "twice.txt"
    twice.write_text("dog\ndog\n")
    with pytest.raises(DataError, match=r"twice.txt:2: class 'dog' is listed twice"):
        read_class_names(twice)
    empty = tmp_path / "empty"
    (empty / "dog").mkdir(parents=True)
    (empty / "cat").mkdir()
    setup = ImageSetup(task=load_image_task(str(empty)), model_name=str(tiny["clip"]))
    with pytest.raises(DataError, match="no images found"):
        zeroshot(setup)


def test_hf_clip_adapter_matches_the_model(tiny):
    model = load_dual_encoder(str(tiny["clip"]), ["dog", "cat"], ["a photo of a {}."], mode="ln")
    assert isinstance(model, HFCLIP)
    texts = ["a photo of a dog .", "a cat"]
    with torch.no_grad():
        ours = model.encode_texts(texts)
        tokens = model.tokenizer(texts, padding=True, return_tensors="pt")
        theirs = model.clip.get_text_features(**tokens)
        theirs = theirs if torch.is_tensor(theirs) else theirs.pooler_output
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_prompt_mode_starts_at_the_zero_shot_prototypes(tiny):
    model = load_dual_encoder(str(tiny["clip"]), ["dog", "cat", "car"], ["a photo of a {}."], mode="prompt")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["context"]
    assert model.context.shape[0] == 4  # "a photo of a"
    with torch.no_grad():
        learned = model.prototypes()
        fixed = model.encode_texts([f"a photo of a {c}." for c in ["dog", "cat", "car"]])
    assert torch.allclose(learned, fixed, atol=1e-5)


@pytest.mark.parametrize("mode", ["ln", "lora", "full"])
def test_modes_select_their_parameters(tiny, mode):
    model = load_dual_encoder(str(tiny["clip"]), ["dog", "cat"], ["a photo of a {}."], mode=mode)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names
    if mode == "ln":
        assert all("norm" in n for n in names), names
    if mode == "lora":
        assert all("lora_" in n for n in names)
    model.train()
    assert model.training


def test_augmented_views_are_deterministic(tiny):
    from PIL import Image

    image = Image.new("RGB", (40, 40), (200, 10, 10))
    assert augment(image, 3).tobytes() == augment(image, 3).tobytes()
    records = [{"image": image}]
    assert ImageRef(records, 0, 0).load() is image


@pytest.mark.parametrize("mode", ["prompt", "full"])
def test_adapt_and_eval_on_an_image_folder(tiny, tmp_path, mode):
    task = load_image_task(str(tiny["folder"]), tiny["classes"])
    setup = ImageSetup(task=task, model_name=str(tiny["clip"]), mode=mode, views=2)
    config = AdaptConfig(mode=mode, steps=6, batch_size=6, lr=1e-3, scale=100.0, lambda_mi=0.3,
                         mi_on_model_logits=False, select_every=3)
    model, selection = run_adapt(setup, config, tmp_path / "run")
    assert [h["step"] for h in selection.history] == [0, 3, 6]
    if mode == "prompt":  # frozen image tower: the features of both views were cached
        items = image_items(model, setup, "unlabeled")
        assert len(items) == 2 and items[0][0].shape == (16,)
        assert list((tmp_path / "cache" / "pouf" / "image-features").glob("*.safetensors"))
    results = evaluate_run(tmp_path / "run")
    assert results["n_eval"] == 18 and set(results["zeroshot"]) == {"single", "ensemble", "calibrated"}
    assert 0.0 <= results["pouf"]["single"]["accuracy"] <= 1.0


def test_open_clip_adapter_when_available():
    if importlib.util.find_spec("open_clip") is None:
        with pytest.raises(UnseenError, match="open_clip is not importable"):
            load_dual_encoder("open_clip:ViT-B-32", ["dog", "cat"], ["a photo of a {}."])
        pytest.skip("open_clip is not installed (it needs a torchvision matching this torch)")
    try:
        import open_clip  # noqa: F401
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"open_clip does not import here: {err}")
    model = load_dual_encoder("open_clip:ViT-B-32", ["dog", "cat"], ["a photo of a {}."], mode="prompt")
    with torch.no_grad():
        ours = model.encode_texts(["a photo of a dog."])
        theirs = model.clip.encode_text(model.tokenizer(["a photo of a dog."]))
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_unknown_mode_is_a_clear_error(tiny):
    with pytest.raises(UnseenError, match="unknown mode 'bias'"):
        load_dual_encoder(str(tiny["clip"]), ["dog", "cat"], ["a photo of a {}."], mode="bias")
