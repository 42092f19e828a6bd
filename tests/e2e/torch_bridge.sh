#!/usr/bin/env bash
# The PyTorch bridge both ways, logits compared to 1e-4 (relative to the largest logit):
# a pruned dprune checkpoint exported to a torch module (and to ONNX); PyTorch models
# (CIFAR resnet20-B and vgg16 of bench/peer_train_step.py matched by order, a resnet18 with
# torchvision names matched by name) imported into dprune checkpoints.
# Runs where Debian's python3-torch is installed (CI installs it); otherwise says skipped.
source "$(dirname "$0")/lib/common.sh"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
  echo "python3-torch not installed: skipped"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
export DPRUNE_BIN="$DPRUNE" PYTHONPATH="$SRC/tools:$SRC/bench"
shared=${DPRUNE_SHARED_DIR:-$SRC/../shared}

# compare.py CKPT MODEL_SPEC: torch logits of a module vs `dprune logits` on the same input
cat > "$TMP/compare.py" <<'PY'
import sys, subprocess, numpy as np, torch
ckpt, kind, arg, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if kind == "jit":
    net = torch.jit.load(arg)
else:
    net = torch.load(arg)
net.eval()
shape = [int(v) for v in sys.argv[5].split("x")]
torch.manual_seed(0)
x = torch.randn(n, *shape)
x.numpy().astype("<f4").tofile(ckpt + ".in")
subprocess.run([__import__("os").environ["DPRUNE_BIN"], "logits", ckpt, ckpt + ".in", str(n), ckpt + ".out"], check=True)
ours = np.fromfile(ckpt + ".out", dtype="<f4").reshape(n, -1)
with torch.no_grad():
    theirs = net(x).numpy()
d = np.abs(ours - theirs).max() / max(1.0, np.abs(theirs).max())
print(f"max relative difference {d:.3g}")
sys.exit(0 if d <= 1e-4 else 1)
PY

# 1. dprune -> torch: a pruned model (uneven widths)
cat > "$TMP/fm.cfg" <<CFG
run = { dir = "$TMP/fm"; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 512; limit_test = 100; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 1; batch = 64; };
prune = { criterion = "l1"; budget = "ratios"; ratios = [0.7, 0.6, 0.3]; protect_first = false;
          finetune_epochs = 1; calib_images = 64; };
CFG
run_mpi 1 300 "$TMP/fm.cfg"
ck="$TMP/fm/$(cat "$TMP/fm/latest")"
if $PY "$SRC/tools/dprune_torch.py" to-torch "$ck" "$TMP/fm.pt" > "$TMP/b.out" 2>&1 &&
   $PY "$TMP/compare.py" "$ck" jit "$TMP/fm.pt" 8 1x28x28 >> "$TMP/b.out" 2>&1; then
  ok "pruned fmnist_cnn -> torch: $(tail -1 "$TMP/b.out")"
else bad "dprune -> torch"; cat "$TMP/b.out"; fi
if $PY -c "
import sys, torch; sys.path.insert(0, '$SRC/tools'); from dprune_torch import DpruneNet
import subprocess, tempfile
d = tempfile.mkdtemp(); subprocess.run(['$DPRUNE', 'dump', '$ck', d], check=True, capture_output=True)
net = DpruneNet.from_dump(d); torch.onnx.export(net, torch.zeros(1, 1, 28, 28), '$TMP/fm.onnx')
" > "$TMP/onnx.out" 2>&1 && [ -s "$TMP/fm.onnx" ]; then ok "ONNX export of the pruned model"; else bad "ONNX export"; tail -5 "$TMP/onnx.out"; fi

# 2. torch -> dprune: CIFAR resnet20-B and vgg16 of the peer benchmark (matched by order)
for arch in resnet20 vgg16; do
  cat > "$TMP/$arch.cfg" <<CFG
data = { dataset = "cifar10"; path = "$shared/data/cifar10-subset"; limit_train = 64; limit_test = 64; };
model = { arch = "$arch"; shortcut = "B"; };
train = { epochs = 1; };
CFG
  if $PY - "$arch" "$TMP" > "$TMP/i.out" 2>&1 <<'PY'
import sys, torch, peer_train_step as P
arch, tmp = sys.argv[1], sys.argv[2]
torch.manual_seed(1)
net = P.CifarResNet(20, 10, "B") if arch == "resnet20" else P.vgg16()
for m in net.modules():  # non-trivial BN statistics
    if isinstance(m, torch.nn.BatchNorm2d) or isinstance(m, torch.nn.BatchNorm1d):
        m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 1.5)
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
torch.save(net.state_dict(), f"{tmp}/{arch}.sd")
torch.save(net, f"{tmp}/{arch}.module")
PY
  then
    if $PY "$SRC/tools/dprune_torch.py" from-torch "$TMP/$arch.sd" "$TMP/$arch.cfg" "$TMP/$arch.dpck" >> "$TMP/i.out" 2>&1 &&
       $PY "$TMP/compare.py" "$TMP/$arch.dpck" module "$TMP/$arch.module" 4 3x32x32 >> "$TMP/i.out" 2>&1; then
      ok "torch $arch -> dprune: $(tail -1 "$TMP/i.out")"
    else bad "torch $arch -> dprune"; tail -8 "$TMP/i.out"; fi
  else bad "building torch $arch"; tail -5 "$TMP/i.out"; fi
done

# 3. torchvision layout (resnet18): names match dprune's, so tensors are matched by name
cat > "$TMP/r18.cfg" <<CFG
data = { dataset = "imagefolder"; path = "$shared/data/imagefolder-sample"; image_size = 64; };
model = { arch = "resnet18"; num_classes = 10; };
train = { epochs = 1; };
CFG
if "$DPRUNE" init "$TMP/r18.cfg" "$TMP/r18-init.dpck" > /dev/null && "$DPRUNE" dump "$TMP/r18-init.dpck" "$TMP/r18dump" > /dev/null &&
   $PY - "$TMP" > "$TMP/n.out" 2>&1 <<'PY'
import sys, torch
from dprune_torch import DpruneNet
tmp = sys.argv[1]
net = DpruneNet.from_dump(f"{tmp}/r18dump")
torch.manual_seed(2)
sd = {}
for v in net.arch["params"] + net.arch["buffers"]:  # torchvision's key for every tensor
    t = net.dprune_tensor(v["name"])
    with torch.no_grad():
        t.copy_(torch.rand_like(t) + 0.5 if "running_var" in v["name"] else torch.randn_like(t) * 0.1)
    sd[v["name"]] = t.detach().clone()
sd["bn1.num_batches_tracked"] = torch.tensor(7)  # what torchvision adds: ignored
torch.save(sd, f"{tmp}/r18.sd")
torch.save(net, f"{tmp}/r18.module")
PY
then
  if $PY "$SRC/tools/dprune_torch.py" from-torch "$TMP/r18.sd" "$TMP/r18.cfg" "$TMP/r18.dpck" >> "$TMP/n.out" 2>&1 &&
     grep -q "matched by name" "$TMP/n.out" &&
     $PY "$TMP/compare.py" "$TMP/r18.dpck" module "$TMP/r18.module" 2 3x64x64 >> "$TMP/n.out" 2>&1; then
    ok "torchvision-named resnet18 -> dprune (by name): $(tail -1 "$TMP/n.out")"
  else bad "resnet18 by name"; tail -8 "$TMP/n.out"; fi
else bad "building resnet18"; tail -5 "$TMP/n.out"; fi
finish
