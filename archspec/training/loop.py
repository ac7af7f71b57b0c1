"""The training loop: epochs, batches, the learning rate of every step, checkpoints, history.

Everything that defines *what* training does is here, once, for every backend; an engine
only executes one optimizer step on the batch it is given (``docs/semantics.md``).
"""

from __future__ import annotations

import time

import numpy as np

from archspec.errors import TrainingError
from archspec.training.checkpoints import Progress
from archspec.training.cluster import Cluster, share
from archspec.training.controls import Controls
from archspec.training.divergence import Snapshot, locate
from archspec.training.evaluation import Evaluator
from archspec.training.keeper import Keeper
from archspec.training.order import batches, epoch_order, step_indices
from archspec.training.preparation import TrainingData
from archspec.training.progress import ProgressBar

# With workers, step losses are all-reduced (and checked) every this many steps, so the
# progress bar shows the global batch's loss and a divergence stops every worker early.
SYNC_EVERY = 32


class Loop:
    """Runs the steps from where a run stands (``start``: a resumed checkpoint's progress) to
    ``total_steps``, keeping the history, the step losses and the last good state."""

    def __init__(
        self,
        spec,
        engine,
        model,
        data: TrainingData,
        keeper: Keeper,
        evaluate: Evaluator,
        *,
        cluster: Cluster | None,
        total_steps: int,
        checkpoint_every: int | None,
        evaluate_every_epoch: bool,
        callbacks: list,
        timings: dict[str, float],
        controls: Controls,
        start: Progress | None = None,
        logger=None,
    ):
        self.spec, self.training = spec, spec.training
        self.engine, self.model, self.data, self.keeper, self.evaluate = engine, model, data, keeper, evaluate
        self.cluster = cluster  # None: one process
        self.total_steps, self.checkpoint_every = total_steps, checkpoint_every
        self.evaluate_every_epoch, self.callbacks, self.timings = evaluate_every_epoch, callbacks, timings
        self.epoch = self.position = self.step = self.samples_seen = 0
        self.history: list[dict[str, float]] = []
        self.losses: list[float] = []  # every step loss so far, on the host, checked finite
        if start is not None:
            self.epoch, self.position, self.step = start.epoch, start.position, start.step
            self.samples_seen = start.samples_seen
            self.history = [dict(row) for row in start.history]
            self.losses = list(start.step_losses)
        self.first_step = self.step
        self.samples_here = self.epochs_here = 0  # in this process (a resumed run counts from its start)
        self.partial_row: dict[str, float] | None = None  # an epoch cut short by max_steps
        self.pending: list = []  # step losses still on the device
        self.controls = controls
        self.logger = logger  # TensorBoard (``archspec/training/logs.py``), on the writer only
        self.pending_rates: list[float] = []  # the learning rate of each pending step
        self.pending_norms: list = []  # with a logger: each pending step's gradient norm (device)
        self.last_rate: float | None = None
        self.stop_reason = "epochs"  # or "max_steps", or early stopping's reason

    def run(self, progress: bool, label: str) -> None:
        training = self.training
        bar = ProgressBar(progress, self.total_steps, label, self.step)
        if self.controls.stopped:  # resumed from the checkpoint of the epoch that stopped
            self.stop_reason = self.controls.reason() or self.stop_reason
        for epoch in range(self.epoch if not self.controls.stopped else training.epochs, training.epochs):
            done = self.position if epoch == self.epoch else 0
            if self.step >= self.total_steps and done == 0:
                break
            epoch_start = time.perf_counter()
            order = batches(epoch_order(training.seed, epoch, self.data.samples, training.shuffle), self.step_batch)
            first_step = self.step - done
            for position in range(done, len(order)):
                if self.step >= self.total_steps:
                    break
                indices = order[position]
                step = self.step
                loss = self._train_step(indices, step)
                for callback in self.callbacks:
                    if hasattr(callback, "on_step_end"):
                        callback.on_step_end(step, loss)
                self.step += 1
                self.samples_seen += len(indices)
                self.samples_here += len(indices)
                if self.cluster is not None and self.step % SYNC_EVERY == 0:
                    self.sync()  # every worker at the same steps: a collective
                if bar.due():
                    bar.show(
                        epoch, training.epochs, self.step, self._last_loss(), self.samples_here, self._bar_extras()
                    )
                every = self.checkpoint_every
                if every and self.step % every == 0 and position + 1 < len(order) and self.step < self.total_steps:
                    self._checkpoint(self._capture(), epoch, position + 1)
            complete = self.step - first_step == len(order)
            self.epochs_here += 1
            snapshot = self._capture() if self.step > self.keeper.good.step else None
            self.timings["train_seconds"] += time.perf_counter() - epoch_start
            row = self._epoch_row(epoch, first_step, order, time.perf_counter() - epoch_start)
            stop = False
            if complete:
                self.history.append(row)
                stop = self.controls.after_epoch(epoch, row, self.step, self.model.get_weights)
            if snapshot is not None:  # always, after a complete epoch
                # Cut short by max_steps, the checkpoint keeps the position (a longer run resumes
                # from it) and the partial epoch is reported in the result only.
                where = (epoch + 1, 0) if complete else (epoch, self.step - first_step)
                self._checkpoint(snapshot, *where)
            if self.logger is not None:
                self.logger.epoch(epoch, row)
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch_end"):
                    callback.on_epoch_end(epoch, dict(row))
            if stop:
                self.stop_reason = self.controls.reason() or "early stopping"
                break
            if not complete:
                self.partial_row = row
                self.stop_reason = "max_steps"
                break
        if self.stop_reason == "epochs" and self.step < self.data.steps_per_epoch * training.epochs:
            self.stop_reason = "max_steps"
        bar.close()

    @property
    def step_batch(self) -> int:
        """The samples of one optimizer step: ``accumulate_steps`` batches of ``batch_size``."""
        return self.training.batch_size * self.training.accumulate_steps

    def _parts(self, indices: np.ndarray) -> list[tuple[np.ndarray, int, float]]:
        """The step's global batch ``indices`` as the engine's parts: its batches of
        ``batch_size`` (with workers: this worker's share of each), where each starts in the
        global batch, and its share of it."""
        size, total = self.training.batch_size, len(indices)
        parts = []
        for start in range(0, total, size):
            batch = indices[start : start + size]
            if self.cluster is None:
                parts.append((batch, start, len(batch) / total))
            else:
                mine, offset, _ = share(batch, self.cluster.world_size, self.cluster.rank)
                parts.append((mine, start + offset, len(mine) / total))
        return parts

    def _train_step(self, indices: np.ndarray, step: int, keep: bool = True):
        """One optimizer step on the global batch ``indices`` (with workers: on this worker's
        share of it); ``keep`` queues its loss for the next ``sync``."""
        rate = self.controls.rate(step)
        loss = self.engine.train_parts(self._parts(indices), step, rate)
        if keep:
            self.pending.append(loss)
            self.pending_rates.append(rate)
            self.last_rate = rate
            if self.logger is not None:
                self.pending_norms.append(self.engine.last_gradient_norm)
        return loss

    def _bar_extras(self) -> str:
        text = f"lr {self.last_rate:.3g}" if self.last_rate is not None else ""
        stopper = self.controls.stopper
        if stopper is not None and stopper.best is not None:
            text += f" best {stopper.monitor} {stopper.best:.4f}"
        return text

    def _last_loss(self) -> float | None:
        # With workers, a batch's loss needs a collective: the bar shows the last synchronised one.
        if self.pending and self.cluster is None:
            return float(self.engine.losses_to_numpy(self.pending[-1:])[0])
        return self.losses[-1] if self.losses else None

    def _epoch_row(self, epoch: int, first_step: int, order: list, seconds: float) -> dict[str, float]:
        losses = self.losses[first_step : self.step]
        sizes = [len(indices) for indices in order[: len(losses)]]
        row = {
            "epoch": epoch + 1,
            "steps": self.step,
            "seconds": seconds,
            "loss": float(np.average(losses, weights=sizes)),
        }
        if self.last_rate is not None:
            row["learning_rate"] = self.last_rate
        if self.evaluate_every_epoch:
            eval_start = time.perf_counter()
            for split in ("train", "validation", "test"):
                pair = getattr(self.data.splits, split)
                if pair is None or (split == "train" and not self.evaluate.reports_training_split):
                    continue
                for key, value in self.evaluate(pair, self.data.weights_of(split)).items():
                    # The training loss of an epoch is the mean of its step losses ("loss");
                    # the training split adds only its inference-mode metrics.
                    if not (split == "train" and key == "loss"):
                        row[f"{split}_{key}"] = value
            self.timings["eval_seconds"] += time.perf_counter() - eval_start
        return row

    def sync(self) -> None:
        """Bring pending step losses to the host (one synchronisation) and check them."""
        if not self.pending:
            return
        values = self.engine.losses_to_numpy(self.pending)
        self.pending = []
        if self.cluster is not None:
            # A batch's loss is the sum of the workers' share-weighted mean losses.
            values = self.engine.all_reduce_sum(values)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise self._diverged(len(self.losses) + int(bad[0]), float(values[bad[0]]))
        if self.logger is not None:
            norms = self.engine.losses_to_numpy(self.pending_norms) if self.pending_norms else None
            self.logger.steps(len(self.losses), values, self.pending_rates, norms)
        self.pending_rates, self.pending_norms = [], []
        self.losses.extend(float(value) for value in values)

    def _capture(self) -> Snapshot:
        """Check the step losses, weights and optimizer state so far and keep them as the last good state."""
        self.sync()
        return self.keeper.capture(self.step, self.data.steps_per_epoch, self.model, self.engine)

    def _checkpoint(self, snapshot: Snapshot, epoch: int, position: int) -> None:
        self.keeper.write(
            snapshot,
            epoch=epoch,
            position=position,
            samples_seen=self.samples_seen,
            history=self.history,
            step_losses=self.losses,
            controls=self.controls.state(),
            best=self.controls.best_weights,
        )

    def _diverged(self, step: int, value: float) -> TrainingError:
        """The error for a non-finite loss at ``step``, naming the first layer that went non-finite."""
        per_epoch = self.data.steps_per_epoch
        where = locate(
            step,
            self.keeper.good,
            self.model.graph,
            self.model,
            self.engine,
            replay=lambda earlier: self._train_step(self._indices(earlier), earlier, keep=False),
            inputs_of=lambda bad: self.data.inputs_of(self._indices(bad)),
            dtype=self.training.dtype,
        )
        return TrainingError(
            f"the training loss became {value} at step {step} (epoch {step // per_epoch + 1}, batch "
            f"{step % per_epoch + 1} of {per_epoch}): {where}; {self.keeper.kept()}"
        )

    def _indices(self, step: int) -> np.ndarray:
        training = self.training
        return step_indices(step, training.seed, self.data.samples, self.step_batch, training.shuffle)
