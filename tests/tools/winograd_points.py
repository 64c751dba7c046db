#!/usr/bin/python3
"""winograd_points.py - exact Winograd F(4x4,3x3) matrices for a choice of
interpolation points (Toom-Cook, with sympy rationals) and their float32
error against float64 on random 256-channel tiles (numpy). Produced the
points and matrices of src/nn/winograd.c; not a test.

    /usr/bin/python3 tests/tools/winograd_points.py     (python3-sympy, python3-numpy)

For points p_j (and infinity): A^T[i][j] = p_j^i, G[j][k] = p_j^k / prod_{l!=j}(p_j - p_l),
and B^T solves the 1-D identity y_i = sum_k d_{i+k} g_k = sum_j A^T[i][j] (G g)_j (B^T d)_j.
"""
import numpy as np
import sympy as sp

M_OUT, R = 4, 3
N = M_OUT + R - 1


def matrices(points):
    pts = [sp.Rational(p) for p in points]
    at, g = sp.zeros(M_OUT, N), sp.zeros(N, R)
    for j, p in enumerate(pts):
        f = sp.prod([p - q for q in pts if q != p])
        for i in range(M_OUT):
            at[i, j] = p**i
        for k in range(R):
            g[j, k] = p**k / f
    at[M_OUT - 1, N - 1] = 1
    g[N - 1, R - 1] = 1
    bt = sp.Matrix(N, N, lambda a, b: sp.Symbol("b%d_%d" % (a, b)))
    eqs = [sum(at[i, j] * g[j, k] * bt[j, l] for j in range(N)) - (1 if l == i + k else 0)
           for i in range(M_OUT) for k in range(R) for l in range(N)]
    return at, g, bt.subs(sp.solve(eqs, list(bt)))


def float32_error(at, g, bt, channels=256, tiles=400, seed=0):
    """max and rms |Y32 - Y64| over the output's max / rms."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(-1, 1, (tiles, channels, N, N))
    k = rng.uniform(-0.1, 0.1, (channels, R, R))
    ref = np.zeros((tiles, M_OUT, M_OUT))
    for i in range(M_OUT):
        for j in range(M_OUT):
            ref[:, i, j] = np.einsum("tcab,cab->t", d[:, :, i:i + R, j:j + R], k)
    f = np.float32
    at32, g32, bt32 = [np.array(m.tolist(), dtype=np.float64).astype(f) for m in (at, g, bt)]
    u = np.einsum("ak,ckl,bl->cab", g32, k.astype(f), g32).astype(f)
    v = np.einsum("ak,tckl,bl->tcab", bt32, d.astype(f), bt32).astype(f)
    y = np.einsum("ia,tab,jb->tij", at32, np.einsum("tcab,cab->tab", v, u).astype(f), at32).astype(f)
    err = np.abs(y - ref)
    return err.max() / np.abs(ref).max(), np.sqrt((err**2).mean() / (ref**2).mean())


if __name__ == "__main__":
    for points in (["0", "1", "-1", "2", "-2"], ["0", "1", "-1", "1/2", "-1/2"], ["0", "1", "-1", "1/2", "-2"],
                   ["0", "1", "-1", "1/2", "-3/2"], ["0", "1", "-1", "2/3", "-3/2"]):
        at, g, bt = matrices(points)
        errs = [float32_error(at, g, bt, seed=s) for s in range(3)]
        print("points %-24s float32 error: max %.3g, rms %.3g" %
              (",".join(points), max(e[0] for e in errs), max(e[1] for e in errs)))
    at, g, bt = matrices(["0", "1", "-1", "1/2", "-2"])
    print("points 0,1,-1,1/2,-2:\nB^T =", bt.tolist(), "\nG =", g.tolist(), "\nA^T =", at.tolist())
