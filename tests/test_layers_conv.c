/* test_layers_conv.c - Conv2D, Conv2DTranspose(3x3) and depthwise 3x3
 * against naive double-precision references written straight from the Keras
 * definitions: forward values, finite-difference gradients of every input and
 * parameter, workspace chunking, and the accumulate (+=) semantics. */
#include "layers_check.h"
#include "unet/layers.h"
/* Private to src/nn: called directly to reach channel counts conv2d_*
 * would not send there and to force one-tile chunks. */
#include "../src/nn/winograd.h"

/* ---- Conv2D ----------------------------------------------------------------*/
typedef struct {
  int n, h, w, k, s, cin, cout;
  Pair x, kernel, bias;
  double *r; /* weights of the linear functional, one per output value */
} ConvCase;

static long conv_out_len(const ConvCase *c) {
  return (long)c->n * ref_out_size(c->h, c->s) * ref_out_size(c->w, c->s) * c->cout;
}

/* out[n,oy,ox,co] = b[co] + sum in[n, oy*s-pt+i, ox*s-pl+j, ci] K[i,j,ci,co] */
static void ref_conv(double *out, const ConvCase *c) {
  int oh = ref_out_size(c->h, c->s), ow = ref_out_size(c->w, c->s);
  int pt = ref_pad_before(c->h, c->k, c->s), pl = ref_pad_before(c->w, c->k, c->s);
  for (int b = 0; b < c->n; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int co = 0; co < c->cout; co++) {
          double acc = c->bias.d[co];
          for (int i = 0; i < c->k; i++)
            for (int j = 0; j < c->k; j++) {
              int y = oy * c->s - pt + i, x = ox * c->s - pl + j;
              if (y < 0 || y >= c->h || x < 0 || x >= c->w) continue;
              for (int ci = 0; ci < c->cin; ci++)
                acc += c->x.d[(((long)b * c->h + y) * c->w + x) * c->cin + ci] *
                       c->kernel.d[((long)(i * c->k + j) * c->cin + ci) * c->cout + co];
            }
          out[(((long)b * oh + oy) * ow + ox) * c->cout + co] = acc;
        }
}

static double conv_loss(void *ctx) {
  ConvCase *c = ctx;
  long len = conv_out_len(c);
  double *out = xmalloc((size_t)len * sizeof(double), "reference output");
  ref_conv(out, c);
  double l = 0;
  for (long i = 0; i < len; i++) l += c->r[i] * out[i];
  xfree(out);
  return l;
}

static void test_conv2d(int n, int h, int w, int k, int s, int cin, int cout, uint64_t seed, int check_grads) {
  char name[160];
  snprintf(name, sizeof name, "conv2d n%d %dx%d k%d s%d %d->%d", n, h, w, k, s, cin, cout);
  UnetRng rng;
  rng_seed(&rng, seed);
  ConvCase c = {n, h, w, k, s, cin, cout, pair_alloc((long)n * h * w * cin), pair_alloc((long)k * k * cin * cout),
                pair_alloc(cout), NULL};
  pair_random(c.x, &rng, -1, 1);
  pair_random(c.kernel, &rng, -1, 1);
  pair_random(c.bias, &rng, -1, 1);
  ConvDims d = {k, s, cin, cout};
  long out_len = conv_out_len(&c), in_len = c.x.len;
  size_t ws_full = conv2d_workspace_floats(d, n, h, w);
  /* a 1x1 stride-1 conv needs only the transposed kernel (its backward) */
  CHECK_MSG(k == 1 && s == 1 ? ws_full == (size_t)cin * cout : ws_full > 0, "%s: workspace %zu", name, ws_full);
  float *ws = floats_zero((long)ws_full + 1);

  double *ref = xmalloc((size_t)out_len * sizeof(double), "reference output");
  ref_conv(ref, &c);
  float *out = floats_zero(out_len);
  char what[220];

  /* Forward with the planned workspace, then with chunks of 1 and 2 images. */
  /* Workspaces planned for 1 and 2 images force chunking of the batch. */
  size_t sizes[3] = {ws_full, conv2d_workspace_floats(d, 1, h, w), conv2d_workspace_floats(d, 2, h, w)};
  for (int t = 0; t < 3; t++) {
    if (k == 1 && s == 1 && t > 0) break;
    memset(out, 0xff, (size_t)out_len * sizeof(float)); /* NaN: must be overwritten */
    conv2d_forward(out, c.x.f, c.kernel.f, c.bias.f, n, h, w, d, 0, ws, sizes[t]);
    snprintf(what, sizeof what, "%s forward (workspace %zu floats)", name, sizes[t]);
    check_arrays_close(what, out, ref, out_len, 1e-5, 1e-5);
  }
  /* No bias, then accumulate onto existing values. */
  {
    Pair zero_bias = pair_alloc(cout), saved = c.bias;
    c.bias = zero_bias;
    double *ref_nb = xmalloc((size_t)out_len * sizeof(double), "reference output");
    ref_conv(ref_nb, &c);
    c.bias = saved;
    conv2d_forward(out, c.x.f, c.kernel.f, NULL, n, h, w, d, 0, ws, ws_full);
    snprintf(what, sizeof what, "%s forward without bias", name);
    check_arrays_close(what, out, ref_nb, out_len, 1e-5, 1e-5);
    Pair pre = pair_alloc(out_len);
    pair_random(pre, &rng, -2, 2);
    memcpy(out, pre.f, (size_t)out_len * sizeof(float));
    for (long i = 0; i < out_len; i++) ref_nb[i] = ref[i] + pre.d[i];
    conv2d_forward(out, c.x.f, c.kernel.f, c.bias.f, n, h, w, d, 1, ws, sizes[1]);
    snprintf(what, sizeof what, "%s forward accumulate", name);
    check_arrays_close(what, out, ref_nb, out_len, 1e-5, 1e-5);
    pair_free(pre);
    pair_free(zero_bias);
    xfree(ref_nb);
  }

  if (check_grads) {
    Pair r = pair_alloc(out_len);
    pair_random(r, &rng, -1, 1);
    c.r = r.d;
    float *din = floats_zero(in_len), *dk = floats_zero(c.kernel.len), *db = floats_zero(cout);
    conv2d_backward(din, dk, db, r.f, c.x.f, c.kernel.f, n, h, w, d, 1, ws, ws_full);
    snprintf(what, sizeof what, "%s d/din", name);
    check_gradient(what, c.x.d, in_len, din, conv_loss, &c, 1e-4);
    snprintf(what, sizeof what, "%s d/dkernel", name);
    check_gradient(what, c.kernel.d, c.kernel.len, dk, conv_loss, &c, 1e-4);
    snprintf(what, sizeof what, "%s d/dbias", name);
    check_gradient(what, c.bias.d, cout, db, conv_loss, &c, 1e-4);
    /* accumulate 0 writes din: its old values (NaN) are never read. */
    {
      float *din_set = xmalloc((size_t)in_len * sizeof(float), "din written");
      memset(din_set, 0xff, (size_t)in_len * sizeof(float));
      conv2d_backward(din_set, NULL, NULL, r.f, c.x.f, c.kernel.f, n, h, w, d, 0, ws, ws_full);
      snprintf(what, sizeof what, "%s backward with accumulate 0: din", name);
      check_float_arrays_close(what, din_set, din, in_len, 1e-6, 1e-5);
      xfree(din_set);
    }

    /* A second call (one image per chunk) must add the same again. */
    float *din2 = floats_zero(in_len), *dk2 = floats_zero(c.kernel.len), *db2 = floats_zero(cout);
    for (long i = 0; i < in_len; i++) din2[i] = 2 * din[i];
    for (long i = 0; i < c.kernel.len; i++) dk2[i] = 2 * dk[i];
    for (int i = 0; i < cout; i++) db2[i] = 2 * db[i];
    conv2d_backward(din, dk, db, r.f, c.x.f, c.kernel.f, n, h, w, d, 1, ws, sizes[1]);
    snprintf(what, sizeof what, "%s backward twice: din", name);
    check_float_arrays_close(what, din, din2, in_len, 1e-6, 1e-5);
    snprintf(what, sizeof what, "%s backward twice: dkernel", name);
    check_float_arrays_close(what, dk, dk2, c.kernel.len, 1e-6, 1e-5);
    snprintf(what, sizeof what, "%s backward twice: dbias", name);
    check_float_arrays_close(what, db, db2, cout, 1e-6, 1e-5);

    /* NULL gradients are skipped, the others are unchanged. */
    memset(dk2, 0, (size_t)c.kernel.len * sizeof(float));
    conv2d_backward(NULL, dk2, NULL, r.f, c.x.f, c.kernel.f, n, h, w, d, 1, ws, ws_full);
    for (long i = 0; i < c.kernel.len; i++) dk2[i] *= 2;
    snprintf(what, sizeof what, "%s backward with din=NULL: dkernel", name);
    check_float_arrays_close(what, dk2, dk, c.kernel.len, 1e-6, 1e-5);
    xfree(din);
    xfree(dk);
    xfree(db);
    xfree(din2);
    xfree(dk2);
    xfree(db2);
    pair_free(r);
  }
  xfree(out);
  xfree(ref);
  xfree(ws);
  pair_free(c.x);
  pair_free(c.kernel);
  pair_free(c.bias);
}

/* ---- Winograd F(2x2,3x3) and F(4x4,3x3) called directly -------------------*/
/* A 3x3 stride-1 conv through winograd_conv3x3_* (output tile `tile`) against the double
 * reference with the planned workspace, with one-tile chunks (the minimum
 * workspace) and with four-tile chunks that straddle images; accumulate
 * semantics; finite differences of both gradients; NULL gradients. */
static void test_winograd(int tile, int n, int h, int w, int cin, int cout, uint64_t seed) {
  char name[160], what[260];
  snprintf(name, sizeof name, "winograd F(%dx%d) n%d %dx%d %d->%d", tile, tile, n, h, w, cin, cout);
  UnetRng rng;
  rng_seed(&rng, seed);
  ConvCase c = {n, h, w, 3, 1, cin, cout, pair_alloc((long)n * h * w * cin), pair_alloc(9L * cin * cout),
                pair_alloc(cout), NULL};
  pair_random(c.x, &rng, -1, 1);
  pair_random(c.kernel, &rng, -1, 1);
  pair_random(c.bias, &rng, -1, 1);
  long out_len = conv_out_len(&c), in_len = c.x.len;
  /* planned; one tile; four tiles (a 2x2 grid of them) */
  size_t sizes[3] = {winograd_workspace_floats(tile, cin, cout, n, h, w),
                     winograd_workspace_floats(tile, cin, cout, 1, 1, 1),
                     winograd_workspace_floats(tile, cin, cout, 1, tile + 1, tile + 1)};
  CHECK_MSG(sizes[1] > 0 && sizes[1] < sizes[2], "%s: workspaces for 1 and 4 tiles: %zu, %zu", name, sizes[1],
            sizes[2]);
  float *ws = floats_zero((long)(sizes[0] > sizes[2] ? sizes[0] : sizes[2]));
  double *ref = xmalloc((size_t)out_len * sizeof(double), "reference output");
  ref_conv(ref, &c);
  float *out = floats_zero(out_len);
  for (int t = 0; t < 3; t++) {
    memset(out, 0xff, (size_t)out_len * sizeof(float)); /* NaN: must be overwritten */
    winograd_conv3x3_forward(tile, out, c.x.f, c.kernel.f, c.bias.f, n, h, w, cin, cout, 0, ws, sizes[t]);
    snprintf(what, sizeof what, "%s forward (workspace %zu floats)", name, sizes[t]);
    check_arrays_close(what, out, ref, out_len, 1e-5, 1e-5);
  }
  /* Accumulate without bias onto existing values. */
  {
    Pair pre = pair_alloc(out_len);
    pair_random(pre, &rng, -2, 2);
    double *want = xmalloc((size_t)out_len * sizeof(double), "reference output");
    for (long i = 0; i < out_len; i++) want[i] = ref[i] - c.bias.d[i % cout] + pre.d[i];
    memcpy(out, pre.f, (size_t)out_len * sizeof(float));
    winograd_conv3x3_forward(tile, out, c.x.f, c.kernel.f, NULL, n, h, w, cin, cout, 1, ws, sizes[1]);
    snprintf(what, sizeof what, "%s forward accumulate without bias", name);
    check_arrays_close(what, out, want, out_len, 1e-5, 1e-5);
    xfree(want);
    pair_free(pre);
  }
  /* Gradients of L = sum r * out, starting from nonzero values (+=). */
  Pair r = pair_alloc(out_len);
  pair_random(r, &rng, -1, 1);
  c.r = r.d;
  float *din = floats_zero(in_len), *dk = floats_zero(c.kernel.len);
  float *din0 = floats_zero(in_len), *dk0 = floats_zero(c.kernel.len);
  for (long i = 0; i < in_len; i++) din0[i] = din[i] = 0.25f * (float)(i % 7) - 0.5f;
  for (long i = 0; i < c.kernel.len; i++) dk0[i] = dk[i] = 0.125f * (float)(i % 5) - 0.25f;
  winograd_conv3x3_backward(tile, din, dk, r.f, c.x.f, c.kernel.f, n, h, w, cin, cout, ws, sizes[0]);
  for (long i = 0; i < in_len; i++) din[i] -= din0[i];
  for (long i = 0; i < c.kernel.len; i++) dk[i] -= dk0[i];
  snprintf(what, sizeof what, "%s d/din", name);
  check_gradient(what, c.x.d, in_len, din, conv_loss, &c, 1e-4);
  snprintf(what, sizeof what, "%s d/dkernel", name);
  check_gradient(what, c.kernel.d, c.kernel.len, dk, conv_loss, &c, 1e-4);
  /* Smaller chunks, one gradient at a time: the same values. */
  for (int t = 1; t < 3; t++) {
    float *din2 = floats_zero(in_len), *dk2 = floats_zero(c.kernel.len);
    winograd_conv3x3_backward(tile, din2, NULL, r.f, c.x.f, c.kernel.f, n, h, w, cin, cout, ws, sizes[t]);
    winograd_conv3x3_backward(tile, NULL, dk2, r.f, c.x.f, c.kernel.f, n, h, w, cin, cout, ws, sizes[t]);
    snprintf(what, sizeof what, "%s din alone (workspace %zu floats)", name, sizes[t]);
    check_float_arrays_close(what, din2, din, in_len, 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s dkernel alone (workspace %zu floats)", name, sizes[t]);
    check_float_arrays_close(what, dk2, dk, c.kernel.len, 1e-5, 1e-5);
    xfree(din2);
    xfree(dk2);
  }
  xfree(din);
  xfree(dk);
  xfree(din0);
  xfree(dk0);
  pair_free(r);
  xfree(out);
  xfree(ref);
  xfree(ws);
  pair_free(c.x);
  pair_free(c.kernel);
  pair_free(c.bias);
}

/* Stride-1 3x3 'same' gradients in double, straight from the definition:
 * din[y,x,ci] = sum dout[y-i+1, x-j+1, co] K[i,j,ci,co] and
 * dk[i,j,ci,co] = sum in[y+i-1, x+j-1, ci] dout[y,x,co]. */
static void ref_conv3x3_grads(double *din, double *dk, const ConvCase *c, const double *dout) {
  const int h = c->h, w = c->w, cin = c->cin, cout = c->cout;
  memset(din, 0, (size_t)c->x.len * sizeof(double));
  memset(dk, 0, (size_t)c->kernel.len * sizeof(double));
  for (int b = 0; b < c->n; b++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        const double *dy = dout + (((long)b * h + y) * w + x) * cout;
        for (int i = 0; i < 3; i++)
          for (int j = 0; j < 3; j++) {
            int sy = y + i - 1, sx = x + j - 1;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
            const long at = (((long)b * h + sy) * w + sx) * cin;
            for (int ci = 0; ci < cin; ci++) {
              const double *k = c->kernel.d + ((long)(i * 3 + j) * cin + ci) * cout;
              double *g = dk + ((long)(i * 3 + j) * cin + ci) * cout, xin = c->x.d[at + ci], acc = 0;
              for (int co = 0; co < cout; co++) acc += dy[co] * k[co], g[co] += xin * dy[co];
              din[at + ci] += acc;
            }
          }
      }
}

/* max |a - ref| / max |ref| */
static double relative_error(const float *a, const double *ref, long len) {
  double worst = 0, scale = 0;
  for (long i = 0; i < len; i++) {
    double e = fabs(a[i] - ref[i]);
    worst = e > worst ? e : worst;
    scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
  }
  return worst / scale;
}

/* Wide channels at the U-Net's map sizes and an odd size: forward, input
 * and kernel gradients against the double reference, so the float error of
 * the Winograd transforms must stay at im2col's tolerance. Prints the
 * observed errors (max deviation over the output's range). */
static void test_winograd_accuracy(int tile, int n, int h, int w, int cin, int cout, uint64_t seed) {
  char what[160];
  UnetRng rng;
  rng_seed(&rng, seed);
  ConvCase c = {n, h, w, 3, 1, cin, cout, pair_alloc((long)n * h * w * cin), pair_alloc(9L * cin * cout),
                pair_alloc(cout), NULL};
  pair_random(c.x, &rng, -1, 1);
  pair_random(c.kernel, &rng, -0.1f, 0.1f);
  pair_random(c.bias, &rng, -1, 1);
  long out_len = conv_out_len(&c);
  size_t ws_floats = winograd_workspace_floats(tile, cin, cout, n, h, w);
  float *ws = floats_zero((long)ws_floats), *out = floats_zero(out_len);
  double *ref = xmalloc((size_t)out_len * sizeof(double), "reference output");
  ref_conv(ref, &c);
  winograd_conv3x3_forward(tile, out, c.x.f, c.kernel.f, c.bias.f, n, h, w, cin, cout, 0, ws, ws_floats);
  snprintf(what, sizeof what, "winograd F(%dx%d) accuracy n%d %dx%d %d->%d forward", tile, tile, n, h, w, cin, cout);
  check_arrays_close(what, out, ref, out_len, 1e-5, 1e-5);
  double e_out = relative_error(out, ref, out_len);
  Pair dout = pair_alloc(out_len);
  pair_random(dout, &rng, -1, 1);
  float *din = floats_zero(c.x.len), *dk = floats_zero(c.kernel.len);
  double *din_ref = xmalloc((size_t)c.x.len * sizeof(double), "reference din");
  double *dk_ref = xmalloc((size_t)c.kernel.len * sizeof(double), "reference dkernel");
  ref_conv3x3_grads(din_ref, dk_ref, &c, dout.d);
  winograd_conv3x3_backward(tile, din, dk, dout.f, c.x.f, c.kernel.f, n, h, w, cin, cout, ws, ws_floats);
  snprintf(what, sizeof what, "winograd F(%dx%d) accuracy n%d %dx%d %d->%d din", tile, tile, n, h, w, cin, cout);
  check_arrays_close(what, din, din_ref, c.x.len, 1e-5, 1e-5);
  snprintf(what, sizeof what, "winograd F(%dx%d) accuracy n%d %dx%d %d->%d dkernel", tile, tile, n, h, w, cin, cout);
  check_arrays_close(what, dk, dk_ref, c.kernel.len, 1e-5, 1e-5);
  printf("winograd F(%dx%d) %dx%d %d->%d relative error: forward %.3g, din %.3g, dkernel %.3g\n", tile, tile, h, w,
         cin, cout, e_out, relative_error(din, din_ref, c.x.len), relative_error(dk, dk_ref, c.kernel.len));
  xfree(din);
  xfree(dk);
  xfree(din_ref);
  xfree(dk_ref);
  pair_free(dout);
  xfree(ws);
  xfree(out);
  xfree(ref);
  pair_free(c.x);
  pair_free(c.kernel);
  pair_free(c.bias);
}

/* ---- Conv2DTranspose(3x3, stride 1, same) ---------------------------------*/
typedef struct {
  int n, h, w, cin, cout;
  Pair x, kernel, bias; /* kernel (3,3,cout,cin) */
  double *r;
} TransposeCase;

/* Straight from the definition: the transpose of conv A (kernel read as
 * (kh, kw, in=cout, out=cin), same padding 1): every input pixel (y,x) of
 * this layer, seen as A's output, spreads x[y,x,o] * K[i,j,c,o] onto output
 * pixel (y+i-1, x+j-1), channel c. */
static void ref_transpose(double *out, const TransposeCase *t) {
  long out_len = (long)t->n * t->h * t->w * t->cout;
  for (long i = 0; i < out_len; i++) out[i] = t->bias.d[i % t->cout];
  for (int b = 0; b < t->n; b++)
    for (int y = 0; y < t->h; y++)
      for (int x = 0; x < t->w; x++)
        for (int i = 0; i < 3; i++)
          for (int j = 0; j < 3; j++) {
            int oy = y + i - 1, ox = x + j - 1;
            if (oy < 0 || oy >= t->h || ox < 0 || ox >= t->w) continue;
            for (int c = 0; c < t->cout; c++)
              for (int o = 0; o < t->cin; o++)
                out[(((long)b * t->h + oy) * t->w + ox) * t->cout + c] +=
                    t->x.d[(((long)b * t->h + y) * t->w + x) * t->cin + o] *
                    t->kernel.d[((long)(i * 3 + j) * t->cout + c) * t->cin + o];
          }
}

static double transpose_loss(void *ctx) {
  TransposeCase *t = ctx;
  long len = (long)t->n * t->h * t->w * t->cout;
  double *out = xmalloc((size_t)len * sizeof(double), "reference output");
  ref_transpose(out, t);
  double l = 0;
  for (long i = 0; i < len; i++) l += t->r[i] * out[i];
  xfree(out);
  return l;
}

static void test_conv_transpose(int n, int h, int w, int cin, int cout, uint64_t seed) {
  char name[120], what[200];
  snprintf(name, sizeof name, "conv_transpose3x3 n%d %dx%d %d->%d", n, h, w, cin, cout);
  UnetRng rng;
  rng_seed(&rng, seed);
  TransposeCase t = {n, h, w, cin, cout, pair_alloc((long)n * h * w * cin), pair_alloc(9L * cout * cin),
                     pair_alloc(cout), NULL};
  pair_random(t.x, &rng, -1, 1);
  pair_random(t.kernel, &rng, -1, 1);
  pair_random(t.bias, &rng, -1, 1);
  long out_len = (long)n * h * w * cout, in_len = t.x.len;
  size_t ws_floats = conv_transpose3x3_workspace_floats(cin, cout, n, h, w);
  float *ws = floats_zero((long)ws_floats);
  float *out = floats_zero(out_len);
  double *ref = xmalloc((size_t)out_len * sizeof(double), "reference output");
  ref_transpose(ref, &t);
  conv_transpose3x3_forward(out, t.x.f, t.kernel.f, t.bias.f, n, h, w, cin, cout, ws, ws_floats);
  snprintf(what, sizeof what, "%s forward", name);
  check_arrays_close(what, out, ref, out_len, 1e-5, 1e-5);

  /* The layer's forward is conv2d_backward's input gradient for the conv
   * whose kernel is K read as (kh, kw, in=cout, out=cin). */
  {
    ConvDims a = {3, 1, cout, cin};
    size_t ws_a = conv2d_workspace_floats(a, n, h, w);
    float *ws2 = floats_zero((long)ws_a), *din = floats_zero(out_len), *fake_in = floats_zero(out_len);
    conv2d_backward(din, NULL, NULL, t.x.f, fake_in, t.kernel.f, n, h, w, a, 1, ws2, ws_a);
    conv_transpose3x3_forward(out, t.x.f, t.kernel.f, NULL, n, h, w, cin, cout, ws, ws_floats);
    snprintf(what, sizeof what, "%s forward == conv2d input gradient", name);
    check_float_arrays_close(what, out, din, out_len, 1e-5, 1e-5);
    xfree(ws2);
    xfree(din);
    xfree(fake_in);
  }

  Pair r = pair_alloc(out_len);
  pair_random(r, &rng, -1, 1);
  t.r = r.d;
  float *din = floats_zero(in_len), *dk = floats_zero(t.kernel.len), *db = floats_zero(cout);
  conv_transpose3x3_backward(din, dk, db, r.f, t.x.f, t.kernel.f, n, h, w, cin, cout, ws, ws_floats);
  snprintf(what, sizeof what, "%s d/din", name);
  check_gradient(what, t.x.d, in_len, din, transpose_loss, &t, 1e-4);
  snprintf(what, sizeof what, "%s d/dkernel", name);
  check_gradient(what, t.kernel.d, t.kernel.len, dk, transpose_loss, &t, 1e-4);
  snprintf(what, sizeof what, "%s d/dbias", name);
  check_gradient(what, t.bias.d, cout, db, transpose_loss, &t, 1e-4);
  float *dk2 = floats_zero(t.kernel.len), *din2 = floats_zero(in_len);
  for (long i = 0; i < t.kernel.len; i++) dk2[i] = 2 * dk[i];
  for (long i = 0; i < in_len; i++) din2[i] = 2 * din[i];
  conv_transpose3x3_backward(din, dk, NULL, r.f, t.x.f, t.kernel.f, n, h, w, cin, cout, ws, ws_floats);
  snprintf(what, sizeof what, "%s backward twice: dkernel", name);
  check_float_arrays_close(what, dk, dk2, t.kernel.len, 1e-6, 1e-5);
  snprintf(what, sizeof what, "%s backward twice: din", name);
  check_float_arrays_close(what, din, din2, in_len, 1e-6, 1e-5);
  xfree(din);
  xfree(dk);
  xfree(db);
  xfree(din2);
  xfree(dk2);
  pair_free(r);
  xfree(out);
  xfree(ref);
  xfree(ws);
  pair_free(t.x);
  pair_free(t.kernel);
  pair_free(t.bias);
}

/* ---- Depthwise 3x3 ---------------------------------------------------------*/
typedef struct {
  int n, h, w, c;
  Pair x, kernel; /* kernel (3,3,C,1) */
  double *r;
} DepthwiseCase;

static void ref_depthwise(double *out, const DepthwiseCase *t) {
  for (int b = 0; b < t->n; b++)
    for (int y = 0; y < t->h; y++)
      for (int x = 0; x < t->w; x++)
        for (int ch = 0; ch < t->c; ch++) {
          double acc = 0;
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
              int iy = y + i - 1, ix = x + j - 1;
              if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
              acc += t->x.d[(((long)b * t->h + iy) * t->w + ix) * t->c + ch] * t->kernel.d[(i * 3 + j) * t->c + ch];
            }
          out[(((long)b * t->h + y) * t->w + x) * t->c + ch] = acc;
        }
}

static double depthwise_loss(void *ctx) {
  DepthwiseCase *t = ctx;
  long len = t->x.len;
  double *out = xmalloc((size_t)len * sizeof(double), "reference output");
  ref_depthwise(out, t);
  double l = 0;
  for (long i = 0; i < len; i++) l += t->r[i] * out[i];
  xfree(out);
  return l;
}

static void test_depthwise(int n, int h, int w, int c, uint64_t seed) {
  char name[100], what[200];
  snprintf(name, sizeof name, "depthwise3x3 n%d %dx%dx%d", n, h, w, c);
  UnetRng rng;
  rng_seed(&rng, seed);
  DepthwiseCase t = {n, h, w, c, pair_alloc((long)n * h * w * c), pair_alloc(9L * c), NULL};
  pair_random(t.x, &rng, -1, 1);
  pair_random(t.kernel, &rng, -1, 1);
  long len = t.x.len;
  double *ref = xmalloc((size_t)len * sizeof(double), "reference output");
  ref_depthwise(ref, &t);
  float *out = floats_zero(len);
  memset(out, 0xff, (size_t)len * sizeof(float));
  /* exactly the scratch the layer asks for, so an overrun shows under ASan */
  size_t ws_floats = depthwise3x3_workspace_floats(w, c);
  float *ws = xmalloc(ws_floats * sizeof(float), "depthwise scratch");
  depthwise3x3_forward(out, t.x.f, t.kernel.f, n, h, w, c, ws, ws_floats);
  snprintf(what, sizeof what, "%s forward", name);
  check_arrays_close(what, out, ref, len, 1e-6, 1e-5);

  Pair r = pair_alloc(len);
  pair_random(r, &rng, -1, 1);
  t.r = r.d;
  float *din = floats_zero(len), *dk = floats_zero(9L * c);
  depthwise3x3_backward(din, dk, r.f, t.x.f, t.kernel.f, n, h, w, c, ws, ws_floats);
  snprintf(what, sizeof what, "%s d/din", name);
  check_gradient(what, t.x.d, len, din, depthwise_loss, &t, 1e-4);
  snprintf(what, sizeof what, "%s d/dkernel", name);
  check_gradient(what, t.kernel.d, 9L * c, dk, depthwise_loss, &t, 1e-4);
  float *din2 = floats_zero(len), *dk2 = floats_zero(9L * c);
  for (long i = 0; i < len; i++) din2[i] = 2 * din[i];
  for (long i = 0; i < 9L * c; i++) dk2[i] = 2 * dk[i];
  depthwise3x3_backward(din, dk, r.f, t.x.f, t.kernel.f, n, h, w, c, ws, ws_floats);
  snprintf(what, sizeof what, "%s backward twice: din", name);
  check_float_arrays_close(what, din, din2, len, 1e-6, 1e-5);
  snprintf(what, sizeof what, "%s backward twice: dkernel", name);
  check_float_arrays_close(what, dk, dk2, 9L * c, 1e-6, 1e-5);
  /* NULL din: the kernel gradient still accumulates (a third time), din is untouched */
  memcpy(din2, din, (size_t)len * sizeof(float));
  depthwise3x3_backward(NULL, dk, r.f, t.x.f, t.kernel.f, n, h, w, c, ws, ws_floats);
  for (long i = 0; i < 9L * c; i++) dk2[i] *= 1.5f;
  snprintf(what, sizeof what, "%s backward with din=NULL: dkernel", name);
  check_float_arrays_close(what, dk, dk2, 9L * c, 1e-6, 1e-5);
  CHECK_MSG(memcmp(din, din2, (size_t)len * sizeof(float)) == 0, "%s: din changed by a call without din", name);
  xfree(ws);
  xfree(din);
  xfree(dk);
  xfree(din2);
  xfree(dk2);
  pair_free(r);
  xfree(out);
  xfree(ref);
  pair_free(t.x);
  pair_free(t.kernel);
}

int main(void) {
  /* Conv2D: k 1/3, stride 1/2, odd and even sizes (stride 2 on even sizes
   * pads 0 before and 1 after), with gradients. */
  test_conv2d(2, 5, 7, 3, 1, 3, 4, 1, 1);
  test_conv2d(3, 6, 8, 3, 2, 3, 5, 2, 1);
  test_conv2d(3, 5, 7, 3, 2, 2, 3, 3, 1);
  test_conv2d(2, 6, 5, 3, 2, 2, 3, 4, 1);
  test_conv2d(2, 6, 6, 1, 1, 4, 3, 5, 1);
  test_conv2d(3, 6, 8, 1, 2, 4, 3, 6, 1);
  test_conv2d(3, 5, 7, 1, 2, 3, 2, 7, 1);
  test_conv2d(2, 1, 1, 3, 1, 2, 3, 8, 1);
  test_conv2d(2, 2, 3, 3, 2, 2, 2, 9, 1);
  /* 3x3 stride 1 to <= 4 channels: the direct path (conv3x3_thin.c) of the
   * head. Runs of 3*cin floats with and without a tail past 8 lanes, 1- and
   * 2-pixel-wide images (the run is 1 or 2 pixels), 1 to 4 outputs. */
  test_conv2d(3, 5, 7, 3, 1, 20, 2, 13, 1);
  test_conv2d(2, 6, 4, 3, 1, 32, 3, 14, 1);
  test_conv2d(3, 4, 5, 3, 1, 6, 3, 16, 1);
  test_conv2d(2, 3, 1, 3, 1, 5, 2, 21, 1);
  test_conv2d(1, 4, 2, 3, 1, 9, 1, 22, 1);
  /* cout <= cin/2 above 4 channels: forward through per-tap outputs. */
  test_conv2d(2, 5, 6, 3, 1, 12, 5, 23, 1);
  /* Even kernel, stride 1: asymmetric padding, general path. */
  test_conv2d(2, 5, 6, 2, 1, 3, 2, 15, 1);
  /* 3x3 stride 1 with >= 16 channels each way: the Winograd path. Odd and
   * even sizes (partial tiles), channels not multiples of 8; 1x1 images stay
   * on the im2col path (a tile would waste 3 of its 4 pixels). */
  test_conv2d(1, 3, 5, 3, 1, 17, 19, 17, 1);
  test_conv2d(2, 4, 2, 3, 1, 16, 18, 18, 1);
  test_conv2d(2, 1, 1, 3, 1, 16, 16, 19, 1);
  test_conv2d(3, 7, 6, 3, 1, 24, 40, 20, 0);
  /* Larger forward-only shapes: wide channels, many chunks. */
  test_conv2d(5, 10, 10, 3, 1, 16, 32, 10, 0);
  test_conv2d(3, 12, 9, 3, 2, 3, 32, 11, 0);
  test_conv2d(4, 8, 8, 1, 1, 32, 48, 12, 0);

  /* Winograd directly: tiny channels so finite differences stay cheap. */
  for (int tile = 2; tile <= 4; tile += 2) {
    test_winograd(tile, 2, 5, 5, 3, 4, 40);
    test_winograd(tile, 2, 3, 5, 2, 3, 41);
    test_winograd(tile, 3, 4, 6, 3, 2, 42);
    test_winograd(tile, 2, 1, 1, 2, 2, 43);
    test_winograd(tile, 1, 1, 6, 5, 3, 44);
    test_winograd(tile, 2, 7, 1, 1, 1, 45);
    test_winograd(tile, 2, 9, 10, 3, 2, 48); /* F(4x4): full, ragged-by-1 and ragged-by-2 tiles */
    test_winograd(tile, 1, 5, 5, 34, 2, 49); /* channels past one F(4x4) block of 32, in and out */
    test_winograd(tile, 1, 5, 5, 2, 34, 51);
    test_winograd_accuracy(tile, 2, 10, 10, 256, 256, 46);
    test_winograd_accuracy(tile, 1, 9, 11, 64, 32, 47);
    test_winograd_accuracy(tile, 2, 40, 40, 128, 64, 50);
  }

  test_conv_transpose(2, 5, 7, 3, 4, 20);
  test_conv_transpose(3, 4, 4, 4, 2, 21);
  test_conv_transpose(1, 1, 2, 2, 3, 22);
  test_conv_transpose(2, 6, 6, 2, 2, 23);
  /* The U-Net's transposed convs have >= 32 channels: the Winograd path. */
  test_conv_transpose(1, 3, 4, 16, 17, 24);

  test_depthwise(2, 5, 7, 3, 30);
  test_depthwise(3, 4, 6, 5, 31);
  test_depthwise(1, 1, 1, 2, 32);
  test_depthwise(2, 1, 4, 2, 33);
  test_depthwise(2, 3, 3, 17, 34);
  test_depthwise(1, 2, 1, 3, 35);  /* two taps per pixel */
  test_depthwise(1, 2, 2, 16, 36); /* corners only: four taps, one AVX2 vector pair */
  test_depthwise(1, 6, 5, 40, 37); /* nine taps, channels past a vector multiple */
  CHECK_DONE();
}
