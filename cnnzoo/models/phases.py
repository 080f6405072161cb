"""`train.phases`: one run trained in steps, each with its frozen layers and optimizer.

The Keras fine-tuning recipe (train a new head on a frozen base, then unfreeze and train
everything at a low learning rate) needs a recompile between the steps: `trainable` is read
when the train function is built, and the second optimizer starts afresh. A config without
phases is one phase: `model.freeze` and `train.optimizer` for `train.epochs` epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import Config
from cnnzoo.models.compile import compile_model
from cnnzoo.models.pretrained import freeze


@dataclass(frozen=True)
class Phase:
    index: int
    start: int  # first epoch (0-based)
    end: int  # epochs completed when it ends
    freeze: Any
    config: Config  # the run's config with this phase's optimizer

    @property
    def key(self) -> tuple:
        return ("phase", self.index)


def phases_of(config: Config) -> list[Phase]:
    """The run's phases, in order (one when `train.phases` is empty)."""
    if not config.train.phases:
        return [Phase(0, 0, config.train.epochs, config.model.freeze, config)]
    result, start = [], 0
    for index, phase in enumerate(config.train.phases):
        train = config.train.model_copy(update={"optimizer": phase.optimizer or config.train.optimizer})
        result.append(Phase(index, start, start + phase.epochs,
                            config.model.freeze if phase.freeze is None else phase.freeze,
                            config.model_copy(update={"train": train})))
        start += phase.epochs
    return result


def phase_at(config: Config, epoch: int) -> Phase:
    """The phase that trains epoch `epoch` (0-based); the last one past the end."""
    phases = phases_of(config)
    return next((p for p in phases if epoch < p.end), phases[-1])


def enter(model, phase: Phase, steps_per_epoch: int | None) -> list[str]:
    """Freeze the phase's layers and compile with its optimizer; returns the frozen layers' names."""
    where = phase.config.where("train", "phases", phase.index, "freeze") if phase.config.train.phases \
        else phase.config.where("model", "freeze")
    frozen = freeze(model, phase.freeze, where)
    compile_model(model, phase.config, steps_per_epoch)
    return frozen
