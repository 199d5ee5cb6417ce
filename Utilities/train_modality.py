"""Train the bundled modality classifier (`dlreg/models/modality_dcnn.pt`) on the development images.

Volumes come from `benchmarks/devdata.load_volumes` (the shared subjects' contrasts including
the BraTS 2018 subjects, the MNI sample, Colin27 and the InVesalius head CT where installed,
pseudo-CT/T2/FLAIR painted from each T1). Leave-one-subject-out CV over every subject calibrates
the model and gives the card's metrics; the final fit leaves out the test split
(`devdata.TEST_SUBJECTS`), and the card reports its accuracy on those subjects:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python Utilities/train_modality.py \\
        --output /tmp/modality_dcnn.pt --cache /tmp/modality_cache
    cp /tmp/modality_dcnn.* dlreg/models/

`--spec paper` trains the paper's configuration instead (five classes including CT, the
normalised intensity alone, no outlier exposure, argmax) for comparison; `--folds N` groups the
subjects into N folds instead of one per subject.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from dlreg.imaging.outputs import check_output_paths
from dlreg.progress import log_progress
from dlreg.training.modality.samples import SampleSet, make_samples
from dlreg.training.modality.train import PAPER_SPEC, SHIPPED_SPEC, train_on_samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from devdata import DEFAULT_DATA, MODALITY_CARD_NOTES, TEST_SUBJECTS, load_volumes  # noqa: E402

SPECS = {"shipped": SHIPPED_SPEC, "paper": PAPER_SPEC}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--output", required=True, help="weights file (.pt); the card goes beside it")
    parser.add_argument("--cache", default=None, help="folder for the canonical samples (reused across runs)")
    parser.add_argument("--spec", choices=sorted(SPECS), default="shipped")
    parser.add_argument("--per-volume", type=int, default=4, help="training augmentations per volume")
    parser.add_argument("--native", type=int, default=4, help="native-like training variants per volume")
    parser.add_argument("--eval-native", type=int, default=3, help="native-like evaluation variants per volume")
    parser.add_argument("--ood", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=None, help="grouped folds (default: one per subject)")
    parser.add_argument("--no-loso", action="store_true", help="skip the cross-validation")
    parser.add_argument("--cv-out", default=None, help="save the out-of-fold logits here (.npz)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    check_output_paths([args.output, args.cv_out])  # before the samples (minutes to build)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    command = "python Utilities/train_modality.py " + " ".join(sys.argv[1:])
    samples: SampleSet = make_samples(load_volumes(args.data), per_volume=args.per_volume, native=args.native,
                                      eval_native=args.eval_native, n_ood=args.ood, seed=args.seed,
                                      cache_dir=args.cache, progress=log_progress)
    recipe = {"per_volume": args.per_volume, "native": args.native, "eval_native": args.eval_native,
              "n_ood": args.ood, "spec": args.spec, "folds": args.folds or "one per subject"}
    train_on_samples(samples, args.output, spec=SPECS[args.spec], epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, seed=args.seed, device=args.device, loso=not args.no_loso, folds=args.folds,
                     exclude_subjects=TEST_SUBJECTS, cv_out=args.cv_out,
                     card={**MODALITY_CARD_NOTES, "recipe": recipe, "reproduce": command}, progress=log_progress)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
