/* dprune nn: one file per op under src/nn/, each with forward, backward, FLOPs, and a
 * kept naive reference where a fast kernel exists. Pure kernels on raw float arrays:
 * no graph, no MPI, no allocation inside forward/backward (callers pass workspaces).
 *
 * Conventions
 * - Layout NCHW float32. N = samples in this call, C = channels, H x W spatial.
 * - Gradients ACCUMULATE (+=) into dx and into parameter gradients; callers zero them.
 *   This makes branching (residual streams) and gradient accumulation free.
 * - dx may be NULL when the input needs no gradient (the network input).
 * - FLOPs are multiply-accumulates of conv and linear only (pruning-literature convention).
 */
#ifndef DPRUNE_NN_H
#define DPRUNE_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------- conv2d: y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n,c,p*st+r-pad,q*st+s-pad]
 */
typedef struct {
    int N, C, H, W; /* input */
    int K, R, S;    /* output channels, kernel height, width */
    int stride, pad;
    int P, Q; /* output height, width (derived) */
} conv2d_shape;

void conv2d_shape_init(conv2d_shape *s, int N, int C, int H, int W, int K, int R, int S, int stride,
                       int pad);
int64_t conv2d_flops(const conv2d_shape *s); /* per whole batch N: N*K*P*Q*C*R*S */
/* Floats of scratch the fast forward/backward need (im2col buffers, per-thread partial dW).
 * nthreads = threads that will run the kernel (omp_get_max_threads() at call time, i.e.
 * dp_threads_count()). The kernels run min(omp_get_max_threads(), N, what ws_floats allows)
 * threads, so a workspace sized for fewer threads is safe (just slower); one too small for
 * even one thread (or ws == NULL) falls back to the naive loops. */
size_t conv2d_workspace_floats(const conv2d_shape *s, int nthreads);
/* x [N,C,H,W], w [K,C,R,S], b [K] or NULL -> y [N,K,P,Q] (overwritten).
 * ws: scratch of ws_floats floats (see conv2d_workspace_floats). */
void conv2d_forward(const conv2d_shape *s, const float *x, const float *w, const float *b, float *y,
                    float *ws, size_t ws_floats);
/* dy [N,K,P,Q] -> dx += [N,C,H,W] (if dx), dw += [K,C,R,S], db += [K] (if db).
 * dw is deterministic for a given thread count (fixed-order reduction of per-thread parts). */
void conv2d_backward(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db, float *ws, size_t ws_floats);
/* The forward's transformed weights, kept for the backward of the same weights (Winograd
 * layers): dx then skips one weight transform per layer and step (~8 ms of a vgg16 step at
 * batch 32, perf).
 * u: conv2d_kept_floats(s) floats for s at the largest batch (0 for shapes that never run on
 * Winograd, and u may be NULL); valid: set
 * by the forward that wrote u, read by the backward. The weights must not change in between,
 * which backward requires anyway (it uses the forward's activations).
 * ready: u already holds the transform of the current weights (conv2d_prepare_kept), so the
 * forward uses it instead of transforming again; whoever changes the weights clears it. */
typedef struct {
    float *u;
    bool valid, ready;
} conv2d_kept;
size_t conv2d_kept_floats(const conv2d_shape *s);
/* Transforms part `part` of `parts` of w into keep->u (nothing if u is NULL: a layer that
 * keeps nothing) and sets keep->ready. Processes that share u each write one part of it (runs
 * of whole cache lines); they must all be done before any forward reads it. */
void conv2d_prepare_kept(const conv2d_shape *s, const float *w, conv2d_kept *keep, int part,
                         int parts);
/* conv2d_forward that also fills *keep when it runs on Winograd (keep->valid says whether) */
void conv2d_forward_keep(const conv2d_shape *s, const float *x, const float *w, const float *b,
                         float *y, float *ws, size_t ws_floats, conv2d_kept *keep);
/* conv2d_backward that reads keep->u for dx when keep->valid, and with set_grads writes dw
 * and db instead of adding to them (their old contents are ignored: a step's first backward
 * then needs no cleared gradient buffer; the Winograd layers also skip reading dw). */
void conv2d_backward_kept(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db, bool set_grads, float *ws,
                          size_t ws_floats, const conv2d_kept *keep);
/* Which fast path conv2d_forward/backward take. AUTO: Winograd F(2x2,3x3) (forward, dx and
 * dW) for 3x3 stride-1 convs with enough channels, im2col + SGEMM otherwise.
 * Forcing WINOGRAD applies it to every 3x3 stride-1 conv (pad 0..2); others stay im2col.
 * Process-wide; for tests and benchmarks. The workspace size does not depend on it.
 * AUTO also runs small stride-1 convs (C*R*S <= 160, K <= 16, R*S > 1: lenet5's) as a direct
 * convolution; forcing DIRECT applies it to the stride-1 convs with pad < R and S, C*R*S <= 256
 * and K <= 64 (the workspace is sized for those only; others stay on im2col).
 * TAPS (one GEMM per kernel tap over the positions it reaches inside the map): AUTO takes it
 * for the Winograd shapes whose maps are so small that the taps multiply no more than
 * Winograd does (VGG's 2x2 and 1x1 maps) and the batch's gathered inputs fit in 2 MB;
 * forcing it applies it to every conv on maps of at most 64 positions (the workspace is sized
 * for those; others stay on im2col). */
typedef enum {
    CONV2D_ALGO_AUTO = 0,
    CONV2D_ALGO_IM2COL,
    CONV2D_ALGO_WINOGRAD,
    CONV2D_ALGO_DIRECT,
    CONV2D_ALGO_TAPS
} conv2d_algo;
void conv2d_set_algo(conv2d_algo algo);
void conv2d_forward_naive(const conv2d_shape *s, const float *x, const float *w, const float *b,
                          float *y);
void conv2d_backward_naive(const conv2d_shape *s, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db);

/* ---------------- batchnorm over N x HW per channel (BatchNorm2d; HW = 1 gives BatchNorm1d).
 * Training is split in steps so that sync-BN can sum statistics across ranks in between:
 *   batchnorm_sums -> (optional allreduce of the 2C doubles and the count) ->
 *   batchnorm_forward_from_sums.
 * Backward likewise: batchnorm_backward_sums -> (optional allreduce) ->
 * batchnorm_backward_from_sums.
 */
/* sums[0..C) = sum x, sums[C..2C) = sum x^2, over the N*HW values of each channel */
void batchnorm_sums(int N, int C, int HW, const float *x, double *sums);
/* count = number of values per channel behind sums (N*HW, or the global count).
 * Computes mean/invstd [C] (saved for backward), y = gamma*(x-mean)*invstd + beta, and updates
 * running stats: run = (1-momentum)*run + momentum*stat, running var uses the unbiased var. */
void batchnorm_forward_from_sums(int N, int C, int HW, const float *x, const double *sums,
                                 double count, const float *gamma, const float *beta, float eps,
                                 float momentum, float *running_mean, float *running_var,
                                 float *mean, float *invstd, float *y);
/* convenience: sums + forward_from_sums with count = N*HW */
void batchnorm_forward_train(int N, int C, int HW, const float *x, const float *gamma,
                             const float *beta, float eps, float momentum, float *running_mean,
                             float *running_var, float *mean, float *invstd, float *y);
void batchnorm_forward_eval(int N, int C, int HW, const float *x, const float *gamma,
                            const float *beta, float eps, const float *running_mean,
                            const float *running_var, float *y);
/* dsums[0..C) = sum dy, dsums[C..2C) = sum dy*xhat (xhat = (x-mean)*invstd) */
void batchnorm_backward_sums(int N, int C, int HW, const float *x, const float *dy,
                             const float *mean, const float *invstd, double *dsums);
/* dgamma += dsums[C+c], dbeta += dsums[c] use the LOCAL dsums (parameter grads are summed by the
 * gradient allreduce); dx += gamma*invstd*(dy - gsum/count - xhat*gxsum/count) uses the
 * (possibly global) gsums. Pass the same array twice for plain BN. */
void batchnorm_backward_from_sums(int N, int C, int HW, const float *x, const float *dy,
                                  const float *gamma, const float *mean, const float *invstd,
                                  const double *local_dsums, const double *global_dsums,
                                  double count, float *dx, float *dgamma, float *dbeta);
void batchnorm_backward(int N, int C, int HW, const float *x, const float *dy, const float *gamma,
                        const float *mean, const float *invstd, float *dx, float *dgamma,
                        float *dbeta);

/* ---------------- relu (n elements) */
void relu_forward(size_t n, const float *x, float *y);
/* uses y (the output) as the mask: dx += dy * (y > 0) */
void relu_backward(size_t n, const float *y, const float *dy, float *dx);
/* dx = dy * (y > 0), bitwise what relu_backward adds to a zeroed dx: for the first writer of a
 * gradient, which then needs no zero-fill beforehand */
void relu_backward_set(size_t n, const float *y, const float *dy, float *dx);

/* ---------------- pooling, square window k, stride, padding pad (max pads with -inf).
 * Output size: P = (H + 2*pad - k)/stride + 1. */
typedef struct {
    int N, C, H, W;
    int k, stride, pad;
    int P, Q;
} pool2d_shape;
void pool2d_shape_init(pool2d_shape *s, int N, int C, int H, int W, int k, int stride, int pad);
/* argmax [N,C,P,Q] = flat index h*W+w of the max inside its input plane, saved for backward */
void maxpool2d_forward(const pool2d_shape *s, const float *x, float *y, int32_t *argmax);
void maxpool2d_backward(const pool2d_shape *s, const int32_t *argmax, const float *dy, float *dx);
/* dx = the routed dy, zero elsewhere (bitwise maxpool2d_backward on a zeroed dx) */
void maxpool2d_backward_set(const pool2d_shape *s, const int32_t *argmax, const float *dy,
                            float *dx);
/* average pool; counts padded cells (count_include_pad = true, as PyTorch's default) */
void avgpool2d_forward(const pool2d_shape *s, const float *x, float *y);
void avgpool2d_backward(const pool2d_shape *s, const float *dy, float *dx);
/* global average pool: x [N,C,HW] -> y [N,C] */
void global_avgpool_forward(int N, int C, int HW, const float *x, float *y);
void global_avgpool_backward(int N, int C, int HW, const float *dy, float *dx);

/* ---------------- linear: y[n,o] = b[o] + sum_i w[o,i] x[n,i]  (w is [O,I], like PyTorch) */
int64_t linear_flops(int N, int I, int O);
void linear_forward(int N, int I, int O, const float *x, const float *w, const float *b, float *y);
void linear_backward(int N, int I, int O, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db);
void linear_forward_naive(int N, int I, int O, const float *x, const float *w, const float *b,
                          float *y);
void linear_backward_naive(int N, int I, int O, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db);

/* ---------------- residual add: y = a + b; backward: da += dy, db += dy */
void add_forward(size_t n, const float *a, const float *b, float *y);
void add_backward(size_t n, const float *dy, float *da, float *db);

/* ---------------- dropout (inverted): keep with prob 1-p, scale kept by 1/(1-p).
 * Per-sample randomness: sample i's mask comes from the stream (seed, sample_keys[i], layer_id),
 * so the mask does not depend on rank, thread or batch composition. mask [N*D] saved (0 or
 * 1/(1-p)). */
void dropout_forward(int N, int D, float p, uint64_t seed, const uint64_t *sample_keys,
                     uint64_t layer_id, const float *x, float *y, float *mask);
void dropout_backward(size_t n, const float *mask, const float *dy, float *dx);

/* ---------------- softmax cross-entropy with optional label smoothing eps:
 * target distribution = (1-eps) one_hot + eps/K. Returns the SUM of per-sample losses (in double)
 * over N samples; dlogits += (softmax - target) * grad_scale (grad_scale = 1/global_batch). */
double softmax_xent_forward_backward(int N, int K, const float *logits, const int32_t *labels,
                                     float label_smoothing, float grad_scale, float *dlogits);
/* loss sum only, and top-k correctness counts (k = 1 and 5) */
double softmax_xent_loss(int N, int K, const float *logits, const int32_t *labels,
                         float label_smoothing);
void topk_correct(int N, int K, const float *logits, const int32_t *labels, int64_t *top1,
                  int64_t *top5);

/* ---------------- ResNet option-A shortcut: y[n, pad_before + c, p, q] = x[n, c, p*stride,
 * q*stride]; the other output channels are zero. x [N,C,H,W] -> y [N,K,P,Q], P = ceil(H/stride).
 */
void shortcut_pad_forward(int N, int C, int H, int W, int K, int stride, int pad_before,
                          const float *x, float *y);
void shortcut_pad_backward(int N, int C, int H, int W, int K, int stride, int pad_before,
                           const float *dy, float *dx);

#endif
