"""Training and fine-tuning the cost model on measured schedules, and loading any saved model.

A step takes a batch of schedules of ONE pipeline (their runtimes are only comparable with each
other) and minimises a weighted sum of:

* ``adams``: Adams2019's loss, L2 on throughput relative to the fastest schedule of the batch,
  ``mean_i (r_best / p_i - r_best / r_i)^2`` (``r`` measured, ``p`` predicted, both in ms); plus,
  for AdamsNet, Halide's 1e-5 x (negative part of the coefficients' pre-activations), which keeps
  its ReLU coefficients alive;
* ``rank``: a RankNet pairwise loss on log predictions, ``softplus(log p_fast - log p_slow)`` for
  every pair whose measured times differ by more than 2%, weighted by the (capped) log of their
  ratio, so that clear orderings count more than near-ties;
* ``logmse``: squared error of the batch-centred log runtime (the ratios between schedules, whatever
  the pipeline's absolute speed);
* ``abs``: squared error of the absolute log runtime (calibration across pipelines; small weight);
* ``list``: ListNet, the KL divergence between which schedule is the fastest according to the
  measurements and according to the predictions (softmaxes of ``-log time / T``): the top of the
  ranking, which the search keeps, counts most (off by default).

Adam, one step per batch (or per ``pipelines_per_step`` batches of different pipelines, their losses
averaged), pipelines in a new random order every epoch; early stopping on the loss of
the validation pipelines (held out by whole pipelines, ``cost_model.dataset.split_pipelines``), the
best epoch's weights are kept. ``finetune`` starts from given weights and trains on one pipeline's
samples interleaved with a replay of other pipelines (so that the model does not forget them), for the
tuner. ``save_model`` / ``load_model`` wrap ``cost_model.weights_io`` and know both networks.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from autoscheduler.errors import WeightsError

from .adams_net import AdamsNet
from .dataset import PipelineData, iter_batches
from .features_layout import kernel_factors
from .metrics import Summary, pipeline_metrics, summarize
from .our_net import OurNet, OurNetConfig
from .weights_io import (EXPECTED_VERSION, WeightsMetadata, load_halide_weights, load_weights, read_metadata,
                         save_weights, warn_if_host_mismatch)

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE_WEIGHTS = REPO_ROOT / "cost_model" / "weights" / "adams2019_baseline.weights"
MODEL_KINDS = ("ours", "adams")


@dataclass
class TrainOptions:
    """Knobs of a training run (the defaults are the ones ``autoschedule train`` uses)."""

    epochs: int = 200
    lr: float = 1e-3
    batch_size: int = 256
    patience: int = 25
    seed: int = 0
    adams_weight: float = 1.0
    rank_weight: float = 1.0
    logmse_weight: float = 1.0
    abs_weight: float = 0.1
    list_weight: float = 0.0
    list_temperature: float = 0.2
    # per-stage supervision: KL from the profiled time shares of a schedule's stage groups
    # (``autoscheduler.stage_profile``) to the network's; 0 trains on whole-pipeline times only
    stage_weight: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    pipelines_per_step: int = 1
    threads: int | None = 1
    progress: bool = False
    log: Callable[[str], None] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("log")
        return d


def make_model(kind: str, init: str | None = None, *, seed: int = 0,
               config: OurNetConfig | None = None) -> nn.Module:
    """A fresh model: ``ours`` (OurNet) or ``adams`` (AdamsNet). ``init``: a weights file to start
    from; for ``adams`` the default start is Halide's baseline weights (``init='random'`` for a
    uniform random start, as ``HL_RANDOMIZE_WEIGHTS``)."""
    gen = torch.Generator().manual_seed(seed)
    if init not in (None, "", "random", "baseline"):
        model = load_model(init)
        if kind == "ours" and not isinstance(model, OurNet) or kind == "adams" and not isinstance(model, AdamsNet):
            raise WeightsError(f"{init}: holds a {type(model).__name__}, not the '{kind}' model asked for; "
                               f"pass --model to match the file ({EXPECTED_VERSION})")
        return model
    if kind == "ours":
        if init == "baseline":
            raise WeightsError("--init baseline is Halide's AdamsNet weights; use it with --model adams")
        net = OurNet(config, generator=gen)
        if net.config.prior:
            net.load_prior(load_halide_weights(BASELINE_WEIGHTS))
        return net
    if kind == "adams":
        if init == "random":
            return AdamsNet(generator=gen)
        return load_halide_weights(BASELINE_WEIGHTS)
    raise ValueError(f"unknown model kind '{kind}'; choose one of {MODEL_KINDS}")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore. The networks' matrices are small: one thread is
    faster than two, and on a loaded machine two spinning threads are many times slower."""
    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------------------- prediction

def _tensors(data: PipelineData) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(data.pipeline)), torch.from_numpy(np.ascontiguousarray(data.schedule))


def log_predictions(model: nn.Module, data: PipelineData) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log predicted runtime [B], AdamsNet pre-activations or None), with gradients."""
    logp, preact, _ = _predictions(model, data)
    return logp, preact


def _predictions(model: nn.Module, data: PipelineData
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``log_predictions`` plus the per-stage costs [B, S] the prediction sums (None for a model
    that has no per-stage breakdown)."""
    pipe, sched = _tensors(data)
    detailed: Any = getattr(model, "forward_detailed", None)
    if isinstance(model, OurNet):
        m = data.math_input(model.config.hoisted_math)
        math_ = None if m is None else torch.from_numpy(np.asarray(m, np.float32))
        extra = None if data.stage_extra is None else torch.from_numpy(np.asarray(data.stage_extra, np.float32))
        detailed = functools.partial(model.forward_detailed, stage_math=math_, stage_extra=extra)
    factors_ = data.stage_factors
    if factors_ is None and data.stage_extra is not None and isinstance(model, OurNet) and model.config.kernel_factors:
        factors_ = kernel_factors(np.asarray(data.stage_extra, np.float32))
    if factors_ is not None and detailed is not None:
        # the search's ranking: the network's per-stage costs times the kernel factors, summed
        det = detailed(pipe, sched, data.num_cores)
        factors = torch.from_numpy(np.asarray(factors_, dtype=np.float32)).reshape(det.stage_costs.shape)
        costs = det.stage_costs * factors
        pred = costs.sum(dim=-1)
        return torch.log(torch.clamp(pred, min=1e-9)), getattr(det, "preactivation", None), costs
    if isinstance(model, OurNet):
        det = detailed(pipe, sched, data.num_cores)
        return det.log_prediction, None, det.stage_costs
    if isinstance(model, AdamsNet):
        out = model.forward_detailed(pipe, sched, data.num_cores)
        return torch.log(torch.clamp(out.prediction, min=1e-9)), out.preactivation, out.stage_costs
    pred = model(pipe, sched, data.num_cores)
    return torch.log(torch.clamp(pred, min=1e-9)), None, None


def stage_share_loss(stage_costs: torch.Tensor, stage_group: np.ndarray, group_share: np.ndarray
                     ) -> torch.Tensor | None:
    """KL divergence from the profiled shares of each schedule's stage groups to the predicted ones.

    ``stage_costs`` [B, S] predicted ms per featurized stage; ``stage_group`` [B, S] the profiled
    group of each stage (-1: none); ``group_share`` [B, G] measured share of each group (NaN rows:
    schedules without a profile). The network's stage costs are summed per group (the profiler
    charges an inlined Func to the Func it is inlined into), normalised, and compared with the
    measured shares: the loss is zero when the network puts each schedule's time where the profiler
    saw it, whatever the total. None when no schedule of the batch has a profile."""
    share = torch.from_numpy(np.asarray(group_share, dtype=np.float32))
    rows = torch.isfinite(share).all(dim=-1)
    if not bool(rows.any()):
        return None
    pred = group_costs(stage_costs[rows], np.asarray(stage_group)[rows.numpy()], share.shape[-1])
    pred = pred / torch.clamp(pred.sum(dim=-1, keepdim=True), min=1e-12)
    target = share[rows]
    kl = target * (torch.log(torch.clamp(target, min=1e-12)) - torch.log(torch.clamp(pred, min=1e-6)))
    return kl.sum(dim=-1).mean()


def group_costs(stage_costs: torch.Tensor, stage_group: np.ndarray, groups: int) -> torch.Tensor:
    """[B, S] stage costs summed into [B, ``groups``] by each stage's group (-1: counted nowhere)."""
    idx = torch.from_numpy(np.asarray(stage_group, dtype=np.int64))
    idx = torch.where(idx >= 0, idx, torch.full_like(idx, groups))
    out = torch.zeros(stage_costs.shape[0], groups + 1, dtype=stage_costs.dtype)
    return out.scatter_add(1, idx, stage_costs)[:, :groups]


@torch.no_grad()
def predict(model: nn.Module, data: PipelineData, chunk: int = 4096) -> np.ndarray:
    """Predicted runtimes of every schedule of ``data`` (float64 [B]; lower is faster)."""
    was = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, data.num_schedules, chunk):
            logp, _ = log_predictions(model, data.subset(np.arange(i, min(i + chunk, data.num_schedules))))
            outs.append(torch.exp(logp.double()).numpy())
        return np.concatenate(outs) if outs else np.zeros(0)
    finally:
        model.train(was)


# ---------------------------------------------------------------------------------------- losses

def batch_loss(model: nn.Module, data: PipelineData, opts: TrainOptions) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss of one batch (one pipeline) and its parts."""
    logp, preact, stage_costs = _predictions(model, data)
    r = torch.from_numpy(data.runtimes_ms).to(torch.float32)
    logr = torch.log(r)
    parts: dict[str, torch.Tensor] = {}
    if opts.adams_weight:
        r_best = r.min()
        p = torch.exp(torch.clamp(logp, min=-30.0, max=30.0))
        adams = ((r_best / p - r_best / r) ** 2).mean()
        if preact is not None:
            adams = adams + 1e-5 * torch.relu(-preact).sum()
        parts["adams"] = adams
    if opts.rank_weight and data.num_schedules >= 2:
        diff = logr.unsqueeze(0) - logr.unsqueeze(1)           # [i, j] = log r_j - log r_i
        pairs = diff > math.log(1.02)                          # j clearly slower than i
        if bool(pairs.any()):
            margin = logp.unsqueeze(0) - logp.unsqueeze(1)     # want log p_j - log p_i > 0
            w = torch.clamp(diff, max=math.log(4.0))[pairs]
            parts["rank"] = (nn.functional.softplus(-margin[pairs]) * w).sum() / w.sum()
    if opts.logmse_weight:
        parts["logmse"] = (((logp - logp.mean()) - (logr - logr.mean())) ** 2).mean()
    if opts.abs_weight:
        parts["abs"] = ((torch.clamp(logp, -30.0, 30.0) - logr) ** 2).mean()
    if opts.list_weight and data.num_schedules >= 2:
        # ListNet: cross-entropy between "which schedule is the fastest" under the measured times
        # (a softmax of -log r at temperature T) and under the predictions
        target = torch.softmax(-logr / opts.list_temperature, dim=0)
        parts["list"] = -(target * torch.log_softmax(-torch.clamp(logp, -60.0, 60.0) / opts.list_temperature,
                                                     dim=0)).sum() + (target * torch.log(target + 1e-12)).sum()
    if opts.stage_weight and stage_costs is not None and data.group_share is not None \
            and data.stage_group is not None:
        stage = stage_share_loss(stage_costs, data.stage_group, data.group_share)
        if stage is not None:
            parts["stage"] = stage
    weights = {"adams": opts.adams_weight, "rank": opts.rank_weight, "logmse": opts.logmse_weight,
               "abs": opts.abs_weight, "list": opts.list_weight, "stage": opts.stage_weight}
    total = sum((weights[k] * v for k, v in parts.items()), torch.zeros(()))
    return total, {k: float(v.detach()) for k, v in parts.items()}


@torch.no_grad()
def dataset_loss(model: nn.Module, pipelines: Sequence[PipelineData], opts: TrainOptions) -> float:
    """Mean batch loss over pipelines (each pipeline one batch, weighted equally)."""
    if not pipelines:
        return math.nan
    was = model.training
    model.eval()
    try:
        losses = [float(batch_loss(model, p, opts)[0]) for p in pipelines if p.num_schedules >= 2]
    finally:
        model.train(was)
    return float(np.mean(losses)) if losses else math.nan


@torch.no_grad()
def stage_share_metrics(model: nn.Module, pipelines: Sequence[PipelineData]) -> dict[str, float]:
    """Does the model know where a schedule's time goes? Over the profiled schedules of
    ``pipelines`` (``attach_profiles``): ``stage_kl``, the mean KL divergence from the profiled
    shares of the stage groups to the predicted ones (``stage_share_loss``), and ``bottleneck``, the
    fraction of schedules whose costliest group by prediction is the costliest the profiler saw;
    ``n`` schedules (0, and NaN metrics, when none is profiled or the model has no per-stage costs)."""
    was = model.training
    model.eval()
    kls: list[float] = []
    hits: list[bool] = []
    try:
        for p in pipelines:
            if p.group_share is None or p.stage_group is None:
                continue
            _, _, costs = _predictions(model, p)
            if costs is None:
                continue
            rows = np.flatnonzero(np.isfinite(p.group_share).all(axis=-1))
            pred = group_costs(costs[rows], p.stage_group[rows], p.group_share.shape[-1])
            for k, i in enumerate(rows):
                kl = stage_share_loss(costs[i:i + 1], p.stage_group[i:i + 1], p.group_share[i:i + 1])
                kls.append(float(kl) if kl is not None else math.nan)
                hits.append(int(torch.argmax(pred[k])) == int(np.argmax(p.group_share[i])))
    finally:
        model.train(was)
    n = len(kls)
    return {"stage_kl": float(np.nanmean(kls)) if n else math.nan,
            "bottleneck": float(np.mean(hits)) if n else math.nan, "n": float(n)}


def evaluate(model: nn.Module, pipelines: Sequence[PipelineData]) -> Summary:
    """Ranking metrics (``cost_model.metrics``) of ``model`` on ``pipelines``."""
    rows = [pipeline_metrics(p.name, p.key, predict(model, p), p.runtimes_ms) for p in pipelines]
    return summarize(rows)


# ---------------------------------------------------------------------------------------- training

@torch.no_grad()
def flush_denormals(model: nn.Module) -> int:
    """Set float parameters and buffers smaller than float32's smallest normal number to zero;
    returns how many. Weight decay drives the weights of dead units towards zero, into the
    denormal range, where CPU arithmetic is many times slower (a model with 30% denormal weights
    predicted 4x slower); they contribute nothing measurable to a prediction."""
    n = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            tiny = (t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)
            k = int(tiny.sum())
            if k:
                t[tiny] = 0
                n += k
    return n


@dataclass
class TrainResult:
    model: nn.Module
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped_early: bool = False


def train(model: nn.Module, train_set: Sequence[PipelineData], val_set: Sequence[PipelineData] = (),
          opts: TrainOptions | None = None) -> TrainResult:
    """Train ``model`` in place on ``train_set``; early-stop on ``val_set`` (train loss without one).

    Returns the model holding the best epoch's weights and the per-epoch history (``train_loss``,
    ``val_loss``, ``val_pairwise``).
    """
    opts = opts or TrainOptions()
    # flush-to-zero while training: weight decay makes denormal weights, which slow CPU math
    ftz = torch.set_flush_denormal(True)
    try:
        with torch_threads(opts.threads):
            return _train(model, train_set, val_set, opts)
    finally:
        if ftz:
            torch.set_flush_denormal(False)


def _train(model: nn.Module, train_set: Sequence[PipelineData], val_set: Sequence[PipelineData],
           opts: TrainOptions) -> TrainResult:
    usable = [p for p in train_set if p.num_schedules >= 2]
    if not usable:
        raise ValueError("no training pipeline has two or more measured schedules")
    if isinstance(model, OurNet) and model.config.normalize and not model.normalization_fitted:
        # a fresh network: standardise its inputs on the training pipelines (kept when training on)
        model.fit_normalization((p.pipeline, p.schedule, p.num_cores, p.math_input(model.config.hoisted_math),
                                 p.stage_extra) for p in usable)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr, eps=1e-5, weight_decay=opts.weight_decay)
    start = time.perf_counter()
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    bar: Any = None
    if opts.progress:
        from tqdm import tqdm
        bar = tqdm(total=opts.epochs, desc="train", unit="epoch", leave=False)
    stopped = False
    epoch = 0
    try:
        for epoch in range(1, opts.epochs + 1):
            model.train()
            losses = []
            batches = [b for i in rng.permutation(len(usable)) for b in iter_batches(usable[i], opts.batch_size, rng)]
            step = max(1, opts.pipelines_per_step)
            for k in range(0, len(batches), step):
                parts = [batch_loss(model, b, opts)[0] for b in batches[k:k + step]]
                parts = [x for x in parts if torch.isfinite(x)]
                if not parts:
                    continue
                loss = torch.stack(parts).mean()
                optim.zero_grad()
                loss.backward()
                if opts.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
                optim.step()
                losses.append(float(loss.detach()))
            row = {"epoch": float(epoch), "train_loss": float(np.mean(losses)) if losses else math.nan}
            if val_set:
                row["val_loss"] = dataset_loss(model, val_set, opts)
                row["val_pairwise"] = evaluate(model, val_set).means["pairwise"]
                score = row["val_loss"]
            else:
                score = row["train_loss"]
            history.append(row)
            if math.isfinite(score) and score < best_score - 1e-9:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "epoch"})
            if opts.log is not None:
                opts.log("epoch " + " ".join(f"{k}={v:.4g}" for k, v in row.items()))
            if epoch - best_epoch >= opts.patience:
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
    model.load_state_dict(best_state)
    flush_denormals(model)
    model.eval()
    return TrainResult(model, best_epoch, epoch, history, time.perf_counter() - start, stopped)


def _train_seed(job: tuple[str, str | None, OurNetConfig | None, Sequence[PipelineData], Sequence[PipelineData],
                           TrainOptions]) -> TrainResult:
    """One network of :func:`train_seeds` (module-level so a worker process can run it)."""
    kind, init, config, train_set, val_set, opts = job
    return train(make_model(kind, init, seed=opts.seed, config=config), train_set, val_set, opts)


def train_seeds(kind: str, init: str | None, config: OurNetConfig | None, train_set: Sequence[PipelineData],
                val_set: Sequence[PipelineData], opts: TrainOptions, seeds: Sequence[int], *,
                jobs: int = 1) -> list[TrainResult]:
    """Train one network per seed (``make_model(seed=s)`` and ``opts`` with ``seed=s``), in ``jobs``
    worker processes at once; results in the order of ``seeds``.

    Why: an ensemble's networks are independent, and each trains on one thread (the matrices are
    small), so N cores train N of them in the time of one. A network trained in a worker is the one
    the same seed trains here (same data, same seeded initialisation and batch order)."""
    return train_runs([(train_set, val_set, s) for s in seeds], kind, init, config, opts, jobs=jobs)


def train_runs(runs: Sequence[tuple[Sequence[PipelineData], Sequence[PipelineData], int]], kind: str,
               init: str | None, config: OurNetConfig | None, opts: TrainOptions, *,
               jobs: int = 1) -> list[TrainResult]:
    """Train one network per (training set, validation set, seed) in ``jobs`` worker processes at
    once; results in the order of ``runs``. :func:`train_seeds` trains several seeds on one split,
    cross-validation one network per fold."""
    jobs_ = [(kind, init, config, tr, va,
              replace(opts, seed=s, progress=opts.progress and jobs <= 1, log=opts.log if jobs <= 1 else None))
             for tr, va, s in runs]
    if jobs <= 1 or len(jobs_) <= 1:
        return [_train_seed(r) for r in jobs_]
    import concurrent.futures
    import multiprocessing
    # spawn: a forked child would inherit torch's thread pool state, and the caller may hold threads
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(jobs_)),
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_train_seed, jobs_))


def finetune(model: nn.Module, target: PipelineData | Sequence[PipelineData],
             replay: Sequence[PipelineData] = (), *, steps: int = 50, lr: float = 1e-4,
             replay_per_step: int = 1, opts: TrainOptions | None = None) -> nn.Module:
    """Fine-tune ``model`` (in place, returned) on one pipeline's samples plus a replay of others.

    Each step takes one batch of the target pipeline(s), then ``replay_per_step`` batches of randomly
    drawn replay pipelines, so the model adapts to the pipeline being tuned without forgetting the
    rest. This is what the tuner calls between measurement rounds (Adams2019's retraining, made cheap).
    """
    base = opts or TrainOptions()
    o = TrainOptions(**{**base.to_dict(), "lr": lr})
    targets = [target] if isinstance(target, PipelineData) else list(target)
    targets = [t for t in targets if t.num_schedules >= 2]
    others = [p for p in replay if p.num_schedules >= 2]
    if not targets:
        return model
    with torch_threads(o.threads):
        _finetune_steps(model, targets, others, steps, replay_per_step, o)
    return model


def _finetune_steps(model: nn.Module, targets: list[PipelineData], others: list[PipelineData], steps: int,
                    replay_per_step: int, o: TrainOptions) -> None:
    rng = np.random.default_rng(o.seed)
    optim = torch.optim.Adam(model.parameters(), lr=o.lr, eps=1e-5)
    model.train()
    for step in range(steps):
        batches = [targets[step % len(targets)]]
        if others:
            batches += [others[int(k)] for k in rng.integers(len(others), size=replay_per_step)]
        for data in batches:
            batch = next(iter_batches(data, o.batch_size, rng))
            loss, _ = batch_loss(model, batch, o)
            if not torch.isfinite(loss):
                continue
            optim.zero_grad()
            loss.backward()
            if o.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            optim.step()
    model.eval()


# ---------------------------------------------------------------------------------------- files

def machine_description() -> str:
    from autoscheduler.measure import device_fingerprint
    return device_fingerprint("host")


def save_model(model: nn.Module, path: str | os.PathLike[str], *, data_size: int = 0,
               metrics: dict[str, float] | None = None, target: str = "", machine: str | None = None,
               command: str | None = None, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """``save_weights`` with our metadata (OurNet's sizes go in ``extra['config']``)."""
    ex = dict(extra or {})
    if isinstance(model, OurNet):
        ex["config"] = model.config.to_dict()
    clean = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))
             and math.isfinite(float(v))}
    meta = WeightsMetadata(model=type(model).__name__, data_size=int(data_size), metrics=clean,
                           machine=machine if machine is not None else machine_description(),
                           target=target, command=command if command is not None else " ".join(sys.argv),
                           extra={"python": platform.python_version(), **ex})
    return save_weights(model, path, meta)


def load_model(path: str | os.PathLike[str], *, check_host: bool = True) -> nn.Module:
    """Any cost model: Halide ``.weights`` (AdamsNet), or our ``.pt`` + ``.json`` (AdamsNet or OurNet).

    ``check_host``: warn (:class:`~cost_model.weights_io.HostMismatchWarning`) when the metadata says
    the weights were trained on a machine with another vector ISA than this host's (AVX2 vs
    AVX-512). Halide's ``.weights`` carry no such record."""
    p = os.fspath(path)
    if p.endswith(".weights"):
        return load_halide_weights(p)
    meta, _ = read_metadata(p)
    model: nn.Module
    if meta.model == OurNet.__name__:
        model = OurNet(OurNetConfig.from_dict(dict(meta.extra.get("config") or {})))
    elif meta.model == AdamsNet.__name__:
        model = AdamsNet()
    else:
        raise WeightsError(f"{p}: model class {meta.model!r} is not one this toolkit knows; expected "
                           f"OurNet or AdamsNet weights, {EXPECTED_VERSION}")
    loaded, meta = load_weights(p, model)
    flush_denormals(loaded)
    if check_host:
        warn_if_host_mismatch(p, meta)
    loaded.eval()
    return loaded


__all__ = ["TrainOptions", "TrainResult", "make_model", "predict", "batch_loss", "dataset_loss", "evaluate",
           "train", "train_seeds", "train_runs", "finetune", "torch_threads", "save_model", "load_model",
           "log_predictions", "stage_share_loss", "stage_share_metrics", "group_costs", "MODEL_KINDS",
           "BASELINE_WEIGHTS", "flush_denormals"]
