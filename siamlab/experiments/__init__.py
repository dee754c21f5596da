"""The experiment catalogue: every table and figure of the four papers as one command (SPEC §4)."""
from .registry import all_experiments, get, ids
from .runner import run_experiment
from .spec import Arm, Claim, Column, Experiment, Figure

__all__ = ["Arm", "Claim", "Column", "Experiment", "Figure", "all_experiments", "get", "ids", "run_experiment"]
