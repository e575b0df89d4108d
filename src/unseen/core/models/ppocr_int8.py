"""An int8 copy of a PP-OCR DB detector, made on the user's machine from the shipped float graph.

The detector is about two thirds of the time a photo takes to read (bench/scenetext/e2e_speed.py), and its
int8 convolutions take about a quarter less time on a CPU with VNNI. onnxruntime's static quantization makes the copy:
per-channel int8 weights, uint8 activations (QOperator), the opset raised to 17 first (per-channel scales need 13).
Activation ranges are calibrated on synthetic scenes drawn here, text in matplotlib's DejaVu fonts on smooth colour
fields, so no photo is needed and every machine with the same onnxruntime, onnx, Pillow and matplotlib makes the
same file. The copy lives in the user's cache, never in the repo; whether the reader uses it is chosen on ICDAR 2015
photos 1-100 (bench/scenetext/e2e.py tune, stage "detector").
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from unseen.core.models.ppocr_det import DBDetector, DetectorSettings

CALIBRATION_SCENES = 16
RECIPE = "int8-v1"  # bump when the scenes or the quantization settings change: the cached copy is named by it
_WORDS = ("OPEN SALE Hotel CAFE street 24 HOURS market EXIT Bank pizza Welcome PARKING FOOD 50% OFF Shop NEW "
          "Station Coffee 10:30 Tel. Pharmacy Café Straße BAR").split()


def calibration_scenes(count: int = CALIBRATION_SCENES, seed: int = 0, size=(1280, 720)) -> list[np.ndarray]:
    """BGR scenes the size of a phone photo: a smooth random colour field with noise, and 14 words of 14 to 80
    pixels in random fonts, colours and places (the detector's activations on them set the int8 ranges)."""
    import cv2
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    fonts = sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("DejaVu*.ttf"))
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(count):
        field = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), size, interpolation=cv2.INTER_CUBIC)
        image = Image.fromarray(np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(14):
            font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(14, 81)))
            place = (int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 30)))
            draw.text(place, str(rng.choice(_WORDS)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)), font=font)
        scenes.append(np.asarray(image)[:, :, ::-1].copy())
    return scenes


def quantize_detector(source, target, settings: DetectorSettings = DetectorSettings()) -> Path:
    """Write the int8 copy of the detector graph ``source`` to ``target`` (atomically: a reader never sees half)."""
    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    input_name = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    inputs = [{input_name: DBDetector.network_input(DBDetector.scaled(scene, settings)[0])}
              for scene in calibration_scenes()]

    class Scenes(CalibrationDataReader):
        def __init__(self):
            self.left = iter(inputs)

        def get_next(self):
            return next(self.left, None)

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raised, prepared, quantized = (os.path.join(tmp, name) for name in ("opset17", "prepared", "int8"))
        onnx.save(version_converter.convert_version(onnx.load(str(source)), 17), raised)
        quant_pre_process(raised, prepared, skip_symbolic_shape=True)  # its shape inference stops at a Resize
        quantize_static(prepared, quantized, Scenes(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(quantized, target)
    return target


def int8_path(source, cache: Path) -> Path:
    """Where the int8 copy of ``source`` is cached: named by the source's content, the recipe and the versions
    of what makes it."""
    import onnx
    import onnxruntime as ort

    from unseen.core.io import file_digest

    versions = f"ort{ort.__version__}-onnx{onnx.__version__}"
    return Path(cache) / f"{Path(source).stem}-{file_digest(source)[:16]}-{RECIPE}-{versions}.onnx"


def load_int8_db_detector(source, cache: Path, settings: DetectorSettings = DetectorSettings()) -> DBDetector:
    """The int8 copy of ``source`` (made once, about 10 s, then read from ``cache``)."""
    path = int8_path(source, cache)
    if not path.exists():
        print(f"unseen: making the text detector's int8 copy in {path.parent} (once, about 10 s)", file=sys.stderr)
        quantize_detector(source, path, settings)
    return DBDetector(path, settings)
