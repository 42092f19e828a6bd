/* Network builders by name. Layer names follow the PyTorch modules they mirror (torchvision
 * ResNets, the CIFAR VGG/ResNet of the CHIP/HRank papers) so that weights map one to one. */
#include "dprune/model.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The channel count of a layer under the width multiplier (at least 1). */
static int scaled(int c, double width) {
    int v = (int)lround(c * width);
    return v < 1 ? 1 : v;
}

/* conv + BN + ReLU (the common triple); returns the ReLU node or -1. */
static int conv_bn_relu(dp_model *m, int x, const char *prefix, int idx, int out, int k, int stride,
                        int pad, bool bias, dp_error *err) {
    char name[48];
    snprintf(name, sizeof name, "%sconv%d", prefix, idx);
    x = dp_add_conv(m, x, name, out, k, stride, pad, bias, err);
    if (x < 0) return -1;
    snprintf(name, sizeof name, "%sbn%d", prefix, idx);
    x = dp_add_bn(m, x, name, err);
    if (x < 0) return -1;
    snprintf(name, sizeof name, "%srelu%d", prefix, idx);
    return dp_add_relu(m, x, name, err);
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((x = (expr)) < 0) return err->code;                                                    \
    } while (0)

/* fmnist_cnn: conv 1->32 3x3 pad 1 (no bias) + BN + ReLU + maxpool 2, conv 32->64 likewise,
 * linear 3136->128 + ReLU, linear 128->classes. */
static dp_status build_fmnist_cnn(dp_model *m, double width, int classes, dp_error *err) {
    int x = 0;
    TRY(conv_bn_relu(m, x, "", 1, scaled(32, width), 3, 1, 1, false, err));
    TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, "pool1", 2, 2, 0, err));
    TRY(conv_bn_relu(m, x, "", 2, scaled(64, width), 3, 1, 1, false, err));
    TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, "pool2", 2, 2, 0, err));
    TRY(dp_add_flatten(m, x, "flatten", err));
    TRY(dp_add_linear(m, x, "fc1", scaled(128, width), true, err));
    TRY(dp_add_relu(m, x, "relu3", err));
    TRY(dp_add_linear(m, x, "fc2", classes, true, err));
    return DP_OK;
}

/* lenet5 (modern variant: ReLU and max-pooling): conv 5x5 ->6 pad 2, pool, conv 5x5 ->16,
 * pool, linear ->120 ->84 ->classes. */
static dp_status build_lenet5(dp_model *m, double width, int classes, dp_error *err) {
    int x = 0;
    TRY(dp_add_conv(m, x, "conv1", scaled(6, width), 5, 1, 2, true, err));
    TRY(dp_add_relu(m, x, "relu1", err));
    TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, "pool1", 2, 2, 0, err));
    TRY(dp_add_conv(m, x, "conv2", scaled(16, width), 5, 1, 0, true, err));
    TRY(dp_add_relu(m, x, "relu2", err));
    TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, "pool2", 2, 2, 0, err));
    TRY(dp_add_flatten(m, x, "flatten", err));
    TRY(dp_add_linear(m, x, "fc1", scaled(120, width), true, err));
    TRY(dp_add_relu(m, x, "relu3", err));
    TRY(dp_add_linear(m, x, "fc2", scaled(84, width), true, err));
    TRY(dp_add_relu(m, x, "relu4", err));
    TRY(dp_add_linear(m, x, "fc3", classes, true, err));
    return DP_OK;
}

/* CIFAR VGG of the CHIP/HRank papers: 3x3 convs with bias + BN + ReLU, max-pool after blocks
 * 1-4, 2x2 average pool, linear 512->512, BN, ReLU, linear 512->classes. */
static dp_status build_vgg(dp_model *m, int depth, double width, int classes, dp_error *err) {
    static const int blocks[4][5] = {
        {1, 1, 2, 2, 2}, {2, 2, 2, 2, 2}, {2, 2, 3, 3, 3}, {2, 2, 4, 4, 4}};
    static const int chans[5] = {64, 128, 256, 512, 512};
    int which = depth == 11 ? 0 : depth == 13 ? 1 : depth == 16 ? 2 : 3;
    int x = 0, idx = 1;
    for (int b = 0; b < 5; b++) {
        for (int j = 0; j < blocks[which][b]; j++, idx++)
            TRY(conv_bn_relu(m, x, "", idx, scaled(chans[b], width), 3, 1, 1, true, err));
        char name[32];
        snprintf(name, sizeof name, "pool%d", b + 1);
        if (b < 4)
            TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, name, 2, 2, 0, err));
        else
            TRY(dp_add_pool(m, DP_OP_AVGPOOL, x, name, 2, 2, 0, err));
    }
    TRY(dp_add_flatten(m, x, "flatten", err));
    TRY(dp_add_linear(m, x, "fc1", scaled(512, width), true, err));
    TRY(dp_add_bn(m, x, "fc1_bn", err));
    TRY(dp_add_relu(m, x, "fc1_relu", err));
    TRY(dp_add_linear(m, x, "fc2", classes, true, err));
    return DP_OK;
}

/* One residual block: basic (two 3x3) or bottleneck (1x1, 3x3 with the stride, 1x1 x4).
 * The shortcut is identity, option A (zero-padding) or a 1x1 projection + BN. */
static int residual_block(dp_model *m, int x, const char *prefix, int in_c, int planes, int stride,
                          bool bottleneck, char shortcut, dp_error *err) {
    char name[48];
    int out_c = bottleneck ? planes * 4 : planes;
    int y = x;
    if (bottleneck) {
        if ((y = conv_bn_relu(m, y, prefix, 1, planes, 1, 1, 0, false, err)) < 0) return -1;
        if ((y = conv_bn_relu(m, y, prefix, 2, planes, 3, stride, 1, false, err)) < 0) return -1;
        snprintf(name, sizeof name, "%sconv3", prefix);
        if ((y = dp_add_conv(m, y, name, out_c, 1, 1, 0, false, err)) < 0) return -1;
        snprintf(name, sizeof name, "%sbn3", prefix);
    } else {
        if ((y = conv_bn_relu(m, y, prefix, 1, planes, 3, stride, 1, false, err)) < 0) return -1;
        snprintf(name, sizeof name, "%sconv2", prefix);
        if ((y = dp_add_conv(m, y, name, out_c, 3, 1, 1, false, err)) < 0) return -1;
        snprintf(name, sizeof name, "%sbn2", prefix);
    }
    if ((y = dp_add_bn(m, y, name, err)) < 0) return -1;
    int s = x;
    if (stride != 1 || in_c != out_c) {
        if (shortcut == 'A') {
            snprintf(name, sizeof name, "%sshortcut", prefix);
            if ((s = dp_add_shortcut_pad(m, x, name, out_c, stride, err)) < 0) return -1;
        } else {
            snprintf(name, sizeof name, "%sdownsample.0", prefix);
            if ((s = dp_add_conv(m, x, name, out_c, 1, stride, 0, false, err)) < 0) return -1;
            snprintf(name, sizeof name, "%sdownsample.1", prefix);
            if ((s = dp_add_bn(m, s, name, err)) < 0) return -1;
        }
    }
    snprintf(name, sizeof name, "%sadd", prefix);
    if ((y = dp_add_add(m, y, s, name, err)) < 0) return -1;
    snprintf(name, sizeof name, "%srelu", prefix);
    return dp_add_relu(m, y, name, err);
}

/* CIFAR ResNet (He et al. 2016): 3x3 conv 16, three stages of n basic blocks (16, 32, 64
 * channels), global average pool, linear. depth = 6n + 2. */
static dp_status build_cifar_resnet(dp_model *m, int depth, double width, char shortcut,
                                    int classes, dp_error *err) {
    int n = (depth - 2) / 6, x = 0, c = scaled(16, width);
    TRY(conv_bn_relu(m, x, "", 1, c, 3, 1, 1, false, err));
    for (int stage = 0; stage < 3; stage++) {
        int planes = scaled(16 << stage, width);
        for (int b = 0; b < n; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d.", stage + 1, b);
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            TRY(residual_block(m, x, prefix, c, planes, stride, false, shortcut, err));
            c = planes;
        }
    }
    TRY(dp_add_gap(m, x, "avgpool", err));
    TRY(dp_add_linear(m, x, "fc", classes, true, err));
    return DP_OK;
}

/* ImageNet ResNet, torchvision layout (v1.5: the stride sits on the 3x3 of a bottleneck). */
static dp_status build_imagenet_resnet(dp_model *m, int depth, double width, int classes,
                                       dp_error *err) {
    static const int layers18[4] = {2, 2, 2, 2}, layers34[4] = {3, 4, 6, 3};
    const int *layers = depth == 18 ? layers18 : layers34; /* 34 and 50 share the counts */
    bool bottleneck = depth == 50;
    int x = 0, c = scaled(64, width);
    TRY(conv_bn_relu(m, x, "", 1, c, 7, 2, 3, false, err));
    TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, "maxpool", 3, 2, 1, err));
    for (int stage = 0; stage < 4; stage++) {
        int planes = scaled(64 << stage, width);
        for (int b = 0; b < layers[stage]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d.", stage + 1, b);
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            TRY(residual_block(m, x, prefix, c, planes, stride, bottleneck, 'B', err));
            c = bottleneck ? planes * 4 : planes;
        }
    }
    TRY(dp_add_gap(m, x, "avgpool", err));
    TRY(dp_add_linear(m, x, "fc", classes, true, err));
    return DP_OK;
}

/* An explicit layer list from the config (sequential). */
static dp_status build_custom(dp_model *m, const dp_model_config *mc, int classes, dp_error *err) {
    int x = 0;
    for (int i = 0; i < mc->n_layers; i++) {
        const dp_layer_spec *l = &mc->layers[i];
        char name[48];
        snprintf(name, sizeof name, "%.16s%d", l->type, i);
        if (!strcmp(l->type, "conv"))
            TRY(dp_add_conv(m, x, name, scaled(l->out, mc->width), l->k, l->stride, l->pad, l->bias,
                            err));
        else if (!strcmp(l->type, "bn"))
            TRY(dp_add_bn(m, x, name, err));
        else if (!strcmp(l->type, "relu"))
            TRY(dp_add_relu(m, x, name, err));
        else if (!strcmp(l->type, "maxpool"))
            TRY(dp_add_pool(m, DP_OP_MAXPOOL, x, name, l->k, l->stride, l->pad, err));
        else if (!strcmp(l->type, "avgpool"))
            TRY(dp_add_pool(m, DP_OP_AVGPOOL, x, name, l->k, l->stride, l->pad, err));
        else if (!strcmp(l->type, "gap"))
            TRY(dp_add_gap(m, x, name, err));
        else if (!strcmp(l->type, "flatten"))
            TRY(dp_add_flatten(m, x, name, err));
        else if (!strcmp(l->type, "dropout"))
            TRY(dp_add_dropout(m, x, name, (float)l->p, err));
        else if (!strcmp(l->type, "linear")) {
            /* the last layer's width is the class count; hidden ones scale with width */
            bool last = i == mc->n_layers - 1;
            TRY(dp_add_linear(m, x, name, last ? l->out : scaled(l->out, mc->width), l->bias, err));
        } else
            return dp_fail(err, DP_ERR_CONFIG, "model.layers[%d]: unknown type '%s'", i, l->type);
    }
    const dp_node *out = &m->nodes[x];
    if (out->c * out->h * out->w != classes)
        return dp_fail(err, DP_ERR_CONFIG,
                       "model.layers: the last layer gives %d outputs per sample but the data has "
                       "%d classes; end with a linear layer of out = %d",
                       out->c * out->h * out->w, classes, classes);
    return DP_OK;
}

dp_status dp_model_build(dp_model *m, const dp_model_config *mc, int in_c, int in_h, int in_w,
                         int num_classes, dp_error *err) {
    dp_model_begin(m, in_c, in_h, in_w);
    m->num_classes = num_classes;
    snprintf(m->arch, sizeof m->arch, "%s", mc->arch);
    const char *a = mc->arch;
    double w = mc->width > 0 ? mc->width : 1.0;
    dp_status st;
    int depth = 0;
    if (!strcmp(a, "fmnist_cnn"))
        st = build_fmnist_cnn(m, w, num_classes, err);
    else if (!strcmp(a, "lenet5"))
        st = build_lenet5(m, w, num_classes, err);
    else if (sscanf(a, "vgg%d", &depth) == 1 &&
             (depth == 11 || depth == 13 || depth == 16 || depth == 19))
        st = build_vgg(m, depth, w, num_classes, err);
    else if (sscanf(a, "resnet%d", &depth) == 1 && (depth - 2) % 6 == 0 && depth < 200 &&
             depth != 50 && depth != 18 && depth != 34)
        st = build_cifar_resnet(m, depth, w, mc->shortcut[0] == 'B' ? 'B' : 'A', num_classes, err);
    else if (!strcmp(a, "resnet18") || !strcmp(a, "resnet34") || !strcmp(a, "resnet50"))
        st = build_imagenet_resnet(m, depth, w, num_classes, err);
    else if (!strcmp(a, "custom"))
        st = build_custom(m, mc, num_classes, err);
    else
        st = dp_fail(err, DP_ERR_CONFIG,
                     "model.arch: unknown architecture '%s' (fmnist_cnn, lenet5, vgg11/13/16/19, "
                     "resnet20/32/56/110, resnet18/34/50, custom)",
                     a);
    if (st != DP_OK) {
        dp_model_free(m);
        return st;
    }
    return dp_model_finish(m, err);
}
