"""Speed and memory of reading whole photos, beside RapidOCR 3.10.0 as users install it. Run on a quiet machine.

    python bench/scenetext/e2e_speed.py               # -> docs/results/scenetext_e2e_speed.{json,md}

Speed: ICDAR 2015 photos 101-200, 5 rounds, every reader at 2 threads, alternating photo by photo so that all see
the same machine. Ours: detection, one recognizer pass per line, word cuts and the batch lexicon over the photos
(timed once per round and spread over its photos), as users get it (the detector's int8 copy) and with the
detector as shipped. RapidOCR 3.10: with word boxes as shipped (its direction
classifier on: one more network per line than ours), with word boxes and the classifier off (the same steps as
ours), and its default line output. Then one more pass of ours alone, timing its two networks within it. Memory:
peak RSS of one process reading photos 1-500 in one ``PhotoReader.read`` call, measured in a child process so that
nothing else it loaded counts.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from e2e_report import machine

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
FLOAT = "ours with the float detector (as shipped; its box threshold from tuned.json)"


def race(photos, rounds: int) -> dict:
    from unseen.scenetext.photos import PhotoReader
    from unseen.scenetext.rapidocr import load_rapidocr, read_lines, read_words

    engine = load_rapidocr("3.10")
    # ours as users get it (the detector's int8 copy, tuned.json) and with the detector as shipped (float)
    readers = {"ours": PhotoReader.load(), FLOAT: PhotoReader.load(detector="ppocr-v6-det")}
    steps = {
        "ours": None,
        FLOAT: None,
        "rapidocr 3.10 word boxes (as shipped, classifier on)": lambda p: read_words(engine, p),
        "rapidocr 3.10 word boxes, classifier off (same steps)": lambda p: engine(
            str(p), use_det=True, use_cls=False, use_rec=True, return_word_box=True),
        "rapidocr 3.10 lines (as shipped)": lambda p: read_lines(engine, p),
    }
    per_round = {name: [] for name in steps}
    for k in range(rounds):
        seconds, raws = dict.fromkeys(steps, 0.0), {name: [] for name in readers}
        for path in photos:
            for name, step in steps.items():
                started = time.perf_counter()
                raws[name].append(readers[name].detect_and_read(path)) if step is None else step(path)
                seconds[name] += time.perf_counter() - started
        for name, reader in readers.items():
            started = time.perf_counter()
            reader.adapt(raws[name])
            seconds[name] += time.perf_counter() - started
        for name in steps:
            per_round[name].append(len(photos) / seconds[name])
        print(f"round {k + 1}: " + ", ".join(f"{n.split(' (')[0]} {v[-1]:.2f}" for n, v in per_round.items()),
              flush=True)
    return {name: {"photos_per_second": values, "median": statistics.median(values)}
            for name, values in per_round.items()}


class _TimedSession:
    """An onnxruntime session that adds the seconds spent in ``run`` to ``seconds``."""

    def __init__(self, session):
        self.session, self.seconds = session, 0.0

    def run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self.session, name)


def where_time_goes(photos) -> dict:
    """Our reading time split into the detector network, the recognizer network and everything else (loading the
    photo, pre- and post-processing, word cuts, the batch lexicon), one pass over ``photos``."""
    from unseen.scenetext.photos import PhotoReader

    reader = PhotoReader.load()
    detector = reader.detector.session = _TimedSession(reader.detector.session)
    recognizer = reader.encoder.recognizer.session = _TimedSession(reader.encoder.recognizer.session)
    reader.detect_and_read(photos[0])  # onnxruntime's first run allocates
    detector.seconds = recognizer.seconds = 0.0
    started = time.perf_counter()
    reader.adapt([reader.detect_and_read(path) for path in photos])
    total = time.perf_counter() - started
    return {"seconds": total, "detector_network": detector.seconds / total,
            "recognizer_network": recognizer.seconds / total,
            "everything_else": (total - detector.seconds - recognizer.seconds) / total}


def peak_memory(limit: int) -> dict:
    """Peak RSS (MB) of a child process that loads the reader, then of one reading ``limit`` photos in one call.
    The child's own high-water mark (VmHWM): getrusage's maxrss would carry the parent's over the exec."""
    code = ("import sys, torch; torch.set_num_threads(2)\n"
            "def peak(): return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024\n"
            "from unseen.scenetext.icdar import load_ic15_e2e\nfrom unseen.scenetext.photos import PhotoReader\n"
            "reader = PhotoReader.load(); photos = load_ic15_e2e(limit=int(sys.argv[1]) or 1)\n"
            "print(peak(), flush=True)\n"
            "if int(sys.argv[1]): readings = reader.read([p.image_path for p in photos])\n"
            "print(peak())\n")
    out = {}
    for n in (0, limit):
        lines = subprocess.run([sys.executable, "-c", code, str(n)], check=True, capture_output=True,
                               text=True).stdout.split()
        out[n] = {"after_loading_mb": int(lines[0]), "peak_mb": int(lines[1])}
        print(n, out[n], flush=True)
    return {"photos": limit, "loaded_only": out[0], "reading": out[limit]}


def markdown(out: dict) -> str:
    ours = out["speed"]["ours"]["median"]
    lines = ["# Reading whole photos: speed and memory", "",
             f"Command: `{out['command']}`; machine: {out['machine']}; {out['date']}. {out['about']}", "",
             "| reader | photos/s, rounds | median | ours ÷ it |", "|---|---|---|---|"]
    for name, row in out["speed"].items():
        rounds = ", ".join(f"{v:.2f}" for v in row["photos_per_second"])
        lines.append(f"| {name} | {rounds} | {row['median']:.2f} | {ours / row['median']:.2f}x |")
    if out.get("where_time_goes"):
        split = out["where_time_goes"]
        lines += ["", f"Where our time goes (one more pass over the same photos, {split['seconds']:.1f} s): detector "
                  f"network {100 * split['detector_network']:.0f} %, recognizer network "
                  f"{100 * split['recognizer_network']:.0f} %, everything else (loading, pre- and post-processing, "
                  f"word cuts, batch lexicon) {100 * split['everything_else']:.0f} %."]
    memory = out["memory"]
    lines += ["", f"Peak RSS reading photos 1-{memory['photos']} in one `PhotoReader.read` call: "
              f"{memory['reading']['peak_mb']} MB (the reader loaded, nothing read: "
              f"{memory['loaded_only']['peak_mb']} MB)."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--photos", default="101-200", help="ICDAR 2015 photos to race on, as FIRST-LAST")
    parser.add_argument("--memory-photos", type=int, default=500)
    parser.add_argument("--memory-only", action="store_true", help="measure memory again, keep the last race")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from unseen.scenetext.icdar import load_ic15_e2e

    first, last = map(int, args.photos.split("-"))
    photos = [p.image_path for p in load_ic15_e2e(limit=last)[first - 1 :]]
    previous = RESULTS / "scenetext_e2e_speed.json"
    speed = json.loads(previous.read_text())["speed"] if args.memory_only else race(photos, args.rounds)
    split = json.loads(previous.read_text()).get("where_time_goes") if args.memory_only else where_time_goes(photos)
    memory = peak_memory(args.memory_photos)
    summary = (f"ours {speed['ours']['median']:.2f} photos/s, "
               + ", ".join(f"{name} {row['median']:.2f}" for name, row in speed.items() if name != "ours")
               + f"; peak RSS for {memory['photos']} photos {memory['reading']['peak_mb']} MB")
    out = {"command": "python bench/scenetext/e2e_speed.py", "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "about": " ".join(__doc__.split("\n\n")[2].split()),
           "photos": args.photos, "rounds": args.rounds, "speed": speed, "where_time_goes": split,
           "memory": memory, "summary": summary,
           "this_process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    (RESULTS / "scenetext_e2e_speed.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "scenetext_e2e_speed.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
