#!/usr/bin/env python3
"""The PyTorch bridge of dprune. Run with Debian's python3-torch: /usr/bin/python3.

dprune keeps its checkpoint format to itself; this tool talks to it through `dprune dump`
(arch.json + one raw little-endian float32 file per tensor) and `dprune import`.

  to-torch  CKPT OUT.pt [--dprune BIN]
      A torch module with the checkpoint's (pruned) widths and weights, saved as TorchScript
      (torch.jit.load(OUT.pt)); `torch.onnx.export` works on DpruneNet too.
  from-torch STATE.pt CONF OUT.dpck [--dprune BIN]
      A PyTorch state_dict (torchvision resnet18/34/50, or the CIFAR vgg16 / ResNets of
      bench/peer_train_step.py) into a dprune checkpoint of the model CONF describes. Tensors
      match by name (torchvision's names are dprune's), else in forward order with equal
      shapes; any mismatch is an error naming both sides.

In Python: DpruneNet.from_dump(dir) gives the eval-ready module.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _key(name):
    return name.replace(".", "__")  # ModuleDict keys cannot hold dots


class DpruneNet(nn.Module):
    """Runs a dprune graph: nodes in topological order, activations kept as [N, C, H, W]."""

    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        self.nodes = arch["nodes"]
        self.layers = nn.ModuleDict()
        for n in self.nodes[1:]:
            src = self.nodes[n["in"][0]]["shape"]
            op = n["op"]
            if op == "conv":
                self.layers[_key(n["name"])] = nn.Conv2d(
                    src[0], n["shape"][0], n["k"], n["stride"], n["pad"], bias=n["bias"])
            elif op == "bn":
                self.layers[_key(n["name"])] = nn.BatchNorm2d(
                    n["shape"][0], eps=n["eps"], momentum=n["momentum"])
            elif op == "linear":
                self.layers[_key(n["name"])] = nn.Linear(
                    src[0] * src[1] * src[2], n["shape"][0], bias=n["bias"])

    def forward(self, x):
        outs = [x]
        for n in self.nodes[1:]:
            op, a = n["op"], outs[n["in"][0]]
            if op in ("conv", "bn"):
                y = self.layers[_key(n["name"])](a)
            elif op == "linear":
                y = self.layers[_key(n["name"])](a.reshape(a.shape[0], -1))
                y = y.reshape(y.shape[0], -1, 1, 1)
            elif op == "relu":
                y = F.relu(a)
            elif op == "maxpool":
                y = F.max_pool2d(a, n["k"], n["stride"], n["pad"])
            elif op == "avgpool":
                y = F.avg_pool2d(a, n["k"], n["stride"], n["pad"], count_include_pad=True)
            elif op == "gap":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif op == "add":
                y = a + outs[n["in"][1]]
            elif op == "flatten":
                y = a.reshape(a.shape[0], -1, 1, 1)
            elif op == "dropout":
                y = F.dropout(a, n["p"], self.training)
            elif op == "shortcut_pad":
                s = n["stride"]
                y = a[:, :, ::s, ::s]
                after = n["shape"][0] - a.shape[1] - n["pad_before"]
                y = F.pad(y, (0, 0, 0, 0, n["pad_before"], after))
            else:
                raise ValueError(f"unknown op {op} in node {n['name']}")
            outs.append(y)
        return outs[-1].reshape(x.shape[0], -1)

    def dprune_tensor(self, name):
        """The torch tensor holding dprune's tensor `name` (e.g. layer1.0.bn1.running_var)."""
        node, attr = name.rsplit(".", 1)
        return getattr(self.layers[_key(node)], attr)

    @staticmethod
    def from_dump(dump_dir):
        arch = json.load(open(os.path.join(dump_dir, "arch.json")))
        net = DpruneNet(arch)
        with torch.no_grad():
            for v in arch["params"] + arch["buffers"]:
                data = np.fromfile(os.path.join(dump_dir, v["name"] + ".f32"), dtype="<f4")
                t = net.dprune_tensor(v["name"])
                if data.size != t.numel():
                    raise ValueError(f"{v['name']}: {data.size} values, the module needs {t.numel()}")
                t.copy_(torch.from_numpy(data).reshape(t.shape))
        return net.eval()


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"dprune_torch: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def to_torch(ckpt, out, dprune):
    with tempfile.TemporaryDirectory() as d:
        _run([dprune, "dump", ckpt, d])
        net = DpruneNet.from_dump(d)
    c, h, w = net.arch["input"]
    traced = torch.jit.trace(net, torch.zeros(1, c, h, w))
    traced.save(out)
    print(f"{ckpt} -> {out} ({net.arch['arch']}, "
          f"{sum(p.numel() for p in net.parameters())} parameters)")


def _forward_order(arch):
    """dprune tensor names in forward order, as PyTorch modules register them."""
    names = []
    for n in arch["nodes"]:
        if n["op"] in ("conv", "linear"):
            names.append(n["name"] + ".weight")
            if n.get("bias"):
                names.append(n["name"] + ".bias")
        elif n["op"] == "bn":
            names += [n["name"] + s for s in (".weight", ".bias", ".running_mean", ".running_var")]
    return names


def from_torch(state_path, conf, out, dprune):
    sd = torch.load(state_path, map_location="cpu")
    if isinstance(sd, nn.Module):
        sd = sd.state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    with tempfile.TemporaryDirectory() as d:
        _run([dprune, "init", conf, os.path.join(d, "init.dpck")])
        _run([dprune, "dump", os.path.join(d, "init.dpck"), os.path.join(d, "model")])
        arch = json.load(open(os.path.join(d, "model", "arch.json")))
        dims = {v["name"]: v["dims"] for v in arch["params"] + arch["buffers"]}
        order = _forward_order(arch)
        by_name = all(n in sd for n in order)
        torch_names = order if by_name else list(sd.keys())
        if len(torch_names) != len(order):
            sys.exit(f"dprune_torch: the state_dict has {len(torch_names)} tensors, "
                     f"{arch['arch']} needs {len(order)}")
        tdir = os.path.join(d, "tensors")
        os.mkdir(tdir)
        for ours, theirs in zip(order, torch_names):
            t = sd[theirs].detach().float().contiguous()
            if list(t.shape) != dims[ours]:
                sys.exit(f"dprune_torch: {theirs} {list(t.shape)} does not fit {ours} {dims[ours]}")
            t.numpy().astype("<f4").tofile(os.path.join(tdir, ours + ".f32"))
        _run([dprune, "import", conf, tdir, out])
    print(f"{state_path} -> {out} ({arch['arch']}, matched by {'name' if by_name else 'order'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dprune", default=os.environ.get("DPRUNE_BIN", "build/dprune"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-torch")
    a.add_argument("ckpt")
    a.add_argument("out")
    b = sub.add_parser("from-torch")
    b.add_argument("state")
    b.add_argument("conf")
    b.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "to-torch":
        to_torch(args.ckpt, args.out, args.dprune)
    else:
        from_torch(args.state, args.conf, args.out, args.dprune)


if __name__ == "__main__":
    main()
