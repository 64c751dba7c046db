/* elementwise.c - ReLU and Add on flat float arrays. */
#include "unet/layers.h"
#include "vector_clones.h"

VECTOR_CLONES void relu_forward(float *out, const float *in, long count) {
  for (long i = 0; i < count; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f; /* out may equal in */
}

VECTOR_CLONES void relu_backward(float *restrict din, const float *restrict dout, const float *restrict out, long count) {
  for (long i = 0; i < count; i++) {
    float g = dout[i]; /* loaded unconditionally, so the select vectorizes */
    din[i] += out[i] > 0.0f ? g : 0.0f;
  }
}

VECTOR_CLONES void add_forward(float *out, const float *a, const float *b, long count) {
  for (long i = 0; i < count; i++) out[i] = a[i] + b[i]; /* out may alias a or b */
}
