#!/usr/bin/python3
"""PyTorch peer of bench_train_step: the same architectures as src/model/builders.c, the same
batch, thread count and step (zero grads, forward, cross-entropy, backward, SGD momentum 0.9
weight decay 5e-4), random input and labels.

    peer_train_step.py MODEL BATCH THREADS MODE [WARMUP=2] [ITERS=5]

MODE onednn: PyTorch's default CPU convolutions (oneDNN, a.k.a. mkldnn).
MODE im2col: torch.backends.mkldnn.enabled = False, so convolutions take ATen's im2col + BLAS
path (slow_conv2d); run it with OPENBLAS_NUM_THREADS=1 in the environment (set before torch
loads OpenBLAS), so BLAS runs inside PyTorch's own OpenMP threads as dprune does.

Prints per-step times and
    RESULT impl=torch-MODE model=.. batch=.. threads=.. median_s=.. ips=.. core=..
No torchvision: resnet50 is built by hand in torchvision's layout (v1.5, stride on the 3x3).
"""
import ctypes
import ctypes.util
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- architectures (builders.c)
def conv_bn_relu(cin, cout, k, stride, pad, bias):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=bias), nn.BatchNorm2d(cout), nn.ReLU()]


def fmnist_cnn(classes=10):
    return nn.Sequential(*conv_bn_relu(1, 32, 3, 1, 1, False), nn.MaxPool2d(2),
                         *conv_bn_relu(32, 64, 3, 1, 1, False), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, classes))


def lenet5(classes=10):
    return nn.Sequential(nn.Conv2d(1, 6, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


def vgg16(classes=10):
    layers, cin = [], 3
    for b, (n, c) in enumerate(zip([2, 2, 3, 3, 3], [64, 128, 256, 512, 512])):
        for _ in range(n):
            layers += conv_bn_relu(cin, c, 3, 1, 1, True)
            cin = c
        layers.append(nn.MaxPool2d(2) if b < 4 else nn.AvgPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 512), nn.BatchNorm1d(512),
                         nn.ReLU(), nn.Linear(512, classes))


class ShortcutA(nn.Module):
    """option A: subsample by stride, zero channels on both sides (shortcut_pad.c)"""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride, self.before = stride, (cout - cin) // 2
        self.after = cout - cin - self.before

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


class Basic(nn.Module):
    def __init__(self, cin, planes, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.short = nn.Identity()
        if stride != 1 or cin != planes:
            self.short = ShortcutA(cin, planes, stride) if shortcut == "A" else nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                      nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class CifarResNet(nn.Module):
    def __init__(self, depth, classes=10, shortcut="A"):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(*conv_bn_relu(3, 16, 3, 1, 1, False))
        blocks, c = [], 16
        for stage in range(3):
            planes = 16 << stage
            for b in range(n):
                blocks.append(Basic(c, planes, 2 if stage > 0 and b == 0 else 1, shortcut))
                c = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet50(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, 64, 7, 2, 3, False), nn.MaxPool2d(3, 2, 1))
        blocks, c = [], 64
        for stage, n in enumerate([3, 4, 6, 3]):
            planes = 64 << stage
            for b in range(n):
                blocks.append(Bottleneck(c, planes, 2 if stage > 0 and b == 0 else 1))
                c = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {  # name -> (constructor, input channels, input size, classes)
    "fmnist_cnn": (fmnist_cnn, 1, 28, 10),
    "lenet5": (lenet5, 1, 28, 10),
    "vgg16": (vgg16, 3, 32, 10),
    "resnet20": (lambda: CifarResNet(20), 3, 32, 10),
    "resnet56": (lambda: CifarResNet(56), 3, 32, 10),
    "resnet50": (ResNet50, 3, 224, 1000),
}


def openblas_core():
    """the OpenBLAS core PyTorch's BLAS calls land in (same library as dprune's)"""
    for name in ("openblas", "openblasp", "openblaso"):
        path = ctypes.util.find_library(name)
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            pass
    return "unknown"


def main():
    if len(sys.argv) < 5 or sys.argv[1] not in MODELS or sys.argv[4] not in ("onednn", "im2col"):
        sys.exit("usage: peer_train_step.py MODEL BATCH THREADS onednn|im2col [WARMUP] [ITERS]\n"
                 "models: " + " ".join(MODELS))
    name, batch, threads, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    iters = int(sys.argv[6]) if len(sys.argv) > 6 else 5
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mode == "onednn"
    torch.manual_seed(0)
    ctor, cin, size, classes = MODELS[name]
    model = ctor()
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, cin, size, size) * 2 - 1
    y = torch.arange(batch) * 7919 % classes
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        out = model(x)
        loss = lossf(out, y)
        out.detach().topk(5, 1)  # the trainer's top-k accounting
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for i in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        print(f"step {i}: {times[-1]:.4f} s ({batch / times[-1]:.1f} img/s)")
    med = statistics.median(times)
    print(f"RESULT impl=torch-{mode} model={name} batch={batch} threads={torch.get_num_threads()} "
          f"median_s={med:.5f} ips={batch / med:.2f} params={nparams} core={openblas_core()}")


if __name__ == "__main__":
    main()
