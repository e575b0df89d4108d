"""Reading a whole collection (issue 34): photos/s and peak memory against the number of photos, resuming after a
kill at 50 %, and the same steps on a local Ray cluster of 2 workers beside one process.

    flock /tmp/unseen-heavy.lock python bench/scenetext/collection.py          # -> docs/results/scenetext_collection.*
    python bench/scenetext/collection.py --sizes 100,500 --scale 2000,5000 --resume 100 --ray 40

Photos are ICDAR 2015's 500 test photos and copies of them that are new content (copy k of photo i: resized by
1 - 0.04 k and, for odd k, mirrored; re-encoded as JPEG), written once under runs/collection-bench/. Every run is
`unseen str read FOLDER --json --cache DIR` in its own process (OMP_NUM_THREADS=1), timed from start to exit, its
peak RSS taken from the kernel (wait4); each reads with an empty cache unless said otherwise.

- ``--sizes``: full runs (detection and reading of every photo, then the collection's words, then decoding);
- ``--scale``: runs at counts that detecting every photo would not finish in the time here: their cache is
  filled first with the RawPhotos of the photos the copies were made from (cached by ``--sizes``), so the run
  does steps 2 and 3, the cache reads and the hashing of every photo for real at that count, but not step 1;
- ``--resume N``: the first N photos, killed (SIGKILL) when half of them are cached, then run again: its time,
  and whether its output equals an uninterrupted run's byte for byte;
- ``--ray N``: the first N photos through ``unseen.scenetext.collection.read_on_ray`` (map_batches -> aggregate
  -> map_batches, ``ray.init(num_cpus=2)``, no cache) and through the CLI: time and whether the words match.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
WORK = ROOT / "runs" / "collection-bench"
IC15 = Path(os.environ.get("UNSEEN_DATA", ROOT.parent / "shared" / "data")) / "str" / "ic15_e2e" / "test" / "images"
CLI = [sys.executable, "-c", "from unseen.cli import main; main()", "str", "read"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def sources() -> list[Path]:
    return sorted(IC15.glob("img_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))


def copies(count: int) -> list[Path]:
    """The first ``count`` photos: the 500 IC15 photos, then copy 1 of each, copy 2, ... (made once)."""
    from PIL import Image, ImageOps

    base, out = sources(), []
    folder = WORK / "copies"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        source, k = base[n % len(base)], n // len(base)
        path = folder / f"{n:05d}_{source.stem}_c{k}.jpg"
        if not path.exists():
            if k == 0:
                shutil.copy(source, path)
            else:
                with Image.open(source) as image:
                    image = image.convert("RGB")
                    factor = 1 - 0.04 * k
                    image = image.resize((round(image.width * factor), round(image.height * factor)))
                    if k % 2:
                        image = ImageOps.mirror(image)
                    image.save(path.with_suffix(".part.jpg"), quality=90)
                path.with_suffix(".part.jpg").rename(path)
        out.append(path)
    return out


def folder_of(count: int) -> Path:
    """A folder of links to the first ``count`` photos (what `unseen str read FOLDER` reads)."""
    folder = WORK / f"set-{count}"
    if not folder.exists() or len(list(folder.iterdir())) != count:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in copies(count):
            (folder / path.name).symlink_to(path)
    return folder


def code_digest() -> str:
    """What the runs read with (the package's source and settings): the checkout is shared and may change."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "unseen").rglob("*")):
        if path.suffix in (".py", ".json") and path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load() -> float:
    return os.getloadavg()[0]


def run(folder: Path, cache: Path, *, fresh: bool = True, kill_at: int | None = None) -> dict:
    """`unseen str read FOLDER --json --cache CACHE` in its own process: seconds, peak RSS (MiB, from wait4),
    stdout. ``kill_at``: SIGKILL it once that many photos are cached."""
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    out, err = Path(f"{cache}.stdout"), Path(f"{cache}.stderr")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    load_before, started = load(), time.perf_counter()
    pid = os.posix_spawn(CLI[0], [*CLI, str(folder), "--json", "--cache", str(cache)], ENV,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(out), flags, 0o644),
                                       (os.POSIX_SPAWN_OPEN, 2, str(err), flags, 0o644)])
    if kill_at is not None:
        while len(list(cache.glob("*/*.pt"))) < kill_at:
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)  # a run of kill_at photos or more is still reading when half are cached
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "returncode": os.waitstatus_to_exitcode(status), "cached_after": len(list(cache.glob("*/*.pt"))),
            "load_average": round((load_before + load()) / 2, 1), "stdout": out.read_bytes(),
            "stderr_tail": err.read_text(errors="replace").strip().splitlines()[-2:]}


def entry(count: int, result: dict, **extra) -> dict:
    out = {"photos": count, **{k: v for k, v in result.items() if k != "stdout"}, **extra}
    out["photos_per_s"] = round(count / result["seconds"], 3)
    return out


def save(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results))


def markdown(results: dict) -> str:
    lines = ["# Reading a whole collection: speed, memory, resuming, Ray", "",
             "Written by " + " then ".join(f"`{c}`" for c in results["commands"]) +
             f" on {results['machine']} ({results['date']}). Every run is "
             "`unseen str read FOLDER --json --cache DIR` in its own process, OMP_NUM_THREADS=1, timed from start to "
             "exit (model loading included); peak RSS is the process's (wait4). The load average beside each run "
             "says whether other jobs shared the 2 cores: about 1 is this run alone; the later command's row "
             "replaces an earlier one of the same count.", ""]
    if results.get("baseline"):
        b = results["baseline"]
        lines += [f"Loading the reader and reading 1 photo: {b['seconds']} s, peak RSS {b['peak_rss_mib']} MiB.", ""]
    lines += ["## Photos/s and peak memory against the count", "",
              "| photos | step 1 | seconds | photos/s | peak RSS MiB | load avg |", "|---:|---|---:|---:|---:|---:|"]
    for r in results.get("sizes", []) + results.get("scale", []):
        step1 = "read" if r.get("kind") == "full" else "cached (filled from the source photos' RawPhotos)"
        lines.append(f"| {r['photos']:,} | {step1} | {r['seconds']} | {r['photos_per_s']} | {r['peak_rss_mib']} | "
                     f"{r['load_average']} |")
    full = {r["photos"] for r in results.get("sizes", [])}
    cached = [r["photos"] for r in results.get("scale", [])]
    quiet = [r for r in results.get("sizes", []) if r["load_average"] < 2]
    detect_rate = (f"{min(r['photos_per_s'] for r in quiet):.1f}-{max(r['photos_per_s'] for r in quiet):.1f} photos/s "
                   "read end to end at one thread" if quiet else "about 1 photo/s at one thread")
    if cached:
        lines += ["", "Rows with step 1 cached: " + ", ".join(f"{n:,}" for n in cached if n not in full) +
                  f" photos did not fit in the time here with detection ({detect_rate}), "
                  "so the cache of those runs was filled beforehand with the RawPhotos of the IC15 photos they were "
                  "copied from: they hash every photo, read every RawPhoto back and do steps 2 and 3 at that count, "
                  "which is where memory could grow with the count" +
                  ("; at " + ", ".join(f"{n:,}" for n in cached if n in full) + " photos both kinds of run were made"
                   if any(n in full for n in cached) else "") +
                  ". Their peak RSS is lower than a full run's because no photo goes through the detector: a full "
                  "run's peak is the models plus one photo's detection, whatever the count."]
    lines += [""]
    if results.get("resume"):
        r = results["resume"]
        lines += ["## Killed at 50 % and run again", "",
                  f"{r['photos']} photos: the run was killed (SIGKILL) after {r['killed_after_s']} s with "
                  f"{r['cached_at_kill']} photos cached; the rerun took {r['rerun_s']} s "
                  f"(the uninterrupted run: {r['full_s']} s), read {r['read_by_rerun']} photos and took "
                  f"{r['cached_at_kill']} from the cache. Output byte-identical to the uninterrupted run: "
                  f"**{r['identical']}**" + ("" if r.get("same_code", True) else
                                             " (the package changed between the runs)") + ".", ""]
    if results.get("ray"):
        r = results["ray"]
        lines += ["## The same steps on Ray (local cluster, 2 workers)", "",
                  "| photos | how | seconds | photos/s | load avg |", "|---:|---|---:|---:|---:|",
                  f"| {r['photos']} | one process (`unseen str read --json`) | {r['single_s']} | "
                  f"{round(r['photos'] / r['single_s'], 3)} | {r['single_load']} |",
                  f"| {r['photos']} | Ray Data {r['ray_version']}: map_batches -> unique (aggregate) -> map_batches, "
                  f"`ray.init(num_cpus=2)`, 2 reader actors | {r['ray_s']} | {round(r['photos'] / r['ray_s'], 3)} | "
                  f"{r['ray_load']} |", "",
                  f"Same words per photo as the CLI: **{r['same_words']}**; same JSON lines byte for byte: "
                  f"**{r['same_bytes']}**. Ray's time includes starting the cluster and loading the reader in each "
                  "actor twice (once per map step).", ""]
    return "\n".join(lines) + "\n"


def fill_cache(cache: Path, photos: list[Path], source_cache: Path) -> None:
    """Cache entries for ``photos`` holding the RawPhoto of the IC15 photo each was copied from."""
    from unseen.scenetext.photos import PhotoReader
    from unseen.scenetext.raw_cache import RawCache

    reader = PhotoReader.load()
    have, want = RawCache(source_cache, reader), RawCache(cache, reader)
    by_source = {}
    for path in photos:
        stem = "_".join(path.stem.split("_")[1:3])
        if stem not in by_source:
            by_source[stem] = have.get(IC15 / f"{stem}.jpg")
            if by_source[stem] is None:
                raise SystemExit(f"{stem}: not in {source_cache}; run --sizes 500 (all IC15 photos) first")
        target = want.entry(path)
        if not target.exists():
            want.put(path, by_source[stem], target)


def record(results: dict, key: str, row: dict, out: Path) -> None:
    """``row`` replaces the row of the same photo count under ``key``; saved and printed at once."""
    results[key] = sorted([r for r in results.get(key, []) if r["photos"] != row["photos"]] + [row],
                          key=lambda r: r["photos"])
    save(results, out)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--scale", default="2000,5000")
    parser.add_argument("--resume", type=int, default=100)
    parser.add_argument("--ray", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS / "scenetext_collection")
    args = parser.parse_args()
    import datetime

    results = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    command = "python bench/scenetext/collection.py " + " ".join(repr(a) if not a else a for a in sys.argv[1:])
    results["commands"] = [c for c in results.get("commands", [results.get("command")]) if c] + [command]
    results.pop("command", None)
    results.update(machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
                   date=datetime.date.today().isoformat())
    if "baseline" not in results:
        results["baseline"] = entry(1, run(folder_of(1), WORK / "cache-1"))
        save(results, args.out)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    full = {}
    for count in sizes:
        result = run(folder_of(count), WORK / f"cache-{count}")
        full[count] = result
        record(results, "sizes", entry(count, result, kind="full"), args.out)
    if args.resume:
        count = args.resume
        for _ in range(3):  # uninterrupted, killed, rerun: with the same code (others commit while this runs)
            before = code_digest()
            whole = run(folder_of(count), WORK / f"cache-whole-{count}")
            cache = WORK / f"cache-resume-{count}"
            killed = run(folder_of(count), cache, kill_at=count // 2)
            rerun = run(folder_of(count), cache, fresh=False)
            if code_digest() == before:
                break
            print("the package changed during the resume runs: again", flush=True)
        results["resume"] = {"photos": count, "full_s": whole["seconds"], "killed_after_s": killed["seconds"],
                             "cached_at_kill": killed["cached_after"], "rerun_s": rerun["seconds"],
                             "read_by_rerun": count - killed["cached_after"], "rerun_stderr": rerun["stderr_tail"],
                             "rerun_peak_rss_mib": rerun["peak_rss_mib"],
                             "identical": rerun["stdout"] == whole["stdout"] and rerun["returncode"] == 0,
                             "same_code": code_digest() == before}
        save(results, args.out)
        print(json.dumps(results["resume"]), flush=True)
    scales = [int(x) for x in args.scale.split(",") if x]
    for count in scales:
        photos = copies(count)
        cache = WORK / f"cache-scale-{count}"
        shutil.rmtree(cache, ignore_errors=True)
        fill_cache(cache, photos, WORK / f"cache-{max(sizes)}")
        result = run(folder_of(count), cache, fresh=False)
        record(results, "scale", entry(count, result, kind="scale"), args.out)
    if args.ray:
        count = args.ray
        folder = folder_of(count)
        before = code_digest()
        single = run(folder, WORK / f"cache-ray-single-{count}")
        code = ("import sys, time, json; t = time.perf_counter()\n"
                "from pathlib import Path\n"
                "from unseen.scenetext.collection import read_on_ray\n"
                f"lines = read_on_ray(sorted(Path({str(folder)!r}).iterdir()), cache_dir=None, workers=2)\n"
                "sys.stdout.write('\\n'.join(lines) + '\\n'); sys.stderr.write(f'SECONDS {time.perf_counter() - t}')")
        load_before, started = load(), time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV)
        ray_seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(done.stderr.decode(errors="replace")[-2000:])
        import ray

        ours = [json.loads(x) for x in single["stdout"].decode().splitlines()]
        theirs = [json.loads(x) for x in done.stdout.decode().splitlines()]
        words = [[(w["text"], w["source"]) for w in r.get("words", [])] for r in ours]
        results["ray"] = {"photos": count, "ray_version": ray.__version__, "single_s": single["seconds"],
                          "single_load": single["load_average"], "ray_s": round(ray_seconds, 1),
                          "ray_load": round((load_before + load()) / 2, 1),
                          "same_words": words == [[(w["text"], w["source"]) for w in r.get("words", [])]
                                                  for r in theirs],
                          "same_bytes": done.stdout == single["stdout"], "same_code": code_digest() == before}
        save(results, args.out)
        print(json.dumps(results["ray"]), flush=True)


if __name__ == "__main__":
    main()
