"""Progress of the runs a benchmark is waiting on, read from their logs.

A run of the benchmark can train for hours (BERT4Rec on Scientific on one CPU thread: about 2-3
min an epoch, 60+ epochs), and the benchmark's own output said nothing between "running" and "ok".
:class:`RunProgress` follows one worker's log (RecBole's logger writes into it) and turns RecBole's
epoch lines into one line of progress: the last epoch that was validated, how long it took, its
validation score, the best one so far and the epoch after which early stopping ends the run
unless the best is beaten. It reads only the text appended since its last look, and only whole
lines (the worker may be writing one).

The best is decided as RecBole's trainer decides it, from the logged scores and the config RecBole
writes at the top of the log (``valid_metric_bigger``, ``stopping_step``, ``eval_step``,
``epochs``): :func:`recbole.utils.early_stopping` keeps a score that equals or beats the best, and
stops after ``stopping_step`` validations in a row without one. (RecBole's "Saving current best"
line comes only after the checkpoint is written, seconds after the score, so it cannot tell an
epoch that did not improve from one being saved.) The logged score is the validation metric
rounded as the trainer compares it. The worker's log of a resumed run starts at the resume; the
earlier epochs are read from the run folder's own ``run.log``, which every stretch appends to.
"""
import re
import time
from pathlib import Path

#: at most one progress line per run per this many seconds (a run on a GPU can finish an epoch a second)
PROGRESS_SECONDS = 60
RUN_LOG = "run.log"  # a run folder's own log (quick_start._log_into)

_TRAINING = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
_EVALUATING = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([-\d.eE+]+)\]")
_RESUMING = re.compile(r"resuming (.*) at epoch (\d+)")
_SETTING = re.compile(r"^(epochs|eval_step|stopping_step|valid_metric|valid_metric_bigger) = (\S+)\s*$")


class RunProgress:
    """What one run's log says so far; :meth:`line` says it when there is something new."""

    def __init__(self, log_path):
        self.log_path = log_path
        self._offset = 0
        self._train_seconds = {}  # epoch -> training seconds
        self.last = None  # (epoch, seconds trained + validated, valid score) of the last validated epoch
        self.best = None  # (epoch, valid score) of the best validation so far
        self.resumed_at = None  # the epoch a resumed run continued from
        self.best_known = True  # False: resumed, and the epochs before the resume could not be read
        self.settings = {}  # RecBole's config dump: epochs, eval_step, stopping_step, valid_metric(_bigger)
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
            epoch, score = int(match[1]), float(match[3])
            self.last = (epoch, self._train_seconds.get(epoch, 0.0) + float(match[2]), score)
            if self.best_known:
                self.best = self._better(self.best, epoch, score)
        elif match := _RESUMING.search(line):
            self.resumed_at = int(match[2])
            self.best = self._best_before(Path(match[1]) / RUN_LOG, self.resumed_at)
            self.best_known = self.best is not None
        elif match := _SETTING.match(line):
            self.settings[match[1]] = match[2]

    def _better(self, best, epoch, score):
        """``best`` after a validation of ``epoch``: RecBole's rule (a tie counts as better)."""
        bigger = self.settings.get("valid_metric_bigger", "True") == "True"
        if best is None or (score >= best[1] if bigger else score <= best[1]):
            return epoch, score
        return best

    def _best_before(self, run_log, epoch):
        """The best of the validations before ``epoch`` in the run folder's own log, or ``None``
        where it cannot be read. A validation of ``epoch`` or later there was lost with its
        checkpoint (the run resumes at ``epoch``) and does not count."""
        best = None
        try:
            with open(run_log, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if (match := _EVALUATING.search(line)) and int(match[1]) < epoch:
                        best = self._better(best, int(match[1]), float(match[3]))
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
        if now - self._said_at < PROGRESS_SECONDS:
            return None  # the benchmark polls 5 times a second: the log is read only when a line may be due
        self.read()
        if self.last is None or self.last[0] == self._said:
            return None
        self._said, self._said_at = self.last[0], now
        epoch, seconds, score = self.last
        text = f"epoch {epoch} done in {seconds:.0f} s, valid {self.settings.get('valid_metric', 'score')} {score:.4f}"
        if not self.best_known:
            return text + f"; the best is from before epoch {self.resumed_at}, where it resumed"
        if self.best[0] == epoch:
            return text + " (the best so far)"
        text += f"; best {self.best[1]:.4f} at epoch {self.best[0]}"
        last = self.last_epoch_unless_beaten()
        return text if last is None else text + f", so it ends after epoch {last} unless that is beaten"
