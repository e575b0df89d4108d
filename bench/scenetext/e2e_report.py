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
    lines = ["# ICDAR 2015 end to end (Task 4.4): whole photos in, words and boxes out", "",
             f"Command: `{out['command']}`; machine: {out['machine']}; {out['date']}. The reader is the library's "
             "default (PP-OCRv6 small detector and recognizer; settings from src/unseen/scenetext/tuned.json, chosen "
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
    return "\n".join(lines) + "\n"
