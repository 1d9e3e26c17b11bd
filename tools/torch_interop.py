#!/usr/bin/python3
"""Reproduces sortednet logits in PyTorch from a sortednet safetensors file.

Opens a training checkpoint (any sub-model of it) or an exported sub-model, builds the same
network in PyTorch (W1 fmnist-mlp or W2 fmnist-resnet), loads the weights, runs the inputs that
`sortednet predict` wrote and compares with the logits it wrote:

  build/bin/sortednet predict --checkpoint CKPT [--submodel SPEC] --out pred.safetensors
  tools/torch_interop.py CKPT pred.safetensors [--tolerance 1e-4]

Needs only numpy and PyTorch (Debian: python3-numpy python3-torch). Exit status 0 when the
largest absolute difference is within the tolerance, 1 otherwise, 2 on bad input.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    """Returns ({name: np.ndarray}, metadata) of a safetensors file (or of DIR/checkpoint.safetensors)."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(data[8:8 + header_len])
    metadata = header.pop("__metadata__", {})
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors, metadata


def parse_submodel(text):
    """'width=4/8,depth.s1=2' -> {'width': 4, 'depth.s1': 2} (a fraction keeps its numerator)."""
    values = {}
    for part in filter(None, text.split(",")):
        key, value = part.split("=")
        values[key] = int(value.split("/")[0])
    return values


class Mlp(torch.nn.Module):
    """W1: 784 -> h -> h -> 10 with ReLU."""

    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)
        self.fc3 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 784)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def bn(channels):
    return torch.nn.BatchNorm2d(channels, eps=1e-5)


class BasicBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride, shortcut):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        if shortcut:
            self.shortcut = torch.nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.shortcut_bn = bn(cout)
        else:
            self.shortcut = None

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        skip = self.shortcut_bn(self.shortcut(x)) if self.shortcut is not None else x
        return F.relu(h + skip)


class ResNet(torch.nn.Module):
    """W2: stem 3x3 conv, three stages of BasicBlocks (32, 64, 128 channels scaled by width/8),
    global average pool, FC -> 10. The full model's stage 1 has no shortcut (32 -> 32), so no
    sub-model's has."""

    def __init__(self, width, depths):
        super().__init__()
        scale = lambda c: c * width // 8
        self.stem = torch.nn.Conv2d(1, scale(32), 3, 1, 1, bias=False)
        self.stem_bn = bn(scale(32))
        cin = scale(32)
        for s, (channels, depth) in enumerate(zip((32, 64, 128), depths)):
            stage = torch.nn.Module()
            for b in range(depth):
                stride = 2 if (b == 0 and s > 0) else 1
                block = BasicBlock(cin if b == 0 else scale(channels), scale(channels), stride,
                                   shortcut=(b == 0 and s > 0))
                stage.add_module(f"block{b}", block)
            self.add_module(f"stage{s + 1}", stage)
            cin = scale(channels)
        self.depths = depths
        self.fc = torch.nn.Linear(cin, 10)

    def forward(self, x):
        h = F.relu(self.stem_bn(self.stem(x)))
        for s, depth in enumerate(self.depths):
            stage = getattr(self, f"stage{s + 1}")
            for b in range(depth):
                h = getattr(stage, f"block{b}")(h)
        return self.fc(h.mean(dim=(2, 3)))


def build(model_name, sub):
    if model_name == "fmnist-mlp":
        return Mlp(sub["width"])
    if model_name == "fmnist-resnet":
        return ResNet(sub.get("width", 8), [sub.get(f"depth.s{s}", 3) for s in (1, 2, 3)])
    raise ValueError(f"model '{model_name}' has no PyTorch twin here (fmnist-mlp, fmnist-resnet)")


def submodel_index(space, sub):
    """The sub-model's index in the space 'axis=a|b|c;axis2=...' (first axis most significant),
    which is the row of its per-sub-model BatchNorm statistics."""
    index = 0
    for axis in space.split(";"):
        name, sizes = axis.split("=")
        sizes = [int(s.split("/")[0]) for s in sizes.split("|")]
        index = index * len(sizes) + sizes.index(sub.get(name, sizes[-1]))
    return index


def load_weights(net, tensors, stats_row):
    """Copies each PyTorch tensor's prefix window out of the sortednet tensor of the same name:
    a sub-model's weights are the leading block of the full model's (an exported file's are
    exactly that block). BatchNorm statistics take row `stats_row`."""
    state = {}
    for name, target in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = target
            continue
        if name not in tensors:
            raise ValueError(f"the file lacks tensor '{name}'")
        source = tensors[name]
        if name.endswith(("running_mean", "running_var")):
            source = source[stats_row if source.shape[0] > 1 else 0]
        window = tuple(slice(0, n) for n in target.shape)
        if source.ndim != target.ndim or any(s < n for s, n in zip(source.shape, target.shape)):
            raise ValueError(f"tensor '{name}' has shape {list(source.shape)}, too small for {list(target.shape)}")
        state[name] = torch.from_numpy(np.ascontiguousarray(source[window]))
    net.load_state_dict(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a training checkpoint (file or run directory) or an exported sub-model")
    parser.add_argument("predictions", help="the file `sortednet predict` wrote (inputs and logits)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference| (default 1e-4)")
    args = parser.parse_args()

    try:
        tensors, meta = load_safetensors(args.checkpoint)
        pred, pred_meta = load_safetensors(args.predictions)
        sub = parse_submodel(pred_meta["submodel"])
        if meta.get("format") == "sortednet-dense-1":
            stats_row = 0
        elif meta.get("format") == "sortednet-checkpoint-1":
            tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
            if 'bn_stats = "recalibrate"' in meta.get("config", ""):
                raise ValueError("this checkpoint recalibrates BatchNorm per sub-model: export the sub-model "
                                 "(sortednet export) and pass the exported file")
            stats_row = submodel_index(meta["space"], sub)
        else:
            raise ValueError(f"{args.checkpoint}: not a sortednet checkpoint (format {meta.get('format')!r})")
        net = build(meta["model"], sub)
        load_weights(net, tensors, stats_row)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(pred["inputs"])).numpy()
    ours = pred["logits"]
    diff = float(np.max(np.abs(logits - ours)))
    scale = float(np.max(np.abs(ours)))
    agree = float(np.mean(logits.argmax(1) == ours.argmax(1)))
    print(f"{meta['model']} {pred_meta['submodel']}: {ours.shape[0]} inputs, max |PyTorch - sortednet| = "
          f"{diff:.3g} (logits up to {scale:.3g}), arg-max agreement {agree:.3f}, tolerance {args.tolerance:g}")
    return 0 if diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
