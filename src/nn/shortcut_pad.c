/* ResNet option A shortcut (He et al. 2016, CIFAR): identity on a strided grid, with the
 * missing channels filled by zeros (pad_before on the low side, the rest on the high side). */
#include "dprune/nn.h"
#include <string.h>

void shortcut_pad_forward(int N, int C, int H, int W, int K, int stride, int pad_before,
                          const float *x, float *y) {
    int P = (H + stride - 1) / stride, Q = (W + stride - 1) / stride;
    memset(y, 0, sizeof(float) * (size_t)N * K * P * Q);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *xp = x + ((size_t)n * C + c) * H * W;        // [H, W]
            float *yp = y + ((size_t)n * K + pad_before + c) * P * Q; // [P, Q]
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) yp[p * Q + q] = xp[(p * stride) * W + q * stride];
        }
}

void shortcut_pad_backward(int N, int C, int H, int W, int K, int stride, int pad_before,
                           const float *dy, float *dx) {
    int P = (H + stride - 1) / stride, Q = (W + stride - 1) / stride;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float *dxp = dx + ((size_t)n * C + c) * H * W;
            const float *dyp = dy + ((size_t)n * K + pad_before + c) * P * Q;
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) dxp[(p * stride) * W + q * stride] += dyp[p * Q + q];
        }
}
