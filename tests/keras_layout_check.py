#!/usr/bin/python3
"""keras_layout_check.py - print the HDF5 tree of our weights file / checkpoint and
check it against the rules Keras 3 follows when it loads `.weights.h5`.

Keras itself cannot be installed here (no network, not packaged in Debian), so this
re-states, with h5py, what keras/src/saving/saving_lib.py does (H5IOStore / H5Entry,
_walk_saveable, _save_container_state; BaseOptimizer.save_own_variables; Adam.build):
  * a top-level group "vars" (the Functional model's own, empty);
  * /layers/<snake_case(class)[_k]>/vars/<i> for EVERY layer of model.layers, incl.
    the InputLayer and the layers without variables (empty vars group);
  * datasets named "0".."n-1", float32, Keras shapes, no attributes;
  * no root attributes but ours, unet_input_size int32 [2] and the uint32 CRC-32s
    unet_crc32_params, unet_crc32_state (and unet_crc32_adam in a checkpoint)
    (H5IOStore reads no attributes at all except a dataset's "dtype" for
    bfloat16, so Keras ignores them);
  * /optimizer/vars (only when present): 0 = iterations (int64 scalar),
    1 = learning_rate (float32 scalar), then momentum/velocity interleaved per
    trainable variable in model order, each in its variable's shape.
The expected layer table comes from tests/torch_unet.py (an independent re-statement
of docs/model.md), not from the C code.

Usage:
  /usr/bin/python3 tests/keras_layout_check.py FILE.h5 [...]       # print tree + check
  /usr/bin/python3 tests/keras_layout_check.py --run TEST_CHECKPOINT # ctest: make files
                                                                     # with --keep, check
Exit 0 ok, 1 on a violation, 77 when h5py/numpy are missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("SKIP: %s (run with /usr/bin/python3)" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def expected_tables(num_classes):
    """[(layer, [shapes], trainable_count)] in model order, and the variable-free names."""
    import torch_unet  # the independent Python reference (imports torch)
    specs = [(s.name, [tuple(x) for x in s.shapes], s.trainable_count())
             for s in torch_unet.unet_layer_specs(num_classes)]
    return specs, torch_unet.keras_variable_free_layers()


def print_tree(f):
    def visit(name, obj):
        depth = name.count("/")
        if isinstance(obj, h5py.Dataset):
            print("%s%s  %s %s" % ("  " * depth, name.split("/")[-1], obj.dtype, obj.shape))
        else:
            print("%s%s/" % ("  " * depth, name.split("/")[-1]))
    f.visititems(visit)


def check_file(path, problems):
    def bad(msg):
        problems.append("%s: %s" % (path, msg))

    with h5py.File(path, "r") as f:
        print("== %s" % path)
        # print the tree, eliding the long runs of optimizer slots
        shown = [k for k in f.keys()]
        print("/ : %s ; root attributes: %d" % (shown, len(f.attrs)))
        for top in f.keys():
            if top == "layers":
                print("layers/  (%d groups)" % len(f["layers"]))
                for name in sorted(f["layers"].keys()):
                    g = f["layers"][name]["vars"]
                    print("  %s/vars: %s" % (name, ", ".join(
                        "%s %s%s" % (k, g[k].dtype, tuple(g[k].shape)) for k in sorted(g.keys(), key=int))))
            elif top == "optimizer":
                g = f["optimizer/vars"]
                keys = sorted(g.keys(), key=int)
                print("optimizer/vars/  (%d datasets)" % len(keys))
                for k in keys[:6] + (["..."] if len(keys) > 8 else []) + keys[-2:]:
                    if k == "...":
                        print("    ...")
                    else:
                        print("    %s %s%s" % (k, g[k].dtype, tuple(g[k].shape)))
            else:
                print("%s/" % top)
                if isinstance(f[top], h5py.Group):
                    for k in f[top].keys():
                        d = f[top][k]
                        if isinstance(d, h5py.Dataset):
                            print("    %s %s%s = %s" % (k, d.dtype, tuple(d.shape), d[()]))

        if "vars" not in f or len(f["vars"]) != 0:
            bad("top-level /vars missing or not empty")
        ours = {"unet_input_size", "unet_crc32_params", "unet_crc32_state"}
        if "optimizer" in f:
            ours.add("unet_crc32_adam")
        extra = sorted(set(f.attrs.keys()) - ours)
        if extra:
            bad("root has attributes other than %s: %s" % (sorted(ours), extra))
        for name in sorted(ours - {"unet_input_size"}):
            if name not in f.attrs:
                bad("no %s root attribute" % name)
            elif f.attrs[name].dtype != np.uint32 or f.attrs[name].shape != ():
                bad("%s is %s %s, expected a uint32 scalar" % (name, f.attrs[name].dtype, f.attrs[name].shape))
        if "unet_input_size" in f.attrs:
            a = f.attrs["unet_input_size"]
            if a.dtype != np.int32 or a.shape != (2,) or min(a) <= 0:
                bad("unet_input_size is %s %s, expected two positive int32" % (a.dtype, a.shape))
        else:
            bad("no unet_input_size root attribute")
        if "layers" not in f:
            bad("no /layers")
            return
        head = f["layers/conv2d_8/vars/0"].shape if "layers/conv2d_8/vars/0" in f else (3, 3, 32, 3)
        specs, varless = expected_tables(head[-1])
        expected = {name for name, _, _ in specs} | set(varless)
        have = set(f["layers"].keys())
        for extra in sorted(have - expected):
            bad("unexpected layer group %s" % extra)
        for missing in sorted(expected - have):
            bad("missing layer group %s" % missing)
        for name in varless:
            if name in have and ("vars" not in f["layers"][name] or len(f["layers"][name]["vars"])):
                bad("%s: vars group missing or not empty" % name)
        total = 0
        for name, shapes, _ in specs:
            if name not in have:
                continue
            g = f["layers"][name].get("vars")
            if g is None:
                bad("%s has no vars group" % name)
                continue
            if sorted(g.keys(), key=int) != [str(i) for i in range(len(shapes))]:
                bad("%s: variables %s, expected 0..%d" % (name, sorted(g.keys()), len(shapes) - 1))
                continue
            for i, shp in enumerate(shapes):
                d = g[str(i)]
                if d.dtype != np.float32 or tuple(d.shape) != shp or len(d.attrs):
                    bad("%s/%d: %s %s, expected float32 %s" % (name, i, d.dtype, d.shape, shp))
                total += int(np.prod(shp))
        print("variables: %d parameters in /layers" % total)

        if "optimizer" in f:
            g = f["optimizer/vars"]
            slots = [(name, shp) for name, shapes, nt in specs for shp in shapes[:nt]]
            if len(g) != 2 + 2 * len(slots):
                bad("/optimizer/vars has %d entries, expected %d" % (len(g), 2 + 2 * len(slots)))
            else:
                if g["0"].dtype != np.int64 or g["0"].shape != ():
                    bad("optimizer iterations not an int64 scalar")
                if g["1"].dtype != np.float32 or g["1"].shape != ():
                    bad("optimizer learning_rate not a float32 scalar")
                for k, (name, shp) in enumerate(slots):
                    for j in (2 + 2 * k, 3 + 2 * k):
                        if tuple(g[str(j)].shape) != shp or g[str(j)].dtype != np.float32:
                            bad("/optimizer/vars/%d (%s) has %s, expected %s" % (j, name, g[str(j)].shape, shp))
                print("optimizer: iterations=%d learning_rate=%g, %d moment pairs"
                      % (g["0"][()], g["1"][()], len(slots)))


def main(argv):
    problems = []
    if len(argv) == 2 and argv[0] == "--run":
        with tempfile.TemporaryDirectory(prefix="unet_keras_layout_") as d:
            subprocess.run([argv[1], "--keep", d], check=True)
            for name in ("unet.weights.h5", "unet.ckpt.h5"):
                check_file(os.path.join(d, name), problems)
    elif argv:
        for p in argv:
            check_file(p, problems)
    else:
        print(__doc__)
        return 2
    for p in problems:
        print("PROBLEM:", p)
    print("ok" if not problems else "%d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
