/* CIP (METHODS section 3): NISP-style backward propagation of importance from the
 * classifier, weighted at every feature layer by a non-linear map of the channel's RMS
 * activation, plus the cubic (AGP) schedule. The caller walks the graph; these are the
 * per-layer and per-block steps on plain arrays. */
#include "dprune/prune_criteria.h"
#include <math.h>

dp_status dp_cip_feature(int C, const double *stats, dp_cip_phi kind, double *phi, dp_error *err) {
    double M = stats[0];
    if (C <= 0) return dp_fail(err, DP_ERR_ARG, "cip: no channels");
    if (!(M > 0)) return dp_fail(err, DP_ERR_ARG, "cip: no calibration samples (M = 0)");
    double mean = 0;
    for (int c = 0; c < C; c++) mean += sqrt(stats[1 + c] / M);
    mean /= C;
    for (int c = 0; c < C; c++) {
        if (kind == DP_CIP_PHI_ONE) {
            phi[c] = 1.0;
        } else {
            // z = a / mean(a) is scale-free across layers; tanh saturates strong maps and
            // sends dead ones (a = 0) to 0
            double z = mean > 0 ? sqrt(stats[1 + c] / M) / mean : 0.0;
            phi[c] = tanh(z);
        }
    }
    return DP_OK;
}

// W [O, I, kk], gamma/var [O] -> A [O, I]
void dp_cip_kernel(int O, int I, int kk, const float *W, const float *gamma, const float *var,
                   float eps, double *A) {
    for (int o = 0; o < O; o++) {
        double f = gamma ? fabs((double)gamma[o]) / sqrt((double)var[o] + eps) : 1.0;
        for (int i = 0; i < I; i++) {
            const float *w = W + ((size_t)o * I + i) * kk;
            double acc = 0;
            for (int j = 0; j < kk; j++) acc += fabs((double)w[j]);
            A[(size_t)o * I + i] = f * acc;
        }
    }
}

void dp_cip_normalize(int n, double *s) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s[i];
    if (!(sum > 0)) {
        // nothing flows back (e.g. all-dead layer): no channel is preferred
        for (int i = 0; i < n; i++) s[i] = n > 0 ? 1.0 / n : 0.0;
        return;
    }
    for (int i = 0; i < n; i++) s[i] /= sum;
}

// Wfc [K, C*HW] -> s [C]
void dp_cip_seed_fc(int K, int C, int HW, const float *Wfc, double *s) {
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int k = 0; k < K; k++) {
            const float *w = Wfc + (size_t)k * C * HW + (size_t)c * HW;
            for (int p = 0; p < HW; p++) acc += fabs((double)w[p]);
        }
        s[c] = acc;
    }
    dp_cip_normalize(C, s);
}

// t [I] = A^T s_next with A [O, I]
static void at_times(int O, int I, const double *A, const double *s_next, double *t) {
    for (int i = 0; i < I; i++) t[i] = 0;
    for (int o = 0; o < O; o++) {
        const double *Ao = A + (size_t)o * I;
        for (int i = 0; i < I; i++) t[i] += Ao[i] * s_next[o];
    }
}

void dp_cip_propagate(int O, int I, const double *A, const double *s_next, const double *phi,
                      double *s) {
    at_times(O, I, A, s_next, s);
    for (int i = 0; i < I; i++) s[i] *= phi ? phi[i] : 1.0;
    dp_cip_normalize(I, s);
}

void dp_cip_residual_block(int C_in, int C_mid, int C_out, const double *A1, const double *A2,
                           dp_cip_shortcut kind, const double *A_short, int pad_before,
                           const double *phi_mid, const double *phi_in, const double *s_out,
                           double *s_mid, double *s_in, double *ws) {
    // internal map: through conv2 only
    dp_cip_propagate(C_out, C_mid, A2, s_out, phi_mid, s_mid);
    // block input: both paths, each normalized so neither dominates by its weight scale
    double *t_short = ws;
    switch (kind) {
    case DP_CIP_SHORT_IDENTITY:
        for (int i = 0; i < C_in; i++) t_short[i] = s_out[i];
        break;
    case DP_CIP_SHORT_PAD:
        for (int i = 0; i < C_in; i++) t_short[i] = s_out[pad_before + i];
        break;
    case DP_CIP_SHORT_PROJ:
        at_times(C_out, C_in, A_short, s_out, t_short);
        break;
    }
    dp_cip_normalize(C_in, t_short);
    at_times(C_mid, C_in, A1, s_mid, s_in);
    dp_cip_normalize(C_in, s_in);
    for (int i = 0; i < C_in; i++) s_in[i] = (s_in[i] + t_short[i]) * (phi_in ? phi_in[i] : 1.0);
    dp_cip_normalize(C_in, s_in);
}

double dp_cip_schedule(double p_final, int t, int n) {
    if (n <= 0) return p_final;
    if (t < 0) t = 0;
    if (t > n) t = n;
    double u = 1.0 - (double)t / n;
    return p_final * (1.0 - u * u * u);
}

int dp_cip_schedule_count(int C, double p_final, int t, int n) {
    double p = dp_cip_schedule(p_final, t, n);
    // tiny slack so that p * C landing a rounding error below an integer still counts it
    int k = (int)floor(p * C + 1e-9);
    if (k < 0) k = 0;
    if (k > C) k = C;
    return k;
}

int dp_cip_step_at_epoch(int e, int E, int n) {
    if (n <= 0 || E <= 0 || E % n != 0 || e <= 0 || e > E) return -1;
    int delta = E / n;
    return e % delta == 0 ? e / delta : -1;
}
