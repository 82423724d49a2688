"""Which machine a measurement ran on: a stable fingerprint, and whether a CUDA GPU is present.

The fingerprint is canonical JSON (sorted keys) so it can be compared and used as a database key:
CPU model, core count, the ISA flags that change generated code, and for CUDA targets the GPU names
and driver version. It deliberately leaves out anything that changes between runs (clocks, load).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess

from .candidate import is_cuda_target

# ISA flags (as /proc/cpuinfo spells them) that decide which code Halide can emit.
_ISA_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq",
              "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile",
              "amx_bf16", "amx_int8", "asimd", "asimddp", "sve", "sve2", "fphp")


@functools.lru_cache(maxsize=None)
def _cpu() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "cpu model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, tuple(f for f in _ISA_FLAGS if f in flags)


@functools.lru_cache(maxsize=None)
def gpus() -> tuple[tuple[str, str], ...]:
    """(name, driver version) of each NVIDIA GPU, from nvidia-smi; empty when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    rows = [tuple(p.strip() for p in line.split(",", 1)) for line in out.splitlines() if line.strip()]
    return tuple((r[0], r[1] if len(r) > 1 else "") for r in rows)


def cuda_available() -> bool:
    return bool(gpus())


@functools.lru_cache(maxsize=None)
def preload_libcuda() -> str | None:
    """Load the CUDA driver library into this process with global symbols, so Halide's CUDA runtime
    finds its entry points: the runtime looks for the symbols in the process first, then opens
    ``libcuda.so``, the unversioned development name, which driver installs in containers often lack
    (they ship ``libcuda.so.1``). Returns the name loaded, or None when there is no driver."""
    import ctypes
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            return name
        except OSError:
            continue
    return None


# CUDA capabilities Halide 21's targets name; a newer GPU runs the newest one's PTX, JIT-compiled by
# the driver (PTX is forward compatible).
HALIDE_CUDA_CAPABILITIES = (30, 32, 35, 50, 61, 70, 75, 80, 86)


@functools.lru_cache(maxsize=None)
def cuda_target(base: str = "host-cuda") -> str:
    """``base`` plus the newest Halide CUDA capability the first GPU supports (from nvidia-smi,
    without creating a CUDA context in this process); ``base`` alone when none can be read."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return base
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        major, minor = out[0].split(".")
        cap = int(major) * 10 + int(minor)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return base
    best = max((k for k in HALIDE_CUDA_CAPABILITIES if k <= cap), default=None)
    return f"{base}-cuda_capability_{best}" if best else base


@functools.lru_cache(maxsize=None)
def device_fingerprint(target: str = "host") -> str:
    """Canonical JSON naming the hardware a candidate for ``target`` runs on."""
    model, isa = _cpu()
    info: dict[str, object] = {"cpu": model, "cores": os.cpu_count() or 1, "isa": list(isa)}
    if is_cuda_target(target):
        info["gpu"] = [{"name": n, "driver": d} for n, d in gpus()]
    return json.dumps(info, sort_keys=True, separators=(",", ":"))
