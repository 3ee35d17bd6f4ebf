"""Training: one LightningModule, one Trainer factory, and the fit routine for every mode."""

from osteoscan.training.config import TrainConfig
from osteoscan.training.fit import FitResult, fit_classifier

__all__ = ["FitResult", "TrainConfig", "fit_classifier"]
