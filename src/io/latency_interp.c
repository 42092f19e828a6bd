/* Bilinear interpolation in a latency table entry. Outside the measured grid the value is
 * clamped to the nearest edge rather than extrapolated: the grid runs from 1/grid of the width
 * to the full width, and an extrapolated straight line through two noisy small points could go
 * negative or steeply wrong, whereas a clamp only overestimates the rarely used tiny widths. */
#include "dprune/latency_table.h"

/* x on an ascending axis: index i and weight w in [0, 1) with the point between axis[i] and
 * axis[i + 1] (w = 0 exactly on a grid point and beyond either end). */
static void locate(const int *axis, int n, double x, int *i, double *w) {
    int j = 0;
    while (j + 1 < n && x >= axis[j + 1]) j++;
    *i = j;
    *w = (j + 1 < n && x > axis[j]) ? (x - axis[j]) / (double)(axis[j + 1] - axis[j]) : 0.0;
}

/* (1 - wb) v[a][b] + wb v[a][b + 1], reading v[a][b + 1] only when it matters */
static double along_out(const double *v, int n_out, int a, int b, double wb) {
    double x = v[a * n_out + b];
    return wb > 0 ? (1 - wb) * x + wb * v[a * n_out + b + 1] : x;
}

double dp_latency_entry_ms(const dp_latency_entry *e, bool train, double cin, double cout) {
    const double *v = train ? e->train_ms : e->infer_ms;
    if (!v) return 0;
    int a, b;
    double wa, wb;
    locate(e->in_axis, e->n_in, cin, &a, &wa);
    locate(e->out_axis, e->n_out, cout, &b, &wb);
    double r0 = along_out(v, e->n_out, a, b, wb);
    return wa > 0 ? (1 - wa) * r0 + wa * along_out(v, e->n_out, a + 1, b, wb) : r0;
}
