"""The one place a Lightning Trainer is built (devices, DDP, precision, logging, early
stopping) and run, with Ctrl-C and SIGTERM turned into :class:`~osteoscan.errors.InterruptedRun`.

Lightning answers Ctrl-C by calling ``sys.exit(1)`` and SIGTERM by stopping quietly with exit
status 0 (``SIGTERMException``, a ``SystemExit``): a pre-empted run would pass for a finished one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from osteoscan.errors import InterruptedRun
from osteoscan.training.config import TrainConfig

_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def interrupted(signal_number: int) -> InterruptedRun:
    return InterruptedRun(
        f"training stopped by {_NAMES.get(signal_number, signal_number)}; no bundle was written "
        "(run the same command again to train from the start)",
        signal_number,
    )


_OWNER: list[int] = []  # the process that installed the handler


def _raise_sigterm(signal_number: int, frame: object) -> None:
    if os.getpid() not in _OWNER:  # a forked worker (decoding, data loading): die as usual
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise interrupted(signal.SIGTERM)


@contextlib.contextmanager
def signals_as_errors() -> Iterator[None]:
    """Inside: SIGTERM raises InterruptedRun at once, and Ctrl-C (also when Lightning has turned
    it into ``sys.exit(1)``) becomes InterruptedRun; handlers are restored afterwards.

    Signal handlers can only be set in the main thread; elsewhere only the conversion applies.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    if main:
        _OWNER.append(os.getpid())
        signal.signal(signal.SIGTERM, _raise_sigterm)
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted(signal.SIGINT) from None
    except SIGTERMException:
        raise interrupted(signal.SIGTERM) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise interrupted(signal.SIGINT) from None
        raise
    finally:
        if main:
            _OWNER.pop()
            signal.signal(signal.SIGINT, previous[0])
            signal.signal(signal.SIGTERM, previous[1])


class KeepBest(Callback):
    """Keep the best state dict (by validation AUC) in memory: no checkpoint files to half-write."""

    def __init__(self, monitor: str = "val_auc") -> None:
        self.monitor = monitor
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.best_state: dict | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) > self.best_score:
            self.best_score = float(score)
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()}
            )


def make_trainer(
    config: TrainConfig, log_dir: Path, precision: str, max_epochs: int
) -> tuple[L.Trainer, KeepBest]:
    keep_best = KeepBest()
    callbacks: list[Callback] = [
        keep_best,
        EarlyStopping(monitor="val_auc", mode="max", patience=config.patience, check_finite=False),
    ]
    if config.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=precision,
        logger=CSVLogger(str(log_dir), name="logs"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=config.deterministic,
        log_every_n_steps=1,
        default_root_dir=str(log_dir),
    )
    return trainer, keep_best
