#!/usr/bin/python3
"""PyTorch DDP peer of dprune's data-parallel training (bench/run_scaling.sh):
torch.distributed with the gloo backend, WORLD processes x THREADS threads each, the global
batch split evenly, the same architectures as bench/peer_train_step.py (imported from there,
which mirrors src/model/builders.c), SGD momentum 0.9 weight decay 5e-4, per-rank batch norm
(as dprune's default dist.sync_bn = false).

    peer_ddp.py MODEL GLOBAL_BATCH WORLD THREADS STEPS LOG_EVERY [onednn|im2col]

WORLD = 1 runs the plain model in one process (no DDP wrapper, no communication), the
baseline of the scaling efficiency, as dprune's 1-rank run has no gradient sync.
Data: synthetic (uniform [-1, 1) inputs and fixed labels of the model's shapes, generated
once per rank before timing), so the peer does no loading or augmentation; dprune reads the
real CIFAR-10 subset with crop and flip in its prefetch thread.

Throughput is measured as dprune's metrics.jsonl does: rank 0 counts global images over a
window of LOG_EVERY steps; the first window is warm-up and dropped; the median over the
remaining windows is reported:
    RESULT impl=ddp-gloo model=.. batch=.. world=.. threads=.. ips=.. windows=.. step_ms=..
"""
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_train_step import MODELS  # noqa: E402  (same model definitions as the 1-process peer)


def worker(rank, world, port, name, batch, threads, steps, log_every, mode, out):
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mode == "onednn"
    ctor, cin, size, classes = MODELS[name]
    torch.manual_seed(0)  # the same initial model on every rank (DDP broadcasts rank 0's anyway)
    model = ctor()
    model.train()
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        model = nn.parallel.DistributedDataParallel(model)  # default 25 MB buckets
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    local = batch // world
    g = torch.Generator().manual_seed(1000 + rank)
    x = torch.rand(local, cin, size, size, generator=g) * 2 - 1
    y = (torch.arange(local) + rank * local) * 7919 % classes
    lossf = nn.CrossEntropyLoss()
    windows = []
    t0 = time.perf_counter()
    for s in range(steps):
        opt.zero_grad()
        out_ = model(x)
        loss = lossf(out_, y)
        out_.detach().topk(5, 1)  # the trainer's top-k accounting
        loss.backward()
        opt.step()
        # the trainer allreduces loss/correct/count every step: the same small collective here
        stats = torch.tensor([loss.item() * local, 0.0, float(local)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(stats)
        if (s + 1) % log_every == 0:
            now = time.perf_counter()
            windows.append(batch * log_every / (now - t0))
            t0 = now
    if rank == 0:
        kept = windows[1:] if len(windows) > 1 else windows
        ips = statistics.median(kept)
        line = (f"RESULT impl=ddp-gloo-{mode} model={name} batch={batch} world={world} "
                f"threads={torch.get_num_threads()} ips={ips:.2f} windows={len(kept)} "
                f"step_ms={1e3 * batch / ips:.1f} all_windows="
                + ",".join(f"{w:.1f}" for w in windows))
        if out is not None:
            out.put(line)
        else:
            print(line, flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) < 7 or sys.argv[1] not in MODELS:
        sys.exit("usage: peer_ddp.py MODEL GLOBAL_BATCH WORLD THREADS STEPS LOG_EVERY "
                 "[onednn|im2col]\nmodels: " + " ".join(MODELS))
    name = sys.argv[1]
    batch, world, threads, steps, log_every = (int(a) for a in sys.argv[2:7])
    mode = sys.argv[7] if len(sys.argv) > 7 else "onednn"
    if batch % world:
        sys.exit("GLOBAL_BATCH must be a multiple of WORLD")
    if world == 1:
        worker(0, 1, 0, name, batch, threads, steps, log_every, mode, None)
        return
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    port = free_port()
    mp.start_processes(worker, args=(world, port, name, batch, threads, steps, log_every, mode, q),
                       nprocs=world, join=True, start_method="spawn")
    print(q.get(), flush=True)


if __name__ == "__main__":
    main()
