"""The least a GPU run needs, checked first so a broken setup costs seconds, not the lease:
Halide JIT-compiles a gpu_tile'd Func for the device's CUDA target, runs it, and its output equals
numpy's. Prints one line per check; exit 1 on the first failure (with the error)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import numpy as np
    import halide as hl
    from autoscheduler.measure import cuda_available, cuda_target, device_fingerprint, preload_libcuda
    target = sys.argv[1] if len(sys.argv) > 1 else cuda_target()  # a CPU target checks this script
    if "cuda" in target.split("-") and not cuda_available():
        print("# smoke: no CUDA GPU (nvidia-smi lists none): nothing to check")
        return 0
    print(f"# smoke: target {target}; device {device_fingerprint(target)}; CUDA driver library "
          f"{preload_libcuda() if 'cuda' in target.split('-') else 'not needed'}", flush=True)
    x, y, xo, yo, xi, yi = (hl.Var(n) for n in ("x", "y", "xo", "yo", "xi", "yi"))
    inp = hl.ImageParam(hl.Float(32), 2, "inp")
    f = hl.Func("f")
    f[x, y] = inp[x, y] * 2.0 + hl.f32(x) - hl.f32(y)
    if "cuda" in target.split("-"):
        f.gpu_tile(x, y, xo, yo, xi, yi, 16, 16)
    a = np.random.default_rng(0).random((300, 200), dtype=np.float32)  # numpy (y, x)
    held = hl.Buffer(a)  # ImageParam.set does not keep the buffer alive
    inp.set(held)
    t0 = time.perf_counter()
    out = f.realize([200, 300], hl.Target(target))
    if "cuda" in target.split("-"):
        out.copy_to_host()
    got = np.array(out)
    want = a * 2 + np.arange(200, dtype=np.float32)[None, :] - np.arange(300, dtype=np.float32)[:, None]
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-5):
        print(f"# smoke: FAILED: output differs (shape {got.shape} vs {want.shape})")
        return 1
    print(f"# smoke: gpu_tile'd Func ran and matched numpy ({time.perf_counter() - t0:.2f} s incl. JIT)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the point is to say what broke
        print(f"# smoke: FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
