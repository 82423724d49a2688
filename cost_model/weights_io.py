"""Reading and writing cost-model weights: Halide's ``.weights`` files and our own format.

**Halide's format** (``src/autoschedulers/adams2019/Weights.cpp``), all little-endian::

    u32 signature 0x68776631 ('hwf1')
    u32 PipelineFeatures::version, u32 ScheduleFeatures::version
    u32 buffer count (6)
    per buffer: u32 ndims, u32 extent[ndims], float32 data (Halide layout: first dim fastest)

in the order head1_filter (8,40,7), head1_bias (8), head2_filter (24,39), head2_bias (24),
conv1_filter (32,32), conv1_bias (32): 4,264 floats for Adams2019. The extents are Halide's
(innermost first); the arrays returned here are indexed in those same coordinates
(``head1_filter[c, row, type]``), which are also :class:`~cost_model.adams_net.AdamsNet`'s.

**Our format**: ``NAME.pt`` (a torch ``state_dict``) next to ``NAME.json`` (metadata: format
version, feature versions, model class, training data size, metrics, machine, target, the command
that produced it, and the sha256 of the ``.pt`` so that a mismatched pair is detected).

Every problem with a file is a one-line :class:`autoscheduler.errors.WeightsError` that names the
file and the expected format/feature version.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from autoscheduler.errors import WeightsError

from .adams_net import AdamsNet
from .features_layout import PIPELINE_FEATURES_VERSION, SCHEDULE_FEATURES_VERSION

HALIDE_SIGNATURE = 0x68776631
"""First u32 of a ``.weights`` file ('hwf1' read as little-endian bytes '1fwh')."""

ADAMS2019_SHAPES: dict[str, tuple[int, ...]] = {
    "head1_filter": (8, 40, 7),
    "head1_bias": (8,),
    "head2_filter": (24, 39),
    "head2_bias": (24,),
    "conv1_filter": (32, 32),
    "conv1_bias": (32,),
}
"""Buffers of an Adams2019 ``.weights`` file, in file order, with Halide's extents."""

FORMAT_NAME = "halide-toolkit-cost-model"
FORMAT_VERSION = 1
"""Version of our ``.pt`` + ``.json`` pair (not of the features; those are in the metadata)."""

EXPECTED_VERSION = (f"expected feature version {PIPELINE_FEATURES_VERSION} "
                    f"(pipeline {PIPELINE_FEATURES_VERSION}, schedule {SCHEDULE_FEATURES_VERSION})")
"""The clause every weights error ends with."""
_EXPECTED = EXPECTED_VERSION


@dataclass(frozen=True)
class HalideWeights:
    """The contents of a Halide ``.weights`` file.

    ``tensors`` maps buffer name -> float32 array indexed in Halide's coordinates (shape = the
    file's extents in order).
    """

    pipeline_features_version: int
    schedule_features_version: int
    tensors: dict[str, np.ndarray]

    @property
    def num_floats(self) -> int:
        return int(sum(a.size for a in self.tensors.values()))


def _fail(path: str | os.PathLike[str], problem: str, expected: str = _EXPECTED) -> WeightsError:
    return WeightsError(f"{os.fspath(path)}: {problem}; {expected}")


def parse_halide_weights(data: bytes, path: str | os.PathLike[str] = "<bytes>", *,
                         shapes: Mapping[str, tuple[int, ...]] = ADAMS2019_SHAPES,
                         check_versions: bool = True) -> HalideWeights:
    """Decode ``.weights`` bytes; ``path`` only names the source in error messages.

    ``check_versions`` rejects feature versions other than ours (Halide itself only warns, but a
    network trained on another layout predicts nonsense).
    """
    expected = f"expected a Halide .weights file with {len(shapes)} buffers, " + _EXPECTED
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise _fail(path, f"truncated: {len(data)} bytes, ended inside {what} at byte {pos}",
                        expected)
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    def u32(what: str) -> int:
        return int(struct.unpack("<I", take(4, what))[0])

    signature = u32("the signature")
    if signature != HALIDE_SIGNATURE:
        raise _fail(path, f"not a Halide .weights file (signature 0x{signature:08x}, "
                          f"not 0x{HALIDE_SIGNATURE:08x})", expected)
    pipeline_version = u32("the pipeline-features version")
    schedule_version = u32("the schedule-features version")
    count = u32("the buffer count")
    if count != len(shapes):
        raise _fail(path, f"corrupt: {count} buffers", expected)
    tensors: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        ndims = u32(f"the header of {name}")
        if ndims != len(shape):
            raise _fail(path, f"corrupt: {name} has {ndims} dimensions, not {len(shape)}", expected)
        extents = tuple(u32(f"the extents of {name}") for _ in range(ndims))
        if extents != tuple(shape):
            raise _fail(path, f"mismatched network: {name} has extents {list(extents)}, "
                              f"not {list(shape)}", expected)
        n = int(np.prod(shape))
        raw = np.frombuffer(take(4 * n, f"the data of {name}"), dtype="<f4")
        # Halide buffers are stored first-dimension-fastest: reverse the shape, then transpose back.
        arr = raw.reshape(tuple(reversed(shape))).transpose().astype(np.float32)
        if not np.isfinite(arr).all():
            raise _fail(path, f"corrupt: {name} holds NaN or infinite values", expected)
        tensors[name] = np.ascontiguousarray(arr)
    if pos != len(data):
        raise _fail(path, f"corrupt: {len(data) - pos} unexpected bytes after the last buffer",
                    expected)
    if check_versions and (pipeline_version, schedule_version) != (
            PIPELINE_FEATURES_VERSION, SCHEDULE_FEATURES_VERSION):
        raise _fail(path, f"mismatched feature version (pipeline {pipeline_version}, "
                          f"schedule {schedule_version})", expected)
    return HalideWeights(pipeline_version, schedule_version, tensors)


def _read_bytes(path: str | os.PathLike[str], expected: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _fail(path, f"cannot read ({e.strerror or e})", expected) from None


def read_halide_weights(path: str | os.PathLike[str], *,
                        shapes: Mapping[str, tuple[int, ...]] = ADAMS2019_SHAPES,
                        check_versions: bool = True) -> HalideWeights:
    """Read a Halide ``.weights`` file (see :func:`parse_halide_weights`)."""
    data = _read_bytes(path, "expected a Halide .weights file, " + _EXPECTED)
    return parse_halide_weights(data, path, shapes=shapes, check_versions=check_versions)


def halide_weights_bytes(tensors: Mapping[str, np.ndarray | torch.Tensor], *,
                         shapes: Mapping[str, tuple[int, ...]] = ADAMS2019_SHAPES,
                         pipeline_features_version: int = PIPELINE_FEATURES_VERSION,
                         schedule_features_version: int = SCHEDULE_FEATURES_VERSION) -> bytes:
    """Encode weights (Halide-coordinate arrays, e.g. an AdamsNet's state_dict) as ``.weights``."""
    out = io.BytesIO()
    out.write(struct.pack("<IIII", HALIDE_SIGNATURE, pipeline_features_version,
                          schedule_features_version, len(shapes)))
    for name, shape in shapes.items():
        value = tensors[name]
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {shape}")
        out.write(struct.pack(f"<{1 + len(shape)}I", len(shape), *shape))
        out.write(np.ascontiguousarray(arr.astype("<f4").transpose()).tobytes())
    return out.getvalue()


def write_halide_weights(path: str | os.PathLike[str],
                         tensors: Mapping[str, np.ndarray | torch.Tensor] | nn.Module) -> None:
    """Write a ``.weights`` file that Halide's Adams2019 plugin loads (``weights_path``)."""
    state = tensors.state_dict() if isinstance(tensors, nn.Module) else tensors
    Path(path).write_bytes(halide_weights_bytes(state))


def load_halide_weights(path: str | os.PathLike[str], model: AdamsNet | None = None) -> AdamsNet:
    """An :class:`AdamsNet` holding the weights of a Halide ``.weights`` file."""
    weights = read_halide_weights(path)
    net = model if model is not None else AdamsNet()
    with torch.no_grad():
        for name, arr in weights.tensors.items():
            getattr(net, name).copy_(torch.from_numpy(arr))
    return net


# --- our format ----------------------------------------------------------------------------------

@dataclass
class WeightsMetadata:
    """What a saved model is and where it came from (the ``.json`` beside the ``.pt``).

    ``data_size``: training samples (schedules) it was fitted on; ``metrics``: e.g. held-out
    pairwise accuracy and regrets; ``machine``: where the training data was measured;
    ``target``: the Halide target string; ``command``: the command line that produced it.
    """

    model: str = "AdamsNet"
    pipeline_features_version: int = PIPELINE_FEATURES_VERSION
    schedule_features_version: int = SCHEDULE_FEATURES_VERSION
    data_size: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    target: str = ""
    command: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str, "pipeline_features_version": int, "schedule_features_version": int,
    "data_size": int, "metrics": dict, "machine": str, "target": str, "command": str,
    "created": str, "extra": dict,
}
assert set(_METADATA_TYPES) == set(WeightsMetadata.__dataclass_fields__)


def metadata_path(path: str | os.PathLike[str]) -> Path:
    """``foo.pt`` -> ``foo.json``."""
    return Path(path).with_suffix(".json")


def _state_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_suffix(".pt") if p.suffix in (".json", "") else p


def save_weights(model: nn.Module, path: str | os.PathLike[str],
                 metadata: WeightsMetadata | None = None) -> tuple[Path, Path]:
    """Write ``model``'s state_dict to ``path`` (``.pt``) and its metadata to the ``.json`` beside it.

    Returns the two paths. ``metadata.model`` defaults to the model's class name.
    """
    meta = WeightsMetadata(model=type(model).__name__) if metadata is None else metadata
    pt = _state_path(path)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    data = buf.getvalue()
    record = asdict(meta)
    if not record["created"]:
        record["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **record,
              "state_file": pt.name, "state_sha256": hashlib.sha256(data).hexdigest(),
              "torch_version": torch.__version__}
    pt.parent.mkdir(parents=True, exist_ok=True)
    pt.write_bytes(data)
    js = metadata_path(pt)
    js.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return pt, js


def read_metadata(path: str | os.PathLike[str]) -> tuple[WeightsMetadata, dict[str, Any]]:
    """Parse and check the ``.json`` of a saved model; returns the metadata and the raw record."""
    js = metadata_path(_state_path(path))
    expected = f"expected a {FORMAT_NAME} v{FORMAT_VERSION} metadata file, " + _EXPECTED
    text = _read_bytes(js, expected)
    try:
        record = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(js, f"corrupt metadata ({type(e).__name__}: {str(e).splitlines()[0]})",
                    expected) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise _fail(js, "not a cost-model metadata file", expected)
    if record.get("format_version") != FORMAT_VERSION:
        raise _fail(js, f"format version {record.get('format_version')!r}", expected)
    versions = (record.get("pipeline_features_version"), record.get("schedule_features_version"))
    if versions != (PIPELINE_FEATURES_VERSION, SCHEDULE_FEATURES_VERSION):
        raise _fail(js, f"mismatched feature version (pipeline {versions[0]!r}, "
                        f"schedule {versions[1]!r})", expected)
    fields = {k: v for k, v in record.items() if k in _METADATA_TYPES}
    for key, value in fields.items():
        if not isinstance(value, _METADATA_TYPES[key]) or isinstance(value, bool):
            raise _fail(js, f"corrupt metadata (field {key!r} is a {type(value).__name__})",
                        expected)
    return WeightsMetadata(**fields), record


def load_weights(path: str | os.PathLike[str],
                 model: nn.Module | None = None) -> tuple[nn.Module, WeightsMetadata]:
    """Load a model saved by :func:`save_weights` (give the ``.pt``, the ``.json`` or the stem).

    Without ``model``, builds the class named in the metadata (only ``AdamsNet`` is known here).
    Checks the metadata, the checksum that ties the pair together, and every tensor's name and
    shape; any problem is a one-line :class:`WeightsError`.
    """
    meta, record = read_metadata(path)
    pt = _state_path(path)
    expected = f"expected the {meta.model} state_dict described by {metadata_path(pt).name}, " + _EXPECTED
    data = _read_bytes(pt, expected)
    if hashlib.sha256(data).hexdigest() != record.get("state_sha256"):
        raise _fail(pt, "corrupt or mismatched: its sha256 differs from the one in "
                        f"{metadata_path(pt).name}", expected)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise _fail(pt, f"corrupt state_dict ({type(e).__name__})", expected) from None
    if model is None:
        if meta.model != AdamsNet.__name__:
            raise _fail(pt, f"model class {meta.model!r} is unknown here; pass model=",
                        expected)
        model = AdamsNet()
    own = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(own):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise _fail(pt, f"mismatched tensors {got}, not {sorted(own)}", expected)
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[name].shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise _fail(pt, f"mismatched tensor {name} of shape {shape}, "
                            f"not {tuple(own[name].shape)}", expected)
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise _fail(pt, f"corrupt: {name} holds NaN or infinite values", expected)
    model.load_state_dict(state)
    return model, meta


# --- the machine weights were trained on vs. this host ------------------------------------------

class HostMismatchWarning(UserWarning):
    """Weights trained on a machine whose vector ISA differs from this host's (AVX2 vs AVX-512, ...):
    the runtimes they learned are another machine's, so their rankings may be poor here."""


def isa_level(machine: str = "", target: str = "") -> str | None:
    """The widest x86 / Arm vector ISA named by a device fingerprint (or several joined by ``;``, or
    free text) and/or a Halide target string: ``AVX-512``, ``AVX2``, ``SSE4``, ``NEON``/``SVE``;
    None when neither says."""
    flags: set[str] = set()
    for part in (machine or "").split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            info = json.loads(part)
        except ValueError:
            info = None
        if isinstance(info, dict) and isinstance(info.get("isa"), list):
            flags.update(str(f).lower() for f in info["isa"])
        else:   # free text ("2-core Xeon (AVX-512)")
            text = part.lower()
            flags.update(f for f, pat in (("avx512f", r"avx-?512"), ("avx2", r"avx-?2"), ("sve", r"\bsve"),
                                          ("neon", r"\bneon|\basimd"), ("sse41", r"sse-?4"))
                         if re.search(pat, text))
    for t in (target or "").split(","):
        parts = t.strip().lower().split("-")
        flags.update(parts[1:])
        if parts[0] == "arm":
            flags.add("neon")
    if not flags:
        return None
    if any(f.startswith("avx512") for f in flags):
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "sve" in flags or "sve2" in flags:
        return "SVE"
    if "asimd" in flags or "neon" in flags or "arm" in flags:
        return "NEON"
    if "sse4_1" in flags or "sse41" in flags or "avx" in flags:
        return "SSE4"
    return None


def host_mismatch(meta: WeightsMetadata, host: str | None = None) -> str | None:
    """Why ``meta``'s training machine does not match ``host`` (a device fingerprint; default this
    machine's), or None when they match or the metadata does not say."""
    if host is None:
        from autoscheduler.measure import device_fingerprint
        host = device_fingerprint("host")
    trained = isa_level(meta.machine, meta.target)
    here = isa_level(host)
    if trained is None or here is None or trained == here:
        return None
    return (f"trained on an {trained} machine, but this host is {here}; their rankings may be poor "
            "here: collect and train on this machine (`autoschedule collect`, `autoschedule train`)")


def warn_if_host_mismatch(path: str | os.PathLike[str], meta: WeightsMetadata,
                          host: str | None = None) -> str | None:
    """Issue a :class:`HostMismatchWarning` naming ``path`` when :func:`host_mismatch` finds one."""
    why = host_mismatch(meta, host)
    if why is not None:
        import warnings
        warnings.warn(f"{os.fspath(path)}: {why}", HostMismatchWarning, stacklevel=3)
    return why


def load_adams_net(path: str | os.PathLike[str]) -> AdamsNet:
    """An AdamsNet from either format: Halide ``.weights``, or our ``.pt``/``.json`` pair."""
    if os.fspath(path).endswith(".weights"):
        return load_halide_weights(path)
    model, _ = load_weights(path, AdamsNet())
    assert isinstance(model, AdamsNet)
    return model


__all__ = [
    "HALIDE_SIGNATURE", "ADAMS2019_SHAPES", "EXPECTED_VERSION", "FORMAT_NAME", "FORMAT_VERSION", "HalideWeights",
    "parse_halide_weights", "read_halide_weights", "halide_weights_bytes", "write_halide_weights",
    "load_halide_weights", "WeightsMetadata", "metadata_path", "save_weights", "read_metadata",
    "load_weights", "load_adams_net", "HostMismatchWarning", "isa_level", "host_mismatch",
    "warn_if_host_mismatch",
]
