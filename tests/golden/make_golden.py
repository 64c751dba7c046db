#!/usr/bin/python3
"""make_golden.py - writes tests/golden/golden_small.h5 with tests/torch_unet.py.

Small case: batch 2, 32x32x3 inputs in 0..255, 3 classes, hash-initialised weights (see
tests/golden/README.md for the initialiser, the file layout and the sampling rule).
The reference is computed in float64 from the float32 weights and inputs; the same
pipeline run in float32 (torch) is compared against it and the observed deviations are
printed and stored as attributes under /float32_deviation, as a guide for the
tolerances of the C tests.

  /usr/bin/python3 tests/golden/make_golden.py [--out tests/golden/golden_small.h5]
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch_unet as tu  # noqa: E402

BATCH, HEIGHT, WIDTH, CLASSES = 2, 32, 32, 3
INPUT_SEED = 12345
SAMPLE_STRIDE = 101      # variables with more than FULL_MAX elements keep every 101st
FULL_MAX = 4096
ADAM_LR = 1e-3
ADAM_STEPS = 2
# block outputs stored in full (the larger up_128/up_64/up_32 are left out for size)
STORED_INTERMEDIATES = ("entry", "down_64", "down_128", "down_256", "up_256")
HASH_VECTORS = [(0, 0), (0, 1), (1, 0), (5, 123), (17, 4096), (54, 589823), (113, 7),
                (4294967295, 4294967295)]


def make_inputs():
    rng = np.random.RandomState(INPUT_SEED)
    x = rng.randint(0, 256, size=(BATCH, HEIGHT, WIDTH, 3)).astype(np.float32)
    labels = rng.randint(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)).astype(np.uint8)
    return x, labels


def stride_for(size):
    return 1 if size <= FULL_MAX else SAMPLE_STRIDE


def open_reproducible(path):
    """h5py file whose bytes depend only on its content: object timestamps off (so a
    regeneration without changes leaves git clean) and the compact v1.8+ object
    headers (readable by HDF5 >= 1.8, about 15% smaller here)."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_LATEST)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def group(f, path):
    """Nested group at path, created without timestamps where missing."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    g = f
    for part in path.strip("/").split("/"):
        if part not in g:
            h5py.h5g.create(g.id, part.encode(), gcpl=gcpl)
        g = g[part]
    return g


def put(f, path, data):
    """Dataset at path (parent groups created as needed), no timestamps."""
    parent, _, name = path.rpartition("/")
    return group(f, parent).create_dataset(name, data=data, track_times=False)


def zero_true_gradient(layer, index):
    """Biases that feed a BatchNorm directly: the batch mean removes them, so their
    exact gradient is 0 and any computed value is rounding noise (entry conv2d bias,
    every separable_conv2d bias, every conv2d_transpose bias)."""
    return (layer == "conv2d" and index == 1) or \
        (layer.startswith("separable_conv2d") and index == 2) or \
        (layer.startswith("conv2d_transpose") and index == 1)


def write_record(parent, layer, index, array):
    """Dataset <parent>/<layer>/<index>: the flattened (row-major, Keras shape) values,
    every stride-th element (stride 1 = all), with attributes stride, size, shape, and
    float64 sum, sumsq and sumabs over ALL elements, plus zero_true_gradient."""
    a = np.asarray(array, dtype=np.float64)
    flat = a.reshape(-1)
    st = stride_for(flat.size)
    d = put(parent, "%s/%d" % (layer, index), flat[::st].astype(np.float32))
    d.attrs["stride"] = np.int32(st)
    d.attrs["size"] = np.int64(flat.size)
    d.attrs["shape"] = np.array(a.shape, dtype=np.int32)
    d.attrs["sum"] = np.float64(flat.sum())
    d.attrs["sumsq"] = np.float64((flat * flat).sum())
    d.attrs["sumabs"] = np.float64(np.abs(flat).sum())
    d.attrs["zero_true_gradient"] = np.int32(zero_true_gradient(layer, index))


def run(dtype, bn_impl):
    """Everything the golden file holds, computed at dtype. Returns a dict of numpy."""
    x_np, labels_np = make_inputs()
    out = {}
    model = tu.TorchUNet(CLASSES, init="hash").to(dtype)
    init = model.state_numpy()
    x = torch.tensor(x_np, dtype=dtype)
    labels = torch.tensor(labels_np.astype(np.int64))

    # (e) inference with the initial weights and moving statistics
    with torch.no_grad():
        logits = model.forward(x, training=False)
    out["inference/logits"] = logits.numpy()
    out["inference/probs"] = torch.softmax(logits, dim=-1).numpy()

    # (a) training-mode forward, (b) gradients, (c) moving statistics, (f) intermediates
    inter = {}
    logits = model.forward(x, training=True, update_moving=True, bn_impl=bn_impl,
                           intermediates=inter)
    loss = tu.sparse_ce_from_logits(logits, labels)
    loss.backward()
    out["train/logits"] = logits.detach().numpy()
    out["train/probs"] = torch.softmax(logits, dim=-1).detach().numpy()
    out["train/loss"] = loss.item()
    for k, v in inter.items():
        out["train/intermediate/" + k] = v.detach().numpy()
    out["grads"] = [(n, j, t.grad.numpy().copy()) for (n, j, t, tr) in model.variables() if tr]
    out["bn_after_train"] = [(n, j, t.detach().numpy().copy()) for (n, j, t, tr)
                             in model.variables() if n.startswith("batch_norm") and j >= 2]

    # (d) two Keras-Adam steps on the same batch, from the initial state
    model.load_numpy(init)
    opt = tu.KerasAdam(model.trainable(), lr=ADAM_LR)
    out["adam/losses"] = [tu.train_step(model, opt, x, labels, bn_impl) for _ in range(ADAM_STEPS)]
    out["adam/weights"] = [(n, j, t.detach().numpy().copy()) for (n, j, t, tr) in model.variables()]
    out["init"] = [(n, j, a) for n, arrs in init.items() for j, a in enumerate(arrs)]
    return out


def deviation_report(ref, f32):
    """Observed float32-vs-float64 deviations (a guide for C tolerances)."""
    dev = {}

    def rel_max(a, b):
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

    for k in ("train/logits", "train/probs", "inference/logits", "inference/probs"):
        dev[k + " max_abs"] = float(np.abs(f32[k] - ref[k]).max())
        dev[k + " max_abs/max|ref|"] = rel_max(f32[k], ref[k])
    dev["train/loss rel"] = abs(f32["train/loss"] - ref["train/loss"]) / abs(ref["train/loss"])
    for k in ref:
        if k.startswith("train/intermediate/"):
            dev[k + " max_abs/max|ref|"] = rel_max(f32[k], ref[k])
    pairs = [(n, j, g32, g64) for (n, j, g32), (_, _, g64) in zip(f32["grads"], ref["grads"])]
    dev["grads worst max_abs/max|ref| per variable (nonzero true gradient)"] = max(
        rel_max(g32, g64) for (n, j, g32, g64) in pairs if not zero_true_gradient(n, j))
    dev["grads worst |sum-sum_ref|/sumabs_ref (nonzero true gradient)"] = max(
        abs(g32.sum() - g64.sum()) / np.abs(g64).sum()
        for (n, j, g32, g64) in pairs if not zero_true_gradient(n, j))
    dev["grads worst |sumsq-sumsq_ref|/sumsq_ref (nonzero true gradient)"] = max(
        abs((g32.astype(np.float64) ** 2).sum() - (g64 ** 2).sum()) / (g64 ** 2).sum()
        for (n, j, g32, g64) in pairs if not zero_true_gradient(n, j))
    dev["grads max_abs on zero-true-gradient biases"] = max(
        float(np.abs(g32).max()) for (n, j, g32, g64) in pairs if zero_true_gradient(n, j))
    dev["bn_after_train max_abs/max|ref|"] = max(
        rel_max(a, b) for (_, _, a), (_, _, b) in zip(f32["bn_after_train"], ref["bn_after_train"]))
    wp = [(n, j, a, b) for (n, j, a), (_, _, b) in zip(f32["adam/weights"], ref["adam/weights"])]
    dev["adam weights max_abs on zero-true-gradient biases"] = float(max(
        np.abs(a - b).max() for (n, j, a, b) in wp if zero_true_gradient(n, j)))
    dev["adam weights max_abs (others)"] = float(max(
        np.abs(a - b).max() for (n, j, a, b) in wp if not zero_true_gradient(n, j)))
    d = np.concatenate([np.abs(a - b).reshape(-1) for (n, j, a, b) in wp
                        if not zero_true_gradient(n, j)])
    for thr in (1e-6, 1e-5, 1e-4, 1e-3):
        dev["adam weights (others) fraction |diff|>%g" % thr] = float((d > thr).mean())
    dev["adam loss step2 rel"] = abs(f32["adam/losses"][1] - ref["adam/losses"][1]) / ref["adam/losses"][1]
    return dev


def write_golden(path, ref, dev):
    x, labels = make_inputs()
    tmp = path + ".tmp"
    with open_reproducible(tmp) as f:
        a = f.attrs
        a["description"] = ("U-Net golden data (tests/golden/README.md): float64 torch reference, "
                            "hash-initialised weights, batch 2, 32x32x3, 3 classes")
        a["generator"] = "tests/golden/make_golden.py (torch %s)" % torch.__version__
        a["batch"], a["height"], a["width"], a["num_classes"] = BATCH, HEIGHT, WIDTH, CLASSES
        a["sample_stride"], a["full_max"] = SAMPLE_STRIDE, FULL_MAX
        a["adam_lr"], a["adam_steps"] = ADAM_LR, ADAM_STEPS
        a["hash"] = "h=v*0x9E3779B1+i (mod 2^32); murmur3 fmix32(h)"
        put(f, "input/x", data=x)
        put(f, "input/labels", data=labels)
        hv = np.array([v for v, _ in HASH_VECTORS], dtype=np.uint32)
        hi = np.array([i for _, i in HASH_VECTORS], dtype=np.uint32)
        put(f, "hash_check/v", data=hv)
        put(f, "hash_check/i", data=hi)
        put(f, "hash_check/h", data=np.array(
            [tu.hash32(int(v), np.uint64(i)) for v, i in zip(hv, hi)], dtype=np.uint32))
        for n, j, arr in ref["init"]:
            write_record(group(f, "init"), n, j, arr)
        put(f, "inference/logits", data=ref["inference/logits"].astype(np.float32))
        put(f, "inference/probs", data=ref["inference/probs"].astype(np.float32))
        put(f, "train/logits", data=ref["train/logits"].astype(np.float32))
        put(f, "train/probs", data=ref["train/probs"].astype(np.float32))
        put(f, "train/loss", data=np.float64(ref["train/loss"]))
        for k, v in ref.items():
            if k.startswith("train/intermediate/") and k.split("/")[-1] in STORED_INTERMEDIATES:
                put(f, k, data=v.astype(np.float32))
        for n, j, g in ref["grads"]:
            write_record(group(f, "grads"), n, j, g)
        for n, j, v in ref["bn_after_train"]:
            put(f, "bn_after_train/%s/%d" % (n, j), data=v.astype(np.float32))
        put(f, "adam/losses", data=np.array(ref["adam/losses"], dtype=np.float64))
        for n, j, w in ref["adam/weights"]:
            write_record(group(f, "adam/weights"), n, j, w)
        g = group(f, "float32_deviation")
        for k, v in dev.items():
            g.attrs[k] = v
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "golden_small.h5"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    ref = run(torch.float64, "manual")
    f32 = run(torch.float32, "native")
    dev = deviation_report(ref, f32)
    for k, v in dev.items():
        print("float32 vs float64: %-55s %.3g" % (k, v))
    print("train loss %.10f  adam losses %s" % (ref["train/loss"], ref["adam/losses"]))
    print("logit range train [%.4g, %.4g]  inference [%.4g, %.4g]" % (
        ref["train/logits"].min(), ref["train/logits"].max(),
        ref["inference/logits"].min(), ref["inference/logits"].max()))
    write_golden(a.out, ref, dev)
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
