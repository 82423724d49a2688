# Best schedule of ae_train_step {'batch': 256, 'd_in': 784, 'd_hidden': 512, 'd_latent': 32}, target x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-avxvnni-cuda-cuda_capability_86-f16c-fma-sse41, 1.05 ms
# Schedule from autoscheduler.state: 136 decisions, target x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-avxvnni-cuda-cuda_capability_86-f16c-fma-sse41, parallelism 132
b4_new = pipeline.get_func(48)
b4_im_0_d_def__ = pipeline.get_func(47)
a4_0_0_d_def__ = pipeline.get_func(46)
W4_new = pipeline.get_func(45)
W4_im_0_d_def__ = pipeline.get_func(44)
b3_new = pipeline.get_func(43)
b3_im_0_d_def__ = pipeline.get_func(42)
a3_0_0_d_def__ = pipeline.get_func(41)
W3_new = pipeline.get_func(40)
W3_im_0_d_def__ = pipeline.get_func(39)
b2_new = pipeline.get_func(38)
b2_im_0_d_def__ = pipeline.get_func(37)
a2_0_0_d_def__ = pipeline.get_func(36)
W2_new = pipeline.get_func(35)
W2_im_0_d_def__ = pipeline.get_func(34)
b1_new = pipeline.get_func(33)
b1_im_0_d_def__ = pipeline.get_func(32)
a1_0_0_d_def__ = pipeline.get_func(31)
W1_new = pipeline.get_func(30)
W1_im_0_d_def__ = pipeline.get_func(29)
a1_1_d_def__ = pipeline.get_func(28)
h1_0_d_def__ = pipeline.get_func(27)
a2_1_d_def__ = pipeline.get_func(26)
h2_0_d_def__ = pipeline.get_func(25)
a3_1_d_def__ = pipeline.get_func(24)
h3_0_d_def__ = pipeline.get_func(23)
a4_1_d_def__ = pipeline.get_func(22)
bce_sum_1_d_def__ = pipeline.get_func(21)
loss0_0_d_def__ = pipeline.get_func(20)
adjoint = pipeline.get_func(19)
loss = pipeline.get_func(18)
loss0 = pipeline.get_func(17)
bce_sum = pipeline.get_func(16)
a4 = pipeline.get_func(15)
h3 = pipeline.get_func(14)
a3 = pipeline.get_func(13)
h2 = pipeline.get_func(12)
a2 = pipeline.get_func(11)
h1 = pipeline.get_func(10)
a1 = pipeline.get_func(9)
d0_i = hl.Var('d0_i')
d0_o = hl.Var('d0_o')
d0_u = hl.Var('d0_u')
d1_i = hl.Var('d1_i')
d1_o = hl.Var('d1_o')
d1_u = hl.Var('d1_u')
f = hl.Var('f')
f_i = hl.Var('f_i')
f_o = hl.Var('f_o')
f_u = hl.Var('f_u')
i = hl.Var('i')
n = hl.Var('n')
n_i = hl.Var('n_i')
n_o = hl.Var('n_o')
n_u = hl.Var('n_u')
rf1_u = hl.Var('rf1_u')
rf1_u_i = hl.Var('rf1_u_i')
rf1_u_o = hl.Var('rf1_u_o')
v14_i = hl.Var('v14_i')
v14_o = hl.Var('v14_o')
rf1_i = hl.RVar('rf1_i')
rf1_o = hl.RVar('rf1_o')

# b4_new: compute_root
d0, = b4_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_b4_new_tiled = b4_new.specialize((b4_new.output_buffer().dim(0).extent() >= 32))
(_b4_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))
(b4_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))

# b4_im_0_d_def__: computed at b4_new loop d0_i
d0, = b4_im_0_d_def__.args()
b4_im_0_d_def__.compute_at(b4_new, d0_i)
b4_im_0_d_def__.never_partition([d0])
b4_im_0_d_def__.update(0).never_partition([d0])

# a4_0_0_d_def__: computed at b4_new loop d0_o
a4_0_0_d_def__.compute_at(b4_new, d0_o)
a4_0_0_d_def__.store_in(hl.MemoryType.GPUShared)
(a4_0_0_d_def__
    .split(f, f_o, f_i, 2, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 32, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))

# W4_new: compute_root
d0, d1 = W4_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_W4_new_tiled = W4_new.specialize((W4_new.output_buffer().dim(0).extent() >= 32) & (W4_new.output_buffer().dim(1).extent() >= 32))
(_W4_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .split(d1, d1_o, d1_i, 32, hl.TailStrategy.ShiftInwards)
    .split(d1_i, d1_i, d1_u, 2, hl.TailStrategy.ShiftInwards)
    .reorder(d1_u, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))
(W4_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .split(d1, d1_o, d1_i, 32, hl.TailStrategy.GuardWithIf)
    .split(d1_i, d1_i, d1_u, 2, hl.TailStrategy.GuardWithIf)
    .reorder(d1_u, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# W4_im_0_d_def__: compute_root
d0, d1 = W4_im_0_d_def__.args()
W4_im_0_d_def__.compute_root()
(W4_im_0_d_def__
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 16, hl.TailStrategy.RoundUp)
    .reorder(d0_i, d1_i, d0_o, d1_o)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))
r203_x, = W4_im_0_d_def__.rvars(0)
(W4_im_0_d_def__.update(0)
    .split(d0, d0_o, d0_i, 64, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 64, hl.TailStrategy.RoundUp)
    .split(d1_i, d1_i, d1_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(d1_u, r203_x, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# b3_new: compute_root
d0, = b3_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_b3_new_tiled = b3_new.specialize((b3_new.output_buffer().dim(0).extent() >= 32))
(_b3_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))
(b3_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))

# b3_im_0_d_def__: computed at b3_new loop d0_i
d0, = b3_im_0_d_def__.args()
b3_im_0_d_def__.compute_at(b3_new, d0_i)
b3_im_0_d_def__.never_partition([d0])
b3_im_0_d_def__.update(0).never_partition([d0])

# a3_0_0_d_def__: computed at b3_new loop d0_o
a3_0_0_d_def__.compute_at(b3_new, d0_o)
a3_0_0_d_def__.store_in(hl.MemoryType.GPUShared)
(a3_0_0_d_def__
    .split(f, f_o, f_i, 2, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 32, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))

# W3_new: compute_root
d0, d1 = W3_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_W3_new_tiled = W3_new.specialize((W3_new.output_buffer().dim(0).extent() >= 32))
(_W3_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))
(W3_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))

# W3_im_0_d_def__: compute_root
d0, d1 = W3_im_0_d_def__.args()
W3_im_0_d_def__.compute_root()
(W3_im_0_d_def__
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))
r285_x, = W3_im_0_d_def__.rvars(0)
(W3_im_0_d_def__.update(0)
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 8, hl.TailStrategy.RoundUp)
    .reorder(r285_x, d0_i, d1_i, d0_o, d1_o)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# b2_new: compute_root
d0, = b2_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_b2_new_tiled = b2_new.specialize((b2_new.output_buffer().dim(0).extent() >= 32))
(_b2_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))
(b2_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))

# b2_im_0_d_def__: compute_root
d0, = b2_im_0_d_def__.args()
b2_im_0_d_def__.compute_root()
(b2_im_0_d_def__
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))
r388_x, = b2_im_0_d_def__.rvars(0)
# b2_im_0_d_def__.update(0): rfactor over 64 partial results
_b2_im_0_d_def___rf1 = b2_im_0_d_def__.update(0).split(r388_x, rf1_o, rf1_i, 64, hl.TailStrategy.GuardWithIf).rfactor(rf1_i, rf1_u)
_b2_im_0_d_def___rf1.compute_root()
(_b2_im_0_d_def___rf1
    .split(rf1_u, rf1_u_o, rf1_u_i, 64, hl.TailStrategy.GuardWithIf)
    .reorder(rf1_u_i, rf1_u_o, d0)
    .gpu_blocks(rf1_u_o, d0)
    .gpu_threads(rf1_u_i))
(_b2_im_0_d_def___rf1.update(0)
    .split(rf1_u, rf1_u_o, rf1_u_i, 64, hl.TailStrategy.GuardWithIf)
    .reorder(rf1_o, rf1_u_i, rf1_u_o, d0)
    .gpu_blocks(rf1_u_o, d0)
    .gpu_threads(rf1_u_i))
(b2_im_0_d_def__.update(0)
    .split(d0, v14_o, v14_i, 32, hl.TailStrategy.GuardWithIf)
    .reorder(rf1_i, v14_i, v14_o)
    .gpu_blocks(v14_o)
    .gpu_threads(v14_i))

# a2_0_0_d_def__: compute_inline
a2_0_0_d_def__.compute_inline()

# W2_new: compute_root
d0, d1 = W2_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_W2_new_tiled = W2_new.specialize((W2_new.output_buffer().dim(0).extent() >= 16))
(_W2_new_tiled
    .split(d0, d0_o, d0_i, 16, hl.TailStrategy.ShiftInwards)
    .split(d0_i, d0_i, d0_u, 2, hl.TailStrategy.ShiftInwards)
    .unroll(d0_u)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))
(W2_new
    .split(d0, d0_o, d0_i, 16, hl.TailStrategy.GuardWithIf)
    .split(d0_i, d0_i, d0_u, 2, hl.TailStrategy.GuardWithIf)
    .unroll(d0_u)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))

# W2_im_0_d_def__: compute_root
d0, d1 = W2_im_0_d_def__.args()
W2_im_0_d_def__.compute_root()
(W2_im_0_d_def__
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .gpu_blocks(d0_o, d1)
    .gpu_threads(d0_i))
r367_x, = W2_im_0_d_def__.rvars(0)
(W2_im_0_d_def__.update(0)
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 8, hl.TailStrategy.RoundUp)
    .reorder(r367_x, d0_i, d1_i, d0_o, d1_o)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# b1_new: compute_root
d0, = b1_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_b1_new_tiled = b1_new.specialize((b1_new.output_buffer().dim(0).extent() >= 32))
(_b1_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))
(b1_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .gpu_blocks(d0_o)
    .gpu_threads(d0_i))

# b1_im_0_d_def__: computed at b1_new loop d0_i
d0, = b1_im_0_d_def__.args()
b1_im_0_d_def__.compute_at(b1_new, d0_i)
b1_im_0_d_def__.never_partition([d0])
b1_im_0_d_def__.update(0).never_partition([d0])

# a1_0_0_d_def__: computed at b1_new loop d0_o
a1_0_0_d_def__.compute_at(b1_new, d0_o)
a1_0_0_d_def__.store_in(hl.MemoryType.GPUShared)
(a1_0_0_d_def__
    .split(f, f_o, f_i, 2, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 32, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))

# W1_new: compute_root
d0, d1 = W1_new.args()
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_W1_new_tiled = W1_new.specialize((W1_new.output_buffer().dim(0).extent() >= 32) & (W1_new.output_buffer().dim(1).extent() >= 32))
(_W1_new_tiled
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.ShiftInwards)
    .split(d1, d1_o, d1_i, 32, hl.TailStrategy.ShiftInwards)
    .split(d1_i, d1_i, d1_u, 4, hl.TailStrategy.ShiftInwards)
    .reorder(d1_u, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))
(W1_new
    .split(d0, d0_o, d0_i, 32, hl.TailStrategy.GuardWithIf)
    .split(d1, d1_o, d1_i, 32, hl.TailStrategy.GuardWithIf)
    .split(d1_i, d1_i, d1_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(d1_u, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# W1_im_0_d_def__: compute_root
d0, d1 = W1_im_0_d_def__.args()
W1_im_0_d_def__.compute_root()
(W1_im_0_d_def__
    .split(d0, d0_o, d0_i, 64, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 16, hl.TailStrategy.RoundUp)
    .reorder(d0_i, d1_i, d0_o, d1_o)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))
r449_x, = W1_im_0_d_def__.rvars(0)
(W1_im_0_d_def__.update(0)
    .split(d0, d0_o, d0_i, 64, hl.TailStrategy.RoundUp)
    .split(d1, d1_o, d1_i, 64, hl.TailStrategy.RoundUp)
    .split(d1_i, d1_i, d1_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(d1_u, r449_x, d0_i, d1_i, d0_o, d1_o)
    .unroll(d1_u)
    .gpu_blocks(d0_o, d1_o)
    .gpu_threads(d0_i, d1_i))

# a1_1_d_def__: compute_root
a1_1_d_def__.compute_root()
(a1_1_d_def__
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# h1_0_d_def__: computed at a1_1_d_def__ loop f_o
h1_0_d_def__.compute_at(a1_1_d_def__, f_o)
h1_0_d_def__.store_in(hl.MemoryType.GPUShared)
(h1_0_d_def__
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))
r346_x, = h1_0_d_def__.rvars(0)
(h1_0_d_def__.update(0)
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .split(n_i, n_i, n_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(n_u, r346_x, f_i, n_i, f_o, n_o)
    .unroll(n_u)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))

# a2_1_d_def__: compute_root
a2_1_d_def__.compute_root()
(a2_1_d_def__
    .split(f, f_o, f_i, 16, hl.TailStrategy.RoundUp)
    .split(f_i, f_i, f_u, 2, hl.TailStrategy.GuardWithIf)
    .unroll(f_u)
    .gpu_blocks(f_o, n)
    .gpu_threads(f_i))

# h2_0_d_def__: computed at a2_1_d_def__ loop f_o
h2_0_d_def__.compute_at(a2_1_d_def__, f_o)
h2_0_d_def__.store_in(hl.MemoryType.GPUShared)
(h2_0_d_def__
    .split(f, f_o, f_i, 8, hl.TailStrategy.RoundUp)
    .reorder(n, f_i, f_o)
    .gpu_threads(f_i)
    .never_partition([n, f_o]))
r264_x, = h2_0_d_def__.rvars(0)
(h2_0_d_def__.update(0)
    .split(f, f_o, f_i, 16, hl.TailStrategy.RoundUp)
    .split(f_i, f_i, f_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(f_u, r264_x, n, f_i, f_o)
    .unroll(f_u)
    .gpu_threads(f_i)
    .never_partition([n, f_o]))

# a3_1_d_def__: compute_root
a3_1_d_def__.compute_root()
(a3_1_d_def__
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# h3_0_d_def__: computed at a3_1_d_def__ loop f_o
h3_0_d_def__.compute_at(a3_1_d_def__, f_o)
h3_0_d_def__.store_in(hl.MemoryType.GPUShared)
(h3_0_d_def__
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))
r182_x, = h3_0_d_def__.rvars(0)
(h3_0_d_def__.update(0)
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 8, hl.TailStrategy.RoundUp)
    .split(n_i, n_i, n_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(n_u, r182_x, f_i, n_i, f_o, n_o)
    .unroll(n_u)
    .gpu_threads(f_i, n_i)
    .never_partition([f_o, n_o]))

# a4_1_d_def__: compute_root
a4_1_d_def__.compute_root()
(a4_1_d_def__
    .split(f, f_o, f_i, 32, hl.TailStrategy.RoundUp)
    .split(n, n_o, n_i, 16, hl.TailStrategy.RoundUp)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# bce_sum_1_d_def__: compute_inline
bce_sum_1_d_def__.compute_inline()

# loss0_0_d_def__: compute_inline
loss0_0_d_def__.compute_inline()

# adjoint: compute_inline
adjoint.compute_inline()

# loss: compute_root
(loss
    .gpu_single_thread()
    .never_partition([i]))

# loss0: compute_inline
loss0.compute_inline()

# bce_sum: compute_root
bce_sum.compute_root()
bce_sum.gpu_single_thread()
bce_r_x, bce_r_y = bce_sum.rvars(0)
# bce_sum.update(0): rfactor over 256 partial results
_bce_sum_rf1 = bce_sum.update(0).split(bce_r_x, rf1_o, rf1_i, 256, hl.TailStrategy.GuardWithIf).rfactor(rf1_i, rf1_u)
_bce_sum_rf1.compute_root()
(_bce_sum_rf1
    .split(rf1_u, rf1_u_o, rf1_u_i, 256, hl.TailStrategy.GuardWithIf)
    .reorder(rf1_u_i, rf1_u_o)
    .gpu_blocks(rf1_u_o)
    .gpu_threads(rf1_u_i))
(_bce_sum_rf1.update(0)
    .split(rf1_u, rf1_u_o, rf1_u_i, 256, hl.TailStrategy.GuardWithIf)
    .reorder(rf1_o, bce_r_y, rf1_u_i, rf1_u_o)
    .gpu_blocks(rf1_u_o)
    .gpu_threads(rf1_u_i))
(bce_sum.update(0)
    .reorder(rf1_i)
    .gpu_single_thread())

# a4: compute_root
a4.compute_root()
(a4
    .split(f, f_o, f_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n_i, n_i, n_u, 2, hl.TailStrategy.GuardWithIf)
    .reorder(n_u, f_i, n_i, f_o, n_o)
    .unroll(n_u)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))
a4_r_x, = a4.rvars(0)
(a4.update(0)
    .split(f, f_o, f_i, 64, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n_i, n_i, n_u, 2, hl.TailStrategy.GuardWithIf)
    .reorder(n_u, a4_r_x, f_i, n_i, f_o, n_o)
    .unroll(n_u)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# h3: compute_root
h3.compute_root()
(h3
    .split(f, f_o, f_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 8, hl.TailStrategy.GuardWithIf)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# a3: compute_root
a3.compute_root()
(a3
    .split(f, f_o, f_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 16, hl.TailStrategy.GuardWithIf)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))
a3_r_x, = a3.rvars(0)
(a3.update(0)
    .split(f, f_o, f_i, 64, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 16, hl.TailStrategy.GuardWithIf)
    .reorder(a3_r_x, f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))

# h2: compute_inline
h2.compute_inline()

# a2: compute_root
a2.compute_root()
(a2
    .split(f, f_o, f_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 16, hl.TailStrategy.GuardWithIf)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))
a2_r_x, = a2.rvars(0)
(a2.update(0)
    .split(f, f_o, f_i, 16, hl.TailStrategy.GuardWithIf)
    .split(f_i, f_i, f_u, 2, hl.TailStrategy.GuardWithIf)
    .reorder(f_u, a2_r_x, f_i, f_o, n)
    .unroll(f_u)
    .gpu_blocks(f_o, n)
    .gpu_threads(f_i))

# h1: compute_inline
h1.compute_inline()

# a1: compute_root
a1.compute_root()
(a1
    .split(f, f_o, f_i, 32, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 16, hl.TailStrategy.GuardWithIf)
    .reorder(f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))
a1_r_x, = a1.rvars(0)
(a1.update(0)
    .split(f, f_o, f_i, 64, hl.TailStrategy.GuardWithIf)
    .split(n, n_o, n_i, 16, hl.TailStrategy.GuardWithIf)
    .reorder(a1_r_x, f_i, n_i, f_o, n_o)
    .gpu_blocks(f_o, n_o)
    .gpu_threads(f_i, n_i))
