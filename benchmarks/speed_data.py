"""Speed of data loading and interpretation on the real data, and peak memory with the full data sets loaded.

    /work/venv/bin/python benchmarks/speed_data.py

Measures, with the project's own functions: JPEG decoding of every real frame (torchvision
decode_jpeg batched, PIL, and the project's reader `rickmorty.images.read_frame`), one-hot
encoding of tens of thousands of real SOX17 windows (bases/s), streaming 200 bp windows from a
genome FASTA through pyfaidx (`motifs.io.fetch_windows`), full-substitution ISM of 1,000 real
SOX17 windows (`motifs.explain.substitution_ism`) against the model's batched forward throughput,
Grad-CAM ms/image over a folder (`rickmorty.explain.grad_cam`), and the peak RSS of a fresh
process that loads the full image set or the full motif set through the DataModules.
Results: benchmarks/results/speed_data_cpu.json and .md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.classifier import Classifier
from common.paths import course_data
from results import RESULTS, run_header, write_results

ISM_TARGET = 0.8


def timed(function, *args, **kwargs) -> tuple[float, object]:
    """Return (seconds, result) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def frame_files() -> list[Path]:
    """Return every JPEG of the course's labelled folders (altdata and ThreeClassModel, copies included)."""
    root = course_data("RickandMorty")
    return sorted(p for folder in ("altdata", "data/ThreeClassModel") for p in (root / folder).rglob("*.jpg"))


def jpeg_decoding(repeats: int = 3) -> dict:
    """Return images/s (median of repeats, files read each time) decoding every real frame three ways.

    torchvision `decode_jpeg` on the whole list at once, PIL one by one, and the project's reader
    (`rickmorty.images.read_frame`: decode, RGB and size checks) stacked into the uint8 cache.
    """
    from PIL import Image
    from torchvision.io import decode_jpeg

    from rickmorty.images import read_frame

    files = frame_files()

    def torchvision_batched():
        return decode_jpeg([torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in files])

    def pil():
        return [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in files]

    def project():
        return torch.stack([read_frame(p)[0] for p in files])

    rates = {name: [] for name in ("torchvision_decode_jpeg_batched", "pil", "project_read_frame_to_uint8_cache")}
    for _ in range(repeats):
        for name, decode in zip(rates, (torchvision_batched, pil, project)):
            seconds, frames = timed(decode)
            rates[name].append(len(files) / seconds)
    results = {name: float(np.median(values)) for name, values in rates.items()}
    results.update(files=len(files), runs=rates, cache_shape=list(frames.shape), cache_mb=frames.numel() / 2**20)
    return results


def one_hot_encoding(copies: int = 3, repeats: int = 3) -> dict:
    """Return bases/s of motifs.encode (codes + one-hot) on the real SOX17 windows x `copies`, median of repeats.

    The first call of a process was 1-4x slower than the next ones (one measured call gave 14-59 M
    bases/s across runs), so the median of `repeats` calls is reported, as for JPEG decoding.
    """
    from motifs.encode import encode
    from motifs.io import read_fasta

    names, sequences = read_fasta(course_data("ChIP/SOX17.fa"))
    sequences, names = sequences * copies, names * copies
    runs = [timed(lambda: encode(sequences, names)) for _ in range(repeats)]
    seconds = float(np.median([s for s, _ in runs]))
    return {"sequences": len(sequences), "bases_per_s": len(sequences) * len(sequences[0]) / seconds,
            "sequences_per_s": len(sequences) / seconds, "shape": list(runs[0][1].shape),
            "runs_seconds": [s for s, _ in runs]}


def fasta_streaming(n_windows: int = 50_000) -> dict:
    """Return windows/s for 200 bp windows fetched through pyfaidx from a 2 x 25 Mb genome FASTA.

    No genome is part of the course data, so the FASTA is random sequence written to a temporary
    folder (60 letters a line, like hg38); pyfaidx's speed does not depend on the letters.
    """
    from motifs.io import fetch_windows, open_fasta

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "genome.fa"
        with open(path, "w") as handle:
            for chrom in ("chrA", "chrB"):
                letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, 25_000_000)].tobytes().decode()
                handle.write(f">{chrom}\n" + "\n".join(letters[i:i + 60] for i in range(0, len(letters), 60)) + "\n")
        seconds_index, genome = timed(open_fasta, path, folder)
        starts = rng.integers(0, 25_000_000 - 200, n_windows)
        windows = [(("chrA", "chrB")[i % 2], int(s), int(s) + 200) for i, s in enumerate(starts)]
        seconds, _ = timed(fetch_windows, genome, windows)
    return {"windows": n_windows, "windows_per_s": n_windows / seconds, "index_seconds": seconds_index,
            "genome": "synthetic 2 x 25 Mb FASTA (no genome is in the course data)"}


def motif_model() -> Classifier:
    """Return the course motif CNN as a binary SOX17 classifier (weights do not change the speed)."""
    from motifs.models import CourseCNN

    torch.manual_seed(0)
    return Classifier(CourseCNN(), ["background", "SOX17"], task="binary").eval()


def ism_speed(n: int = 1000, batch_size: int = 4096) -> dict:
    """Return full-substitution ISM speed on n real SOX17 windows (3 x 200 variants each) vs batched forward."""
    from motifs.encode import encode
    from motifs.explain import predict, substitution_ism
    from motifs.io import read_fasta

    names, sequences = read_fasta(course_data("ChIP/SOX17.fa"))
    x = encode(sequences[:n], names[:n])
    model = motif_model()
    length = x.shape[-1]
    probe = x.repeat(20, 1, 1)[: 20 * batch_size // 4]  # 5 x batch_size windows for the forward rate
    predict(model, probe[:batch_size], batch_size)  # warm-up
    forward = [len(probe) / timed(predict, model, probe, batch_size)[0] for _ in range(2)]
    seconds, deltas = timed(substitution_ism, model, x, 1, batch_size)
    forward += [len(probe) / timed(predict, model, probe, batch_size)[0]]
    forward_rate = float(np.median(forward))
    useful = n * 3 * length / seconds
    evaluated = n * (3 * length + 1) / seconds  # the 3 alternatives of each position, plus the input itself
    return {"windows": n, "variants_per_window": 3 * length, "seconds": seconds, "variants_per_s": useful,
            "forwards_per_s_inside_ism": evaluated, "batched_forward_per_s": forward_rate,
            "forward_runs": forward, "ratio": useful / forward_rate, "target": ISM_TARGET,
            "met": useful / forward_rate >= ISM_TARGET, "batch_size": batch_size, "dtype": "float32",
            "output_shape": list(deltas.shape)}


def grad_cam_speed() -> dict:
    """Return Grad-CAM ms/image for the course image CNN over the course's predictions folder and 256 real frames."""
    from rickmorty.explain import grad_cam
    from rickmorty.images import list_images, read_frame
    from rickmorty.models import CourseCNN

    torch.manual_seed(0)
    model = Classifier(CourseCNN(), ["not Rick", "Rick"], task="binary").eval()
    folder = course_data("RickandMorty/data/predictions")
    paths, _ = list_images(folder)
    predictions = torch.stack([read_frame(p)[0] for p in paths])
    frames = torch.stack([read_frame(p)[0] for p in frame_files()[:256]])
    grad_cam(model, predictions[:2], "Rick")  # warm-up
    results = {}
    for name, images in (("predictions_folder", predictions), ("frames_256", frames)):
        seconds, heat = timed(grad_cam, model, images, "Rick")
        results[name] = {"images": len(images), "ms_per_image": 1000 * seconds / len(images),
                         "heat_shape": list(heat.shape)}
    return results


PEAK_RSS_CODE = {
    "images": "from rickmorty.data import FrameData\n"
              "data = FrameData(data_dir='course', task='binary'); data.setup('fit')\n"
              "x = data.part_frames('train')[0]; loaded = f'{len(data.load_frames().targets)} distinct frames, uint8'",
    "motifs": "from motifs.data import MotifData\nfrom common.paths import course_data\n"
              "data = MotifData(sources={'SOX17': str(course_data('ChIP/SOX17.fa'))}, negatives=['shuffle'], "
              "task='multiclass', split='random'); data.setup('fit')\n"
              "x = [data.splits[p].tensors()[0] for p in ('train', 'val', 'test')]\n"
              "loaded = f\"{len(data.splits['all'].names)} windows (SOX17 + shuffled), one-hot float32 tensors made\"",
}


def peak_rss() -> dict:
    """Return the peak RSS (MiB, VmHWM) of a fresh process after imports and after loading each full real data set."""
    results = {}
    for name, code in PEAK_RSS_CODE.items():
        script = ("import json, re\nimport torch, lightning\n"
                  "def peak():\n    status = open('/proc/self/status').read()\n"
                  "    return int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) / 1024\n"
                  "before = peak()\n" + code +
                  "\nprint(json.dumps({'after_imports_mib': before, 'peak_mib': peak(), 'loaded': loaded}))")
        output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).resolve().parent.parent).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    return results


def markdown(result: dict) -> str:
    """Return the data and interpretation numbers as a Markdown report."""
    d, o, f, i, g, m = (result[k] for k in ("jpeg", "one_hot", "fasta", "ism", "grad_cam", "peak_rss"))
    return "\n".join([
        f"# Data and interpretation speed on {result['device']}", "",
        f"Measured {result['date']}; command: `{result['command']}`; torch {result['torch']}, "
        f"{result['threads']} threads, load average at start {result['load_average_start'][0]:.2f}.", "",
        "| what | result |", "|---|---|",
        f"| JPEG decode, {d['files']} real frames (files read each time, median of 3) | torchvision decode_jpeg batched "
        f"{d['torchvision_decode_jpeg_batched']:,.0f} images/s; PIL {d['pil']:,.0f} images/s; "
        f"project reader -> uint8 cache {d['project_read_frame_to_uint8_cache']:,.0f} images/s "
        f"({d['cache_mb']:.0f} MiB) |",
        f"| one-hot encoding, {o['sequences']:,} real 200 bp windows (median of 3) | "
        f"{o['bases_per_s'] / 1e6:,.1f} M bases/s "
        f"({o['sequences_per_s']:,.0f} windows/s) |",
        f"| pyfaidx window streaming ({f['genome']}) | {f['windows_per_s']:,.0f} windows/s of 200 bp |",
        f"| full-substitution ISM, {i['windows']} real SOX17 windows x {i['variants_per_window']} variants | "
        f"{i['variants_per_s']:,.0f} variants/s = {i['ratio']:.0%} of the batched forward "
        f"({i['batched_forward_per_s']:,.0f} windows/s); target {i['target']:.0%}: "
        f"{'met' if i['met'] else 'MISSED'} |",
        f"| Grad-CAM (course image CNN) | {g['predictions_folder']['ms_per_image']:.1f} ms/image over the predictions "
        f"folder ({g['predictions_folder']['images']} frames); {g['frames_256']['ms_per_image']:.1f} ms/image "
        f"over 256 frames |",
        f"| peak RSS, full image set loaded | {m['images']['peak_mib']:,.0f} MiB ({m['images']['loaded']}; "
        f"{m['images']['after_imports_mib']:,.0f} MiB after imports) |",
        f"| peak RSS, full motif set loaded | {m['motifs']['peak_mib']:,.0f} MiB ({m['motifs']['loaded']}; "
        f"{m['motifs']['after_imports_mib']:,.0f} MiB after imports) |",
        "", "ISM counts the 3 x 200 variants of a window (`substitution_ism` builds only the alternative bases), "
        f"{i['forwards_per_s_inside_ism']:,.0f} forwards/s inside ISM.", ""])


def main() -> None:
    """Measure data loading, encoding, ISM, Grad-CAM and memory; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    result = {"device": "cpu", **run_header()}
    for key, measure in (("jpeg", jpeg_decoding), ("one_hot", one_hot_encoding), ("fasta", fasta_streaming),
                         ("ism", ism_speed), ("grad_cam", grad_cam_speed), ("peak_rss", peak_rss)):
        result[key] = measure()
        print(key, json.dumps(result[key]), flush=True)
    write_results(args.out, f"speed_data_cpu{args.tag}", result, markdown)


if __name__ == "__main__":
    main()
