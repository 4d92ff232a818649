"""Progress of the runs a benchmark is waiting on, read from their logs.

A run of the benchmark can train for hours (BERT4Rec on Scientific on one CPU thread: about 3 min
an epoch, 100+ epochs), and the benchmark's own output said nothing between "running" and "ok".
:class:`RunProgress` follows one worker's log (RecBole's logger writes into it) and turns RecBole's
epoch lines into one line of progress: the last epoch that was validated, how long it took, its
validation score, the best one seen and the epoch where early stopping will end the run unless
the best is beaten (from the ``epochs``, ``eval_step`` and ``stopping_step`` of the config RecBole
writes at the top of the log). It reads only the text appended since its last look, and
only whole lines (the worker may be writing one). The best is RecBole's own choice (the epoch
followed by "Saving current best"), so it holds whether the metric is better bigger or smaller. The
worker's log of a resumed run starts at the resume; the best of the earlier epochs is read from
the run folder's own log, which every stretch of the run appends to.
"""
import re
import time
from pathlib import Path

#: at most one progress line per run per this many seconds (a run on a GPU can finish an epoch a second)
PROGRESS_SECONDS = 60

_TRAINING = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
_EVALUATING = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([-\d.eE+]+)\]")
_SAVED_BEST = re.compile(r"Saving current best")
_RESUMING = re.compile(r"resuming (.*) at epoch (\d+)")
RUN_LOG = "run.log"  # a run folder's own log (quick_start._log_into)
_SETTING = re.compile(r"^(epochs|eval_step|stopping_step|valid_metric) = (\S+)\s*$")  # RecBole's config dump


class RunProgress:
    """What one run's log says so far; :meth:`line` says it when there is something new."""

    def __init__(self, log_path):
        self.log_path = log_path
        self._offset = 0
        self._train_seconds = {}  # epoch -> training seconds
        self.last = None  # (epoch, seconds trained + validated, valid score) of the last validated epoch
        self.best = None  # (epoch, valid score) of RecBole's best so far
        self.resumed_at = None
        self.settings = {}  # epochs, eval_step, stopping_step, valid_metric: as the run's config says
        self._said = None  # the epoch of the last line returned
        self._said_at = float("-inf")

    def read(self):
        """Take in the whole lines appended to the log since the last call."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self._offset)
                appended = handle.read()
        except OSError:
            return
        complete = appended[:appended.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self._take(line)

    def _take(self, line):
        if match := _TRAINING.search(line):
            self._train_seconds[int(match[1])] = float(match[2])
        elif match := _EVALUATING.search(line):
            epoch = int(match[1])
            self.last = (epoch, self._train_seconds.get(epoch, 0.0) + float(match[2]), float(match[3]))
        elif _SAVED_BEST.search(line) and self.last is not None:
            self.best = (self.last[0], self.last[2])
        elif match := _RESUMING.search(line):
            self.resumed_at = int(match[2])
            self.best = self._best_before(Path(match[1]) / RUN_LOG, self.resumed_at)
        elif match := _SETTING.match(line):
            self.settings[match[1]] = match[2]

    @staticmethod
    def _best_before(run_log, epoch):
        """RecBole's best among the epochs before ``epoch`` in the run folder's own log (appended to
        by every stretch of the run), or ``None`` where it cannot be read."""
        best = last = None
        try:
            with open(run_log, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if match := _EVALUATING.search(line):
                        last = (int(match[1]), float(match[3])) if int(match[1]) < epoch else None
                    elif last is not None and _SAVED_BEST.search(line):
                        best = last
        except OSError:
            return None
        return best

    def last_epoch_unless_beaten(self):
        """The epoch after which early stopping ends the run if nothing beats the best (RecBole:
        ``stopping_step`` validations in a row without an improvement are allowed, the next one
        stops it), or the last of ``epochs``; ``None`` where the log does not say."""
        try:
            epochs, every, patience = (int(self.settings[key]) for key in ("epochs", "eval_step", "stopping_step"))
        except (KeyError, ValueError):
            return None
        return min(self.best[0] + (patience + 1) * every, epochs - 1)

    def line(self, now=None):
        """One line on the newest validated epoch, or ``None``: nothing new since the last line, or
        the last line was less than :data:`PROGRESS_SECONDS` ago."""
        now = time.time() if now is None else now
        self.read()
        if self.last is None or self.last[0] == self._said or now - self._said_at < PROGRESS_SECONDS:
            return None
        self._said, self._said_at = self.last[0], now
        epoch, seconds, score = self.last
        text = f"epoch {epoch} done in {seconds:.0f} s, valid {self.settings.get('valid_metric', 'score')} {score:.4f}"
        if self.best is not None and self.best[0] == epoch:
            return text + " (the best so far)"
        if self.best is not None:
            text += f"; best {self.best[1]:.4f} at epoch {self.best[0]}"
            last = self.last_epoch_unless_beaten()
            return text if last is None else text + f", so it ends after epoch {last} unless that is beaten"
        if self.resumed_at is not None:
            return text + f"; the best is from before epoch {self.resumed_at}, where it resumed"
        return text
