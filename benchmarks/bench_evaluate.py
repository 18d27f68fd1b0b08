"""Compare the ranking methods on built-in galaxies and on the real sample images.

Runs :func:`galaxysim.app.evaluation.evaluate_methods` on

(a) built-in data: ``make_galaxies`` (2,000 images of 64x64 by default), query
    ``make_milky_way`` (the built-in Milky Way drawing in the same style);
(b) the real images of ``../shared/data``: the 50 images of the five seed
    classes in ``galaxy10_decals_samples`` (``load_galaxy10_folder``, centre
    crop 64), query the NASA/JPL-Caltech/R. Hurt Milky Way illustration
    (``load_milky_way(path=...)``, framed like a Galaxy10 spiral). The models
    are trained on all 100 real images (the ten classes), unlabelled, and the
    50 seed-class ones are ranked. Skipped when the folder is absent.
(c) transfer: the same 50 real images and illustration, ranked by models
    trained only on ``make_galaxies`` (2,000 images): does what is learned on
    the built-in galaxies carry over to survey images?
(d) adapted: the same 50 real images and illustration, ranked by the
    contrastive embedder pretrained on the built-in galaxies and then fitted
    on the 100 real images from there (``init=``): pretraining, then adapting
    to the user's own collection.

The two contrastive embedders of the built-in galaxies (the default
dihedral encoder and the plain one) are trained once and serve (a), (c) and
(d) (``pretrained=`` of ``evaluate_methods``, with their training time as
fit time). ``--models DIR`` keeps them as model files and reuses them on
the next run.

and writes, for each, ``evaluation_<name><tag>.csv`` and ``.md`` into
``--out`` and ``evaluation_<name><tag>.png`` into ``--out/images``.

Model presets (``--preset``):

- ``cpu``: an autoencoder small enough to train on two shared CPU cores in a
  few minutes (1 residual block per stage, 8 base channels, 15 epochs at
  most; latent 32), the contrastive embedder's defaults (30 epochs at most,
  batches of 128: on the 100 real images that is 30 optimiser steps, and
  longer training measured worse there) and flows of 4 affine layers of
  (64, 64) units, 100 epochs at most with early stopping;
- ``default``: the estimators' defaults (6 blocks per stage, 16 channels, 50
  epochs; flows of (128, 128) units): hours on a CPU, minutes on a GPU.

Usage::

    python benchmarks/bench_evaluate.py --out docs                   # CPU preset
    python benchmarks/bench_evaluate.py --preset default --tag _gpu  # on a GPU
    python benchmarks/bench_evaluate.py --quick                      # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from sklearn.frozen import FrozenEstimator

from galaxysim import ContrastiveEmbedder, load_model, save_model
from galaxysim.app.collections import TARGET_CLASS
from galaxysim.app.evaluation import METHODS, EvaluationSettings, evaluate_methods
from galaxysim.app.evaluation_methods import QUICK_CONTRASTIVE
from galaxysim.app.evaluation_table import EvaluationTable, plot_evaluation
from galaxysim.datasets import (
    SYNTHETIC_CLASSES,
    load_galaxy10_folder,
    load_milky_way,
    make_galaxies,
    make_milky_way,
)
from galaxysim.images import resize

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

PRESETS = {
    "cpu": {
        "autoencoder": {"n_blocks": 1, "base_channels": 8, "max_epochs": 15, "patience": 3},
        "contrastive": {},
        "flow": {"hidden_features": (64, 64)},
    },
    "default": {"autoencoder": {}, "contrastive": {}, "flow": {}},
}
# The methods of the transfer part: the embedders that can be trained on other images.
TRANSFER_METHODS = ["pca", "pca-whitened", "contrastive", "contrastive-conv", "autoencoder"]


def _settings(args: argparse.Namespace) -> dict:
    # quick keeps evaluate_methods' own tiny models; only the device is passed on.
    empty = {"autoencoder": {}, "contrastive": {}, "flow": {}}
    preset = empty if args.quick else PRESETS[args.preset]
    return {f"{kind}_params": {**preset[kind], "device": args.device} for kind in empty}


_ENCODERS = {"contrastive": "dihedral", "contrastive-conv": "conv"}


def builtin_models(args: argparse.Namespace) -> dict[str, tuple[ContrastiveEmbedder, float]]:
    """The contrastive embedders trained on the built-in galaxies, and their training seconds.

    Read from ``--models`` when they were kept there by an earlier run of the
    same settings, else trained (and kept there).
    """
    if getattr(args, "_builtin_models", None) is not None:
        return args._builtin_models
    images, _ = make_galaxies(args.n_samples, image_size=args.image_size, random_state=0)
    params = {
        **(QUICK_CONTRASTIVE if args.quick else PRESETS[args.preset]["contrastive"]),
        "device": args.device,
        "random_state": 0,
    }
    models = {}
    for method, encoder in _ENCODERS.items():
        name = f"builtin_{encoder}_{args.n_samples}x{args.image_size}{'_quick' * args.quick}"
        path = None if args.models is None else args.models / f"{name}.safetensors"
        if path is not None and path.is_file() and path.with_suffix(".json").is_file():
            seconds = json.loads(path.with_suffix(".json").read_text())["seconds"]
            models[method] = (load_model(path, expected=ContrastiveEmbedder), seconds)
            continue
        start = time.perf_counter()
        model = ContrastiveEmbedder(encoder=encoder, verbose=int(args.verbose), **params)
        model.fit(images)
        models[method] = (model, time.perf_counter() - start)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(model, path, overwrite=True)
            path.with_suffix(".json").write_text(json.dumps({"seconds": models[method][1]}))
    args._builtin_models = models
    return models


def _pretrained(args: argparse.Namespace, methods: list[str] | None) -> dict:
    """The built-in contrastive models of the chosen methods (all by default)."""
    chosen = methods or METHODS
    if not any(method in chosen for method in _ENCODERS):
        return {}
    return {k: v for k, v in builtin_models(args).items() if k in chosen}


def builtin(args: argparse.Namespace) -> EvaluationTable:
    """Built-in synthetic galaxies against the built-in Milky Way drawing."""
    images, labels = make_galaxies(args.n_samples, image_size=args.image_size, random_state=0)
    return evaluate_methods(
        images,
        labels,
        make_milky_way(args.image_size),
        target_names=SYNTHETIC_CLASSES,
        target_label=TARGET_CLASS,
        verbose=args.verbose,
        settings=EvaluationSettings(
            methods=args.methods,
            n_components=args.n_components,
            ks=(10, 50),
            quick=args.quick,
            random_state=0,
            pretrained=_pretrained(args, args.methods),
            data_name=(
                f"make_galaxies({args.n_samples}, image_size={args.image_size}, random_state=0)"
            ),
            query_name="make_milky_way (built-in drawing)",
            **_settings(args),
        ),
    )


def _real_images(args: argparse.Namespace, classes=None):
    """The real sample images at the evaluation's size and the illustration; None if absent."""
    folder = args.shared / "galaxy10_decals_samples"
    png = args.shared / "milky_way" / "milky_way_artist_impression_256.png"
    if not (folder.is_dir() and png.is_file()):
        print(f"Real images skipped: {folder} or {png} is absent.", file=sys.stderr)
        return None
    kwargs = {} if classes is None else {"classes": classes}
    data = load_galaxy10_folder(folder, crop=64, **kwargs)
    images = data.images if args.image_size == 64 else resize(data.images, args.image_size)
    return data, images, load_milky_way(args.image_size, path=png)


def _real_name(n: int, args: argparse.Namespace) -> str:
    return f"the {n} seed-class images of galaxy10_decals_samples (crop 64" + (
        f", resized to {args.image_size})" if args.image_size != 64 else ")"
    )


_ILLUSTRATION = "Milky Way illustration (NASA/JPL-Caltech/R. Hurt), framed like Galaxy10"


def real(args: argparse.Namespace) -> EvaluationTable | None:
    """The 50 real seed-class images, ranked by models trained on all 100 real images."""
    loaded, everything = _real_images(args), _real_images(args, classes=range(10))
    if loaded is None or everything is None:
        return None
    data, images, query = loaded
    return evaluate_methods(
        images,
        data.target,
        query,
        train_X=everything[1],
        target_names=list(data.target_names),
        target_label=TARGET_CLASS,
        verbose=args.verbose,
        settings=EvaluationSettings(
            methods=args.methods,
            n_components=args.real_n_components,
            ks=(10, 50),
            quick=args.quick,
            random_state=0,
            data_name=_real_name(len(images), args),
            query_name=_ILLUSTRATION,
            **_settings(args),
        ),
    )


def transfer(args: argparse.Namespace) -> EvaluationTable | None:
    """The 50 real seed-class images, ranked by models trained on built-in galaxies only."""
    loaded = _real_images(args)
    if loaded is None:
        return None
    data, images, query = loaded
    train, _ = make_galaxies(args.n_samples, image_size=args.image_size, random_state=0)
    methods = [m for m in (args.methods or TRANSFER_METHODS) if m in TRANSFER_METHODS]
    return evaluate_methods(
        images,
        data.target,
        query,
        train_X=train,
        target_names=list(data.target_names),
        target_label=TARGET_CLASS,
        verbose=args.verbose,
        settings=EvaluationSettings(
            pretrained=_pretrained(args, methods),
            methods=methods,
            n_components=args.real_n_components,
            ks=(10, 50),
            quick=args.quick,
            random_state=0,
            data_name=_real_name(len(images), args) + f", models trained on make_galaxies"
            f"({args.n_samples}, image_size={args.image_size}, random_state=0)",
            query_name=_ILLUSTRATION,
            **_settings(args),
        ),
    )


def adapted(args: argparse.Namespace) -> EvaluationTable | None:
    """The 50 real seed-class images, ranked after pretraining on built-in galaxies and adapting."""
    loaded, everything = _real_images(args), _real_images(args, classes=range(10))
    if loaded is None or everything is None:
        return None
    data, images, query = loaded
    if args.init is not None:  # a model file, such as the demo's model.safetensors
        init, source = str(args.init), f"the model {args.init.name}"
    else:
        init = FrozenEstimator(builtin_models(args)["contrastive"][0])
        source = f"make_galaxies({args.n_samples}, image_size={args.image_size}, random_state=0)"
    settings = _settings(args)
    settings["contrastive_params"] = {**settings["contrastive_params"], "init": init}
    if args.quick:  # evaluate_methods' tiny quick model must match the pretrained one
        settings["contrastive_params"].update(QUICK_CONTRASTIVE)
    return evaluate_methods(
        images,
        data.target,
        query,
        train_X=everything[1],
        target_names=list(data.target_names),
        target_label=TARGET_CLASS,
        verbose=args.verbose,
        settings=EvaluationSettings(
            methods=["pca", "contrastive"],
            n_components=args.real_n_components,
            ks=(10, 50),
            quick=args.quick,
            random_state=0,
            data_name=_real_name(len(images), args) + ", the contrastive embedder pretrained on "
            f"{source} and adapted on the 100 real images",
            query_name=_ILLUSTRATION,
            **settings,
        ),
    )


def write(
    table: EvaluationTable, out: Path, name: str, command: str, machine: str
) -> dict[str, Path]:
    """Write the CSV, the Markdown (with machine, date and command) and the figure."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    files = {
        "csv": table.to_csv(out / f"{name}.csv", overwrite=True),
        "md": out / f"{name}.md",
        "png": out / "images" / f"{name}.png",
    }
    files["md"].write_text(
        f"{table.to_markdown()}\nMachine: {machine}. Date: {date.today().isoformat()}. "
        f"Command: `{command}`\n",
        encoding="utf-8",
    )
    plot_evaluation(table).savefig(files["png"], dpi=110)
    return files


def machine_description(device: str) -> str:
    """One line on where this ran."""
    if device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} GPU (torch {torch.__version__})"
    return (
        f"{platform.machine()} CPU, {os.cpu_count()} cores, shared; "
        f"{torch.get_num_threads()} torch thread(s); torch {torch.__version__}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the sizes --quick implies filled in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 built-in images of 16 pixels, real images at 16, tiny models",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the reports (default: a temporary folder, removed "
        "at the end; the tables are printed)",
    )
    parser.add_argument("--tag", default="", help="suffix of the file names, e.g. _gpu")
    parser.add_argument(
        "--n-samples", type=int, default=None, help="built-in images (default 2000)"
    )
    parser.add_argument("--image-size", type=int, default=None, help="side in pixels (default 64)")
    parser.add_argument("--n-components", type=int, default=32)
    parser.add_argument(
        "--real-n-components",
        type=int,
        default=16,
        help="latent size for the 50 real images (default 16)",
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("builtin", "real", "transfer", "adapted"),
        default=["builtin", "real", "transfer", "adapted"],
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="keep the contrastive embedders trained on built-in galaxies here, "
        "and reuse them when the same settings run again",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="the adapted part starts from this model file (a ContrastiveEmbedder "
        "or a saved ranker, e.g. the demo's model.safetensors) instead of the "
        "built-in model trained here",
    )
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--device", default="auto", help="torch device for the models")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: steady on a shared 2-core machine)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_samples = args.n_samples or 100
        args.image_size = args.image_size or 16
        args.n_components, args.real_n_components = 4, 4
    args.n_samples = args.n_samples or 2000
    args.image_size = args.image_size or 64
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run both evaluations; print the tables and the command; return the tables."""
    args = parse_args(argv)
    arguments = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_evaluate.py" + (
        " " + shlex.join(arguments) if arguments else ""
    )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    temporary = None
    try:
        out = args.out
        if out is None:
            temporary = tempfile.TemporaryDirectory()
            out = Path(temporary.name)
        machine = machine_description(args.device)
        results: dict = {"command": command, "tables": {}, "files": {}, "seconds": {}}
        parts = (("builtin", builtin), ("real", real), ("transfer", transfer), ("adapted", adapted))
        for part, function in parts:
            if part not in args.parts:
                continue
            start = time.perf_counter()
            table = function(args)
            if table is None:
                continue
            results["seconds"][part] = time.perf_counter() - start
            results["tables"][part] = table
            files = write(table, out, f"evaluation_{part}{args.tag}", command, machine)
            results["files"][part] = {kind: str(path) for kind, path in files.items()}
            print(f"\n## {part}: {table.data_name}\n")
            print(table.to_markdown(details=False))
            print(f"\n({results['seconds'][part]:.0f} s; files in {out})")
        print(f"\nMachine: {machine}. Date: {date.today().isoformat()}.")
        print(f"Command: {command}")
        return results
    finally:
        torch.set_num_threads(previous_threads)
        if temporary is not None:
            temporary.cleanup()


if __name__ == "__main__":
    main()
