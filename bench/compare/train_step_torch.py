#!/usr/bin/python3
"""PyTorch CPU twin of bench_train_step: one SGD training step (forward, backward, update) of
W1 fmnist-mlp and W2 fmnist-resnet sub-models at batch 128, each built as the dense network of
that sub-model's size; one AdamW step of W3 fmnist-vit sub-models at batch 128 (the dense
encoder of that depth, heads and MLP width); and one AdamW step (gradients clipped at norm 1) of W4 fortunes-llama at
batch 16 x 256 bytes: the SoFT objective (mean loss of the exits after 2, 4, 6, 8 blocks, one
pass), the full depth alone and exit 2 alone. Prints one JSON object per line: name, threads,
layout, ms, examples_per_s.

PyTorch at its best, as a careful user would write the loop: gradients set to None rather than
zeroed (no extra pass over every parameter), the optimizers' multi-tensor (`foreach`) updates,
and for the ResNet the better of NCHW and channels_last (both are tried, like the thread counts).
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


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x [B, h, T, dh]; rotate-half pairing (i, i + dh/2)
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, d=256, heads=8, head_dim=32, ffn=688):
        super().__init__()
        self.h, self.dh = heads, head_dim
        inner = heads * head_dim
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.q, self.k, self.v = (nn.Linear(d, inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, d, bias=False)
        self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        a = self.norm1(x)
        q, k, v = (p(a).view(B, T, self.h, self.dh).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if hasattr(F, "scaled_dot_product_attention"):  # PyTorch 2: its fused attention
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) * self.dh ** -0.5 + mask
            att = torch.softmax(s, -1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(B, T, self.h * self.dh))
        m = self.norm2(x)
        return x + self.down(F.silu(self.gate(m)) * self.up(m))


class Llama(nn.Module):
    """W4: byte vocabulary, d 256, 8 blocks, 8 heads of 32, SwiGLU 688, RMSNorm, RoPE, no biases,
    untied head; exits after 2, 4, 6, 8 blocks share the final norm and head."""

    def __init__(self, vocab=256, d=256, layers=8, context=256, exits=(2, 4, 6, 8)):
        super().__init__()
        self.exits = exits
        self.embedding = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(LlamaBlock(d) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        dh = 32
        inv = 10000.0 ** (-torch.arange(0, dh // 2, dtype=torch.float64) * 2 / dh)
        angles = torch.arange(context, dtype=torch.float64)[:, None] * inv[None, :]
        angles = torch.cat((angles, angles), -1)
        self.register_buffer("cos", angles.cos().float())
        self.register_buffer("sin", angles.sin().float())
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1))

    def forward(self, tokens, depth=None):
        """The logits of every exit up to `depth` (default: all), shallowest first."""
        T = tokens.shape[1]
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        h, out = self.embedding(tokens), []
        for b, block in enumerate(self.blocks[:depth or len(self.blocks)]):
            h = block(h, cos, sin, mask)
            if b + 1 in self.exits and (depth is None or b + 1 == depth):
                out.append(self.head(self.norm(h)))
        return out


class VitBlock(nn.Module):
    """Pre-norm encoder block: x + attn(LN x), then + fc2(gelu(fc1(LN x)))."""

    def __init__(self, heads, ffn, d=192, head_dim=32):
        super().__init__()
        self.h, self.dh = heads, head_dim
        inner = heads * head_dim
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v = (nn.Linear(d, inner) for _ in range(3))
        self.o = nn.Linear(inner, d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x):
        B, T, _ = x.shape
        a = self.norm1(x)
        q, k, v = (p(a).view(B, T, self.h, self.dh).transpose(1, 2) for p in (self.q, self.k, self.v))
        if hasattr(F, "scaled_dot_product_attention"):
            att = F.scaled_dot_product_attention(q, k, v)
        else:
            att = torch.softmax((q @ k.transpose(-1, -2)) * self.dh ** -0.5, -1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(B, T, self.h * self.dh))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    """W3: 4x4 patches of a 28x28 image (49 tokens + CLS), width 192, `depth` blocks of `heads`
    heads of 32 and an MLP of `ffn` with GELU; final LayerNorm and classifier on the CLS token."""

    def __init__(self, depth, heads, ffn, d=192):
        super().__init__()
        self.patch = nn.Linear(16, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(50, d) * 0.02)
        self.blocks = nn.Sequential(*(VitBlock(heads, ffn, d) for _ in range(depth)))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        N = x.shape[0]
        patches = x.reshape(N, 7, 4, 7, 4).permute(0, 1, 3, 2, 4).reshape(N, 49, 16)
        h = torch.cat((self.cls.expand(N, -1, -1), self.patch(patches)), 1) + self.pos
        return self.head(self.norm(self.blocks(h)[:, 0]))


LM_STEPS = {"llama_soft": None, "llama_full": 8, "llama_exit2": 2}


def lm_step_fn(name, dev, sync):
    model = Llama().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    g = torch.Generator().manual_seed(2)
    data = torch.randint(0, 256, (16, 257), generator=g).to(dev)
    x, y = data[:, :-1], data[:, 1:].reshape(-1)
    depth = LM_STEPS[name]

    def step():
        opt.zero_grad(set_to_none=True)
        exits = model(x, depth)
        loss = sum(F.cross_entropy(l.reshape(-1, 256), y) for l in exits) / len(exits)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()

    return step, 16 * 256


MODELS = {
    "mlp_full": lambda: mlp(1024),
    "mlp_half": lambda: mlp(512),
    "mlp_smallest": lambda: mlp(128),
    "resnet_full": lambda: resnet(8, (3, 3, 3)),
    "resnet_half": lambda: resnet(4, (3, 3, 3)),
    "resnet_smallest": lambda: resnet(1, (1, 1, 1)),
    **{f"resnet_w{k}": (lambda k=k: resnet(k, (3, 3, 3))) for k in (1, 2, 3, 5, 6, 7)},
    "resnet_d1": lambda: resnet(8, (1, 1, 1)),
    "resnet_d2": lambda: resnet(8, (2, 2, 2)),
}


VIT_MODELS = {
    "vit_full": lambda: Vit(6, 6, 768),
    "vit_mid": lambda: Vit(3, 4, 384),
    "vit_smallest": lambda: Vit(1, 2, 192),
}


def image_step_fn(name, dev, sync, x, y, layout):
    if name in VIT_MODELS:  # the recipe's optimizer for the encoder
        model = VIT_MODELS[name]().to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05, foreach=True)
    else:
        model = MODELS[name]().to(dev)
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4,
                              foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        sync()

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--layouts", default="nchw,channels_last", help="the ResNet's layouts to try (the best is kept)")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(list(MODELS) + list(VIT_MODELS) + list(LM_STEPS)))
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
    names = [n for n in list(MODELS) + list(VIT_MODELS) + list(LM_STEPS) if not args.only or n in args.only.split(",")]
    for name in names:
        best = None
        layouts = args.layouts.split(",") if name.startswith("resnet") else ["nchw"]
        for threads in map(int, args.threads.split(",")):
            for layout in layouts:
                torch.set_num_threads(threads)
                if name in LM_STEPS:
                    step, examples = lm_step_fn(name, dev, sync)
                else:
                    step, examples = image_step_fn(name, dev, sync, x, y, layout), 128
                for _ in range(3):
                    step()
                runs, start = 0, time.perf_counter()
                while runs < 3 or time.perf_counter() - start < args.min_time:
                    step()
                    runs += 1
                ms = (time.perf_counter() - start) / runs * 1e3
                if best is None or ms < best[2]:
                    best = (threads, layout, ms)
        print(json.dumps({"name": name, "threads": best[0], "layout": best[1], "ms": best[2],
                          "examples_per_s": examples / best[2] * 1e3}), flush=True)


if __name__ == "__main__":
    main()
