/* Builders produce the exact published parameter and FLOP totals. */
#include "dprune/model.h"
#include "testutil.h"
#include <string.h>

static void check_arch(const char *arch, const char *shortcut, int c, int hw, int classes,
                       long long params, long long flops) {
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    snprintf(mc.shortcut, sizeof mc.shortcut, "%s", shortcut);
    mc.width = 1.0;
    dp_model m;
    dp_error err = {0};
    dp_status st = dp_model_build(&m, &mc, c, hw, hw, classes, &err);
    CHECK_MSG(st == DP_OK, "%s: %s", arch, err.msg);
    if (st != DP_OK) return;
    CHECK_MSG(dp_model_params(&m) == params, "%s params %lld, expected %lld", arch,
              (long long)dp_model_params(&m), params);
    CHECK_MSG(dp_model_flops(&m) == flops, "%s flops %lld, expected %lld", arch,
              (long long)dp_model_flops(&m), flops);
    /* the views cover exactly the counted parameters, inside the buffer */
    size_t sum = 0;
    int inside = 1;
    for (int p = 0; p < m.n_params; p++) {
        sum += m.params[p].numel;
        inside &= m.params[p].offset + m.params[p].numel <= m.n_param_floats;
    }
    CHECK((long long)sum == params);
    CHECK(inside);
    /* reverse topological layout: offsets increase while node indices decrease */
    int ordered = 1;
    for (int p = 1; p < m.n_params; p++)
        ordered &=
            m.params[p].offset > m.params[p - 1].offset && m.params[p].node <= m.params[p - 1].node;
    CHECK_MSG(ordered, "%s parameter layout is not in reverse topological order", arch);
    dp_model_free(&m);
}

int main(void) {
    /* totals from the issue / the literature; params include BN gamma/beta and biases */
    check_arch("vgg16", "A", 3, 32, 10, 14991946LL, 313463808LL);
    check_arch("resnet56", "A", 3, 32, 10, 853018LL, 125485696LL);
    check_arch("resnet20", "B", 3, 32, 10, 272474LL, 40813184LL);
    check_arch("resnet18", "B", 3, 224, 1000, 11689512LL, 1814073344LL);
    check_arch("resnet50", "B", 3, 224, 1000, 25557032LL, 4089184256LL);
    /* fmnist_cnn as specified: conv1 288 + bn 64 + conv2 18432 + bn 128 + fc1 401536 + fc2 1290 */
    check_arch("fmnist_cnn", "A", 1, 28, 10, 421738LL,
               32LL * 28 * 28 * 9 + 64LL * 14 * 14 * 32 * 9 + 3136LL * 128 + 1280);
    /* lenet5: 156 + 2416 + 48120 + 10164 + 850 */
    check_arch("lenet5", "A", 1, 28, 10, 61706LL,
               6LL * 28 * 28 * 25 + 16LL * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 840);

    /* an unknown architecture is a clear error */
    dp_model_config mc;
    memset(&mc, 0, sizeof mc);
    snprintf(mc.arch, sizeof mc.arch, "resnet21");
    dp_model m;
    dp_error err = {0};
    CHECK(dp_model_build(&m, &mc, 3, 32, 32, 10, &err) == DP_ERR_CONFIG);
    CHECK(strstr(err.msg, "resnet21") != NULL);
    return dp_test_finish();
}
