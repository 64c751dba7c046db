#!/usr/bin/python3
"""check_golden.py - reads golden_small.h5 the way a C test should and checks a float32
implementation (here: tests/torch_unet.py in float32) against it with the tolerances
recommended in tests/golden/README.md. It only uses the file, never the float64
reference code, so it exercises the layout and shows the tolerances are attainable.

  /usr/bin/python3 tests/golden/check_golden.py [golden_small.h5]
"""
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, ".."))
import torch_unet as tu  # noqa: E402

failures = 0


def check(what, ok, detail=""):
    global failures
    if not ok:
        failures += 1
    print("%-4s %s %s" % ("ok" if ok else "FAIL", what, detail))


def sampled(array, dset):
    """The elements of array (Keras shape) that the record dset stores."""
    return np.asarray(array, dtype=np.float64).reshape(-1)[::int(dset.attrs["stride"])]


def compare_record(kind, name, j, mine, dset, rel_tol, sum_tol, zero_abs=None):
    ref = dset[()].astype(np.float64)
    got = sampled(mine, dset)
    full = np.asarray(mine, dtype=np.float64).reshape(-1)
    if zero_abs is not None and dset.attrs["zero_true_gradient"]:
        err = np.abs(got).max()
        check("%s %s/%d is rounding noise" % (kind, name, j), err <= zero_abs, "max|g|=%.3g" % err)
        return
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(got - ref).max()
    s_err = abs(full.sum() - dset.attrs["sum"]) / max(dset.attrs["sumabs"], 1e-30)
    q_err = abs((full * full).sum() - dset.attrs["sumsq"]) / max(dset.attrs["sumsq"], 1e-30)
    check("%s %s/%d" % (kind, name, j),
          err <= rel_tol * scale and s_err <= sum_tol and q_err <= sum_tol,
          "max_abs/max|ref|=%.2g sum=%.2g sumsq=%.2g" % (err / scale, s_err, q_err))


def main(path):
    torch.set_num_threads(1)
    f = h5py.File(path, "r")
    nc = int(f.attrs["num_classes"])
    x = torch.tensor(f["input/x"][()])
    labels = torch.tensor(f["input/labels"][()].astype(np.int64))

    # hash test vectors and initial weights: bit-exact
    h = [int(tu.hash32(int(v), np.uint64(i))) for v, i in zip(f["hash_check/v"][()], f["hash_check/i"][()])]
    check("hash32 test vectors", list(f["hash_check/h"][()]) == h)
    model = tu.TorchUNet(nc, init="hash")
    exact = all(np.array_equal(sampled(t.detach().numpy(), f["init/%s/%d" % (n, j)]).astype(np.float32),
                               f["init/%s/%d" % (n, j)][()])
                for (n, j, t, _) in model.variables())
    check("initial weights bit-exact (all stored elements)", exact)
    init = model.state_numpy()

    # inference with the moving statistics
    with torch.no_grad():
        logits = model.forward(x, training=False)
    ref = f["inference/logits"][()]
    e = np.abs(logits.numpy() - ref).max() / np.abs(ref).max()
    check("inference logits", e <= 1e-4, "max_abs/max|ref|=%.2g" % e)
    e = np.abs(torch.softmax(logits, -1).numpy() - f["inference/probs"][()]).max()
    check("inference probs", e <= 2e-4, "max_abs=%.2g" % e)

    # training forward, intermediates, loss, gradients, moving statistics
    inter = {}
    logits = model.forward(x, training=True, bn_impl="native", intermediates=inter)
    loss = tu.sparse_ce_from_logits(logits, labels)
    loss.backward()
    ref = f["train/logits"][()]
    e = np.abs(logits.detach().numpy() - ref).max() / np.abs(ref).max()
    check("train logits", e <= 1e-4, "max_abs/max|ref|=%.2g" % e)
    e = np.abs(torch.softmax(logits, -1).detach().numpy() - f["train/probs"][()]).max()
    check("train probs", e <= 1e-4, "max_abs=%.2g" % e)
    e = abs(loss.item() - f["train/loss"][()]) / f["train/loss"][()]
    check("train loss", e <= 1e-5, "rel=%.2g" % e)
    for k in f["train/intermediate"]:
        ref = f["train/intermediate/" + k][()]
        e = np.abs(inter[k].detach().numpy() - ref).max() / np.abs(ref).max()
        check("intermediate " + k, e <= 1e-4, "max_abs/max|ref|=%.2g" % e)
    for (n, j, t, tr) in model.variables():
        if tr:
            compare_record("grad", n, j, t.grad.numpy(), f["grads/%s/%d" % (n, j)],
                           rel_tol=1e-4, sum_tol=1e-4, zero_abs=1e-4)
    for n in f["bn_after_train"]:
        for j in (2, 3):
            ref = f["bn_after_train/%s/%d" % (n, j)][()]
            e = np.abs(model.vars[n][j].detach().numpy() - ref).max() / np.abs(ref).max()
            check("moving stats %s/%d after the training forward" % (n, j), e <= 1e-5, "rel=%.2g" % e)

    # two Keras-Adam steps from the initial state
    model.load_numpy(init)
    lr, steps = float(f.attrs["adam_lr"]), int(f.attrs["adam_steps"])
    opt = tu.KerasAdam(model.trainable(), lr=lr)
    losses = [tu.train_step(model, opt, x, labels, "native") for _ in range(steps)]
    e = np.abs(np.array(losses) - f["adam/losses"][()]).max() / f["adam/losses"][()].max()
    check("adam step losses", e <= 1e-5, "rel=%.2g" % e)
    n_far = n_total = 0
    worst = 0.0
    for (n, j, t, tr) in model.variables():
        d = f["adam/weights/%s/%d" % (n, j)]
        diff = np.abs(sampled(t.detach().numpy(), d) - d[()])
        if d.attrs["zero_true_gradient"]:
            # the update follows the sign of rounding noise: only the bound |dw| <= lr per step
            check("adam %s/%d (noise-driven bias) within %g" % (n, j, 2 * steps * lr),
                  diff.max() <= 2 * steps * lr + 1e-6, "max=%.2g" % diff.max())
            continue
        n_far += int((diff > 1e-5).sum())
        n_total += diff.size
        worst = max(worst, diff.max())
        full = t.detach().numpy().astype(np.float64)
        s_err = abs(full.sum() - d.attrs["sum"]) / d.attrs["sumabs"]
        if s_err > 1e-5:
            check("adam %s/%d sum" % (n, j), False, "rel=%.2g" % s_err)
    check("adam weights: all stored within 5e-4, <=0.1% beyond 1e-5",
          worst <= 5e-4 and n_far <= 1e-3 * n_total,
          "max=%.2g beyond1e-5=%d of %d" % (worst, n_far, n_total))
    print("CHECK_GOLDEN", "PASSED" if failures == 0 else "FAILED (%d)" % failures)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden_small.h5")))
