"""MLP autoencoder workloads: a forward pass and four SGD training steps differentiated by Halide.

Model (MNIST-sized by default, sizes ``batch``, ``d_in``, ``d_hidden``, ``d_latent``)::

    AE:   x(d_in) -> h1 = sig(W1 x + b1)(d_hidden) -> h2 = sig(W2 h1 + b2)(d_latent)
                  -> h3 = sig(W3 h2 + b3)(d_hidden) -> a4 = W4 h3 + b4 (d_in), recon = sig(a4)
    VAE:  x -> h1 = sig(W1 x + b1) -> mu = Wmu h1 + bmu, logsig = Wls h1 + bls (linear heads)
                  -> z = mu + exp(logsig) * eps -> h3 = sig(W3 z + b3) -> a4 = W4 h3 + b4
    CVAE: the VAE with the one-hot labels concatenated to x (encoder input) and to z (decoder input).

Every dense layer and the output use a sigmoid; the AE's latent layer is a sigmoid layer too, the VAE's
heads are linear. ``recon = sig(a4)`` is what ``ae_forward`` outputs.

Layout: activations are Funcs over (feature, batch), feature innermost (numpy shape (batch, feature));
a weight is W(out, in), out innermost (numpy shape (in, out), so ``y = x @ W + b`` in numpy). A dense
layer is one Func with the bias as its pure definition and the RDom matmul as its update,
``a(o, n) = b(o); a(o, n) += W(o, r) * x(r, n)``, so the inner loop vectorises across ``o``.

Losses, all means over the batch and sums over features:
- Bernoulli cross-entropy in logits form, ``max(a, 0) - x a + log(1 + exp(-|a|))`` with ``a = a4``
  (the formula of ``torch.nn.functional.binary_cross_entropy_with_logits``, which the reference uses):
  stable for any ``a`` and no clamping of probabilities is needed.
- ``vae_*``/``cvae_*`` with size ``gaussian=1``: Gaussian (unit variance) reconstruction
  ``0.5 * (recon - x)^2`` instead of the cross-entropy.
- VAE KL term ``-0.5 * (1 + 2 logsig - mu^2 - exp(2 logsig))`` summed over the latent dimension.

Training steps: the scalar loss is differentiated with ``hl.propagate_adjoints``; each parameter is read
through its ImageParam's Func (``hl.Func(param)``, the ``<name>_im`` wrapper) so that the Derivative
holds its adjoint. Outputs are ``[loss, W1', b1', ...]`` with ``P' = P - lr * dLoss/dP`` for every
parameter in layer order, and the loss as a Func of one dimension of extent 1.

Halide's default schedule inlines every pure Func and computes every unscheduled reduction at the
innermost loop of its consumer, so each dense layer recomputes the whole network below it for every
point: at default sizes the forward alone is ~1e15 multiply-adds. Every spec here therefore sets
``default_schedule_ok=False``; at test sizes the default schedule runs in well under a few seconds
(the CVAE's takes ~5 s) and the tests check it anyway.

Stages ``propagate_adjoints`` adds (names ``<func>_<def>_d_def__``): ``adjoint`` (the constant 1 seed),
the adjoint of each loss stage, for each layer the adjoint of its pre-activation and of its input
activation (an RDom update over the layer's outputs: the dX matmul), for each parameter wrapper
``W<k>_im_0_d_def__`` (zero init plus an RDom update over the batch: the dW matmul) and ``b<k>_im``'s
(a sum over the batch); the CVAE's concatenation of z and the labels adds a scatter update into z's
adjoint (the clamped index cannot be inverted).

Flops (``flops_fn``): the forward counts the dense layers' multiply-adds, ``2 * batch * sum(in * out)``;
a training step counts 3x that (forward, then per layer one matmul for dW and one for dX; the first
layer's unneeded dX and all elementwise work are ignored).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import halide as hl

from autoscheduler.errors import ToolkitError

from . import register
from .spec import BuiltPipeline, PipelineSpec, set_input_estimates, set_output_estimates

DEFAULT_SIZES = {"batch": 256, "d_in": 784, "d_hidden": 512, "d_latent": 32}
TEST_SIZES = {"batch": 4, "d_in": 12, "d_hidden": 8, "d_latent": 3}
LR = 0.1  # learning rate given to the training steps' ``lr`` Param (and its estimate)
# The loss sums batch * d_in terms in float32: under compute_root at default sizes it is off the float64
# reference by ~5e-5 relative, so training steps allow 5e-4 (parameters are off by at most ~1e-7).
TRAIN_RTOL = 5e-4
N_CLASSES_DEFAULT, N_CLASSES_TEST = 10, 4


def _f32(v: float) -> Any:
    return hl.f32(v)


def _sigmoid(a: Any) -> Any:
    return _f32(1.0) / (_f32(1.0) + hl.exp(-a))


class _Net:
    """Builds the Halide Funcs of one model; records parameters (in layer order) and inputs."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.f, self.n = hl.Var("f"), hl.Var("n")
        self.params: list[tuple[str, Any, Any, list[int]]] = []  # (name, ImageParam, wrapper Func, shape)
        self.inputs: dict[str, Any] = {}

    def image(self, name: str, shape: list[int]) -> Any:
        """A float ImageParam input with estimates; returns its wrapper Func."""
        p = hl.ImageParam(hl.Float(32), len(shape), name)
        set_input_estimates(p, shape)
        self.inputs[name] = p
        return hl.Func(p)

    def param(self, name: str, shape: list[int]) -> Any:
        func = self.image(name, shape)
        self.params.append((name, self.inputs[name], func, shape))
        return func

    def dense(self, name: str, x: Any, n_in: int, n_out: int) -> Any:
        """Pre-activation ``a(o, n) = b(o) + sum_r W(o, r) x(r, n)`` with fresh parameters W<name>, b<name>."""
        w = self.param(f"W{name}", [n_out, n_in])
        b = self.param(f"b{name}", [n_out])
        return self.matmul(f"a{name}", w, b, x, n_in)

    def matmul(self, name: str, w: Any, b: Any, x: Any, n_in: int) -> Any:
        f, n = self.f, self.n
        r = hl.RDom([hl.Range(0, n_in)], f"{name}_r")
        a = hl.Func(name)
        a[f, n] = b[f]
        a[f, n] += w[f, r.x] * x[r.x, n]
        return a

    def pointwise(self, name: str, fn: Callable[[Any], Any], a: Any) -> Any:
        f, n = self.f, self.n
        out = hl.Func(name)
        out[f, n] = fn(a[f, n])
        return out

    def concat(self, name: str, top: Any, n_top: int, bottom: Any, n_bottom: int) -> Any:
        """Features ``[top; bottom]`` along the feature dimension (indices clamped to stay in bounds)."""
        f, n = self.f, self.n
        out = hl.Func(name)
        out[f, n] = hl.select(f < n_top, top[hl.clamp(f, 0, n_top - 1), n],
                              bottom[hl.clamp(f - n_top, 0, n_bottom - 1), n])
        return out

    def total(self, name: str, term: Callable[[Any, Any], Any], features: int) -> Any:
        """0-dim Func: ``sum over (feature, batch) of term(feature, n) / batch``."""
        r = hl.RDom([hl.Range(0, features), hl.Range(0, self.batch)], f"{name}_r")
        s = hl.Func(f"{name}_sum")
        s[()] = _f32(0.0)
        s[()] += term(r.x, r.y)
        return s


def _bce_logits(a: Any, x: Any) -> Any:
    return hl.max(a, _f32(0.0)) - x * a + hl.log(_f32(1.0) + hl.exp(-hl.abs(a)))


def _finish_training(net: _Net, loss0: Any) -> BuiltPipeline:
    """Differentiate the 0-dim loss, add the SGD updates; outputs ``[loss, W1', b1', ...]``."""
    lr = hl.Param(hl.Float(32), "lr")
    lr.set_estimate(LR)
    net.inputs["lr"] = lr
    deriv = hl.propagate_adjoints(loss0)
    loss = hl.Func("loss")
    i = hl.Var("i")
    loss[i] = loss0[()]
    outputs, shapes = [loss], [[1]]
    for name, _, func, shape in net.params:
        grad = deriv[func]
        vs = [hl.Var(f"v{k}") for k in range(len(shape))]
        upd = hl.Func(f"{name}_new")
        upd[vs] = func[vs] - lr * grad[vs]
        outputs.append(upd)
        shapes.append(shape)
    for out, shape in zip(outputs, shapes):
        set_output_estimates(out, shape)
    return BuiltPipeline(outputs=outputs, inputs=net.inputs, output_shapes=shapes)


def _check_flags(gaussian: int, n_classes: int | None = None) -> None:
    if gaussian not in (0, 1):
        raise ToolkitError(f"size gaussian must be 0 (Bernoulli cross-entropy) or 1 (squared error), not {gaussian}")
    if n_classes is not None and n_classes < 1:
        raise ToolkitError(f"size n_classes must be at least 1, not {n_classes}")


# ---------------------------------------------------------------- Halide algorithms

def _ae_logits(net: _Net, x: Any, d_in: int, d_hidden: int, d_latent: int) -> Any:
    """The AE's output pre-activation a4 (parameters 1..4 recorded in layer order)."""
    h1 = net.pointwise("h1", _sigmoid, net.dense("1", x, d_in, d_hidden))
    h2 = net.pointwise("h2", _sigmoid, net.dense("2", h1, d_hidden, d_latent))
    h3 = net.pointwise("h3", _sigmoid, net.dense("3", h2, d_latent, d_hidden))
    return net.dense("4", h3, d_hidden, d_in)


def build_ae_forward(batch: int, d_in: int, d_hidden: int, d_latent: int) -> BuiltPipeline:
    net = _Net(batch)
    x = net.image("x", [d_in, batch])
    recon = net.pointwise("recon", _sigmoid, _ae_logits(net, x, d_in, d_hidden, d_latent))
    set_output_estimates(recon, [d_in, batch])
    return BuiltPipeline(outputs=[recon], inputs=net.inputs, output_shapes=[[d_in, batch]])


def _build_ae_train(batch: int, d_in: int, d_hidden: int, d_latent: int, masked: bool) -> BuiltPipeline:
    net = _Net(batch)
    x = net.image("x", [d_in, batch])
    enc_in = x
    if masked:
        mask = net.image("mask", [d_in, batch])
        enc_in = hl.Func("x_corrupt")
        enc_in[net.f, net.n] = x[net.f, net.n] * mask[net.f, net.n]
    a4 = _ae_logits(net, enc_in, d_in, d_hidden, d_latent)
    total = net.total("bce", lambda f, n: _bce_logits(a4[f, n], x[f, n]), d_in)
    loss0 = hl.Func("loss0")
    loss0[()] = total[()] / _f32(batch)
    return _finish_training(net, loss0)


def build_ae_train_step(batch: int, d_in: int, d_hidden: int, d_latent: int) -> BuiltPipeline:
    return _build_ae_train(batch, d_in, d_hidden, d_latent, masked=False)


def build_dae_train_step(batch: int, d_in: int, d_hidden: int, d_latent: int) -> BuiltPipeline:
    return _build_ae_train(batch, d_in, d_hidden, d_latent, masked=True)


def _build_vae(batch: int, d_in: int, d_hidden: int, d_latent: int, gaussian: int,
               n_classes: int | None) -> BuiltPipeline:
    net = _Net(batch)
    x = net.image("x", [d_in, batch])
    eps = net.image("eps", [d_latent, batch])
    enc_in, dec_extra = x, 0
    labels = None
    if n_classes is not None:
        labels = net.image("labels", [n_classes, batch])
        enc_in = net.concat("x_y", x, d_in, labels, n_classes)
        dec_extra = n_classes
    h1 = net.pointwise("h1", _sigmoid, net.dense("1", enc_in, d_in + dec_extra, d_hidden))
    mu = net.dense("mu", h1, d_hidden, d_latent)
    logsig = net.dense("ls", h1, d_hidden, d_latent)
    f, n = net.f, net.n
    z = hl.Func("z")
    z[f, n] = mu[f, n] + hl.exp(logsig[f, n]) * eps[f, n]
    dec_in = z if labels is None else net.concat("z_y", z, d_latent, labels, n_classes or 0)
    h3 = net.pointwise("h3", _sigmoid, net.dense("3", dec_in, d_latent + dec_extra, d_hidden))
    a4 = net.dense("4", h3, d_hidden, d_in)
    if gaussian:
        def recon_term(f: Any, n: Any) -> Any:
            e = _sigmoid(a4[f, n]) - x[f, n]
            return _f32(0.5) * e * e
        rec = net.total("sqerr", recon_term, d_in)
    else:
        rec = net.total("bce", lambda f, n: _bce_logits(a4[f, n], x[f, n]), d_in)

    def kl_term(f: Any, n: Any) -> Any:
        m, s = mu[f, n], logsig[f, n]
        return _f32(-0.5) * (_f32(1.0) + _f32(2.0) * s - m * m - hl.exp(_f32(2.0) * s))

    kl = net.total("kl", kl_term, d_latent)
    loss0 = hl.Func("loss0")
    loss0[()] = (rec[()] + kl[()]) / _f32(batch)
    return _finish_training(net, loss0)


def build_vae_train_step(batch: int, d_in: int, d_hidden: int, d_latent: int, gaussian: int) -> BuiltPipeline:
    _check_flags(gaussian)
    return _build_vae(batch, d_in, d_hidden, d_latent, gaussian, None)


def build_cvae_train_step(batch: int, d_in: int, d_hidden: int, d_latent: int, gaussian: int,
                          n_classes: int) -> BuiltPipeline:
    _check_flags(gaussian, n_classes)
    return _build_vae(batch, d_in, d_hidden, d_latent, gaussian, n_classes)


# ---------------------------------------------------------------- inputs

def _layers(kind: str, d_in: int, d_hidden: int, d_latent: int, n_classes: int = 0) -> list[tuple[str, int, int]]:
    """(name, fan_in, fan_out) of every dense layer, in the order of the outputs."""
    if kind == "ae":
        return [("1", d_in, d_hidden), ("2", d_hidden, d_latent), ("3", d_latent, d_hidden), ("4", d_hidden, d_in)]
    return [("1", d_in + n_classes, d_hidden), ("mu", d_hidden, d_latent), ("ls", d_hidden, d_latent),
            ("3", d_latent + n_classes, d_hidden), ("4", d_hidden, d_in)]


def _param_inputs(rng: np.random.Generator, layers: list[tuple[str, int, int]]) -> dict[str, Any]:
    """torch.nn.Linear's default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)), numpy W shape (in, out)."""
    out: dict[str, Any] = {}
    for name, n_in, n_out in layers:
        bound = 1.0 / np.sqrt(n_in)
        out[f"W{name}"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
        out[f"b{name}"] = rng.uniform(-bound, bound, (n_out,)).astype(np.float32)
    return out


def _pixels(rng: np.random.Generator, batch: int, d_in: int) -> np.ndarray:
    """MNIST-like intensities in [0, 1]: about 80% exact zeros or ones (background, ink), rest grey."""
    v = rng.random((batch, d_in))
    v = np.where(v < 0.6, 0.0, np.where(v > 0.8, 1.0, rng.random((batch, d_in))))
    return v.astype(np.float32)


def ae_forward_inputs(rng: np.random.Generator, batch: int, d_in: int, d_hidden: int, d_latent: int) -> dict[str, Any]:
    return {"x": _pixels(rng, batch, d_in), **_param_inputs(rng, _layers("ae", d_in, d_hidden, d_latent))}


def ae_train_inputs(rng: np.random.Generator, batch: int, d_in: int, d_hidden: int, d_latent: int) -> dict[str, Any]:
    return {**ae_forward_inputs(rng, batch, d_in, d_hidden, d_latent), "lr": LR}


def dae_train_inputs(rng: np.random.Generator, batch: int, d_in: int, d_hidden: int, d_latent: int) -> dict[str, Any]:
    out = ae_train_inputs(rng, batch, d_in, d_hidden, d_latent)
    out["mask"] = (rng.random((batch, d_in)) >= 0.25).astype(np.float32)  # drop 25% of the pixels
    return out


def vae_train_inputs(rng: np.random.Generator, batch: int, d_in: int, d_hidden: int, d_latent: int,
                     gaussian: int, n_classes: int = 0) -> dict[str, Any]:
    out = {"x": _pixels(rng, batch, d_in), "eps": rng.standard_normal((batch, d_latent)).astype(np.float32),
           **_param_inputs(rng, _layers("vae", d_in, d_hidden, d_latent, n_classes)), "lr": LR}
    if n_classes:
        out["labels"] = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, batch)]
    return out


def cvae_train_inputs(rng: np.random.Generator, batch: int, d_in: int, d_hidden: int, d_latent: int,
                      gaussian: int, n_classes: int) -> dict[str, Any]:
    return vae_train_inputs(rng, batch, d_in, d_hidden, d_latent, gaussian, n_classes)


# ---------------------------------------------------------------- PyTorch: reference and benchmarks

def _torch_model(kind: str, inputs: dict[str, Any], sizes: dict[str, int], dtype: Any
                 ) -> tuple[list[str], dict[str, Any], Callable[[], tuple[Any, Any]]]:
    """Tensors for the model's inputs and a closure computing (recon, loss) from them.

    ``kind`` is one of ae, dae, vae, cvae. Parameters are leaf tensors with ``requires_grad``.
    """
    import torch
    import torch.nn.functional as F

    d_in, d_hidden, d_latent = sizes["d_in"], sizes["d_hidden"], sizes["d_latent"]
    n_classes = sizes.get("n_classes", 0) if kind == "cvae" else 0
    layers = _layers("ae" if kind in ("ae", "dae") else "vae", d_in, d_hidden, d_latent, n_classes)
    names = [f"{p}{name}" for name, _, _ in layers for p in ("W", "b")]
    t = {k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in inputs.items() if k != "lr"}
    for k in names:
        t[k].requires_grad_(True)
    batch = t["x"].shape[0]
    gaussian = sizes.get("gaussian", 0)

    def dense(name: str, v: Any) -> Any:
        return v @ t[f"W{name}"] + t[f"b{name}"]

    def recon_loss(a4: Any, x: Any) -> Any:
        if gaussian:
            return 0.5 * ((torch.sigmoid(a4) - x) ** 2).sum()
        return F.binary_cross_entropy_with_logits(a4, x, reduction="sum")

    def run() -> tuple[Any, Any]:
        x = t["x"]
        if kind in ("ae", "dae"):
            v = x * t["mask"] if kind == "dae" else x
            for name in ("1", "2", "3"):
                v = torch.sigmoid(dense(name, v))
            a4 = dense("4", v)
            return torch.sigmoid(a4), recon_loss(a4, x) / batch
        enc_in = torch.cat([x, t["labels"]], dim=1) if kind == "cvae" else x
        h1 = torch.sigmoid(dense("1", enc_in))
        mu, logsig = dense("mu", h1), dense("ls", h1)
        z = mu + torch.exp(logsig) * t["eps"]
        dec_in = torch.cat([z, t["labels"]], dim=1) if kind == "cvae" else z
        a4 = dense("4", torch.sigmoid(dense("3", dec_in)))
        kl = -0.5 * (1 + 2 * logsig - mu * mu - torch.exp(2 * logsig)).sum()
        return torch.sigmoid(a4), (recon_loss(a4, x) + kl) / batch

    return names, t, run


def _torch_step(kind: str, inputs: dict[str, Any], sizes: dict[str, int], dtype: Any
                ) -> Callable[[], list[Any]]:
    """Forward, backward (``torch.autograd.grad``) and SGD update; returns [loss, P1', P2', ...]."""
    import torch

    names, t, run = _torch_model(kind, inputs, sizes, dtype)
    params = [t[k] for k in names]
    lr = float(inputs["lr"])

    def step() -> list[Any]:
        _, loss = run()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            return [loss.detach().reshape(1)] + [p - lr * g for p, g in zip(params, grads)]

    return step


def _reference(kind: str) -> Callable[..., list[np.ndarray]]:
    def ref(inputs: dict[str, Any], **sizes: int) -> list[np.ndarray]:
        import torch
        return [r.numpy().astype(np.float32) for r in _torch_step(kind, inputs, sizes, torch.float64)()]
    return ref


def _torch_runner(kind: str) -> Callable[..., Callable[[], Any]]:
    def runner(inputs: dict[str, Any], **sizes: int) -> Callable[[], Any]:
        import torch
        return _torch_step(kind, inputs, sizes, torch.float32)
    return runner


def ae_forward_reference(inputs: dict[str, Any], **sizes: int) -> list[np.ndarray]:
    import torch
    with torch.no_grad():
        recon, _ = _torch_model("ae", inputs, sizes, torch.float64)[2]()
    return [recon.numpy().astype(np.float32)]


def ae_forward_torch(inputs: dict[str, Any], **sizes: int) -> Callable[[], Any]:
    import torch
    _, _, run = _torch_model("ae", inputs, sizes, torch.float32)

    def forward() -> Any:
        with torch.no_grad():
            return run()[0]
    return forward


# ---------------------------------------------------------------- flops and registration

def _forward_flops(layers: list[tuple[str, int, int]], batch: int) -> float:
    return 2.0 * batch * sum(n_in * n_out for _, n_in, n_out in layers)


def ae_forward_flops(batch: int, d_in: int, d_hidden: int, d_latent: int) -> float:
    return _forward_flops(_layers("ae", d_in, d_hidden, d_latent), batch)


def ae_train_flops(batch: int, d_in: int, d_hidden: int, d_latent: int) -> float:
    return 3.0 * ae_forward_flops(batch, d_in, d_hidden, d_latent)


def vae_train_flops(batch: int, d_in: int, d_hidden: int, d_latent: int, gaussian: int, n_classes: int = 0) -> float:
    return 3.0 * _forward_flops(_layers("vae", d_in, d_hidden, d_latent, n_classes), batch)


VAE_DEFAULT = {**DEFAULT_SIZES, "gaussian": 0}
VAE_TEST = {**TEST_SIZES, "gaussian": 0}

AE_FORWARD = register(PipelineSpec(
    name="ae_forward", description="MLP autoencoder forward pass 784-512-32-512-784, sigmoid layers",
    build_fn=build_ae_forward, inputs_fn=ae_forward_inputs, reference_fn=ae_forward_reference,
    default_sizes=dict(DEFAULT_SIZES), test_sizes=dict(TEST_SIZES), rtol=1e-4, atol=1e-6,
    tags=("dl", "mission"), flops_fn=ae_forward_flops, default_schedule_ok=False, torch_fn=ae_forward_torch))

AE_TRAIN_STEP = register(PipelineSpec(
    name="ae_train_step",
    description="autoencoder SGD step: Bernoulli cross-entropy, gradients by propagate_adjoints",
    build_fn=build_ae_train_step, inputs_fn=ae_train_inputs, reference_fn=_reference("ae"),
    default_sizes=dict(DEFAULT_SIZES), test_sizes=dict(TEST_SIZES), rtol=TRAIN_RTOL, atol=1e-6,
    default_schedule_ok=False,
    tags=("dl", "mission", "train"), flops_fn=ae_train_flops, torch_fn=_torch_runner("ae")))

DAE_TRAIN_STEP = register(PipelineSpec(
    name="dae_train_step",
    description="denoising autoencoder SGD step: input times a drop mask, loss against the clean input",
    build_fn=build_dae_train_step, inputs_fn=dae_train_inputs, reference_fn=_reference("dae"),
    default_sizes=dict(DEFAULT_SIZES), test_sizes=dict(TEST_SIZES), rtol=TRAIN_RTOL, atol=1e-6,
    default_schedule_ok=False,
    tags=("dl", "train"), flops_fn=ae_train_flops, torch_fn=_torch_runner("dae")))

VAE_TRAIN_STEP = register(PipelineSpec(
    name="vae_train_step",
    description="variational autoencoder SGD step: reparameterised z, cross-entropy (or gaussian=1) + KL",
    build_fn=build_vae_train_step, inputs_fn=vae_train_inputs, reference_fn=_reference("vae"),
    default_sizes=dict(VAE_DEFAULT), test_sizes=dict(VAE_TEST), rtol=TRAIN_RTOL, atol=1e-6,
    default_schedule_ok=False,
    tags=("dl", "mission", "train"), flops_fn=vae_train_flops, torch_fn=_torch_runner("vae")))

CVAE_TRAIN_STEP = register(PipelineSpec(
    name="cvae_train_step",
    description="conditional VAE SGD step: one-hot labels concatenated to the encoder input and to z",
    build_fn=build_cvae_train_step, inputs_fn=cvae_train_inputs, reference_fn=_reference("cvae"),
    default_sizes={**VAE_DEFAULT, "n_classes": N_CLASSES_DEFAULT},
    test_sizes={**VAE_TEST, "n_classes": N_CLASSES_TEST}, rtol=TRAIN_RTOL, atol=1e-6,
    default_schedule_ok=False,
    tags=("dl", "train"), flops_fn=vae_train_flops, torch_fn=_torch_runner("cvae")))
