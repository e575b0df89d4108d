"""The end-to-end bench's report: its Markdown, the machine line, and the list baseline (RapidOCR's word boxes
snapped to the nearest word of the list, what a user with a word list and RapidOCR would do)."""

from __future__ import annotations

import platform

import torch


def machine() -> str:
    threads = torch.get_num_threads()
    return f"{platform.node() or 'vm'} {platform.machine()}, {threads} threads, torch {torch.__version__}"


def snapped(words_by_photo, lexicon, photos):
    """Each word replaced by the list word nearest in edit distance (case-insensitive; the first on ties)."""
    from unseen.scenetext.lexicon import lexicon_for
    from unseen.scenetext.metrics import edit_distance
    from unseen.scenetext.rapidocr import SpottedWord

    out = []
    for words, photo in zip(words_by_photo, photos):
        options = lexicon_for(lexicon, photo.name).words
        out.append([SpottedWord(w.quad, min(options, key=lambda o: edit_distance(o.upper(), w.text.upper())),
                                w.confidence) if options else w for w in words])
    return out


def markdown(out: dict) -> str:
    detector = out["settings"].get("detector", "ppocr-v6-det")
    changed = ", ".join(f"{k} {v}" for k, v in out["settings"].get("detector_settings", {}).items())
    lines = ["# ICDAR 2015 end to end (Task 4.4): whole photos in, words and boxes out", "",
             f"Command: `{out['command']}`; machine: {out['machine']}; {out['date']}. The reader is the library's "
             f"default (PP-OCRv6 small detector as `{detector}`{', ' + changed if changed else ''}, and recognizer; "
             "settings from src/unseen/scenetext/tuned.json, chosen "
             "on photos 1-100 by `python bench/scenetext/e2e.py tune`); photos 101-500 never informed a setting. "
             "Official Task 4.4 protocol (unseen.scenetext.icdar). Detection P/R: a box at IoU > 0.5 to a word, "
             "whatever its text.", "",
             "| reader | vocabulary | photos | P | R | F | det. P | det. R |", "|---|---|---|---|---|---|---|---|"]
    for row in out["rows"]:
        detection = (f"{row['detection_precision']:.1f} | {row['detection_recall']:.1f}"
                     if "detection_recall" in row else "– | –")
        lines.append(f"| {row['reader']} | {row['vocabulary']} | {row['photos']} | {row['precision']:.1f} | "
                     f"{row['recall']:.1f} | {row['f']:.1f} | {detection} |")
    speed = out.get("speed")
    if speed:
        lines += ["", f"Speed and memory: see scenetext_e2e_speed.md ({speed['summary']})."]
    s = out["stream"]
    lines += ["", "## Evolving pool, stream order", "",
              f"Photos 251-500 read one at a time. Cold: no pool. Evolved: the pool that photos 1-250 grew "
              f"({s['pool_after_first_half']} self-labelled words), growing on ({s['pool_at_end']} at the end); "
              f"its words used as {s['self_labelled_as']} words (`python bench/scenetext/e2e.py stream` chooses how "
              "on photos 1-100).", "", "| through photo | cold F | evolved F |", "|---|---|---|"]
    lines += [f"| {c['through_photo']} | {c['cold_f']:.1f} | {c['evolved_f']:.1f} |" for c in s["checkpoints"]]
    if out.get("lost_words"):
        lines += lost_words_markdown(out["lost_words"])
    return "\n".join(lines) + "\n"


LOSSES = {"read": "read right", "misread": "boxed, misread", "unsure": "boxed, dropped as read unsurely",
          "cut": "inside a detected line, not cut out as a word", "undetected": "in no detected line"}


def where_words_are_lost(raws, kept, unfiltered, photos, detector=None, larger: int = 1152,
                         seen_memo: dict | None = None) -> dict:
    """Each scored ground-truth word by where the reader loses it, in order: read right (a kept word at IoU > 0.5
    with the right text), misread (a kept word at IoU > 0.5), dropped as unsure (a word before the confidence
    filter at IoU > 0.5), inside a detected line (half of its area or more) but not cut out as a word, in no
    detected line. Not one-to-one like the official count, so "read right" can exceed its matches slightly.
    With ``detector``, the words in no line are split by whether the detector's text probability reaches its
    threshold anywhere inside them: at its own scale, only with the short side at ``larger`` px, or at neither
    (where the network does not see the word, no box setting can find it). ``seen_memo``: that finding per
    (photo, word), kept across calls on overlapping photo ranges so that the detector runs once per photo."""
    import statistics

    import numpy as np

    from unseen.scenetext.icdar import _iou, _polygon, transcriptions_match

    counts, undetected_heights = dict.fromkeys(LOSSES, 0), []
    seen, memo = dict.fromkeys(SEEN, 0), {} if seen_memo is None else seen_memo
    for raw, kept_words, all_words, photo in zip(raws, kept, unfiltered, photos):
        maps = None
        kept_boxes = [(_polygon(w.quad), w.text) for w in kept_words]
        all_boxes = [_polygon(w.quad) for w in all_words]
        lines = [_polygon(np.asarray(line.quad) / raw.scale) for line, _, _ in raw.lines]
        for position, word in enumerate(photo.words):
            if word.dont_care:
                continue
            truth = _polygon(word.quad)
            boxed = [text for box, text in kept_boxes if _iou(truth, box) > 0.5]
            if any(transcriptions_match(word.text, text) for text in boxed):
                counts["read"] += 1
            elif boxed:
                counts["misread"] += 1
            elif any(_iou(truth, box) > 0.5 for box in all_boxes):
                counts["unsure"] += 1
            elif any(truth.intersection(line).area >= 0.5 * truth.area for line in lines if line.intersects(truth)):
                counts["cut"] += 1
            else:
                counts["undetected"] += 1
                corners = np.asarray(word.quad, dtype=float)
                undetected_heights.append(float(np.linalg.norm(corners[0] - corners[3])))
                if detector is not None:
                    key = (str(photo.image_path), position)
                    if key not in memo:
                        maps = maps or probability_maps(detector, photo.image_path, larger)
                        own, bigger = (peak_inside(m, corners) >= detector.settings.thresh for m in maps)
                        memo[key] = "own_scale" if own else "larger_only" if bigger else "neither"
                    seen[memo[key]] += 1
    out = {"counts": counts, "words": sum(counts.values()),
           "undetected_median_height_px": statistics.median(undetected_heights) if undetected_heights else None}
    return out | ({"undetected_seen": seen, "larger_side": larger} if detector is not None else {})


SEEN = {"own_scale": "at its own scale", "larger_only": "only at the larger scale", "neither": "at neither"}


def probability_maps(detector, image_path, larger: int) -> list[tuple]:
    """(text-probability map, photo-to-map transform) at the detector's settings and with the short side at
    ``larger`` px."""
    from unseen.core.models.ppocr_det import DBDetector
    from unseen.scenetext.photos import load_photo

    bgr, scale, _ = load_photo(image_path)
    out = []
    for settings in (detector.settings, detector.settings.with_(limit_side_len=larger)):
        image, (w, h), (ratio_w, ratio_h), pad_top = DBDetector.scaled(bgr, settings)
        prob = detector.probability_map(image)
        sx, sy = prob.shape[1] / w, prob.shape[0] / h  # photo px -> scaled px -> map px
        out.append((prob, (scale / ratio_w * sx, scale / ratio_h * sy, pad_top * sy)))
    return out


def peak_inside(prob_map, corners) -> float:
    """The highest text probability inside a word's quadrilateral (photo pixels)."""
    import cv2
    import numpy as np

    prob, (sx, sy, dy) = prob_map
    quad = np.stack([corners[:, 0] * sx, corners[:, 1] * sy + dy], -1).round().astype(np.int32)
    mask = np.zeros(prob.shape, np.uint8)
    cv2.fillPoly(mask, [quad], 1)
    inside = prob[mask > 0]
    return float(inside.max()) if inside.size else 0.0


def lost_words_markdown(lost: dict) -> list[str]:
    lines = ["", "## Where words are lost", "",
             "Each scored ground-truth word by the first step that loses it (`where_words_are_lost` in "
             "e2e_report.py; the default reader, no word list).", "",
             "| photos | words | " + " | ".join(LOSSES.values()) + " | median height in no line (px) |",
             "|---|---|" + "---|" * (len(LOSSES) + 1)]
    for part, row in lost.items():
        cells = " | ".join(f"{row['counts'][k]} ({100 * row['counts'][k] / row['words']:.1f} %)" for k in LOSSES)
        height = row["undetected_median_height_px"]
        lines.append(f"| {part} | {row['words']} | {cells} | {height:.0f} |")
    if all("undetected_seen" in row for row in lost.values()):
        larger = next(iter(lost.values()))["larger_side"]
        lines += ["", "The words in no detected line, by whether the detector's text probability reaches its threshold "
                  f"anywhere inside them (`peak_inside`): at the reader's scale, only with the short side at {larger} "
                  "px, or at neither.", "",
                  "| photos | in no line | " + " | ".join(SEEN.values()) + " |", "|---|---|" + "---|" * len(SEEN)]
        for part, row in lost.items():
            seen, total = row["undetected_seen"], row["counts"]["undetected"]
            cells = " | ".join(f"{seen[k]} ({100 * seen[k] / max(total, 1):.0f} %)" for k in SEEN)
            lines.append(f"| {part} | {total} | {cells} |")
    return lines
