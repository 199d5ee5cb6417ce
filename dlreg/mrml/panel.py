"""What a module panel may do now: the decisions behind its buttons, kept out of the widgets.

The widgets (Qt) only apply these answers, so that the rules are tested on real MRML nodes:
while a run is on, every action stays disabled whatever the parameters do (Cancel is the only
action), and an action is offered only when its inputs make sense.
"""

from __future__ import annotations

RUNNING = "a run is in progress: wait for it or press Cancel"


def pair_action(first, second, running: bool, what: str = "Register the moving volume to the fixed one"
                ) -> tuple[bool, str]:
    """(enabled, tooltip) of an action on two distinct volumes (Apply, Order)."""
    if running:
        return False, RUNNING
    if first is None or second is None:
        return False, "Select two volumes"
    if first is second:
        return False, "Select two different volumes"
    return True, what


def list_action(nodes, running: bool, what: str) -> tuple[bool, str]:
    """(enabled, tooltip) of an action on one or more checked volumes (Classify)."""
    if running:
        return False, RUNNING
    if not nodes:
        return False, "Check at least one volume"
    return True, what


def training_action(data_folder: str, output_folder: str, running: bool) -> tuple[bool, str]:
    """(enabled, tooltip) of Train: both folders chosen (never the working directory by default)."""
    if running:
        return False, RUNNING
    if not data_folder.strip() or not output_folder.strip():
        return False, "Choose the training data folder (or CSV) and the output folder"
    return True, "Train the estimator's network on the chosen data; the weights are then selected"
