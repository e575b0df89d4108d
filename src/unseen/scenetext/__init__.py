"""Scene text that adapts to the domain it reads, with no labels and no training (E2STR's idea, on PP-OCRv4).

One reader: PP-OCRv4's detector (onnxruntime) and recognizer (our PyTorch port), lines cut into words at the
recognizer's CTC columns, then label-free adaptation: the batch lexicon (words read surely elsewhere in the
photos read together), a vocabulary (lexicon-constrained CTC), a pool of labelled words through its lexicon
gate, and an evolving pool of the reader's own sure readings. See docs/scenetext.md.

    from unseen.scenetext import PhotoReader, Recognizer
    photos = PhotoReader.load().read(["shop.jpg", "street.jpg"])      # words with boxes, per photo
    crops = Recognizer.load().read([crop_image])                      # word crops

E2STR-lite, the trained in-context decoder, is experimental: ``unseen.scenetext.e2str``.
"""

from unseen.scenetext.metrics import report, score
from unseen.scenetext.photos import PhotoReader, PhotoReading, Word
from unseen.scenetext.pool import Pool, PoolSample
from unseen.scenetext.reader import Reading, Recognizer

__all__ = ["PhotoReader", "PhotoReading", "Pool", "PoolSample", "Reading", "Recognizer", "Word", "report", "score"]
