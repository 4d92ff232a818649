"""Learning-rate warm-up and cosine decay, for every model's run (RecBole 1.2.1's Trainer keeps
``learning_rate`` constant).

Step ``t`` (optimizer steps, counted from the start of training) trains at
``learning_rate x factor(t)``:

* warm-up, the first ``W = lr_warmup_epochs x steps per epoch`` steps: ``factor = (t + 1) / W``;
* cosine decay to ``D = lr_decay_epochs x steps per epoch``: with ``p = (t - W) / (D - W)``,
  ``factor = r + (1 - r)(1 + cos(pi p)) / 2``, ``r = lr_min_ratio``; after ``D`` it stays at ``r``
  (a floor above 0, so that RecBole's early stopping still sees the model change and ends the run).

``lr_decay_epochs: 0`` is no decay, ``lr_warmup_epochs: 0`` no warm-up: both 0 (the defaults) is
RecBole's constant rate, and the run computes exactly what it computed before these options
existed. The factor depends on the step only, which is set from the epoch at the start of each
epoch: a resumed run continues the schedule where the interrupted one was.
"""
import math


def learning_rate_factor(step, warmup_steps, decay_steps, min_ratio):
    """The multiplier of ``learning_rate`` at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (decay_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * progress)) / 2.0


class LearningRateSchedule:
    """Sets the rate of every parameter group of ``optimizer`` before each of its steps."""

    def __init__(self, optimizer, learning_rate, warmup_epochs, decay_epochs, min_ratio):
        self.learning_rate = learning_rate
        self.warmup_epochs, self.decay_epochs, self.min_ratio = warmup_epochs, decay_epochs, min_ratio
        self.step = 0
        self.steps_per_epoch = 1
        optimizer.register_step_pre_hook(self._before_step)

    @classmethod
    def from_config(cls, optimizer, config):
        """The schedule ``config`` asks for, or ``None`` (constant rate)."""
        warmup, decay = config["lr_warmup_epochs"] or 0, config["lr_decay_epochs"] or 0
        if not warmup and not decay:
            return None
        return cls(optimizer, config["learning_rate"], warmup, decay, config["lr_min_ratio"])

    def begin_epoch(self, epoch_idx, steps_per_epoch):
        """Called before epoch ``epoch_idx`` (0-based) trains its ``steps_per_epoch`` batches."""
        self.steps_per_epoch, self.step = steps_per_epoch, epoch_idx * steps_per_epoch
        return self.learning_rate * self.factor(self.step)

    def factor(self, step):
        return learning_rate_factor(step, round(self.warmup_epochs * self.steps_per_epoch),
                                    round(self.decay_epochs * self.steps_per_epoch), self.min_ratio)

    def _before_step(self, optimizer, args, kwargs):
        rate = self.learning_rate * self.factor(self.step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        self.step += 1
