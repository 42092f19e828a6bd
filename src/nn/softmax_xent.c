/* Softmax cross-entropy with label smoothing. Per sample, with target
 * t = (1-eps) onehot(label) + eps/K and log-probabilities lp_j = z_j - max - log sum exp(z - max):
 *   loss = -sum_j t_j lp_j = -(1-eps) lp_label - (eps/K) sum_j lp_j,  dloss/dz = softmax - t.
 * Subtracting the max keeps exp() finite; the log-sum-exp is accumulated in double. Samples are
 * processed serially in order so the returned sum is deterministic (N*K is tiny next to the
 * network). Labels must lie in [0, K). */
#include "dprune/nn.h"
#include <math.h>

// z: [K] -> returns max; *lse = log sum_j exp(z_j - max)
static float max_lse(int K, const float *z, double *lse) {
    float mx = z[0];
    for (int j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < K; j++) sum += exp((double)z[j] - mx);
    *lse = log(sum);
    return mx;
}

// one sample's loss; if dz, dz += (softmax - target) * grad_scale
static double sample_loss(int K, const float *z, int label, float eps, float grad_scale,
                          float *dz) {
    double lse;
    float mx = max_lse(K, z, &lse);
    double sum_lp = 0.0;
    for (int j = 0; j < K; j++) sum_lp += (double)z[j] - mx - lse;
    double lp_label = (double)z[label] - mx - lse;
    double loss = -(1.0 - eps) * lp_label - (double)eps / K * sum_lp;
    if (dz) {
        double off = (double)eps / K;
        for (int j = 0; j < K; j++) {
            double sm = exp((double)z[j] - mx - lse);
            double t = off + (j == label ? 1.0 - eps : 0.0);
            dz[j] += (float)((sm - t) * grad_scale);
        }
    }
    return loss;
}

// logits: [N,K], labels: [N] -> returns sum of losses; dlogits: [N,K] += (if not NULL)
double softmax_xent_forward_backward(int N, int K, const float *logits, const int32_t *labels,
                                     float label_smoothing, float grad_scale, float *dlogits) {
    double total = 0.0;
    for (int n = 0; n < N; n++)
        total += sample_loss(K, logits + (size_t)n * K, labels[n], label_smoothing, grad_scale,
                             dlogits ? dlogits + (size_t)n * K : NULL);
    return total;
}

double softmax_xent_loss(int N, int K, const float *logits, const int32_t *labels,
                         float label_smoothing) {
    return softmax_xent_forward_backward(N, K, logits, labels, label_smoothing, 0.0f, NULL);
}

/* A label is in the top k when fewer than k logits are strictly greater than its own (ties
 * count in the label's favour). k = min(5, K) for top-5. */
void topk_correct(int N, int K, const float *logits, const int32_t *labels, int64_t *top1,
                  int64_t *top5) {
    const int k5 = K < 5 ? K : 5;
    int64_t c1 = 0, c5 = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        const float zl = z[labels[n]];
        int greater = 0;
        for (int j = 0; j < K; j++) greater += z[j] > zl;
        c1 += greater < 1;
        c5 += greater < k5;
    }
    if (top1) *top1 = c1;
    if (top5) *top5 = c5;
}
