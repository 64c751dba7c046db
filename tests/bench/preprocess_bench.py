#!/usr/bin/python3
"""Speed peer for unet-preprocess: the same job in plain Python with PIL + h5py.

Pairs images and masks by stem, decodes (PIL), resizes images bilinear and
masks nearest to --size, maps mask values to class ids, shuffles, splits off
--val and writes train/val HDF5 files with the unet-preprocess schema (one
sample per chunk). Single process, as such a script is usually written.

Note: PIL's BILINEAR resize widens its filter when downscaling (antialiasing),
unlike tf.image.resize; the pixels differ slightly from unet-preprocess, the
work is comparable. Bad pairs are skipped with a message, like the C tool.

usage: preprocess_bench.py --images DIR --masks DIR --out DIR [--size 160]
                           [--val N] [--mask-values 1,2,3] [--seed 1337]
"""
import argparse
import os
import random
import sys
import time

import h5py
import numpy as np
from PIL import Image

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def listing(folder):
    out = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if not name.startswith(".") and ext.lower() in IMAGE_EXT:
            out[stem] = os.path.join(folder, name)
    return out


def write_h5(path, samples, size, values, seed, kind):
    h, w = size
    n = len(samples)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with h5py.File(tmp, "w") as f:
        images = f.create_dataset("images", (n, h, w, 3), np.uint8, chunks=(1, h, w, 3))
        masks = f.create_dataset("masks", (n, h, w), np.uint8, chunks=(1, h, w))
        for i, (_, img, msk) in enumerate(samples):
            images[i] = img
            masks[i] = msk
        f.create_dataset("names", data=[s[0] for s in samples], dtype=h5py.string_dtype())
        f.attrs["height"], f.attrs["width"] = np.int32(h), np.int32(w)
        f.attrs["num_classes"] = np.int32(len(values))
        f.attrs["mask_values"] = np.array(values, np.int32)
        f.attrs["seed"] = np.int64(seed)
        f.attrs["tool_version"] = "bench-python"
        f.attrs["kind"] = kind
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--masks", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="160")
    ap.add_argument("--val", type=int, default=0)
    ap.add_argument("--mask-values", default="1,2,3")
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    hw = [int(v) for v in a.size.lower().split("x")]
    size = (hw[0], hw[-1])
    values = [int(v) for v in a.mask_values.split(",")]
    lut = np.full(256, 255, np.uint8)
    for c, v in enumerate(values):
        lut[v] = c
    t0 = time.time()
    imgs, msks = listing(a.images), listing(a.masks)
    samples = []
    for stem in sorted(set(imgs) & set(msks)):
        try:
            im = Image.open(imgs[stem])
            if im.format not in ("JPEG", "PNG"):
                raise ValueError("unsupported format %s" % im.format)
            im = im.convert("RGB")
            mk = Image.open(msks[stem])
            mk = mk.getchannel(0) if mk.mode not in ("L", "P") else mk
            if im.size != mk.size:
                raise ValueError("size mismatch")
            m = lut[np.asarray(mk)]
            if (m == 255).any():
                raise ValueError("mask value outside the mapping")
            img = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR))
            msk = np.asarray(Image.fromarray(m).resize((size[1], size[0]), Image.NEAREST))
            samples.append((stem, img, msk))
        except Exception as e:  # one bad pair never stops the run
            print("skipping %s: %s" % (stem, e), file=sys.stderr)
    random.Random(a.seed).shuffle(samples)
    os.makedirs(a.out, exist_ok=True)
    n_train = len(samples) - a.val
    write_h5(os.path.join(a.out, "train-00000-of-00001.h5"), samples[:n_train], size, values, a.seed, "train")
    if a.val:
        write_h5(os.path.join(a.out, "val.h5"), samples[n_train:], size, values, a.seed, "val")
    dt = time.time() - t0
    print("python: wrote %d pairs in %.2f s: %.1f images/s" % (len(samples), dt, len(samples) / dt))


if __name__ == "__main__":
    main()
