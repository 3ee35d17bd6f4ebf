"""How Lightning's own answers to Ctrl-C and SIGTERM are turned into InterruptedRun."""

import os
import signal

import pytest
from lightning.pytorch.utilities.exceptions import SIGTERMException

from osteoscan.errors import InterruptedRun
from osteoscan.training.trainer import signals_as_errors


def lightning_ctrl_c():
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise SystemExit(1) from None  # what Lightning's _call_and_handle_interrupt does


def raising(exception):
    def stop():
        raise exception

    return stop


@pytest.mark.parametrize(
    ("stop", "signum"),
    [
        (lightning_ctrl_c, signal.SIGINT),
        (raising(KeyboardInterrupt), signal.SIGINT),
        (raising(SIGTERMException), signal.SIGTERM),
        (lambda: os.kill(os.getpid(), signal.SIGTERM), signal.SIGTERM),
    ],
    ids=["lightning-ctrl-c", "ctrl-c", "lightning-sigterm", "sigterm"],
)
def test_each_stop_becomes_interrupted_run_with_its_exit_code(stop, signum):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(InterruptedRun, match="training stopped by") as info, signals_as_errors():
        stop()
    assert info.value.signal_number == signum and info.value.exit_code == 128 + signum
    assert signal.getsignal(signal.SIGTERM) is before


def test_other_exits_pass_through():
    with pytest.raises(SystemExit) as info, signals_as_errors():
        raise SystemExit(3)
    assert info.value.code == 3
