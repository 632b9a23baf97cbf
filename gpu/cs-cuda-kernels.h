/* The CUDA backend's own kernels, callable from C: each launches on STREAM and returns the launch's
 * cudaError_t (cudaSuccess when it started). Shapes are NCHW float32, as the CPU backend's. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#include "cs-pool-geom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = x > 0 ? x : slope * x; backward: dx += dy * (y > 0 ? 1 : slope) (reads the output). */
cudaError_t cs_cu_relu_forward (cudaStream_t s, const float *x, float *y, size_t n, float slope);
cudaError_t cs_cu_relu_backward (cudaStream_t s, const float *y, const float *dy, float *dx,
                                 size_t n, float slope);
cudaError_t cs_cu_sigmoid_forward (cudaStream_t s, const float *x, float *y, size_t n);
cudaError_t cs_cu_sigmoid_backward (cudaStream_t s, const float *y, const float *dy, float *dx,
                                    size_t n);
cudaError_t cs_cu_tanh_forward (cudaStream_t s, const float *x, float *y, size_t n);
cudaError_t cs_cu_tanh_backward (cudaStream_t s, const float *y, const float *dy, float *dx,
                                 size_t n);

/* y = scale * x, and y += scale * x. */
cudaError_t cs_cu_scale (cudaStream_t s, const float *x, float *y, size_t n, float scale);
cudaError_t cs_cu_axpy (cudaStream_t s, const float *x, float *y, size_t n, float scale);

/* Inverted dropout with the mask of cs_uniform (SEED, i) >= P. */
cudaError_t cs_cu_dropout_forward (cudaStream_t s, const float *x, float *y, size_t n,
                                   uint64_t seed, float p);
cudaError_t cs_cu_dropout_backward (cudaStream_t s, const float *dy, float *dx, size_t n,
                                    uint64_t seed, float p);

/* y[b][c][i] += bias[c], over BATCH x C x HW; db[c] += the sum of dy over batch and positions. */
cudaError_t cs_cu_bias_forward (cudaStream_t s, float *y, const float *bias, size_t batch,
                                int c, size_t hw);
cudaError_t cs_cu_bias_backward (cudaStream_t s, const float *dy, float *db, size_t batch,
                                 int c, size_t hw);

/* One input of a concatenation: images of IV floats at offset OFF in images of OV floats. */
cudaError_t cs_cu_concat_forward (cudaStream_t s, const float *x, float *y, size_t batch,
                                  size_t iv, size_t ov, size_t off);
cudaError_t cs_cu_concat_backward (cudaStream_t s, const float *dy, float *dx, size_t batch,
                                   size_t iv, size_t ov, size_t off);

/* A sum or mean of K inputs (SCALE 1 or 1/K), each of N floats, into Y, in one pass for up to
 * four inputs, then max(y, 0) with RELU; X[0] may be Y. Backward adds SCALE times DY (masked by
 * Y > 0 with RELU) to each of the K gradients DX. X and DX are host arrays of device pointers. */
cudaError_t cs_cu_join_forward (cudaStream_t s, const float *const *x, unsigned int k, float *y,
                                size_t n, float scale, int relu);
cudaError_t cs_cu_join_backward (cudaStream_t s, const float *dy, const float *y, float *const *dx,
                                 unsigned int k, size_t n, float scale, int relu);

/* Pooling over PLANES planes of H x W into OH x OW, windows clipped as the CPU backend does. */
cudaError_t cs_cu_maxpool_forward (cudaStream_t s, const float *x, float *y, size_t planes,
                                   CsPoolGeom g);
cudaError_t cs_cu_maxpool_backward (cudaStream_t s, const float *x, const float *y,
                                    const float *dy, float *dx, size_t planes, CsPoolGeom g);
cudaError_t cs_cu_avgpool_forward (cudaStream_t s, const float *x, float *y, size_t planes,
                                   CsPoolGeom g);
cudaError_t cs_cu_avgpool_backward (cudaStream_t s, const float *dy, float *dx, size_t planes,
                                    CsPoolGeom g);

/* Cross-channel LRN: scale = k + COEF * the sum of x^2 over channels c-size/2..c+size/2, with
 * COEF = alpha/size; backward's COEF2 = 2 alpha beta / size (both rounded to float as the CPU). */
cudaError_t cs_cu_lrn_forward (cudaStream_t s, const float *x, float *y, size_t batch, int c,
                               size_t hw, int size, float coef, float beta, float k);
cudaError_t cs_cu_lrn_backward (cudaStream_t s, const float *x, const float *y, const float *dy,
                                float *dx, size_t batch, int c, size_t hw, int size, float coef,
                                float coef2, float beta, float k);

/* Batch norm at inference: y = x * scale + shift per channel, from the running statistics; then
 * max(y, 0) with RELU. */
cudaError_t cs_cu_bn_inference (cudaStream_t s, const float *x, float *y, const float *gamma,
                                const float *beta, const float *mean, const float *var,
                                double eps, int relu, size_t batch, int c, size_t hw);

/* Softmax over the channels at each position. */
cudaError_t cs_cu_softmax_forward (cudaStream_t s, const float *x, float *y, size_t batch, int c,
                                   size_t hw);
cudaError_t cs_cu_softmax_backward (cudaStream_t s, const float *y, const float *dy, float *dx,
                                    size_t batch, int c, size_t hw);

/* Softmax cross-entropy over N rows of CLASSES logits: d = scale * (p - onehot) / n; adds the sum
 * of the rows' losses to sums->loss and the top-1 and top-5 hits to sums->top1 and sums->top5. */
typedef struct {
  double loss;
  unsigned int top1, top5;
} CsCuLossSums;

cudaError_t cs_cu_cross_entropy (cudaStream_t s, const float *logits, const unsigned int *labels,
                                 unsigned int n, unsigned int classes, float scale, float *d,
                                 CsCuLossSums *sums);

/* m = momentum * m + g + decay * w; w -= lr * m. */
cudaError_t cs_cu_sgd (cudaStream_t s, float *w, const float *g, float *m, size_t n, float lr,
                       float momentum, float decay);

cudaError_t cs_cu_fill (cudaStream_t s, float *p, size_t n, float value);

#ifdef __cplusplus
}
#endif
