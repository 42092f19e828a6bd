#!/usr/bin/python3
"""torch.save size of the same architectures as bench_checkpoint, for the NOTES.md ratios.

    /usr/bin/python3 bench/torch_save_size.py [resnet50|resnet18|resnet34]

torchvision is not installed, so ResNet is defined here exactly as torchvision's (v1.5,
bottleneck stride on the 3x3) with torchvision's initialisation: conv kaiming_normal_(fan_out,
relu), BN weight 1 / bias 0, linear default. It prints the state_dict sizes of torch.save
(fp32 and .half()) and the same bytes through zlib for reference. One RESULT line each."""
import io
import sys
import time
import zlib

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, 64, layers[0], 1)
        self.layer2 = self._make(block, 128, layers[1], 2)
        self.layer3 = self._make(block, 256, layers[2], 2)
        self.layer4 = self._make(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make(self, block, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
         "resnet50": (Bottleneck, [3, 4, 6, 3])}


def saved_bytes(state):
    buf = io.BytesIO()
    t0 = time.perf_counter()
    torch.save(state, buf)
    return buf.getvalue(), time.perf_counter() - t0


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else "resnet50"
    torch.manual_seed(1)
    model = ResNet(*ARCHS[arch])
    n_params = sum(p.numel() for p in model.parameters())
    n_bufs = sum(b.numel() for n, b in model.named_buffers() if "num_batches" not in n)
    raw = 4 * (n_params + n_bufs)
    print(f"{arch}: {n_params} parameters + {n_bufs} buffer floats = {raw} raw fp32 bytes "
          f"(torch {torch.__version__})")
    for label, state in (("torch_save_fp32", model.state_dict()),
                         ("torch_save_fp16", {k: v.half() if v.is_floating_point() else v
                                              for k, v in model.state_dict().items()})):
        data, secs = saved_bytes(state)
        z = len(zlib.compress(data, 6))
        print(f"{label:18s} {len(data):12d} bytes  {len(data) / raw:.4f} of raw fp32  "
              f"save {secs:.2f} s  (zlib of it: {z} bytes, {z / raw:.4f})")
        print(f"RESULT variant={label} bytes={len(data)} ratio_raw={len(data) / raw:.4f} "
              f"save_s={secs:.3f} zlib_bytes={z}")


if __name__ == "__main__":
    main()
