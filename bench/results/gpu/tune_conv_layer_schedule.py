# Best schedule of conv_layer {'ci': 64, 'co': 64, 'width': 56, 'height': 56, 'batch': 1}, target x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-avxvnni-cuda-cuda_capability_86-f16c-fma-sse41, 0.09814 ms
# Schedule from autoscheduler.state: 8 decisions, target x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-avxvnni-cuda-cuda_capability_86-f16c-fma-sse41, parallelism 132
relu = pipeline.get_func(4)
conv = pipeline.get_func(3)
c = hl.Var('c')
c_i = hl.Var('c_i')
c_o = hl.Var('c_o')
n = hl.Var('n')
x = hl.Var('x')
y = hl.Var('y')
y_i = hl.Var('y_i')
y_o = hl.Var('y_o')
y_u = hl.Var('y_u')

# relu: compute_root
# sizes of at least one tile: constant tiles (ShiftInwards); smaller: guarded
_relu_tiled = relu.specialize((relu.output_buffer().dim(0).extent() >= 64) & (relu.output_buffer().dim(2).extent() >= 8))
(_relu_tiled
    .split(c, c_o, c_i, 64, hl.TailStrategy.ShiftInwards)
    .split(y, y_o, y_i, 8, hl.TailStrategy.ShiftInwards)
    .reorder(n, c_i, y_i, c_o, x, y_o)
    .gpu_blocks(c_o, x, y_o)
    .gpu_threads(c_i, y_i)
    .never_partition([n]))
(relu
    .split(c, c_o, c_i, 64, hl.TailStrategy.GuardWithIf)
    .split(y, y_o, y_i, 8, hl.TailStrategy.GuardWithIf)
    .reorder(n, c_i, y_i, c_o, x, y_o)
    .gpu_blocks(c_o, x, y_o)
    .gpu_threads(c_i, y_i)
    .never_partition([n]))

# conv: computed at relu loop c_o
conv.compute_at(relu, c_o)
conv.store_in(hl.MemoryType.GPUShared)
(conv
    .split(c, c_o, c_i, 64, hl.TailStrategy.GuardWithIf)
    .split(y, y_o, y_i, 8, hl.TailStrategy.GuardWithIf)
    .split(y_i, y_i, y_u, 4, hl.TailStrategy.GuardWithIf)
    .reorder(y_u, x, n, c_i, y_i, c_o, y_o)
    .unroll(y_u)
    .gpu_threads(c_i, y_i)
    .never_partition([x, n, c_o, y_o]))
r_x, r_y, r_z = conv.rvars(0)
(conv.update(0)
    .split(c, c_o, c_i, 64, hl.TailStrategy.GuardWithIf)
    .split(y, y_o, y_i, 8, hl.TailStrategy.GuardWithIf)
    .split(y_i, y_i, y_u, 2, hl.TailStrategy.GuardWithIf)
    .reorder(y_u, r_x, r_y, r_z, x, n, c_i, y_i, c_o, y_o)
    .unroll(y_u)
    .gpu_threads(c_i, y_i)
    .never_partition([x, n, c_o, y_o]))
