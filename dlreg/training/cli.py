"""`python -m dlreg train-affine-mlp | train-rigid | train-modality`: train the three models.

One vocabulary with the other sub-commands: `--output` for what is written, `--batch-size`,
`--device` (default auto), `--seed`. The old spellings `--out` and `--batch` still work for
one release and print a deprecation message.
"""

from __future__ import annotations

import argparse
import sys

from dlreg.options import deprecated_alias
from dlreg.rigid3d.options import ESTIMATORS

REMOVED_IN = "0.3"
# The keypoint trainer counts steps; its old --epochs N meant N x STEPS_PER_OLD_EPOCH steps.
STEPS_PER_OLD_EPOCH = 100


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the training sub-commands."""
    mlp = _command(subparsers, "train-affine-mlp", run_train_affine_mlp,
                   "train the zero-shot paper's affine MLP on synthetic keypoints",
                   "Train the MLP estimator on X ~ U[0,1], M ~ U[-1,1], Y = M X and write the weights with a "
                   "JSON model card next to them.")
    _output(mlp, "weights file to write (.pt); the card goes beside it", default="affine_mlp_paper.pt")
    mlp.add_argument("--steps", type=int, default=20000)
    _common(mlp, batch_size=512, lr=1e-3)

    rigid = _command(subparsers, "train-rigid", run_train_rigid, "train a 3D rigid estimator on a folder or CSV of "
                     "volumes", "--estimator keypoints (default): train the keypoint DCNN for --steps steps on "
                     "pairs drawn on the fly; write rigid3d_keypoints.pt and its card. --estimator ann (the paper's): "
                     "build the augmented set, train the DCNN for --epochs epochs, then the Bayesian-regularised "
                     "ANN; write rigid3d_model.pt and its card.")
    rigid.add_argument("data", help="folder (one sub-folder per subject) or CSV with fixed,moving[,split]")
    _output(rigid, "output folder (checkpoints, weights, card)")
    rigid.add_argument("--estimator", choices=ESTIMATORS, default="keypoints")
    rigid.add_argument("--steps", type=int, default=1500, help="keypoints: training steps")
    rigid.add_argument("--epochs", type=int, default=None, help="ann: epochs over the augmented set (default 30)")
    rigid.add_argument("--augment", type=int, default=8, help="ann: synthetic copies per pair")
    _common(rigid, batch_size=4, lr=None, lr_help="default: 2e-3 (keypoints), 1e-3 (ann)")
    rigid.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    rigid.add_argument("--json", action="store_true", help="print {\"weights\": path} instead of the path")

    modality = _command(subparsers, "train-modality", run_train_modality,
                        "train the modality classifier (LOSO CV, calibration, weights + card)",
                        "Train the classifier on the labelled volumes of MANIFEST, a CSV with the columns image, "
                        "label (CT, MR-T1, MR-T1C, MR-T2, MR-FLAIR), subject and optionally brain_mask, paths "
                        "relative to the CSV. Pseudo-CT and pseudo-T2/FLAIR volumes are painted from each T1.")
    modality.add_argument("manifest", help="CSV of labelled volumes")
    _output(modality, "weights file to write (.pt); the card goes beside it")
    modality.add_argument("--per-volume", type=int, default=12, help="augmented samples per volume")
    modality.add_argument("--ood", type=int, default=60, help="synthetic out-of-distribution samples")
    modality.add_argument("--epochs", type=int, default=12)
    _common(modality, batch_size=8, lr=1e-3)
    modality.add_argument("--no-loso", action="store_true", help="skip leave-one-subject-out CV")


def _command(subparsers: argparse._SubParsersAction, name: str, run, summary: str,
             details: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=summary, description=details)
    parser.set_defaults(func=run)
    return parser


def _output(parser: argparse.ArgumentParser, help_text: str, default: str | None = None) -> None:
    parser.add_argument("--output", required=default is None, default=default, help=help_text)
    parser.add_argument("--out", dest="output", help=argparse.SUPPRESS, action=deprecated_alias("--output", REMOVED_IN))


def _common(parser: argparse.ArgumentParser, *, batch_size: int, lr: float | None, lr_help: str = "") -> None:
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--batch", dest="batch_size", type=int, help=argparse.SUPPRESS,
                        action=deprecated_alias("--batch-size", REMOVED_IN))
    parser.add_argument("--lr", type=float, default=lr, help=lr_help or None)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0)


def run_train_affine_mlp(args: argparse.Namespace) -> int:
    """Train the MLP and write weights plus model card."""
    from pathlib import Path

    from dlreg.cli import print_json
    from dlreg.training.affine_mlp import save_model, train_affine_mlp

    model, metrics = train_affine_mlp(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                      device=args.device, progress=args.report)
    recipe = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    print_json(save_model(model, metrics, Path(args.output), recipe))
    return 0


def run_train_rigid(args: argparse.Namespace) -> int:
    """Train the chosen estimator and print where the weights went."""
    from dlreg.training.rigid import dcnn_ann, keypoints

    if args.estimator == "keypoints":
        steps = args.steps
        if args.epochs is not None:
            steps = STEPS_PER_OLD_EPOCH * args.epochs
            print(f"warning: --epochs with the keypoint estimator is deprecated and will be removed in "
                  f"{REMOVED_IN}; it is read as --steps {steps}", file=sys.stderr)
        weights = keypoints.train_from_folder(
            args.data, args.output, steps=steps, batch_size=args.batch_size, lr=args.lr or 2e-3,
            device=args.device, seed=args.seed, progress=args.report, resume=not args.no_resume)
    else:
        weights = dcnn_ann.train_from_folder(
            args.data, args.output, epochs=args.epochs or 30, n_augment=args.augment, lr=args.lr or 1e-3,
            batch_size=args.batch_size, device=args.device, seed=args.seed, progress=args.report,
            resume=not args.no_resume)
    if args.json:
        from dlreg.cli import print_json

        print_json({"weights": str(weights)})
    else:
        print(weights)
    return 0


def run_train_modality(args: argparse.Namespace) -> int:
    """Train on a manifest and print the model card."""
    from dlreg.cli import print_json
    from dlreg.training.modality.data import read_manifest, with_synthetic
    from dlreg.training.modality.train import train_modality

    volumes = with_synthetic(read_manifest(args.manifest))
    card = train_modality(volumes, args.output, per_volume=args.per_volume, n_ood=args.ood, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                          loso=not args.no_loso, progress=args.report)
    print_json(card)
    return 0
