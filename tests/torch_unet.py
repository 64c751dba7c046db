#!/usr/bin/python3
"""torch_unet.py - independent PyTorch reference of the Keras Xception-style U-Net.

It implements exactly the model of docs/model.md (Keras 3 semantics) so that
  (a) tests/golden/make_golden.py can write small golden data the C tests compare
      against without PyTorch, and
  (b) the C trainer has a speed peer:  --bench prints one machine-readable line.

Run with the Debian interpreter (python3-torch 1.13, h5py, numpy):
  /usr/bin/python3 tests/torch_unet.py --selfcheck
  /usr/bin/python3 tests/torch_unet.py --bench --batch 32 --size 160 --steps 3 --threads 2

Conventions
  * Public tensors are NHWC (Keras); internally the network runs NCHW because that is
    what torch's convolutions want. Only layout differs, not the arithmetic.
  * Variables live in Keras shapes and Keras order (the spec table), addressed by the
    Keras 3 weights-file names: conv kernel (kh,kw,cin,cout), depthwise (3,3,C,1),
    pointwise (1,1,cin,cout), conv-transpose kernel (3,3,out,in), BN gamma, beta,
    moving_mean, moving_variance.
  * 'same' padding is TensorFlow's (asymmetric: extra pad goes after), done with F.pad
    and padding=0 convolutions; max-pool pads with -inf.
  * BatchNorm momentum 0.99 / eps 1e-3 in the Keras sense: moving = 0.99*moving +
    0.01*batch with the BIASED batch variance.
  * Adam is Keras' (epsilon outside the bias correction), implemented by hand.

Deterministic hash initialiser (reproduced bit-exactly by C; also in tests/golden/README.md)
  v = index of the variable in the model's flat variable order (all variables of all
      layers in spec-table order, BN moving statistics included: conv2d/kernel is 0,
      conv2d/bias 1, batch_normalization/gamma 2, ..., conv2d_8/bias last),
  i = flat row-major element index in the Keras shape.
  hash32(v, i):   all arithmetic on uint32, wrapping mod 2^32
      h = v * 0x9E3779B1 + i
      h ^= h >> 16;  h *= 0x85EBCA6B;  h ^= h >> 13;  h *= 0xC2B2AE35;  h ^= h >> 16
      (the murmur3 32-bit finaliser)
  r = (float)(h >> 8) * 2^-24                   exact float32 in [0, 1)
  s = 2.0f * r - 1.0f                           exact float32 in [-1, 1)
  kernel, depthwise, pointwise, conv-transpose kernel:
      limit = (float)sqrt(6.0 / (double)(fan_in + fan_out))     (double sqrt, then rounded)
      w = s * limit                             one float32 rounding
      fan_in = kh*kw*shape[-2], fan_out = kh*kw*shape[-1] on the Keras shape
  bias (conv, separable, transpose):  w = s * 0.125f          exact
  BN gamma = 1.0f + s * 0.125f      (product exact, one rounding in the add)
  BN beta  = s * 0.125f             exact
  BN moving_mean = s * 0.125f       exact
  BN moving_variance = 1.0f + r * 0.5f   (product exact, one rounding in the add)
  The scales are powers of two on purpose: every product except s*limit is exact, so
  the bits cannot depend on FMA contraction or evaluation order.
"""
import argparse
import math
import resource
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-7

# ---------------------------------------------------------------------------------
# Layer table (names, kinds, Keras variable shapes) in model order
# ---------------------------------------------------------------------------------


class LayerSpec:
    """One layer with variables. kind: conv | bn | sep | convT.
    shapes: Keras variable shapes in weights-file order. stride: conv stride."""

    def __init__(self, name, kind, shapes, stride=1):
        self.name, self.kind, self.shapes, self.stride = name, kind, shapes, stride

    def trainable_count(self):
        return 2 if self.kind == "bn" else len(self.shapes)


def unet_layer_specs(num_classes=3):
    """Layers with variables, in Keras model order (the spec table)."""
    counters = {}
    specs = []

    def name_for(base):
        k = counters.get(base, 0)
        counters[base] = k + 1
        return base if k == 0 else "%s_%d" % (base, k)

    def conv(cin, cout, k, stride=1):
        specs.append(LayerSpec(name_for("conv2d"), "conv", [(k, k, cin, cout), (cout,)], stride))

    def bn(c):
        specs.append(LayerSpec(name_for("batch_normalization"), "bn", [(c,)] * 4))

    def sep(cin, cout):
        specs.append(LayerSpec(name_for("separable_conv2d"), "sep",
                               [(3, 3, cin, 1), (1, 1, cin, cout), (cout,)]))

    def convT(cin, cout):
        specs.append(LayerSpec(name_for("conv2d_transpose"), "convT", [(3, 3, cout, cin), (cout,)]))

    conv(3, 32, 3, 2)
    bn(32)
    prev_c = c = 32
    for f in (64, 128, 256):
        sep(c, f); bn(f); sep(f, f); bn(f)
        conv(prev_c, f, 1, 2)
        prev_c = c = f
    for f in (256, 128, 64, 32):
        convT(c, f); bn(f); convT(f, f); bn(f)
        conv(prev_c, f, 1, 1)
        prev_c = c = f
    conv(c, num_classes, 3, 1)
    return specs


def keras_variable_free_layers():
    """Names of the Keras layers that have no variables (empty groups in the
    weights file): 1 input layer, 15 activations, 3 max-pools, 8 up-samplings, 7 adds."""
    names = ["input_layer"]
    for base, count in (("activation", 15), ("max_pooling2d", 3),
                        ("up_sampling2d", 8), ("add", 7)):
        names += [base if k == 0 else "%s_%d" % (base, k) for k in range(count)]
    return names


def list_layer_shapes(num_classes=3):
    """[(name, [var shapes])] in model order (Keras shapes)."""
    return [(s.name, list(s.shapes)) for s in unet_layer_specs(num_classes)]


def param_counts(num_classes=3):
    """(total, trainable, non_trainable) parameter counts (independent of H, W)."""
    total = trainable = 0
    for s in unet_layer_specs(num_classes):
        for j, shp in enumerate(s.shapes):
            n = int(np.prod(shp))
            total += n
            if j < s.trainable_count():
                trainable += n
    return total, trainable, total - trainable


# ---------------------------------------------------------------------------------
# Hash initialiser
# ---------------------------------------------------------------------------------

def hash32(v, i):
    """murmur3 fmix32 of (v * 0x9E3779B1 + i) mod 2^32; i may be a numpy array."""
    M = np.uint64(0xFFFFFFFF)
    h = (np.uint64(v) * np.uint64(0x9E3779B1) + np.asarray(i, dtype=np.uint64)) & M
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M
    h ^= h >> np.uint64(16)
    return h.astype(np.uint32)


def glorot_limit(shape):
    rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = rf * shape[-2], rf * shape[-1]
    return np.float32(math.sqrt(6.0 / float(fan_in + fan_out)))


def hash_init_value(v, shape, role):
    """float32 array in the Keras shape. role: kernel | bias | gamma | beta | mean | var."""
    n = int(np.prod(shape))
    u = hash32(v, np.arange(n, dtype=np.uint64))
    r = (u >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    s = np.float32(2.0) * r - np.float32(1.0)
    f32 = np.float32
    if role == "kernel":
        out = s * glorot_limit(shape)
    elif role in ("bias", "beta", "mean"):
        out = s * f32(0.125)
    elif role == "gamma":
        out = f32(1.0) + s * f32(0.125)
    elif role == "var":
        out = f32(1.0) + r * f32(0.5)
    else:
        raise ValueError(role)
    assert out.dtype == np.float32
    return out.reshape(shape)


def variable_roles(spec):
    return {"conv": ["kernel", "bias"], "convT": ["kernel", "bias"],
            "sep": ["kernel", "kernel", "bias"],
            "bn": ["gamma", "beta", "mean", "var"]}[spec.kind]


def keras_glorot_value(shape, rng):
    lim = glorot_limit(shape)
    return rng.uniform(-lim, lim, size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------

def tf_same_pads(n, k, s):
    """TensorFlow 'same': (before, after) padding along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_same(x, k, s, value=0.0):
    """x NCHW; pads H and W the TF 'same' way."""
    ph = tf_same_pads(x.shape[2], k, s)
    pw = tf_same_pads(x.shape[3], k, s)
    if ph == (0, 0) and pw == (0, 0):
        return x
    return F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=value)


def conv2d_same(x, kernel, bias, stride=1):
    """x NCHW, kernel Keras (kh,kw,cin,cout)."""
    k = kernel.shape[0]
    w = kernel.permute(3, 2, 0, 1)
    return F.conv2d(pad_same(x, k, stride), w, bias, stride=stride)


def separable_conv2d_same(x, depthwise, pointwise, bias):
    """depthwise (3,3,C,1) groups=C without bias, then pointwise (1,1,C,cout) + bias."""
    c = x.shape[1]
    dw = depthwise.permute(2, 3, 0, 1)            # (C,1,3,3)
    y = F.conv2d(pad_same(x, 3, 1), dw, None, groups=c)
    return F.conv2d(y, pointwise.permute(3, 2, 0, 1), bias)


def conv2d_transpose_same(x, kernel, bias):
    """Conv2DTranspose(3, stride 1, same); Keras kernel (3,3,out,in).
    With stride 1 the transpose of a same-padded 3x3 convolution is itself a same-padded
    3x3 convolution with the kernel flipped in space and in/out swapped:
    W[o, i, a, b] = K[2-a, 2-b, o, i]. That runs on torch's fast (mkldnn) convolution,
    unlike F.conv_transpose2d (slow_conv_transpose2d on CPU); the self-check compares it
    with the adjoint of the forward convolution."""
    w = kernel.flip(0, 1).permute(2, 3, 0, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1)), w, bias)


def max_pool_same(x, k=3, s=2):
    return F.max_pool2d(pad_same(x, k, s, value=-math.inf), k, s)


def upsample2(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def batch_norm(x, vars_, training, update_moving, impl="manual"):
    """Keras BatchNormalization over N,H,W of NCHW x. vars_: [gamma, beta, mean, var]."""
    gamma, beta, mmean, mvar = vars_
    if not training:
        shape = (1, -1, 1, 1)
        inv = torch.rsqrt(mvar.reshape(shape) + BN_EPSILON)
        return (x - mmean.reshape(shape)) * inv * gamma.reshape(shape) + beta.reshape(shape)
    if impl == "manual":
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(dim=(0, 2, 3), keepdim=True)   # biased
        y = xc * torch.rsqrt(var + BN_EPSILON) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
        bmean, bvar = mean.detach().reshape(-1), var.detach().reshape(-1)
    else:
        # torch normalises with the biased variance too; only its running-variance
        # update is unbiased. With momentum 1 its running buffers receive exactly the
        # batch mean and the unbiased batch variance, which is rescaled by (n-1)/n to
        # the biased one Keras averages into its moving variance.
        bmean = torch.zeros_like(mmean)
        bvar = torch.zeros_like(mvar)
        y = F.batch_norm(x, bmean, bvar, gamma, beta, training=True, momentum=1.0,
                         eps=BN_EPSILON)
        n = x.numel() // x.shape[1]
        bvar = bvar * ((n - 1) / n)
    if update_moving:
        with torch.no_grad():
            mmean.mul_(BN_MOMENTUM).add_(bmean.to(mmean.dtype), alpha=1.0 - BN_MOMENTUM)
            mvar.mul_(BN_MOMENTUM).add_(bvar.to(mvar.dtype), alpha=1.0 - BN_MOMENTUM)
    return y


class TorchUNet:
    """The U-Net with Keras-addressed variables. self.vars[name] = [tensors in Keras
    shapes]; trainable ones require grad."""

    def __init__(self, num_classes=3, dtype=torch.float32, init="hash", seed=0):
        self.num_classes = num_classes
        self.specs = unet_layer_specs(num_classes)
        self.vars = OrderedDict()
        rng = np.random.RandomState(seed)
        v = 0
        for spec in self.specs:
            tensors = []
            for j, (shape, role) in enumerate(zip(spec.shapes, variable_roles(spec))):
                if init == "hash":
                    val = hash_init_value(v, shape, role)
                else:   # Keras defaults: glorot kernels, zero bias, BN 1/0/0/1
                    val = {"kernel": None, "bias": 0.0, "beta": 0.0, "mean": 0.0,
                           "gamma": 1.0, "var": 1.0}[role]
                    val = keras_glorot_value(shape, rng) if val is None else \
                        np.full(shape, val, np.float32)
                t = torch.tensor(val, dtype=dtype)
                t.requires_grad_(j < spec.trainable_count())
                tensors.append(t)
                v += 1
            self.vars[spec.name] = tensors

    # -- variable access -------------------------------------------------------
    def variables(self):
        """[(layer_name, index, tensor, trainable)] in the flat model order."""
        out = []
        for spec in self.specs:
            for j, t in enumerate(self.vars[spec.name]):
                out.append((spec.name, j, t, j < spec.trainable_count()))
        return out

    def trainable(self):
        return [t for (_, _, t, tr) in self.variables() if tr]

    def to(self, dtype):
        for tensors in self.vars.values():
            for j, t in enumerate(tensors):
                nt = t.detach().to(dtype).clone()
                nt.requires_grad_(t.requires_grad)
                tensors[j] = nt
        return self

    def state_numpy(self):
        return OrderedDict((n, [t.detach().cpu().numpy().copy() for t in ts])
                           for n, ts in self.vars.items())

    def load_numpy(self, state):
        with torch.no_grad():
            for n, ts in self.vars.items():
                for t, a in zip(ts, state[n]):
                    t.copy_(torch.from_numpy(np.asarray(a)))

    # -- forward ---------------------------------------------------------------
    def forward(self, x_nhwc, training=True, update_moving=True, bn_impl="manual",
                intermediates=None):
        """x_nhwc: (N,H,W,3) float, H and W divisible by 16. Returns logits NHWC.
        intermediates: optional dict filled with block outputs (NHWC)."""
        V = self.vars

        def bn(name, x):
            return batch_norm(x, V[name], training, update_moving, bn_impl)

        def keep(key, t):
            if intermediates is not None:
                intermediates[key] = t.permute(0, 2, 3, 1)

        x = x_nhwc.permute(0, 3, 1, 2)
        x = conv2d_same(x, *V["conv2d"], stride=2)
        x = F.relu(bn("batch_normalization", x))
        prev = x
        keep("entry", x)
        spec_iter = iter(self.specs[2:])
        for f in (64, 128, 256):
            s1, b1, s2, b2, res = (next(spec_iter) for _ in range(5))
            x = F.relu(x)                      # the double ReLU of the original
            x = separable_conv2d_same(x, *V[s1.name])
            x = F.relu(bn(b1.name, x))
            x = separable_conv2d_same(x, *V[s2.name])
            x = bn(b2.name, x)
            x = max_pool_same(x, 3, 2)
            x = x + conv2d_same(prev, *V[res.name], stride=2)
            prev = x
            keep("down_%d" % f, x)
        for f in (256, 128, 64, 32):
            t1, b1, t2, b2, res = (next(spec_iter) for _ in range(5))
            x = F.relu(x)
            x = conv2d_transpose_same(x, *V[t1.name])
            x = F.relu(bn(b1.name, x))
            x = conv2d_transpose_same(x, *V[t2.name])
            x = bn(b2.name, x)
            x = upsample2(x)
            x = x + conv2d_same(upsample2(prev), *V[res.name])
            prev = x
            keep("up_%d" % f, x)
        head = next(spec_iter)
        x = conv2d_same(x, *V[head.name])
        return x.permute(0, 2, 3, 1)


def sparse_ce_from_logits(logits_nhwc, labels):
    """Mean over every pixel of the batch; labels (N,H,W) integer."""
    return F.cross_entropy(logits_nhwc.permute(0, 3, 1, 2), labels.long())


class KerasAdam:
    """Keras Adam: alpha = lr*sqrt(1-b2^t)/(1-b1^t); w -= alpha*m/(sqrt(v)+eps)."""

    def __init__(self, params, lr=1e-3):
        self.params, self.lr, self.t = list(params), lr, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.t += 1
        alpha = self.lr * math.sqrt(1.0 - ADAM_BETA2 ** self.t) / (1.0 - ADAM_BETA1 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(ADAM_BETA1).add_(g, alpha=1.0 - ADAM_BETA1)
            v.mul_(ADAM_BETA2).addcmul_(g, g, value=1.0 - ADAM_BETA2)
            p.sub_(alpha * m / (v.sqrt() + ADAM_EPSILON))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def train_step(model, opt, x, labels, bn_impl="manual"):
    opt.zero_grad()
    logits = model.forward(x, training=True, update_moving=True, bn_impl=bn_impl)
    loss = sparse_ce_from_logits(logits, labels)
    loss.backward()
    opt.step()
    return loss.item()


# ---------------------------------------------------------------------------------
# Keras 3 .weights.h5
# ---------------------------------------------------------------------------------

def save_keras_weights(model, path):
    """Keras 3 layout: /vars (model, empty), /layers/<name>/vars/<i> float32 in Keras
    shapes, plus the empty groups of the variable-free layers, as Keras writes them."""
    import h5py
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        layers = f.create_group("layers")
        for name, tensors in model.vars.items():
            g = layers.create_group(name).create_group("vars")
            for j, t in enumerate(tensors):
                g.create_dataset(str(j), data=t.detach().cpu().numpy().astype(np.float32))
        for name in keras_variable_free_layers():
            layers.create_group(name).create_group("vars")


def load_keras_weights(model, path):
    """Reads /layers/<name>/vars/<i>; raises ValueError naming the faulty variable."""
    import h5py
    with h5py.File(path, "r") as f:
        for name, tensors in model.vars.items():
            key = "layers/%s/vars" % name
            if key not in f:
                raise ValueError("%s: missing group /%s" % (path, key))
            g = f[key]
            if len(g.keys()) != len(tensors):
                raise ValueError("%s: /%s has %d variables, expected %d"
                                 % (path, key, len(g.keys()), len(tensors)))
            for j, t in enumerate(tensors):
                a = g[str(j)][()]
                if tuple(a.shape) != tuple(t.shape):
                    raise ValueError("%s: /%s/%d has shape %s, expected %s"
                                     % (path, key, j, a.shape, tuple(t.shape)))
                with torch.no_grad():
                    t.copy_(torch.from_numpy(a.astype(np.float32)))


# ---------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------

def _naive_same_conv_nhwc(x, k, s):
    """Plain loops, TF 'same' padding written out: x (H,W,C), k (kh,kw,C,O)."""
    H, W, C = x.shape
    kh, kw, _, O = k.shape
    Ho, Wo = -(-H // s), -(-W // s)
    pt = max((Ho - 1) * s + kh - H, 0) // 2
    pl = max((Wo - 1) * s + kw - W, 0) // 2
    y = np.zeros((Ho, Wo, O))
    for i in range(Ho):
        for j in range(Wo):
            for a in range(kh):
                for b in range(kw):
                    r, c = i * s + a - pt, j * s + b - pl
                    if 0 <= r < H and 0 <= c < W:
                        y[i, j] += x[r, c] @ k[a, b]
    return y


def _naive_same_maxpool(x, k, s):
    H, W, C = x.shape
    Ho, Wo = -(-H // s), -(-W // s)
    pt = max((Ho - 1) * s + k - H, 0) // 2
    pl = max((Wo - 1) * s + k - W, 0) // 2
    y = np.full((Ho, Wo, C), -np.inf)
    for i in range(Ho):
        for j in range(Wo):
            for a in range(k):
                for b in range(k):
                    r, c = i * s + a - pt, j * s + b - pl
                    if 0 <= r < H and 0 <= c < W:
                        y[i, j] = np.maximum(y[i, j], x[r, c])
    return y


def selfcheck():
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    ok = True

    def report(name, err, tol):
        nonlocal ok
        good = err <= tol
        ok &= good
        print("%-58s err=%.3g tol=%.3g %s" % (name, err, tol, "ok" if good else "FAIL"))

    # parameter counts
    total, tr, ntr = param_counts(3)
    print("params total=%d trainable=%d non_trainable=%d" % (total, tr, ntr))
    good = (total, tr, ntr) == (2058979, 2055203, 3776)
    ok &= good
    print("param counts match spec:", good)
    assert len(keras_variable_free_layers()) == 34

    # TF 'same' conv / pool against explicit loops (even and odd sizes)
    for (H, W, k, s) in ((6, 6, 3, 2), (7, 5, 3, 2), (6, 7, 1, 2), (5, 6, 3, 1)):
        x = rng.randn(H, W, 4)
        kern = rng.randn(k, k, 4, 5)
        ref = _naive_same_conv_nhwc(x, kern, s)
        got = conv2d_same(torch.tensor(x).permute(2, 0, 1)[None], torch.tensor(kern), None, s)
        report("conv same k=%d s=%d %dx%d vs loops" % (k, s, H, W),
               np.abs(got[0].permute(1, 2, 0).numpy() - ref).max(), 1e-12)
        ref = _naive_same_maxpool(x, 3, 2)
        got = max_pool_same(torch.tensor(x).permute(2, 0, 1)[None])
        report("maxpool same 3/2 %dx%d vs loops" % (H, W),
               np.abs(got[0].permute(1, 2, 0).numpy() - ref).max(), 0.0)
    # stride-2 even size: pad 0 before / 1 after
    assert tf_same_pads(160, 3, 2) == (0, 1) and tf_same_pads(7, 3, 2) == (1, 1)
    # separable = depthwise per channel then pointwise
    x = rng.randn(5, 6, 4)
    dw, pw, b = rng.randn(3, 3, 4, 1), rng.randn(1, 1, 4, 3), rng.randn(3)
    ref = np.stack([_naive_same_conv_nhwc(x[:, :, c:c + 1], dw[:, :, c:c + 1, :], 1)[:, :, 0]
                    for c in range(4)], axis=2) @ pw[0, 0] + b
    got = separable_conv2d_same(torch.tensor(x).permute(2, 0, 1)[None], torch.tensor(dw),
                                torch.tensor(pw), torch.tensor(b))
    report("separable conv vs loops", np.abs(got[0].permute(1, 2, 0).numpy() - ref).max(), 1e-12)
    # conv transpose = input-gradient of the same conv with kernel read as (kh,kw,out,in)
    xin = torch.tensor(rng.randn(2, 3, 5, 6))     # NCHW, in=3 channels
    K = torch.tensor(rng.randn(3, 3, 4, 3))       # (kh,kw,out=4,in=3)
    z = torch.zeros(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    (conv2d_same(z, K, None) * xin).sum().backward()
    got = conv2d_transpose_same(xin, K, None)
    report("conv transpose vs adjoint of same conv", (got - z.grad).abs().max().item(), 1e-12)
    # nearest upsampling
    t = torch.tensor(rng.randn(1, 2, 3, 4))
    report("upsampling nearest 2x", (upsample2(t) - t.repeat_interleave(2, 2).repeat_interleave(2, 3))
           .abs().max().item(), 0.0)
    # Keras Adam against a hand evaluation of the formula (two steps)
    p = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    opt = KerasAdam([p], lr=0.1)
    w, m, v = np.array([0.5, -1.0]), np.zeros(2), np.zeros(2)
    for t_ in (1, 2):
        g = np.array([0.3, -2e-3]) * t_
        p.grad = torch.tensor(g)
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.1 * math.sqrt(1 - 0.999 ** t_) / (1 - 0.9 ** t_) * m / (np.sqrt(v) + 1e-7)
    report("keras adam two steps", np.abs(p.detach().numpy() - w).max(), 1e-15)

    # whole model, float64, 32x32: BN implementations agree, moving update is Keras'
    model = TorchUNet(3).to(torch.float64)
    x = torch.tensor(rng.randint(0, 256, size=(2, 32, 32, 3)).astype(np.float64))
    labels = torch.tensor(rng.randint(0, 3, size=(2, 32, 32)))
    state0 = model.state_numpy()
    inter = {}
    l1 = model.forward(x, bn_impl="manual", intermediates=inter)
    mm1 = model.vars["batch_normalization"][2].clone()
    mv1 = model.vars["batch_normalization"][3].clone()
    model.load_numpy(state0)
    l2 = model.forward(x, bn_impl="native")
    report("BN manual vs F.batch_norm logits", (l1 - l2).abs().max().item(), 1e-9)
    report("BN moving var manual vs native",
           (mv1 - model.vars["batch_normalization"][3]).abs().max().item(), 1e-12)
    e = conv2d_same(x.permute(0, 3, 1, 2), *model.vars["conv2d"], stride=2)
    bm = e.mean(dim=(0, 2, 3))
    bv = e.var(dim=(0, 2, 3), unbiased=False)
    report("BN moving mean = 0.99 m + 0.01 batch",
           (mm1 - (0.99 * torch.tensor(state0["batch_normalization"][2]) + 0.01 * bm)).abs().max().item(), 1e-9)
    report("BN moving var uses biased batch variance",
           (mv1 - (0.99 * torch.tensor(state0["batch_normalization"][3]) + 0.01 * bv)).abs().max().item(), 1e-9)
    assert tuple(inter["entry"].shape) == (2, 16, 16, 32) and tuple(l1.shape) == (2, 32, 32, 3)

    # finite differences of the mean loss, float64, training mode
    model.load_numpy(state0)
    loss = sparse_ce_from_logits(model.forward(x, update_moving=False), labels)
    loss.backward()
    probes = [("conv2d", 0, (1, 2, 0, 5)), ("batch_normalization", 0, (3,)),
              ("separable_conv2d_2", 0, (1, 1, 7, 0)), ("conv2d_3", 1, (11,)),
              ("conv2d_transpose_1", 0, (1, 1, 5, 9)), ("batch_normalization_12", 1, (4,)),
              ("conv2d_8", 0, (0, 2, 17, 1)), ("conv2d_8", 1, (2,))]
    for (name, j, idx) in probes:
        t = model.vars[name][j]
        g = t.grad[idx].item()
        h = 1e-7 * max(1.0, abs(t[idx].item()))
        vals = []
        for sgn in (1, -1):
            with torch.no_grad():
                t[idx] += sgn * h
                vals.append(sparse_ce_from_logits(model.forward(x, update_moving=False), labels).item())
                t[idx] -= sgn * h
        fd = (vals[0] - vals[1]) / (2 * h)
        report("finite difference %s/%d%s (g=%.4g)" % (name, j, list(idx), g),
               abs(fd - g) / max(abs(g), 1e-6), 1e-5)

    # weights file round trip
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.weights.h5")
        save_keras_weights(model, p)
        m2 = TorchUNet(3, init="keras")
        load_keras_weights(m2, p)
        diff = max(np.abs(a.detach().numpy() - b.detach().numpy().astype(np.float32)).max()
                   for (_, _, a, _), (_, _, b, _) in zip(m2.variables(), model.variables()))
        report("weights.h5 save/load round trip", diff, 0.0)
    print("SELFCHECK", "PASSED" if ok else "FAILED")
    return ok


# ---------------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------------

def bench(batch, size, steps, threads, warmup, num_classes=3, bn_impl="native"):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TorchUNet(num_classes, init="keras")
    opt = KerasAdam(model.trainable(), lr=1e-4)
    x = torch.rand(batch, size, size, 3) * 255.0
    labels = torch.randint(0, num_classes, (batch, size, size))
    for _ in range(warmup):
        train_step(model, opt, x, labels, bn_impl)
    t0 = time.perf_counter()
    loss = 0.0
    for _ in range(steps):
        loss = train_step(model, opt, x, labels, bn_impl)
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch images_per_s=%.3f peak_rss_mb=%.0f step_s=%.3f batch=%d size=%d steps=%d "
          "threads=%d torch=%s loss=%.4f" % (batch * steps / dt, rss_mb, dt / steps, batch, size,
                                             steps, threads, torch.__version__, loss))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", action="store_true", help="time training steps")
    ap.add_argument("--selfcheck", action="store_true", help="run the self-checks")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn", choices=("native", "manual"), default="native",
                    help="BatchNorm implementation for --bench (same maths)")
    ap.add_argument("--list", action="store_true", help="print layer names and shapes")
    a = ap.parse_args(argv)
    if a.size % 16:
        ap.error("--size must be divisible by 16")
    if a.list:
        for name, shapes in list_layer_shapes():
            print(name, shapes)
        print("total=%d trainable=%d non_trainable=%d" % param_counts())
    if a.selfcheck:
        if not selfcheck():
            return 1
    if a.bench:
        bench(a.batch, a.size, a.steps, a.threads, a.warmup, bn_impl=a.bn)
    if not (a.bench or a.selfcheck or a.list):
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
