/* CIP scores on whole graphs equal the per-layer recipe of METHODS.md section 3 done by hand
 * with the crit_cip.c steps: a plain chain (fmnist_cnn: conv, BN, pool, flatten into a linear,
 * the classifier's seed), with tanh and with phi = 1 (no statistics = NISP); and ResNet-20
 * with identity, zero-padding (A) and projection (B) shortcuts, block by block backwards from
 * the classifier with dp_cip_residual_block. Feature maps are the ReLU outputs. */
#include "dprune/cip.h"
#include "prune_testutil.h"
#include <stdlib.h>
#include <string.h>

static int find_node(const dp_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return i;
    CHECK_MSG(0, "no node %s", name);
    return 0;
}

/* Random weights, BN gamma of both signs and running variances in [0.6, 1.4]. */
static void randomize_any_sign(dp_model *m, unsigned seed) {
    dp_fill_uniform(m->param_data, m->n_param_floats, seed, 0.5f);
    for (int b = 0; b < m->n_buffers; b++) {
        float *x = dp_buffer_ptr(m, b);
        dp_fill_uniform(x, m->buffers[b].numel, seed + 11u * (unsigned)b, 0.4f);
        if (strstr(m->buffers[b].name, "running_var"))
            for (size_t j = 0; j < m->buffers[b].numel; j++) x[j] += 1.0f;
    }
}

/* RMS statistics [M, sumsq[C]] for every feature map, one dead channel each. */
static double **make_stats(const dp_model *m, const dp_groups *gs, unsigned seed) {
    double **rms = calloc((size_t)m->n_nodes, sizeof(double *));
    int nodes[256];
    int n = dp_cip_feature_nodes(m, gs, nodes, 256);
    for (int k = 0; k < n; k++) {
        int C = m->nodes[nodes[k]].c;
        float *u = malloc(sizeof(float) * (size_t)C);
        dp_fill_uniform(u, (size_t)C, seed + (unsigned)k, 1.0f);
        double *s = rms[nodes[k]] = malloc(sizeof(double) * (size_t)(C + 1));
        s[0] = 200;
        for (int c = 0; c < C; c++) s[1 + c] = 100.0 * u[c] * u[c];
        s[1 + (k % C)] = 0; /* a dead map */
        free(u);
    }
    return rms;
}

static void free_stats(const dp_model *m, double **rms) {
    for (int i = 0; i < m->n_nodes; i++) free(rms[i]);
    free(rms);
}

/* A [O, I] of conv/linear `node`, with the BN named `bn` (NULL: none). */
static double *kernel_of(const dp_model *m, const dp_groups *gs, const char *node, const char *bn) {
    const dp_node *n = &m->nodes[find_node(m, node)];
    int O = gs->groups[gs->node_group[find_node(m, node)]].channels;
    int I = gs->groups[gs->node_group[n->in[0]]].channels;
    const dp_tensor_view *v = &m->params[n->p[0]];
    double *A = malloc(sizeof(double) * (size_t)O * I);
    const float *gamma = NULL, *var = NULL;
    float eps = 0;
    if (bn) {
        const dp_node *b = &m->nodes[find_node(m, bn)];
        gamma = dp_param_ptr(m, b->p[0]), var = dp_buffer_ptr(m, b->buf[1]), eps = b->a.bn.eps;
    }
    dp_cip_kernel(O, I, (int)(v->numel / ((size_t)O * I)), dp_param_ptr(m, n->p[0]), gamma, var,
                  eps, A);
    return A;
}

/* phi of feature map `node` (NULL rms: 1) */
static double *phi_of(const dp_model *m, double **rms, const char *node, dp_cip_phi kind) {
    int i = find_node(m, node), C = m->nodes[i].c;
    double *phi = malloc(sizeof(double) * (size_t)C);
    dp_error err = {0};
    if (!rms)
        for (int c = 0; c < C; c++) phi[c] = 1;
    else
        CHECK(dp_cip_feature(C, rms[i], kind, phi, &err) == DP_OK);
    return phi;
}

static void check_close(const double *got, const double *want, int C, const char *what) {
    double worst = 0;
    for (int c = 0; c < C; c++) {
        double d = fabs(got[c] - want[c]) / (fabs(want[c]) + 1e-300);
        if (want[c] == 0) d = fabs(got[c]);
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst < 1e-12, "%s: worst relative difference %.3g", what, worst);
}

static const double *score_of(const dp_scores *sc, const dp_groups *gs, const dp_model *m,
                              const char *writer) {
    return sc->s[gs->node_group[find_node(m, writer)]];
}

static void chain_case(bool with_stats, dp_cip_phi kind) {
    dp_model m = {0};
    if (!build_quarter_fmnist_cnn(&m)) return;
    dp_error err = {0};
    randomize_any_sign(&m, 3);
    dp_group_opts go;
    dp_group_opts_default(&go);
    go.protect_first_conv = false;
    dp_groups gs;
    CHECK(dp_groups_build(&m, &go, &gs, &err) == DP_OK);
    double **rms = with_stats ? make_stats(&m, &gs, 5) : NULL;
    dp_scores sc;
    CHECK_MSG(dp_cip_scores(&m, &gs, (const double *const *)rms, kind, &sc, &err) == DP_OK, "%s",
              err.msg);

    /* by hand: seed from fc2, then fc1 (flatten of 16 x 7 x 7, no BN), then conv2 (BN) */
    const dp_node *fc2 = &m.nodes[find_node(&m, "fc2")];
    double s3[32], s2[16], s1[8];
    dp_cip_seed_fc(10, 32, 1, dp_param_ptr(&m, fc2->p[0]), s3);
    double *phi3 = phi_of(&m, rms, "relu3", kind), *phi2 = phi_of(&m, rms, "relu2", kind),
           *phi1 = phi_of(&m, rms, "relu1", kind);
    for (int c = 0; c < 32; c++) s3[c] *= phi3[c];
    dp_cip_normalize(32, s3);
    double *A_fc1 = kernel_of(&m, &gs, "fc1", NULL), *A_conv2 = kernel_of(&m, &gs, "conv2", "bn2");
    dp_cip_propagate(32, 16, A_fc1, s3, phi2, s2);
    dp_cip_propagate(16, 8, A_conv2, s2, phi1, s1);
    check_close(score_of(&sc, &gs, &m, "fc1"), s3, 32, "fmnist_cnn fc1");
    check_close(score_of(&sc, &gs, &m, "conv2"), s2, 16, "fmnist_cnn conv2");
    check_close(score_of(&sc, &gs, &m, "conv1"), s1, 8, "fmnist_cnn conv1");
    if (with_stats && kind == DP_CIP_PHI_TANH) /* dead maps (make_stats) score 0 */
        CHECK(score_of(&sc, &gs, &m, "conv1")[0] == 0 && score_of(&sc, &gs, &m, "conv2")[1] == 0 &&
              score_of(&sc, &gs, &m, "fc1")[2] == 0 && score_of(&sc, &gs, &m, "fc1")[3] > 0);
    free(phi1), free(phi2), free(phi3), free(A_fc1), free(A_conv2);
    dp_scores_free(&sc);
    if (rms) free_stats(&m, rms);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* ResNet-20 (width 0.5: 8, 16, 32 channels) from the classifier back to layer2.1, block by
 * block with the residual rule; every block's internal map score is compared. */
static void resnet_case(char shortcut) {
    dp_model m = {0};
    dp_model_config mc = {0};
    snprintf(mc.arch, sizeof mc.arch, "resnet20");
    mc.width = 0.5;
    mc.shortcut[0] = shortcut;
    dp_error err = {0};
    CHECK(dp_model_build(&m, &mc, 3, 16, 16, 10, &err) == DP_OK);
    randomize_any_sign(&m, 7);
    dp_groups gs;
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    double **rms = make_stats(&m, &gs, 9);
    dp_scores sc;
    CHECK_MSG(dp_cip_scores(&m, &gs, (const double *const *)rms, DP_CIP_PHI_TANH, &sc, &err) ==
                  DP_OK,
              "%s", err.msg);

    /* s_out of layer3.2: the seed through the global pool, times phi of the block's output */
    double s_out[32], s_mid[32], s_in[32], ws[32];
    const dp_node *fc = &m.nodes[find_node(&m, "fc")];
    dp_cip_seed_fc(10, 32, 1, dp_param_ptr(&m, fc->p[0]), s_out);
    double *phi = phi_of(&m, rms, "layer3.2.relu", DP_CIP_PHI_TANH);
    for (int c = 0; c < 32; c++) s_out[c] *= phi[c];
    dp_cip_normalize(32, s_out);
    free(phi);
    const char *blocks[] = {"layer3.2.", "layer3.1.", "layer3.0.", "layer2.2.", "layer2.1."};
    const char *inputs[] = {"layer3.1.relu", "layer3.0.relu", "layer2.2.relu", "layer2.1.relu",
                            "layer2.0.relu"};
    int checked = 0;
    for (int b = 0; b < 5; b++) {
        char n1[64], n2[64], b1[64], b2[64], r1[64], ds[64], dsbn[64], sh[64];
        snprintf(n1, sizeof n1, "%sconv1", blocks[b]), snprintf(b1, sizeof b1, "%sbn1", blocks[b]);
        snprintf(n2, sizeof n2, "%sconv2", blocks[b]), snprintf(b2, sizeof b2, "%sbn2", blocks[b]);
        snprintf(r1, sizeof r1, "%srelu1", blocks[b]);
        snprintf(ds, sizeof ds, "%sdownsample.0", blocks[b]);
        snprintf(dsbn, sizeof dsbn, "%sdownsample.1", blocks[b]);
        snprintf(sh, sizeof sh, "%sshortcut", blocks[b]);
        bool transition = b == 2;
        int C_out = b < 3 ? 32 : 16, C_mid = C_out, C_in = b < 2 ? 32 : 16;
        double *A1 = kernel_of(&m, &gs, n1, b1), *A2 = kernel_of(&m, &gs, n2, b2);
        double *A_short = transition && shortcut == 'B' ? kernel_of(&m, &gs, ds, dsbn) : NULL;
        dp_cip_shortcut kind = !transition       ? DP_CIP_SHORT_IDENTITY
                               : shortcut == 'A' ? DP_CIP_SHORT_PAD
                                                 : DP_CIP_SHORT_PROJ;
        int pad =
            transition && shortcut == 'A' ? m.nodes[find_node(&m, sh)].a.shortcut.pad_before : 0;
        double *phi_mid = phi_of(&m, rms, r1, DP_CIP_PHI_TANH),
               *phi_in = phi_of(&m, rms, inputs[b], DP_CIP_PHI_TANH);
        dp_cip_residual_block(C_in, C_mid, C_out, A1, A2, kind, A_short, pad, phi_mid, phi_in,
                              s_out, s_mid, s_in, ws);
        char what[96];
        snprintf(what, sizeof what, "resnet20-%c %s", shortcut, r1);
        const double *got = score_of(&sc, &gs, &m, n1);
        CHECK_MSG(got != NULL, "%s: no score", what);
        if (got) check_close(got, s_mid, C_mid, what), checked++;
        memcpy(s_out, s_in, sizeof(double) * (size_t)C_in);
        free(A1), free(A2), free(A_short), free(phi_mid), free(phi_in);
    }
    CHECK(checked == 5);
    dp_scores_free(&sc);
    free_stats(&m, rms);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* Feature maps: the ReLU outputs, not the one after the classifier's flatten. */
static void test_feature_nodes(void) {
    dp_model m = {0};
    if (!build_quarter_fmnist_cnn(&m)) return;
    dp_error err = {0};
    dp_groups gs;
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    int nodes[8];
    CHECK(dp_cip_feature_nodes(&m, &gs, nodes, 8) == 3);
    CHECK(!strcmp(m.nodes[nodes[0]].name, "relu1") && !strcmp(m.nodes[nodes[2]].name, "relu3"));
    dp_groups_free(&gs);
    dp_model_free(&m);
}

/* Statistics of zero samples are an error naming the map. */
static void test_no_samples(void) {
    dp_model m = {0};
    if (!build_quarter_fmnist_cnn(&m)) return;
    dp_error err = {0};
    dp_groups gs;
    CHECK(dp_groups_build(&m, NULL, &gs, &err) == DP_OK);
    double **rms = make_stats(&m, &gs, 1);
    rms[find_node(&m, "relu2")][0] = 0;
    dp_scores sc;
    CHECK(dp_cip_scores(&m, &gs, (const double *const *)rms, DP_CIP_PHI_TANH, &sc, &err) ==
          DP_ERR_ARG);
    CHECK(strstr(err.msg, "relu2") != NULL);
    free_stats(&m, rms);
    dp_groups_free(&gs);
    dp_model_free(&m);
}

int main(void) {
    chain_case(true, DP_CIP_PHI_TANH);
    chain_case(true, DP_CIP_PHI_ONE);
    chain_case(false, DP_CIP_PHI_TANH);
    resnet_case('A');
    resnet_case('B');
    test_feature_nodes();
    test_no_samples();
    return dp_test_finish();
}
