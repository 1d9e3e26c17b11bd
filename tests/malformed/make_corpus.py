#!/usr/bin/python3
"""Writes the malformed-input corpus of tests/malformed/ and its expected.tsv: one file per bad
input, the parser it is fed to, and the words its one-line error must contain. The files are
committed; rerun this after changing a case (tests/malformed/make_corpus.py)."""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
cases = []


def put(name, data, parser, expected):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    cases.append((name, parser, expected))


def safetensors(header, data=b"", header_len=None):
    text = json.dumps(header).encode()
    n = len(text) if header_len is None else header_len
    return struct.pack("<Q", n) + text + data


f32 = lambda *values: struct.pack(f"<{len(values)}f", *values)
crc = lambda b: f"{zlib.crc32(b) & 0xffffffff:08x}"
good = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}

# safetensors: every field of the header, the checksums, and sortednet's own metadata.
put("st-empty.safetensors", b"\x01\x02", "safetensors", "too short")
put("st-huge-header.safetensors", struct.pack("<Q", 1 << 62) + b"{}", "safetensors", "declares a header of")
put("st-header-past-end.safetensors", safetensors(good, f32(1, 2), header_len=4096), "safetensors", "declares a header of")
put("st-bad-json.safetensors", struct.pack("<Q", 9) + b'{"a": [1,' + f32(1, 2), "safetensors", "malformed JSON header")
put("st-not-object.safetensors", safetensors([1, 2, 3]), "safetensors", "not a JSON object")
put("st-offsets-past-end.safetensors", safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, f32(1, 2)),
    "safetensors", "lies outside")
put("st-offsets-reversed.safetensors", safetensors({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, f32(1, 2)),
    "safetensors", "lies outside")
put("st-overlap.safetensors", safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(1, 2, 3)),
    "safetensors", "overlap")
put("st-dtype.safetensors", safetensors({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, f32(1, 2)),
    "safetensors", "unsupported dtype F64")
put("st-size-mismatch.safetensors", safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32(1, 2)),
    "safetensors", "bytes for shape [3]")
put("st-negative-dim.safetensors", safetensors({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, f32(1, 2)),
    "safetensors", "invalid shape")
put("st-huge-shape.safetensors", safetensors({"a": {"dtype": "F32", "shape": [1 << 39, 1 << 39], "data_offsets": [0, 8]}}, f32(1, 2)),
    "safetensors", "larger than the file")
put("st-many-dims.safetensors", safetensors({"a": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, f32(1)),
    "safetensors", "at most 8")
put("st-no-offsets.safetensors", safetensors({"a": {"dtype": "F32", "shape": [2]}}, f32(1, 2)), "safetensors",
    "lacks dtype, shape or data_offsets")
put("st-metadata-number.safetensors", safetensors({"__metadata__": {"step": 3}, **good}, f32(1, 2)), "safetensors",
    "is not a string")
put("st-bad-checksum.safetensors", safetensors({"__metadata__": {"crc32.a": crc(f32(1, 3))}, **good}, f32(1, 2)),
    "safetensors", "fails its checksum")
put("st-checksum-orphan.safetensors", safetensors({"__metadata__": {"crc32.a": crc(f32(1, 2)), "crc32.b": "00000000"}, **good},
                                                  f32(1, 2)), "safetensors", "has a checksum for tensor 'b'")
put("st-missing-checksum.safetensors", safetensors({"__metadata__": {"crc32.a": crc(f32(1, 2))}, **good,
                                                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f32(1, 2, 3)),
    "safetensors", "has no checksum")
put("st-truncated.safetensors", safetensors({"a": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}, f32(*range(64)))[:-100],
    "safetensors", "lies outside")

# Checkpoints: valid safetensors that are not checkpoints of the model they are loaded into (W1).
space = "width=128|256|384|512|640|768|896|1024"
meta = {"format": "sortednet-checkpoint-1", "model": "fmnist-mlp", "space": space, "step": "1"}
put("ckpt-not-sortednet.safetensors", safetensors({"__metadata__": {"x": "y"}, **good}, f32(1, 2)), "checkpoint",
    "lacks metadata 'format'")
put("ckpt-format.safetensors", safetensors({"__metadata__": {**meta, "format": "other-9"}, **good}, f32(1, 2)),
    "checkpoint", "not a sortednet checkpoint")
put("ckpt-other-space.safetensors", safetensors({"__metadata__": {**meta, "space": "width=1|2"}, **good}, f32(1, 2)),
    "checkpoint", "holds sub-model space 'width=1|2'")
put("ckpt-wrong-tensors.safetensors", safetensors({"__metadata__": meta,
                                                   "model.fc1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                                                  f32(1, 2)), "checkpoint", "does not match model fmnist-mlp")
put("ckpt-stray-tensor.safetensors", safetensors({"__metadata__": meta, "stray": good["a"]}, f32(1, 2)), "checkpoint",
    "unexpected tensor 'stray'")

# IDX (Fashion-MNIST): the image file is paired with a valid 2-label file and vice versa.
idx_images = lambda n, h, w, extra=0: struct.pack(">IIII", 0x803, n, h, w) + bytes(n * h * w + extra)
idx_labels = lambda labels: struct.pack(">II", 0x801, len(labels)) + bytes(labels)
put("idx-valid-labels", idx_labels([1, 2]), "none", "")
put("idx-valid-images", idx_images(2, 3, 3), "none", "")
put("idx-empty-labels", idx_labels([]), "none", "")
put("idx-magic-images", struct.pack(">IIII", 0x802, 2, 3, 3) + bytes(18), "idx-images", "not an IDX u8 file of rank 3")
put("idx-short-images", b"\x00\x00\x08\x03\x00", "idx-images", "too short for an IDX header")
put("idx-truncated-images", idx_images(2, 3, 3)[:-5], "idx-images", "truncated or padded")
put("idx-padded-images", idx_images(2, 3, 3, extra=7), "idx-images", "truncated or padded")
put("idx-huge-images", struct.pack(">IIII", 0x803, 0xffffffff, 0xffffffff, 0xffff) + bytes(16), "idx-images",
    "declares more data than any file holds")
put("idx-count-mismatch-images", idx_images(3, 3, 3), "idx-images", "has 3 images but")
put("idx-empty-images", idx_images(0, 3, 3), "idx-images-empty", "is empty")
put("idx-label-range", idx_labels([1, 12]), "idx-labels", "has label 12")
put("idx-gzip-corrupt-images", gzip.compress(idx_images(2, 3, 3))[:-12] + b"garbage!", "idx-images", "not readable")

# CIFAR-10 binary batches.
record = lambda label: bytes([label]) + bytes(3 * 32 * 32)
put("cifar-partial", record(3) + bytes(100), "cifar", "not a whole number of CIFAR-10 records")
put("cifar-empty", b"", "cifar", "not a whole number of CIFAR-10 records")
put("cifar-label", record(3) + record(10), "cifar", "record 1 has label 10")

# Recipes (TOML).
put("config-syntax.toml", "[train\nepochs = 3\n", "config", "config")
put("config-unknown-key.toml", "[train]\nepoch = 3\n", "config", "unknown key 'train.epoch'")
put("config-unknown-section.toml", "[trian]\nepochs = 3\n", "config", "unknown section")
put("config-type.toml", '[optimizer]\nlr = "fast"\n', "config", "optimizer.lr")
put("config-negative.toml", "[data]\nbatch_size = -4\n", "config", "'data.batch_size' must be positive")
put("config-nonfinite.toml", '[train]\nnonfinite = "ignore"\n', "config", "train.nonfinite must be")
put("config-not-table.toml", "train = 3\n", "config", "train")

# Sub-model text, parsed in W2's space.
put("sub-unknown-axis.txt", "widht=4/8", "submodel", "unknown axis 'widht'")
put("sub-not-allowed.txt", "width=9/8", "submodel", "width")
put("sub-no-equals.txt", "width", "submodel", "is not axis=size")
put("sub-garbage-size.txt", "width=four", "submodel", "cannot read 'four' as a size")
put("sub-twice.txt", "width=1/8,width=2/8", "submodel", "given twice")
put("sub-overflow.txt", "width=9223372036854775807/1", "submodel", "cannot read")
put("sub-huge-fraction.txt", "depth.s1=1e308.5", "submodel", "cannot read")
put("sub-depth.txt", "depth.s1=4", "submodel", "depth.s1")

with open(os.path.join(HERE, "expected.tsv"), "w") as f:
    f.write("# file\tparser\twords the one-line error must contain\n")
    for name, parser, expected in cases:
        if parser != "none":
            f.write(f"{name}\t{parser}\t{expected}\n")
print(f"wrote {len(cases)} files")
