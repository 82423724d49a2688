"""The learned GPU cost model: the analytic roofline, corrected per stage by a network fitted on
schedules measured on a GPU.

Why this shape: GPU data is scarce (a GPU is lent for minutes at a time), too scarce to learn a
cost from nothing, while :class:`autoscheduler.features.gpu.GpuAnalyticCost` already prices each
stage from first principles (compute, memory, serial latency, launches) and only misjudges by how
much. ``GpuNet`` keeps that prior and learns (1) a scale for each of its six terms (compute, DRAM,
L2, shared memory, serial latency, launches: the modelled part's constants, calibrated to the
measured GPU) and (2) a per-stage log-factor from the stage's GPU features:
``cost = sum over stages of roofline_s(scaled terms) * exp(g(features_s))``. Scales and ``g`` start
at zero (the untrained model is exactly the roofline); ``g`` is bounded so one stage cannot run away.

Data: records measured on the GPU (``autoschedule collect --prepared``), replayed in a CUDA search
space of the modelled GPU (``GPU_DEFAULT_SMS``), featurized by ``GpuFeaturizer``. Loss: pairwise
logistic on log cost within each pipeline, pairs weighted by how far apart their measured times are
(a pair timing noise can flip weighs little), plus a regression of the centred log costs on the
centred log times. Metrics: ``cost_model.metrics`` per pipeline, as the
CPU model reports them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from autoscheduler.errors import WeightsError

from .dataset import Sample, group_samples, read_sample_sets, rebuild, replay
from .metrics import PipelineMetrics, Summary, pipeline_metrics, summarize

SHIPPED_GPU_WEIGHTS = Path(__file__).resolve().parent / "weights" / "gpu_ours.pt"
MAX_LOG_FACTOR = 4.0
"""|g| bound: a stage's learned factor stays within e^-4 .. e^4 (0.018x .. 55x) of the roofline."""


def gpu_feature_version() -> str:
    """A short hash of the GPU feature names in order: weights fitted on other features are refused."""
    from autoscheduler.features.gpu import GPU_FEATURE_NAMES
    return hashlib.sha256("\n".join(GPU_FEATURE_NAMES).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ data

@dataclass
class GpuPipelineData:
    """The measured schedules of one pipeline on one GPU: features [N, S, F], the roofline's
    per-stage terms [N, S, 6] (ms, ``GpuAnalyticCost.TERMS``), measured runtimes [N] (ms)."""

    name: str
    key: str
    features: np.ndarray
    terms: np.ndarray
    runtimes_ms: np.ndarray
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def num_schedules(self) -> int:
        return int(self.runtimes_ms.size)


def gpu_pipeline_data(space: Any, name: str, key: str, traces: Sequence[Any], runtimes_ms: Sequence[float],
                      sizes: dict[str, int] | None = None) -> GpuPipelineData | None:
    """Featurize traces measured in one CUDA search space (None when fewer than two replay)."""
    from autoscheduler.features.gpu import GpuAnalyticCost, gpu_featurizer_for
    fz = gpu_featurizer_for(space)
    feats, times = [], []
    skipped: list[str] = []
    for trace, t in zip(traces, runtimes_ms):
        try:
            state = replay(space, trace or [])
        except Exception as e:  # a trace the current search space no longer accepts
            skipped.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        feats.append(fz.features(state))
        times.append(float(t))
    if skipped:
        warnings.warn(f"{name}: {len(skipped)} trace(s) no longer replay in the current search space and were "
                      f"skipped (first: {skipped[0]})", stacklevel=2)
    if len(feats) < 2:
        return None
    f = np.stack(feats).astype(np.float64)
    return GpuPipelineData(name, key, f.astype(np.float32), GpuAnalyticCost(space.parallelism).stage_terms(f),
                           np.asarray(times), dict(sizes or {}))


def featurize_gpu_group(samples: Sequence[Sample]) -> GpuPipelineData | None:
    """Replay and featurize one pipeline's successful CUDA samples (None when fewer than two replay)."""
    from autoscheduler.state.gpu import GPU_DEFAULT_SMS
    ok = [s for s in samples if s.ok and s.trace is not None]
    if len(ok) < 2:
        return None
    first = ok[0]
    space = rebuild(first.pipeline, first.sizes, first.target, GPU_DEFAULT_SMS).space
    return gpu_pipeline_data(space, first.pipeline, first.pipeline_hash, [s.trace for s in ok],
                             [float(s.runtime_s or 0.0) * 1e3 for s in ok], dict(first.sizes))


def load_gpu_dataset(sources: Sequence[str | os.PathLike[str]]) -> list[GpuPipelineData]:
    """Every CUDA pipeline with two or more successful measurements in ``sources``."""
    samples = [s for s in read_sample_sets(sources) if "cuda" in s.target.split("-")]
    out = []
    for group in group_samples(samples).values():
        p = featurize_gpu_group(group)
        if p is not None:
            out.append(p)
    return sorted(out, key=lambda p: p.name)


# ------------------------------------------------------------------------------------------ network

def _squash(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def roofline(terms: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """``GpuAnalyticCost.combine_terms`` on scaled terms: max(compute, memory, serial) + launches."""
    t = terms * torch.exp(log_scales)
    memory = t[..., 1] + t[..., 2] + t[..., 3]
    return torch.maximum(torch.maximum(t[..., 0], memory), t[..., 4]) + t[..., 5]


class GpuNet(nn.Module):
    """``cost = sum_s roofline_s(terms * exp(log_scales)) * exp(g(features_s))`` (ms); ``hidden=0``
    keeps only the six scales."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, num_features: int | None = None, hidden: int = 32) -> None:
        super().__init__()
        if num_features is None:
            from autoscheduler.features.gpu import NUM_GPU_FEATURES
            num_features = NUM_GPU_FEATURES
        self.num_features = num_features
        self.hidden = hidden
        self.log_scales = nn.Parameter(torch.zeros(6))
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.mlp: nn.Module
        if hidden > 0:
            self.mlp = nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU(), nn.Linear(hidden, 1))
            last = self.mlp[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        else:
            self.mlp = nn.Identity()

    def fit_normalization(self, features: np.ndarray) -> None:
        """Standardize the squashed features with the training rows' statistics (stored as buffers)."""
        x = _squash(torch.as_tensor(features.reshape(-1, self.num_features), dtype=torch.float32))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-3))

    def log_factors(self, features: torch.Tensor) -> torch.Tensor:
        if self.hidden <= 0:
            return torch.zeros(features.shape[:-1], dtype=features.dtype)
        x = (_squash(features) - self.mean) / self.std
        return MAX_LOG_FACTOR * torch.tanh(self.mlp(x).squeeze(-1) / MAX_LOG_FACTOR)

    def stage_costs(self, features: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        return roofline(terms, self.log_scales) * torch.exp(self.log_factors(features))

    def forward(self, features: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """[N, S, F] features and [N, S, 6] roofline terms -> [N] predicted cost (ms)."""
        return self.stage_costs(features, terms).sum(-1)


def _tensors(p: GpuPipelineData) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(p.features, dtype=torch.float32), torch.as_tensor(p.terms, dtype=torch.float32)


def predict_gpu(model: nn.Module, p: GpuPipelineData) -> np.ndarray:
    f, pr = _tensors(p)
    with torch.no_grad():
        return model(f, pr).double().numpy()


def pairwise_loss(model: GpuNet, p: GpuPipelineData, min_ratio: float = 1.05) -> torch.Tensor:
    """Logistic loss of ordering each pair of one pipeline's schedules like the measurements,
    weighted by the pair's log time ratio (capped at log 4), plus the squared error of the centred
    log costs against the centred log times."""
    f, pr = _tensors(p)
    logc = torch.log(model(f, pr).clamp_min(1e-9))
    m = torch.log(torch.as_tensor(p.runtimes_ms, dtype=torch.float32))
    i, j = torch.triu_indices(m.numel(), m.numel(), 1)
    d = m[i] - m[j]
    keep = d.abs() > math.log(min_ratio)
    if not bool(keep.any()):
        return logc.sum() * 0.0
    i, j, d = i[keep], j[keep], d[keep]
    w = d.abs().clamp_max(math.log(4.0))
    # the slower of the pair should be predicted costlier: softplus(-(sign d) * (logc_i - logc_j))
    rank = (w * nn.functional.softplus(-torch.sign(d) * (logc[i] - logc[j]))).sum() / w.sum()
    # and by about as much: the log costs, centred per pipeline, regress on the log times. Why both:
    # the logistic term alone keeps pushing margins apart, which a few scales can only do by
    # misordering other pairs; the regression's optimum is the calibration itself.
    fit = ((logc - logc.mean()) - (m - m.mean())).pow(2).mean()
    return rank + fit


@dataclass
class GpuTrainOptions:
    epochs: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-3
    patience: int = 60
    seed: int = 0
    hidden: int = 32


def evaluate_gpu(model: nn.Module | None, pipelines: Sequence[GpuPipelineData]) -> Summary:
    """Metrics of ``model`` (None: the roofline alone) on each pipeline."""
    from autoscheduler.features.gpu import GpuAnalyticCost
    rows: list[PipelineMetrics] = []
    for p in pipelines:
        pred = (GpuAnalyticCost.combine_terms(p.terms).sum(-1) if model is None else predict_gpu(model, p))
        rows.append(pipeline_metrics(p.name, p.key, pred, p.runtimes_ms))
    return summarize(rows)


def train_gpu(train: Sequence[GpuPipelineData], val: Sequence[GpuPipelineData] = (),
              opts: GpuTrainOptions | None = None) -> tuple[GpuNet, dict[str, Any]]:
    """Fit a GpuNet; early stopping on the validation pipelines' mean loss (on the training loss
    when there are none). Returns the best model and a small history."""
    o = opts or GpuTrainOptions()
    torch.manual_seed(o.seed)
    model = GpuNet(hidden=o.hidden)
    model.fit_normalization(np.concatenate([p.features.reshape(-1, p.features.shape[-1]) for p in train]))
    opt = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    watch = list(val) or list(train)
    best, best_state, since, epoch = math.inf, None, 0, 0
    rng = np.random.default_rng(o.seed)
    for epoch in range(o.epochs):
        model.train()
        for k in rng.permutation(len(train)):
            opt.zero_grad()
            loss = pairwise_loss(model, train[int(k)])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            v = float(np.mean([float(pairwise_loss(model, p)) for p in watch]))
        if v < best - 1e-5:
            best, since = v, 0
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        else:
            since += 1
            if since >= o.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"epochs": epoch + 1, "best_loss": best}


def cross_validate(pipelines: Sequence[GpuPipelineData], folds: int = 5,
                   opts: GpuTrainOptions | None = None) -> tuple[Summary, Summary]:
    """Held-out metrics of GpuNet and of the roofline alone over ``folds`` pipeline folds (each
    pipeline is predicted by a model that never saw it; a tenth of the rest is for early stopping)."""
    order = sorted(range(len(pipelines)), key=lambda i: hashlib.sha256(pipelines[i].key.encode()).hexdigest())
    ours: list[PipelineMetrics] = []
    base: list[PipelineMetrics] = []
    for k in range(folds):
        test = [pipelines[i] for n, i in enumerate(order) if n % folds == k]
        rest = [pipelines[i] for n, i in enumerate(order) if n % folds != k]
        val = rest[::10]
        train = [p for n, p in enumerate(rest) if n % 10 != 0]
        model, _ = train_gpu(train, val, opts)
        ours += evaluate_gpu(model, test).rows
        base += evaluate_gpu(None, test).rows
    return summarize(ours), summarize(base)


class GpuModelCost:
    """A GpuNet as the search's cost on CUDA targets (the interface of ``GpuAnalyticCost``)."""

    def __init__(self, model: GpuNet, parallelism: int, source: str = "GpuNet") -> None:
        self.model = model
        self.parallelism = parallelism
        self.source = source

    def _stage_costs(self, states: Sequence[Any]) -> np.ndarray:
        from autoscheduler.features.gpu import GpuAnalyticCost, gpu_featurizer_for
        fz = gpu_featurizer_for(states[0])
        f = np.stack([fz.features(s) for s in states])
        terms = GpuAnalyticCost(self.parallelism).stage_terms(f)
        with torch.no_grad():
            return self.model.stage_costs(torch.as_tensor(f, dtype=torch.float32),
                                          torch.as_tensor(terms, dtype=torch.float32)).double().numpy()

    def predict(self, states: Sequence[Any]) -> np.ndarray:
        if not states:
            return np.zeros(0)
        return self._stage_costs(states).sum(-1)

    def cost_fn(self, dag: Any = None) -> Any:
        def fn(states: Sequence[Any]) -> np.ndarray:
            return self.predict(states)
        return fn

    def stage_costs(self, dag: Any, state: Any) -> dict[str, float]:
        from autoscheduler.features.gpu import gpu_featurizer_for
        fz = gpu_featurizer_for(state)
        return {st.name: float(c) for st, c in zip(fz.stages, self._stage_costs([state])[0])}


# ------------------------------------------------------------------------------------------ files

def save_gpu_model(model: GpuNet, path: str | os.PathLike[str], *, gpu: str, data_size: int,
                   pipelines: int, metrics: dict[str, float], command: str) -> tuple[Path, Path]:
    from .weights_io import WeightsMetadata, save_weights
    clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
    meta = WeightsMetadata(model=GpuNet.__name__, data_size=int(data_size), metrics=clean, machine=gpu,
                           target="host-cuda", command=command,
                           extra={"gpu_feature_version": gpu_feature_version(), "hidden": model.hidden,
                                  "num_features": model.num_features, "pipelines": int(pipelines)})
    return save_weights(model, path, meta)


def load_gpu_model(path: str | os.PathLike[str] = SHIPPED_GPU_WEIGHTS) -> GpuNet:
    """A saved GpuNet; weights of another model or other GPU features are a one-line WeightsError."""
    from .weights_io import load_weights, metadata_path, read_metadata
    want = gpu_feature_version()
    stem = Path(path)
    if not metadata_path(stem.with_suffix(".pt")).exists():
        raise WeightsError(f"{path}: no such GPU weights (.pt with its .json); expected GpuNet weights with GPU "
                           f"feature version {want}, e.g. {SHIPPED_GPU_WEIGHTS}")
    meta, _ = read_metadata(path)
    if meta.model != GpuNet.__name__:
        raise WeightsError(f"{path}: holds {meta.model} weights, not a GPU cost model; expected GpuNet "
                           f"weights with GPU feature version {want}")
    got = meta.extra.get("gpu_feature_version")
    if got != want:
        raise WeightsError(f"{path}: GPU feature version {got!r}; expected GPU feature version {want} "
                           "(retrain with `python -m cost_model.gpu_train`)")
    model = GpuNet(int(meta.extra.get("num_features") or 0) or None, hidden=int(meta.extra.get("hidden") or 0))
    loaded, _ = load_weights(path, model)
    assert isinstance(loaded, GpuNet)
    loaded.eval()
    return loaded


def describe(summary: Summary) -> dict[str, float]:
    return {k: round(v, 4) for k, v in summary.as_dict().items()}


__all__ = ["GpuNet", "GpuPipelineData", "GpuTrainOptions", "featurize_gpu_group", "load_gpu_dataset",
           "gpu_pipeline_data", "GpuModelCost", "roofline",
           "train_gpu", "evaluate_gpu", "cross_validate", "predict_gpu", "save_gpu_model", "load_gpu_model",
           "SHIPPED_GPU_WEIGHTS", "gpu_feature_version", "describe"]
