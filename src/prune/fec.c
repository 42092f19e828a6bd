/* FEC (Geng & Niu 2024; METHODS.md section 5): filter entropy from channel similarity.
 *
 * A filter is compressed to one mean per input channel; channels whose means are close are
 * "similar" (Gaussian kernel with one bandwidth per layer, the median pair distance), and
 * the Leinster-Cobbold order-1 entropy of that similarity is 0 when all channels are alike
 * and ln c when all are far apart. Low entropy = redundant filter = pruned first.
 * The median is exact without storing the n*c*(c-1)/2 distances (67M for a 512x512 layer):
 * a radix selection over the bit patterns of the non-negative doubles, 16 bits per pass. */
#include "prune_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RADIX_BITS 16
#define RADIX_SIZE (1 << RADIX_BITS)

/* Non-negative doubles compare like their bit patterns read as unsigned integers. */
static uint64_t key_of(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double double_of(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* The k-th smallest (0-based) of the pair distances |means[j][a] - means[j][b]|, a < b, over
 * the n filters (rows of c means). hist: RADIX_SIZE counters of scratch. */
static double kth_pair_distance(const double *means, int n, int c, int64_t k, int64_t *hist) {
    uint64_t prefix = 0, mask = 0;
    for (int shift = 64 - RADIX_BITS; shift >= 0; shift -= RADIX_BITS) {
        memset(hist, 0, sizeof(int64_t) * RADIX_SIZE);
        for (int j = 0; j < n; j++) {
            const double *mj = means + (size_t)j * c;
            for (int a = 0; a < c; a++)
                for (int b = a + 1; b < c; b++) {
                    uint64_t u = key_of(fabs(mj[a] - mj[b]));
                    if ((u & mask) == prefix) hist[(u >> shift) & (RADIX_SIZE - 1)]++;
                }
        }
        int digit = 0;
        for (; digit < RADIX_SIZE - 1 && k >= hist[digit]; digit++) k -= hist[digit];
        prefix |= (uint64_t)digit << shift;
        mask |= (uint64_t)(RADIX_SIZE - 1) << shift;
    }
    return double_of(prefix);
}

/* Median of all pair distances of the layer (mean of the two middle ones for an even count);
 * 1e-12 when it is 0 or there are no pairs. */
static double layer_bandwidth(const double *means, int n, int c, int64_t *hist) {
    int64_t N = (int64_t)n * c * (c - 1) / 2;
    if (N <= 0) return 1e-12;
    double h = kth_pair_distance(means, n, c, (N - 1) / 2, hist);
    if (N % 2 == 0) h = 0.5 * (h + kth_pair_distance(means, n, c, N / 2, hist));
    return h > 0 ? h : 1e-12;
}

/* H = -(1/c) sum_a ln((1/c) sum_b Z[a,b]), Z = exp(-d^2 / (2h^2)), Z[a,a] = 1. rowsum: c
 * doubles of scratch. Each pair's kernel is computed once and added to both rows. */
static double filter_entropy(const double *m, int c, double h, double *rowsum) {
    double inv = 1.0 / (2.0 * h * h);
    for (int a = 0; a < c; a++) rowsum[a] = 1.0;
    for (int a = 0; a < c; a++)
        for (int b = a + 1; b < c; b++) {
            double d = m[a] - m[b], z = exp(-d * d * inv);
            rowsum[a] += z;
            rowsum[b] += z;
        }
    double H = 0;
    for (int a = 0; a < c; a++) H -= log(rowsum[a] / c);
    return H / c;
}

double dp_fec_filter_entropy(const double *means, int c, double h) {
    if (c <= 1) return 0.0;
    double *rowsum = malloc(sizeof(double) * (size_t)c);
    if (!rowsum) return NAN;
    double H = filter_entropy(means, c, h, rowsum);
    free(rowsum);
    return H;
}

/* Per-channel means of every filter: means[j*c + ch] = mean over the channel's block. */
static void channel_means(const prune_filters *f, bool abs_mean, double *means) {
    int c = f->in_channels;
    size_t block = f->len / (size_t)c;
    for (int j = 0; j < f->n_filters; j++)
        for (int ch = 0; ch < c; ch++) {
            const float *w = f->w + (size_t)j * f->len + (size_t)ch * block;
            double acc = 0;
            for (size_t i = 0; i < block; i++) acc += abs_mean ? fabs((double)w[i]) : w[i];
            means[(size_t)j * c + ch] = acc / (double)block;
        }
}

/* Adds one writer's entropies to scores; *mean_norm = mean_j H_j / ln c. */
static dp_status add_writer_entropy(const prune_filters *f, bool abs_mean, double *scores,
                                    double *mean_norm, dp_error *err) {
    int n = f->n_filters, c = f->in_channels;
    double *means = malloc(sizeof(double) * (size_t)n * c);
    double *rowsum = malloc(sizeof(double) * (size_t)c);
    int64_t *hist = malloc(sizeof(int64_t) * RADIX_SIZE);
    if (!means || !rowsum || !hist) {
        free(means), free(rowsum), free(hist);
        return dp_fail(err, DP_ERR_NOMEM, "fec: out of memory for %d filters x %d channels", n, c);
    }
    channel_means(f, abs_mean, means);
    double h = layer_bandwidth(means, n, c, hist), sum = 0;
    for (int j = 0; j < n; j++) {
        double H = filter_entropy(means + (size_t)j * c, c, h, rowsum);
        scores[j] += H;
        sum += H;
    }
    *mean_norm = sum / n / log((double)c);
    free(means), free(rowsum), free(hist);
    return DP_OK;
}

static void add_writer_l1(const prune_filters *f, double *scores) {
    for (int j = 0; j < f->n_filters; j++) {
        double acc = 0;
        for (size_t i = 0; i < f->len; i++) acc += fabs((double)f->w[(size_t)j * f->len + i]);
        scores[j] += acc;
    }
}

dp_status dp_score_fec(const dp_model *m, const dp_groups *gs, int group, const dp_fec_opts *o,
                       double *scores, dp_fec_group_info *info, dp_error *err) {
    const dp_channel_group *g = &gs->groups[group];
    bool abs_mean = o && o->abs_mean;
    memset(scores, 0, sizeof(double) * (size_t)g->channels);
    memset(info, 0, sizeof *info);
    double norm_sum = 0;
    for (int k = 0; k < g->n_writers; k++) {
        prune_filters f;
        prune_writer_filters(m, gs, g->writers[k], &f);
        if (f.in_channels <= 1 || f.len % (size_t)f.in_channels) {
            /* no channel similarity to measure: l1 instead, reported by the caller */
            add_writer_l1(&f, scores);
            info->fell_back_to_l1 = true;
            continue;
        }
        double norm = 0;
        dp_status st = add_writer_entropy(&f, abs_mean, scores, &norm, err);
        if (st != DP_OK) return st;
        norm_sum += norm;
        info->n_entropy_writers++;
    }
    /* without entropy the ratio rule has nothing to say: 1 makes the group's ratio 0 */
    info->norm_entropy = info->n_entropy_writers ? norm_sum / info->n_entropy_writers : 1.0;
    return DP_OK;
}
