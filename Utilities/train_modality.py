"""Train the bundled modality classifier (`dlreg/models/modality_dcnn.pt`) on the development images.

Volumes come from `benchmarks/devdata.load_volumes` (the shared subjects' contrasts, the MNI
sample, Colin27 and the InVesalius head CT where installed, pseudo-CT/T2/FLAIR painted from
each T1); leave-one-subject-out CV calibrates the model and gives the card's metrics:

    .venv/bin/python Utilities/train_modality.py --output /tmp/modality_dcnn.pt
    cp /tmp/modality_dcnn.* dlreg/models/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlreg.progress import log_progress
from dlreg.training.modality.train import train_modality

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from devdata import DEFAULT_DATA, MODALITY_CARD_NOTES, load_volumes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--output", required=True, help="weights file (.pt); the card goes beside it")
    parser.add_argument("--per-volume", type=int, default=16)
    parser.add_argument("--ood", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    command = "python Utilities/train_modality.py " + " ".join(sys.argv[1:])
    train_modality(load_volumes(args.data), args.output, per_volume=args.per_volume, n_ood=args.ood,
                   epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                   card={**MODALITY_CARD_NOTES, "reproduce": command}, progress=log_progress)


if __name__ == "__main__":
    main()
