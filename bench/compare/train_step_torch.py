#!/usr/bin/python3
"""PyTorch CPU twin of bench_train_step: one SGD training step (forward, backward, update) of
W1 fmnist-mlp and W2 fmnist-resnet sub-models at batch 128, each built as the dense network of
that sub-model's size. Prints one JSON object per line: name, threads, ms, examples_per_s.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.shortcut(x) if self.shortcut is not None else x))


def resnet(width8, depths):
    c = [32 * width8 // 8, 64 * width8 // 8, 128 * width8 // 8]
    layers = [nn.Conv2d(1, c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU()]
    cin = c[0]
    for s in range(3):
        for b in range(depths[s]):
            layers.append(Block(cin if b == 0 else c[s], c[s], 2 if (b == 0 and s > 0) else 1))
        cin = c[s]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def mlp(width):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


MODELS = {
    "mlp_full": lambda: mlp(1024),
    "mlp_half": lambda: mlp(512),
    "mlp_smallest": lambda: mlp(128),
    "resnet_full": lambda: resnet(8, (3, 3, 3)),
    "resnet_half": lambda: resnet(4, (3, 3, 3)),
    "resnet_smallest": lambda: resnet(1, (1, 1, 1)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (TF32 on, as sortednet's default)")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        args.threads = "1"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(128, 1, 28, 28).to(dev)
    y = (torch.arange(128) % 10).to(dev)
    names = [n for n in MODELS if not args.only or n in args.only.split(",")]
    for name in names:
        best = None
        for threads in map(int, args.threads.split(",")):
            torch.set_num_threads(threads)
            model = MODELS[name]().to(dev)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

            def step():
                opt.zero_grad(set_to_none=False)
                F.cross_entropy(model(x), y).backward()
                opt.step()
                sync()

            for _ in range(3):
                step()
            runs, start = 0, time.perf_counter()
            while runs < 3 or time.perf_counter() - start < args.min_time:
                step()
                runs += 1
            ms = (time.perf_counter() - start) / runs * 1e3
            if best is None or ms < best[1]:
                best = (threads, ms)
        print(json.dumps({"name": name, "threads": best[0], "ms": best[1], "examples_per_s": 128 / best[1] * 1e3}),
              flush=True)


if __name__ == "__main__":
    main()
