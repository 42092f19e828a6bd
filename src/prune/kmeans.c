/* k-means++ with Lloyd iterations, in double, deterministic: seeded initialisation from a
 * counter-based stream, ties to the lower cluster index, restarts keyed by their number. Used
 * by C-SGD to group filters that will be trained to be identical. */
#include "dprune/csgd.h"
#include <float.h>
#include <stdlib.h>
#include <string.h>

static double dist2(const float *a, const double *c, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) {
        double t = (double)a[j] - c[j];
        s += t * t;
    }
    return s;
}

static void set_center(double *c, const float *x, int d) {
    for (int j = 0; j < d; j++) c[j] = x[j];
}

/* k-means++ seeding: the first centre uniformly, each next one with probability proportional
 * to the squared distance to the nearest centre so far. */
static void seed_centers(const float *x, int n, int d, int k, dp_rng *r, double *centers,
                         double *near) {
    int first = (int)dp_rng_below(r, (uint32_t)n);
    set_center(centers, x + (size_t)first * d, d);
    for (int i = 0; i < n; i++) near[i] = dist2(x + (size_t)i * d, centers, d);
    for (int c = 1; c < k; c++) {
        double total = 0;
        for (int i = 0; i < n; i++) total += near[i];
        int pick = n - 1;
        if (total > 0) {
            double u = dp_rng_uniform(r) * total, acc = 0;
            for (int i = 0; i < n; i++)
                if ((acc += near[i]) > u) {
                    pick = i;
                    break;
                }
        } else { /* every point sits on a centre: any other point will do */
            pick = c % n;
        }
        double *cc = centers + (size_t)c * d;
        set_center(cc, x + (size_t)pick * d, d);
        for (int i = 0; i < n; i++) {
            double t = dist2(x + (size_t)i * d, cc, d);
            if (t < near[i]) near[i] = t;
        }
    }
}

/* Assigns every point to its nearest centre; returns the number of points that moved. */
static int assign_points(const float *x, int n, int d, int k, const double *centers, int *assign,
                         double *near) {
    int moved = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = DBL_MAX;
        for (int c = 0; c < k; c++) {
            double t = dist2(x + (size_t)i * d, centers + (size_t)c * d, d);
            if (t < bd) bd = t, best = c;
        }
        near[i] = bd;
        if (assign[i] != best) moved++, assign[i] = best;
    }
    return moved;
}

/* Centres as member means; an empty cluster takes the point of the largest cluster that is
 * farthest from that cluster's centre (splitting it). */
static void update_centers(const float *x, int n, int d, int k, int *assign, double *centers,
                           int *count, double *near) {
    memset(centers, 0, sizeof(double) * (size_t)k * d);
    memset(count, 0, sizeof(int) * (size_t)k);
    for (int i = 0; i < n; i++) {
        count[assign[i]]++;
        double *c = centers + (size_t)assign[i] * d;
        for (int j = 0; j < d; j++) c[j] += x[(size_t)i * d + j];
    }
    for (int c = 0; c < k; c++)
        for (int j = 0; j < d && count[c]; j++) centers[(size_t)c * d + j] /= count[c];
    for (int c = 0; c < k; c++) {
        if (count[c]) continue;
        int big = 0;
        for (int b = 1; b < k; b++)
            if (count[b] > count[big]) big = b;
        int far = -1;
        for (int i = 0; i < n; i++)
            if (assign[i] == big && (far < 0 || near[i] > near[far])) far = i;
        assign[far] = c, count[c] = 1, count[big]--;
        near[far] = 0;
        set_center(centers + (size_t)c * d, x + (size_t)far * d, d);
    }
}

double dp_kmeans(const float *x, int n, int d, int k, uint64_t seed, int n_init, int max_iter,
                 int *assign) {
    if (k >= n) {
        for (int i = 0; i < n; i++) assign[i] = i;
        return 0;
    }
    double *centers = malloc(sizeof(double) * (size_t)k * d);
    double *near = malloc(sizeof(double) * (size_t)n);
    int *cur = malloc(sizeof(int) * (size_t)n), *count = malloc(sizeof(int) * (size_t)k);
    double best = DBL_MAX;
    if (!centers || !near || !cur || !count) { /* out of memory: even blocks, still valid */
        for (int i = 0; i < n; i++) assign[i] = (int)((int64_t)i * k / n);
        best = -1;
        goto done;
    }
    for (int run = 0; run < (n_init > 0 ? n_init : 1); run++) {
        dp_rng r;
        dp_rng_init(&r, seed, (uint64_t)run, (uint64_t)n * 1000003u + (uint64_t)k, DP_RNG_CLUSTER);
        seed_centers(x, n, d, k, &r, centers, near);
        for (int i = 0; i < n; i++) cur[i] = -1;
        for (int it = 0; it < max_iter; it++) {
            if (assign_points(x, n, d, k, centers, cur, near) == 0 && it > 0) break;
            update_centers(x, n, d, k, cur, centers, count, near);
        }
        assign_points(x, n, d, k, centers, cur, near); /* inertia of the final centres */
        update_centers(x, n, d, k, cur, centers, count, near);
        double inertia = 0;
        for (int i = 0; i < n; i++)
            inertia += dist2(x + (size_t)i * d, centers + (size_t)cur[i] * d, d);
        if (inertia < best) {
            best = inertia;
            memcpy(assign, cur, sizeof(int) * (size_t)n);
        }
    }
done:
    free(centers);
    free(near);
    free(cur);
    free(count);
    return best;
}
