"""Where the built-in Trainer's time goes on CIFAR-sized images: input pipeline, model arithmetic, whole fit (a script, not a test).

    .venv/bin/python benchmarks/profile_trainer.py [--scale 0.25] [--epochs 2] [--filters 32,64 --filters 16,32]
        [--batch-size 64] [--json FILE]

On the synthetic CIFAR-10 of `bench_pipeline.py --scale S` (written once into `--data-dir`), this
writes the examples with the project's ImageExampleGen core (`write_dataset`, the same gzip
shards a pipeline run gets) and then measures, in this one process, each part the Trainer's
`run_fn` runs, with wall seconds and the process's CPU seconds (all threads):

- `read+parse, 1st epoch`: one pass of `model.image_dataset` over the train split (gzip read,
  decompression, caching of the records, parsing into float pixels), no model.
- `parse, cached epoch`: the next pass, from the in-memory cache (what every later epoch pays).
- `model only`: `fit` of the compiled CNN for one epoch on the same pixels held in memory as
  tensors (no parsing), after a traced warm-up: the model's own arithmetic.
- `whole fit`: `fit_best` as `run_fn` calls it (the real input pipeline, validation, checkpoint,
  EarlyStopping, TensorBoard scalars) for `--epochs`.

Beside the times it prints the CNN's arithmetic per training image (forward multiply-adds of
every Conv2D and Dense layer x 2 FLOP, x 3 for forward + backward), the GFLOP/s each part reaches
per CPU second, and the rate of a large float32 matmul on this machine (`tf.linalg.matmul`, all
cores) as the ceiling the arithmetic runs against. `--filters` (repeatable) profiles other
`conv_filters` settings (the pipeline takes them as `--custom-config '{"conv_filters": [16, 32]}'`),
so the cost of a cheaper model shows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (32, 32, 3)


@dataclass
class Part:
    settings: str
    part: str
    images: int
    wall_s: float
    cpu_s: float
    gflop: float  # training arithmetic of the part (0 for the input pipeline)

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_s / self.images

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s

    @property
    def gflops_per_cpu_s(self) -> float:
        return self.gflop / self.cpu_s if self.cpu_s else 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(run: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of this process) of `run()`."""
    wall, cpu = time.monotonic(), cpu_seconds()
    run()
    return time.monotonic() - wall, cpu_seconds() - cpu


def forward_flop_per_image(model) -> float:
    """2 x multiply-adds of every Conv2D and Dense layer for one image."""
    import tf_keras as keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, out_channels = layer.output_shape
            kernel_h, kernel_w = layer.kernel_size
            total += height * width * out_channels * kernel_h * kernel_w * layer.input_shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input_shape[-1] * layer.units
    return 2.0 * total


def matmul_gflops(seconds: float = 3.0, size: int = 1024) -> float:
    """float32 matmul rate of this process (TF's intra-op threads on all cores), GFLOP per wall second."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    tf.linalg.matmul(a, b).numpy()
    count, begin = 0, time.monotonic()
    while time.monotonic() - begin < seconds:
        tf.linalg.matmul(a, b).numpy()
        count += 1
    return count * 2 * size**3 / (time.monotonic() - begin) / 1e9


def write_examples(tarball: Path, out: Path) -> str:
    """Writes the examples once (class_names.txt is written last); says what it did."""
    from components.example_gen import executor, logic

    if (out / "class_names.txt").is_file():
        return f"examples: reusing {out}"
    holder: dict[str, dict[str, int]] = {}
    wall, cpu = measure(lambda: holder.update(counts=executor.write_dataset(logic.load_cifar10(tarball), str(out))))
    return f"examples: {holder['counts']} written by ImageExampleGen's core in {wall:.1f} s wall, {cpu:.1f} CPU s"


def profile(examples: Path, filters_list: Sequence[tuple[int, ...]], epochs: int, batch_size: int, work: Path) -> list[Part]:
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from components.trainer import model as trainer_model
    from components.trainer.autograph import skip_autograph_for_tf_keras
    from components.trainer.settings import TrainerSettings

    skip_autograph_for_tf_keras()
    train_files = [str(examples / "Split-train" / "*")]
    eval_files = [str(examples / "Split-eval" / "*")]
    parts: list[Part] = []
    base = TrainerSettings(image_shape=IMAGE_SHAPE, batch_size=batch_size)

    dataset = trainer_model.image_dataset(train_files, IMAGE_SHAPE, base.batch_size, shuffle=True, seed=base.seed)
    held: list[tuple[np.ndarray, np.ndarray]] = []
    wall, cpu = measure(lambda: held.extend((x.numpy(), y.numpy()) for x, y in dataset))
    images = sum(len(y) for _, y in held)
    parts.append(Part("-", "read+parse, 1st epoch", images, wall, cpu, 0.0))
    wall, cpu = measure(lambda: sum(1 for _ in dataset))
    parts.append(Part("-", "parse, cached epoch", images, wall, cpu, 0.0))
    pixels = np.concatenate([x for x, _ in held])
    labels = np.concatenate([y for _, y in held])
    held.clear()

    for filters in filters_list:
        settings = TrainerSettings(image_shape=IMAGE_SHAPE, conv_filters=tuple(filters), epochs=epochs, batch_size=batch_size)
        name = "conv_filters " + ",".join(str(f) for f in filters) + f", batch {batch_size}"
        keras.utils.set_random_seed(settings.seed)
        cnn = trainer_model.build_cnn(IMAGE_SHAPE, 10, settings)
        train_flop = 3 * forward_flop_per_image(cnn)
        cnn.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="sparse_categorical_crossentropy")
        in_memory = tf.data.Dataset.from_tensor_slices((pixels, labels)).batch(settings.batch_size).prefetch(2)
        cnn.fit(in_memory.take(20), epochs=1, verbose=0)  # trace and warm up
        wall, cpu = measure(lambda: cnn.fit(in_memory, epochs=1, verbose=0))
        parts.append(Part(name, "model only, 1 epoch", len(labels), wall, cpu, train_flop * len(labels) / 1e9))

        keras.utils.set_random_seed(settings.seed)
        cnn = trainer_model.build_cnn(IMAGE_SHAPE, 10, settings)
        train = trainer_model.image_dataset(train_files, IMAGE_SHAPE, settings.batch_size, shuffle=True, seed=settings.seed)
        val = trainer_model.image_dataset(eval_files, IMAGE_SHAPE, settings.batch_size, shuffle=False, seed=settings.seed)
        result: dict[str, float] = {}
        fit_dir = work / ("fit-" + "-".join(str(f) for f in filters))
        wall, cpu = measure(lambda: result.update(trainer_model.fit_best(cnn, train, val, settings, str(fit_dir))))
        trained = int(result["epochs_run"]) * len(labels)
        parts.append(Part(name, f"whole fit, {int(result['epochs_run'])} epochs (val acc {result['best_val_accuracy']:.3f})",
                          trained, wall, cpu, train_flop * trained / 1e9))
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="share of CIFAR-10's size (default 0.25)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--filters", action="append", metavar="F,F",
                        help="conv_filters to profile (repeatable; default the built-in 32,64)")
    parser.add_argument("--batch-size", type=int, default=64, help="the Trainer's batch_size (default 64, the built-in's)")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "bench-pipeline-data"))
    parser.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")
    args = parser.parse_args()
    try:
        filters_list = [tuple(int(f) for f in text.split(",")) for text in (args.filters or ["32,64"])]
    except ValueError:
        parser.error(f"--filters {args.filters}: expected comma-separated integers such as 32,64")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    from bench_pipeline import synthetic_cifar10

    tarball = synthetic_cifar10(Path(args.data_dir), args.scale)
    examples = tarball.parent / "examples"
    print(write_examples(tarball, examples))
    peak = matmul_gflops()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; float32 matmul 1024^2: {peak:.1f} GFLOP/s (all cores)")
    with tempfile.TemporaryDirectory(prefix="profile-trainer-") as work:
        parts = profile(examples, filters_list, args.epochs, args.batch_size, Path(work))
    print("\n| settings | part | images | wall s | CPU s | CPU ms / image | images / s | GFLOP per CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for p in parts:
        rate = f"{p.gflops_per_cpu_s:.1f}" if p.gflop else "-"
        print(f"| {p.settings} | {p.part} | {p.images} | {p.wall_s:.1f} | {p.cpu_s:.1f} | {p.cpu_ms_per_image:.2f} | {p.images_per_s:.0f} | {rate} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"scale": args.scale, "matmul_gflops": peak, "load": os.getloadavg(),
                                               "parts": [asdict(p) for p in parts]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
