"""What the shipped classifier answers for the bundled sample volumes, as its model card records it.

The in-Slicer self-test and the pytest suite both read their expectations here, so they cannot
drift apart; a pytest also checks that the shipped model still gives these answers.
"""

from __future__ import annotations

from dlreg.modality.classifier import BUNDLED
from dlreg.weights import model_card

CARD_KEY = "sample_predictions"


def bundled_sample_expectations() -> dict[str, str]:
    """{sample file name: label} of the bundled sample volumes (dlreg/sampledata) for the shipped model."""
    return {name: entry["label"] for name, entry in model_card(BUNDLED)[CARD_KEY].items()}
