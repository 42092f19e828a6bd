/* Batch normalisation over N x HW per channel, split into sums / apply steps so that sync-BN
 * can allreduce the per-channel sums in between. Sums are in double: a channel can hold
 * millions of values, and var = E[x^2] - mean^2 cancels badly in float. OpenMP over channels;
 * every channel's result is computed by one thread in a fixed order, so results do not depend
 * on the thread count. */
#include "dprune/nn.h"
#include <math.h>

/* ---- per-channel pieces, shared by the split API and the one-call convenience versions so
 * that both give bit-identical results. x[n,c,i] = x[(n*C + c)*HW + i]. */

// sum x and sum x^2 over the N*HW values of channel c
static void channel_sums(int N, int C, int HW, int c, const float *x, double *s1, double *s2) {
    double a = 0.0, b = 0.0;
    for (int n = 0; n < N; n++) {
        const float *xc = x + ((size_t)n * C + c) * HW;
        /* simd: lets the compiler keep one partial sum per vector lane (a fixed order for a
         * given build, so results stay deterministic); a strict serial sum cannot vectorise */
#pragma omp simd reduction(+ : a, b)
        for (int i = 0; i < HW; i++) {
            double v = xc[i];
            a += v;
            b += v * v;
        }
    }
    *s1 = a, *s2 = b;
}

static void channel_forward(int N, int C, int HW, int c, const float *x, double s1, double s2,
                            double count, const float *gamma, const float *beta, float eps,
                            float momentum, float *running_mean, float *running_var, float *mean,
                            float *invstd, float *y) {
    double m = s1 / count;
    double var = s2 / count - m * m; // biased: what normalises this batch
    if (var < 0.0) var = 0.0;        // rounding can make it slightly negative
    double is = 1.0 / sqrt(var + (double)eps);
    mean[c] = (float)m;
    invstd[c] = (float)is;
    // running stats as PyTorch: unbiased variance, run = (1-momentum)*run + momentum*stat
    if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)m;
    if (running_var) {
        double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
    }
    // y = gamma*(x-mean)*invstd + beta = x*scale + shift
    float scale = gamma[c] * (float)is, shift = beta[c] - (float)m * scale;
    for (int n = 0; n < N; n++) {
        const float *xc = x + ((size_t)n * C + c) * HW;
        float *yc = y + ((size_t)n * C + c) * HW;
        for (int i = 0; i < HW; i++) yc[i] = xc[i] * scale + shift;
    }
}

// sum dy and sum dy*xhat over channel c
static void channel_dsums(int N, int C, int HW, int c, const float *x, const float *dy,
                          const float *mean, const float *invstd, double *g1, double *g2) {
    double a = 0.0, b = 0.0;
    const float m = mean[c], is = invstd[c];
    for (int n = 0; n < N; n++) {
        const float *xc = x + ((size_t)n * C + c) * HW, *dc = dy + ((size_t)n * C + c) * HW;
#pragma omp simd reduction(+ : a, b)
        for (int i = 0; i < HW; i++) {
            a += dc[i];
            b += (double)dc[i] * ((xc[i] - m) * is);
        }
    }
    *g1 = a, *g2 = b;
}

/* dx += gamma*invstd*(dy - gsum/count - xhat*gxsum/count): the gradient through the batch
 * mean and variance, with the (possibly global) sums g1 = sum dy, g2 = sum dy*xhat. */
static void channel_dx(int N, int C, int HW, int c, const float *x, const float *dy,
                       const float *gamma, const float *mean, const float *invstd, double g1,
                       double g2, double count, float *dx) {
    const float m = mean[c], is = invstd[c];
    const float k = gamma[c] * is;
    const float mdy = (float)(g1 / count), mdyx = (float)(g2 / count);
    for (int n = 0; n < N; n++) {
        const float *xc = x + ((size_t)n * C + c) * HW, *dc = dy + ((size_t)n * C + c) * HW;
        float *gc = dx + ((size_t)n * C + c) * HW;
        for (int i = 0; i < HW; i++) {
            float xhat = (xc[i] - m) * is;
            gc[i] += k * (dc[i] - mdy - xhat * mdyx);
        }
    }
}

/* ---------------- public API */

// x: [N,C,HW] -> sums: [2C] = (sum x per channel, sum x^2 per channel)
void batchnorm_sums(int N, int C, int HW, const float *x, double *sums) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) channel_sums(N, C, HW, c, x, &sums[c], &sums[C + c]);
}

// x: [N,C,HW], sums: [2C] -> mean, invstd: [C], y: [N,C,HW]; running stats updated in place
void batchnorm_forward_from_sums(int N, int C, int HW, const float *x, const double *sums,
                                 double count, const float *gamma, const float *beta, float eps,
                                 float momentum, float *running_mean, float *running_var,
                                 float *mean, float *invstd, float *y) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        channel_forward(N, C, HW, c, x, sums[c], sums[C + c], count, gamma, beta, eps, momentum,
                        running_mean, running_var, mean, invstd, y);
}

void batchnorm_forward_train(int N, int C, int HW, const float *x, const float *gamma,
                             const float *beta, float eps, float momentum, float *running_mean,
                             float *running_var, float *mean, float *invstd, float *y) {
    const double count = (double)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s1, s2;
        channel_sums(N, C, HW, c, x, &s1, &s2);
        channel_forward(N, C, HW, c, x, s1, s2, count, gamma, beta, eps, momentum, running_mean,
                        running_var, mean, invstd, y);
    }
}

// x: [N,C,HW] -> y: [N,C,HW] normalised with the running statistics
void batchnorm_forward_eval(int N, int C, int HW, const float *x, const float *gamma,
                            const float *beta, float eps, const float *running_mean,
                            const float *running_var, float *y) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float is = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        float scale = gamma[c] * is, shift = beta[c] - running_mean[c] * scale;
        for (int n = 0; n < N; n++) {
            const float *xc = x + ((size_t)n * C + c) * HW;
            float *yc = y + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yc[i] = xc[i] * scale + shift;
        }
    }
}

// x, dy: [N,C,HW], mean, invstd: [C] -> dsums: [2C] = (sum dy, sum dy*xhat)
void batchnorm_backward_sums(int N, int C, int HW, const float *x, const float *dy,
                             const float *mean, const float *invstd, double *dsums) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        channel_dsums(N, C, HW, c, x, dy, mean, invstd, &dsums[c], &dsums[C + c]);
}

void batchnorm_backward_from_sums(int N, int C, int HW, const float *x, const float *dy,
                                  const float *gamma, const float *mean, const float *invstd,
                                  const double *local_dsums, const double *global_dsums,
                                  double count, float *dx, float *dgamma, float *dbeta) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        // parameter grads from the local sums: the gradient allreduce adds the ranks up later
        if (dgamma) dgamma[c] += (float)local_dsums[C + c];
        if (dbeta) dbeta[c] += (float)local_dsums[c];
        if (dx)
            channel_dx(N, C, HW, c, x, dy, gamma, mean, invstd, global_dsums[c],
                       global_dsums[C + c], count, dx);
    }
}

void batchnorm_backward(int N, int C, int HW, const float *x, const float *dy, const float *gamma,
                        const float *mean, const float *invstd, float *dx, float *dgamma,
                        float *dbeta) {
    const double count = (double)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double g1, g2;
        channel_dsums(N, C, HW, c, x, dy, mean, invstd, &g1, &g2);
        if (dgamma) dgamma[c] += (float)g2;
        if (dbeta) dbeta[c] += (float)g1;
        if (dx) channel_dx(N, C, HW, c, x, dy, gamma, mean, invstd, g1, g2, count, dx);
    }
}
