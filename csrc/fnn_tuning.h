/* fnn_tuning.h: every machine-tuning constant of the kernels, in one place, with the
 * measurement that chose it. Units: MACs are multiply-adds of one training step (batch size
 * x sum of n_in * n_out); "the VM" is the development machine, a shared 2-core x86-64 KVM
 * guest with AVX-512 (1 MB L2 per core).
 *
 * The first group are the defaults of fnn_tune (fnn.h fnn_tuning), which Python can read and
 * change at run time (fastnn._kernels.get_tuning / set_tuning; the tests force paths with
 * them). The second group are compile-time constants of the batched work plan and predict.
 * Re-measure a threshold with benchmarks/tuning_sweep.py (set_tuning overrides, CPU time).
 */
#ifndef FNN_TUNING_H
#define FNN_TUNING_H

/* Fused per-sample path when every layer has <= this many units. Measured (float32, 1
 * thread, CPU time per fit epoch, shared VM, benchmarks/tuning_sweep.py): digits-16 b10 78 ms
 * fused vs 182 ms batched (narrow_max=8); mlp-128 b64 (128 units) 88-89 ms batched vs
 * 102-104 ms fused (narrow_max=128). So the cut lies between 16 and 128 units; 64 is the
 * first kernels' choice within it (no network between 64 and 128 units was measured). */
#define FNN_TUNE_NARROW_MAX 64

/* gemm for a layer when min(n_in, n_out) >= FNN_TUNE_GEMM_MIN and the batch has at least
 * FNN_TUNE_GEMM_MIN_B rows; below that BLAS's call and packing overhead exceeds the per-row
 * kernels. Measured as above: wide-512 b256 110-132 ms per 5120-row epoch with gemm vs 281-287
 * ms without (gemm_min=600 or 100000); mlp-128 b64 (gemm on its 128x64 layer) 88-89 ms with
 * vs 81-94 ms without: a tie, so 32 is not sharp; gemm_min_b = 8 is the first kernels' choice
 * (not measured). The 10-unit output layers stay on the per-row kernels. */
#define FNN_TUNE_GEMM_MIN 32
#define FNN_TUNE_GEMM_MIN_B 8

/* MACs per training step from which steps are shared between threads (below: the per-sample
 * path's own factor). Measured when that path split the samples of a step (AMD). Was 50M ("the barriers lose to
 * one thread"), from before the spinning team barrier. Re-measured on the shared 2-core VM,
 * float32, one build with 100k and 50M taking turns in two processes, each way round (12-20
 * rounds): digits-16 b10 (0.13M MACs) 1.19-1.26x, b32 (0.41M) 1.15-1.16x, b8 (0.10M)
 * 1.12-1.15x, nielsen-30 b10 (0.24M) 1.11x; b4 (0.05M) 0.37x one way, 0.95x the other. In
 * phases when the host takes one of the VM's cores a shared step runs about half as fast
 * (seen in a few b8 rounds): one thread stays the choice below 100k. */
#define FNN_TUNE_PAR_MIN_WORK 100000

/* The per-sample path now shares such a step by parts of layer 0's inputs (fnn_narrow.h;
 * three barriers a step, the next step's rows fetched during the second phase). Intel Xeon
 * VM (2 cores, AVX-512), float32, real MNIST, 2 threads vs one, probe off: the earlier
 * sample split moved layer 0's rows between the cores every step, digits-16 b10 0.75x; by
 * parts, digits-16 b10 (0.13M MACs) 1.29-1.33x, nielsen-30 b10 (0.24M) 1.40-1.45x, b32 (0.41M)
 * 1.4x; below the threshold, b4 (0.05M) 0.93x and b1 0.90x (one thread on parts is ~5% slower
 * than its whole-row sums, which smaller steps keep). */

/* The shared per-sample step trades half the weights between the cores every step, so its
 * gain hangs on how fast they trade cache lines. On a Zen 4 host (family 25 model 17) digits-16
 * b10 ran, one build, 2 threads: 0.06-0.07 s an epoch slice in some phases, 0.20 s in others
 * (minutes long, no steal time, one thread 0.08 s throughout). So a train call that shares
 * its steps first times PROBE_STEPS steps each way, runs the rest the faster way, and probes
 * again after PROBE_EVERY_S seconds (any thread count gives the same bits). */
#ifndef FNN_TUNE_NARROW_PROBE_STEPS   /* (-D: benchmarks force the threads) */
#define FNN_TUNE_NARROW_PROBE_STEPS 48
#endif
#define FNN_TUNE_NARROW_PROBE_EVERY_S 0.5

/* The per-sample SGD path trains on a copy of layer 0 whose rows start on cache lines when
 * n[1] <= this and its rows (n[1] values) are not a whole number of lines: a row of 30 floats
 * is 120 bytes, and most vector loads and stores of such rows straddle two lines. Measured
 * first as networks (Zen 4, 2 threads, 12 rounds taking turns): 784-32-10 trained 733k
 * samples/s, 784-30-10 684k, with 7% more arithmetic. With the padded copy (same bits),
 * nielsen-30 b10, old and new builds taking turns both ways round (10 rounds, a CI run
 * sharing the machine): 1.13x / 1.11x and 1.19x / 1.16x (median ratio / ratio of medians). */
#define FNN_TUNE_W0PAD_MAX 64

/* Rows ahead of a one-thread per-sample loop that a second thread reads them (fnn_fetch.h;
 * 0: no helper). digits-16 b1, Intel Xeon VM, x evicted before each fit call (600 MB touched),
 * builds taking turns: none 1.04-1.05M samples/s, 4 rows 1.03-1.09M, 16 1.12-1.13M, 64
 * 1.09-1.11M; in fastnn bench (engines taking turns) 1.00-1.03M -> 1.10-1.13M. */
#define FNN_TUNE_FETCH_AHEAD 16

/* 1: layer 0 skips zero inputs (MNIST rows are ~80% zeros). */
#define FNN_TUNE_SPARSE 1

/* KB of a layer-0 column block (the sparse passes keep n[0] rows x block in L2): 400 KB is 128
 * columns of a 784-row float32 layer 0, within the VM's 1 MB L2. */
#define FNN_TUNE_COLBLOCK_KB 400

/* MACs per step before the batched path cuts each step in fixed pieces that threads share:
 * wide-512 b256 (171M MACs) runs up to 1.8x faster on 2 threads of a quiet VM; mlp-128 b64
 * (7M) lost 20% on one thread to the pieces and 2 threads lost to 1 on the shared VM. */
#define FNN_TUNE_PAR_MIN_WORK_BATCH 20000000

/* MACs per step from which the batched path cuts steps in pieces when 2+ threads run (below
 * FNN_TUNE_PAR_MIN_WORK_BATCH one thread keeps the whole-step plan: the pieces cost it 12-13%).
 * Measured on the quiet VM, 2 threads, wall time, A/B in alternation: mlp-128 b64 (7M MACs)
 * 380-407k samples/s in pieces vs 229-246k whole (1 thread: 201k vs 229k); 784-128-128-10
 * b128 (15M) 309k vs 210k; 784-64-64-10 (7M) 334k vs 289k; 784-32-32-10 (3.4M) 529k vs 506k. */
#define FNN_TUNE_PAR_MIN_WORK_CHUNKS 1000000

/* MACs per step from which a narrow network leaves the per-sample path for the batched one in
 * pieces, when 2+ threads run. Measured on the quiet VM, 2 threads, wall time, A/B in
 * alternation, batch 128: 784-64-64-10 (7.1M MACs) 513-555k samples/s in pieces vs 338-344k
 * per sample. 784-32-32-10 (3.4M) was undecided in alternation within one process; with the
 * old and new builds taking turns in two processes (16 rounds) pieces won 1.41x (781k vs 544k)
 * once the per-step layer-0 lookups and the fused input check had landed. Just above 2M:
 * digits-16 b200 (2.6M) 1.06x, nielsen-30 b100 (2.4M) 1.04x, both within noise. digits-16 at
 * batch 10 (0.13M) is far below. */
#define FNN_TUNE_NARROW_PIECES_MIN 2000000

/* 1: the batched sparse layer-0 forward (training and predict) takes 4 samples at a time on
 * AVX-512 builds (fnn_batch.h quad_tile). Measured on the VM, 2 threads, float32, quad0 0 and 1
 * taking turns (10-12 rounds): mlp-128 b64 1.11x (60k-row rounds, every round faster),
 * wide-512 b256 1.11x, 784-W-W-10 b128 W = 256 1.06x, 128 1.04x, 64 1.04x; 10k-row predict
 * mlp-128 7.4 -> 6.3 ms, wide-512 39.4 -> 32.3 ms. The same sums (tests/test_cython_backend.py
 * test_layer0_forward_in_quads_matches_one_sample_at_a_time). */
#define FNN_TUNE_QUAD0 1

/* 1: float32 gemm with n % 32 == 0 uses our AVX-512 kernel (AVX-512 build only): scipy's
 * OpenBLAS runs its AVX2 (Haswell) kernel on AVX-512 machines. */
#define FNN_TUNE_OWN_GEMM 1

/* Layer-0 units from which the batched step updates layer 0 in groups of 4 input rows
 * (fnn_sparse0.h) instead of row by row from the batch's nonzeros regrouped by input row
 * (fnn_batch_step.h task_sparse0). First measured (float32, 1 thread, CPU time, shared VM,
 * 784-W-W-10 momentum b128): W = 512 1.21x grouped, 256 1.10x, 128 0.86x, 64 a tie; so 256.
 * Re-measured once the grouped path tested its 4 inputs with one OR of their bits, the forward
 * took quads and a dominant layer got a task per chunk (FNN_TUNE_TASK_WORK), old and new
 * settings taking turns (60k-row rounds, 20-60 rounds): 2 threads, W = 32 1.10x grouped, 64
 * 1.15x, 128 1.05x, nielsen-30 b100 1.12x, digits-16 b200 1.00x, mlp-128 b64 Adam 0.99x; 1
 * thread, mlp-128 1.07x, W = 64 1.01x. So every width takes the grouped path; the row-by-row
 * one stays for set_tuning (tests force both). */
#define FNN_TUNE_S0_GROUP_MIN 1

/* Sample chunks of a chunked batched step (phase 1): 2 pieces, as many as the 2-core target
 * has cores; each gemm piece packs the whole other operand again (4 pieces cost 10% on one
 * thread for wide-512, 2 about half that), and the plan must not depend on the thread
 * count. 4 pieces re-measured with the quad forward (2 threads, builds taking turns): the
 * time-to-98% recipe's epoch (784-256-10 b128) 0.91x, 784-256-256-10 1.06x and mlp-128 1.03x
 * (both noisy), so 2 stays. Threads owning column ranges of the sparse layer 0 instead
 * (forward and update of their columns for the whole batch, so W0 and its state never move
 * between cores; the update's lists built once and shared; the same bits) were slower on the
 * Intel Xeon VM: 784-256-10 b128 epoch 0.20 s against 0.175 s, the two extra barriers a step
 * and the cores reading each other's quads, activations and deltas costing more than W0's
 * moves (barrier waits 18% of the CPU time against 7%). */
#define FNN_TUNE_BATCH_CHUNKS 2

/* Locality hint of the prefetches of a random input row (3 KB of MNIST, 49 lines):
 * prefetcht1 (2), not prefetcht0 (3). On Zen 4 a burst of 49 prefetcht0 left the row's scan
 * as slow as with no prefetch at all: microbenchmark (random rows of a 188 MB array, 2000
 * cycles of work between rows, the row fetched 1-3 rows ahead) scan 880-940 TSC ticks a row
 * with prefetcht0 or prefetchnta, 450-500 with prefetcht1 or prefetcht2, 2300 with none.
 * Training, 2 threads, old and new builds taking turns both ways round: digits-16 b1 1.40x and
 * 1.20x, b10 1.17x and 1.27x, nielsen-30 b10 1.13x and 1.01x, mlp-128 1.12x and 1.05x. */
#define FNN_TUNE_PREFETCH_LOCALITY 2

/* How many rows ahead the batched path's layer-0 pass fetches its input rows: it only scans
 * each row for nonzeros (100-300 ns), so one row ahead hid little of a memory access. 2
 * threads, builds taking turns (Zen 4, noisy): 8 ahead against 1, mlp-128 1.07x, 1.02-1.06x
 * and 0.98x, wide-512 1.04x (median of ratios; ratio of medians 0.99x) and 1.08x; 3 ahead a
 * tie; 32 (the whole chunk at once) against 8, 0.97x and a tie. Fetching the next step's
 * rows during the update instead (Intel Xeon VM, 784-256-10 b128, 2 threads): a tie; the
 * forward's wait on the fetches (21% of it) moved into the update, as a core's fetches from
 * memory queue on its few line-fill buffers wherever they are issued. */
#define FNN_TUNE_X_AHEAD 8

/* How many cache lines past its group the layer-0 update fetches each listed sample's input
 * row (fnn_sparse0.h s0_coefs). Why: W, its optimiser state and the deltas fill L2, the
 * batch's input rows fall out of it, and 14% of the update waited on those loads (perf,
 * 784-256-10 b128, one thread). 2 threads, builds taking turns, 4 runs each (Intel Xeon VM):
 * 784-256-10 b128 epoch 0.186 -> 0.176 s, wide-512 1.05x, mlp-128 1.05x; 2 lines ahead a
 * tie with 1. */
#define FNN_TUNE_S0_COEF_AHEAD 1

/* How far ahead (values) update_params fetches the parameter lines it will write, with write
 * intent (fnn_isa_common.h FNN_PREFETCH_W): the other core read them in the forward pass.
 * Intel Xeon VM, 2 threads, builds taking turns: wide-512 b256 1.03-1.04x (128, 256 and 512
 * alike); together with the layer-0 update's rows (fnn_sparse0.h) 1.07x, mlp-128 b64 1.09x,
 * the time-to-98% recipe's epoch (784-256-10 b128) 0.130 -> 0.116 s; 1 thread a tie. */
#define FNN_TUNE_PARAMS_AHEAD 256

/* Update tasks per layer of a chunked step: one per FNN_TUNE_TASK_WORK MACs of the layer's
 * gradient, at most ..._SPARSE0 for the sparse layer 0 (uneven rows: more, smaller tasks
 * balance better), ..._ROWS for per-row kernels and ..._GEMM for gemm layers (each gemm task
 * packs the deltas again). wide-512 b256 has more work than the caps either way. 3M, not 2M:
 * mlp-128 b64 then cuts layer 0 in 2 tasks, not 3 (each task scans the whole batch's nonzeros
 * for its rows), 1.13x and 1.05x in two runs of the old and new settings taking turns (2
 * threads, 12-16 rounds); 784-64-64-10 b128 0.97x and 784-128-128-10 1.05x (noise); 1M:
 * mlp-128 0.96x. A layer with half the step's multiply-adds or more gets at least one task per
 * chunk (fnn_batch_step.h batch_plan): 784-32-32-10 b128 had 1 layer-0 task, and one core
 * updated layer 0 while the other waited at the barrier (perf: 18% of the time). 2 threads,
 * grouped layer-0 update, 60k-row rounds taking turns: 784-32-32-10 1.29x (50 rounds),
 * digits-16 b200 1.18x (30 rounds). A layer with an eighth of FNN_TUNE_TASK_WORK or more
 * also gets one task per chunk: mlp-128's layer 1 (128x64, b64) was one task, run last by one
 * core while the other waited (per-thread phase timers: 8.5 us of a 155 us step); in two
 * pieces the wait fell to 1.3 us. Zen 4, 2 threads, old and new taking turns, both ways round:
 * mlp-128 1.01x, 1.025x, 1.00x, 1.014x; 784-128-128-10 b128 1.036x, 1.041x; 784-64-64-10 a tie. */
#define FNN_TUNE_TASK_WORK 3000000
#define FNN_TUNE_TASKS_SPARSE0 8
#define FNN_TUNE_TASKS_ROWS 4
#define FNN_TUNE_TASKS_GEMM 2

/* Threads take a step's chunks and tasks own ones first (thread t: items t, t + T, ...), then
 * steal the rest (fnn.h fnn_team_take), where they took them from a shared counter before: a
 * task's rows (and their optimiser state) changed cores between steps. Intel Xeon VM, 2
 * threads, builds taking turns: wide-512 b256 1.01x (per-sample CPU time of the layer-0
 * update 3.21 -> 3.00 us, of layer 1's 0.74 -> 0.64 us; one thread: 2.46 and 0.30 us),
 * mlp-128 b64 1.06x (480k -> 510k samples/s), 784-256-10 b128 a tie. */

/* predict: a call wakes its threads for itself (training wakes them once per fit call), so
 * it takes FNN_TUNE_PREDICT_PAR_FACTOR times the training threshold (3.2M MACs, about the
 * 50M / 16 it was before the training threshold fell); rows are taken
 * FNN_TUNE_PREDICT_ROWS_PER_TAKE at a time (a few per thread for 10k-row calls). */
#define FNN_TUNE_PREDICT_PAR_FACTOR 32
#define FNN_TUNE_PREDICT_ROWS_PER_TAKE 128

/* Values from which the input check (abs_peak) splits the array over the fastnn threads: it
 * runs at memory speed, and one core does not saturate the memory bus. Measured on the shared
 * VM (60000 x 784 float32, median of 21): 5.6-6.1 ms on 1 thread, 2.9-3.1 ms on 2. Below about
 * a million values one pass takes tens of microseconds, less than waking a thread. */
#define FNN_TUNE_PEAK_PAR_MIN (1 << 20)

/* Team barrier: pause-spin this many rounds (~20-50 us on the VM, an ordinary imbalance on a
 * quiet machine), then sched_yield (on an oversubscribed machine a spinning waiter keeps its
 * partner off the core). */
#define FNN_TUNE_BARRIER_SPINS 1000

#endif
