// The CUDA backend's own kernels: pointwise, pooling, LRN, joins, dropout, loss and SGD. Each
// mirrors the CPU backend's kernel of the same name (core/cpu/cs-cpu.c) operation for operation,
// so that results agree to rounding; this file is built with --fmad=false for the same reason.
#include "cs-cuda-kernels.h"

// Each launch then reports its own error by cudaGetLastError: one that a library left set and
// handled itself (a failed allocation inside cuDNN's search, say) is cleared before it. Sticky
// errors survive the clearing.
#ifdef CS_CUDA_EMULATE
#include "cs-cuda-emulate.h"
// A launch runs on the host (tests without a GPU); SYNCED: the kernel calls __syncthreads.
#define KERNEL(kernel, grid, synced, ...) \
  do { \
    (void) cudaGetLastError (); \
    cs_emu_run ((grid), THREADS, (synced), [&] { kernel (__VA_ARGS__); }); \
  } while (0)
#else
#include <cuda_runtime.h>
#define KERNEL(kernel, grid, synced, ...) \
  do { \
    (void) cudaGetLastError (); \
    kernel<<<(grid), THREADS, 0, s>>> (__VA_ARGS__); \
  } while (0)
#endif
#include <math.h>

#define THREADS 256

// A grid that covers N items with a grid-stride loop, capped so that the count fits the launch.
static unsigned int
blocks_for (size_t n)
{
  size_t b = (n + THREADS - 1) / THREADS;
  if (b > 65535u * 16u)
    b = 65535u * 16u;
  return (unsigned int) (b ? b : 1);
}

#define FOR_EACH(i, n) \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (size_t) gridDim.x * blockDim.x)

#define LAUNCH(kernel, n, ...) \
  do { \
    if ((n) == 0) \
      return cudaSuccess; \
    KERNEL (kernel, blocks_for (n), false, __VA_ARGS__); \
    return cudaGetLastError (); \
  } while (0)

// The same counter-based generator as cs_mix64 and cs_uniform in core/cs-net.h: dropout masks
// must be identical on both backends.
__device__ static inline unsigned long long
mix64 (unsigned long long x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ static inline float
uniform (unsigned long long seed, unsigned long long index)
{
  return (float) (mix64 (seed ^ mix64 (index)) >> 40) * (1.0f / 16777216.0f);
}

// ---- pointwise ---------------------------------------------------------------------------

__global__ static void
relu_fwd_k (const float *x, float *y, size_t n, float slope)
{
  FOR_EACH (i, n)
    {
      float v = x[i];
      y[i] = v > 0.0f ? v : (slope == 0.0f ? 0.0f : slope * v);
    }
}

__global__ static void
relu_bwd_k (const float *y, const float *dy, float *dx, size_t n, float slope)
{
  FOR_EACH (i, n)
    {
      float pos = (float) (y[i] > 0.0f);
      dx[i] += dy[i] * (pos + (1.0f - pos) * slope);
    }
}

__global__ static void
sigmoid_fwd_k (const float *x, float *y, size_t n)
{
  FOR_EACH (i, n)
    y[i] = 1.0f / (1.0f + expf (-x[i]));
}

__global__ static void
sigmoid_bwd_k (const float *y, const float *dy, float *dx, size_t n)
{
  FOR_EACH (i, n)
    dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

__global__ static void
tanh_fwd_k (const float *x, float *y, size_t n)
{
  FOR_EACH (i, n)
    y[i] = tanhf (x[i]);
}

__global__ static void
tanh_bwd_k (const float *y, const float *dy, float *dx, size_t n)
{
  FOR_EACH (i, n)
    dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

__global__ static void
scale_k (const float *x, float *y, size_t n, float scale)
{
  FOR_EACH (i, n)
    y[i] = scale * x[i];
}

__global__ static void
axpy_k (const float *x, float *y, size_t n, float scale)
{
  FOR_EACH (i, n)
    y[i] += scale * x[i];
}

__global__ static void
fill_k (float *p, size_t n, float value)
{
  FOR_EACH (i, n)
    p[i] = value;
}

__global__ static void
dropout_fwd_k (const float *x, float *y, size_t n, unsigned long long seed, float p, float keep)
{
  FOR_EACH (i, n)
    y[i] = uniform (seed, i) >= p ? x[i] * keep : 0.0f;
}

__global__ static void
dropout_bwd_k (const float *dy, float *dx, size_t n, unsigned long long seed, float p,
               float keep)
{
  FOR_EACH (i, n)
    if (uniform (seed, i) >= p)
      dx[i] += dy[i] * keep;
}

extern "C" cudaError_t
cs_cu_relu_forward (cudaStream_t s, const float *x, float *y, size_t n, float slope)
{
  LAUNCH (relu_fwd_k, n, x, y, n, slope);
}

extern "C" cudaError_t
cs_cu_relu_backward (cudaStream_t s, const float *y, const float *dy, float *dx, size_t n,
                     float slope)
{
  LAUNCH (relu_bwd_k, n, y, dy, dx, n, slope);
}

extern "C" cudaError_t
cs_cu_sigmoid_forward (cudaStream_t s, const float *x, float *y, size_t n)
{
  LAUNCH (sigmoid_fwd_k, n, x, y, n);
}

extern "C" cudaError_t
cs_cu_sigmoid_backward (cudaStream_t s, const float *y, const float *dy, float *dx, size_t n)
{
  LAUNCH (sigmoid_bwd_k, n, y, dy, dx, n);
}

extern "C" cudaError_t
cs_cu_tanh_forward (cudaStream_t s, const float *x, float *y, size_t n)
{
  LAUNCH (tanh_fwd_k, n, x, y, n);
}

extern "C" cudaError_t
cs_cu_tanh_backward (cudaStream_t s, const float *y, const float *dy, float *dx, size_t n)
{
  LAUNCH (tanh_bwd_k, n, y, dy, dx, n);
}

extern "C" cudaError_t
cs_cu_scale (cudaStream_t s, const float *x, float *y, size_t n, float scale)
{
  LAUNCH (scale_k, n, x, y, n, scale);
}

extern "C" cudaError_t
cs_cu_axpy (cudaStream_t s, const float *x, float *y, size_t n, float scale)
{
  LAUNCH (axpy_k, n, x, y, n, scale);
}

extern "C" cudaError_t
cs_cu_fill (cudaStream_t s, float *p, size_t n, float value)
{
  LAUNCH (fill_k, n, p, n, value);
}

extern "C" cudaError_t
cs_cu_dropout_forward (cudaStream_t s, const float *x, float *y, size_t n, uint64_t seed, float p)
{
  LAUNCH (dropout_fwd_k, n, x, y, n, (unsigned long long) seed, p, 1.0f / (1.0f - p));
}

extern "C" cudaError_t
cs_cu_dropout_backward (cudaStream_t s, const float *dy, float *dx, size_t n, uint64_t seed,
                        float p)
{
  LAUNCH (dropout_bwd_k, n, dy, dx, n, (unsigned long long) seed, p, 1.0f / (1.0f - p));
}

// ---- bias --------------------------------------------------------------------------------

__global__ static void
bias_fwd_k (float *y, const float *bias, size_t n, int c, size_t hw)
{
  FOR_EACH (i, n)
    y[i] += bias[(i / hw) % (size_t) c];
}

// One block per channel: each thread sums a strided share, then the block adds the shares up.
__global__ static void
bias_bwd_k (const float *dy, float *db, size_t batch, int c, size_t hw)
{
  __shared__ float part[THREADS];
  int ch = blockIdx.x;
  size_t total = batch * hw;
  float sum = 0.0f;
  for (size_t e = threadIdx.x; e < total; e += blockDim.x)
    {
      size_t b = e / hw, j = e % hw;
      sum += dy[(b * (size_t) c + ch) * hw + j];
    }
  part[threadIdx.x] = sum;
  __syncthreads ();
  for (int stride = THREADS / 2; stride > 0; stride >>= 1)
    {
      if ((int) threadIdx.x < stride)
        part[threadIdx.x] += part[threadIdx.x + stride];
      __syncthreads ();
    }
  if (threadIdx.x == 0)
    db[ch] += part[0];
}

extern "C" cudaError_t
cs_cu_bias_forward (cudaStream_t s, float *y, const float *bias, size_t batch, int c, size_t hw)
{
  size_t n = batch * (size_t) c * hw;
  LAUNCH (bias_fwd_k, n, y, bias, n, c, hw);
}

extern "C" cudaError_t
cs_cu_bias_backward (cudaStream_t s, const float *dy, float *db, size_t batch, int c, size_t hw)
{
  if (c == 0)
    return cudaSuccess;
  KERNEL (bias_bwd_k, c, true, dy, db, batch, c, hw);
  return cudaGetLastError ();
}

// ---- concatenation -----------------------------------------------------------------------

__global__ static void
concat_fwd_k (const float *x, float *y, size_t n, size_t iv, size_t ov, size_t off)
{
  FOR_EACH (i, n)
    y[(i / iv) * ov + off + i % iv] = x[i];
}

__global__ static void
concat_bwd_k (const float *dy, float *dx, size_t n, size_t iv, size_t ov, size_t off)
{
  FOR_EACH (i, n)
    dx[i] += dy[(i / iv) * ov + off + i % iv];
}

extern "C" cudaError_t
cs_cu_concat_forward (cudaStream_t s, const float *x, float *y, size_t batch, size_t iv,
                      size_t ov, size_t off)
{
  size_t n = batch * iv;
  LAUNCH (concat_fwd_k, n, x, y, n, iv, ov, off);
}

extern "C" cudaError_t
cs_cu_concat_backward (cudaStream_t s, const float *dy, float *dx, size_t batch, size_t iv,
                       size_t ov, size_t off)
{
  size_t n = batch * iv;
  LAUNCH (concat_bwd_k, n, dy, dx, n, iv, ov, off);
}

// ---- sums and means ------------------------------------------------------------------------

// Up to JOIN_MAX inputs per launch, passed by value; more take further launches that add on.
#define JOIN_MAX 4

struct JoinIn {
  const float *x[JOIN_MAX];
};

struct JoinOut {
  float *dx[JOIN_MAX];
};

// y = (ADD ? y : 0) + scale x0 + scale x1 + ..., each step rounded as the CPU's, then the ReLU.
// x0 may be y (in place): each thread reads its value before writing it.
__global__ static void
join_fwd_k (JoinIn in, unsigned int k, bool add, float *y, size_t n, float scale, int relu)
{
  FOR_EACH (i, n)
    {
      float v = add ? y[i] + scale * in.x[0][i] : scale * in.x[0][i];
      for (unsigned int j = 1; j < k; j++)
        v = v + scale * in.x[j][i];
      y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

// dx_j += scale * (RELU ? dy masked by y > 0 : dy), in input order (an input that comes twice
// has the same dx twice, and gets both).
__global__ static void
join_bwd_k (const float *dy, const float *y, JoinOut out, unsigned int k, size_t n, float scale,
            int relu)
{
  FOR_EACH (i, n)
    {
      float d = relu ? dy[i] * (float) (y[i] > 0.0f) : dy[i];
      d = scale * d;
      for (unsigned int j = 0; j < k; j++)
        out.dx[j][i] += d;
    }
}

extern "C" cudaError_t
cs_cu_join_forward (cudaStream_t s, const float *const *x, unsigned int k, float *y, size_t n,
                    float scale, int relu)
{
  if (n == 0 || k == 0)
    return cudaSuccess;
  for (unsigned int first = 0; first < k; first += JOIN_MAX)
    {
      JoinIn in = {};
      unsigned int m = min (k - first, (unsigned int) JOIN_MAX);
      for (unsigned int j = 0; j < m; j++)
        in.x[j] = x[first + j];
      KERNEL (join_fwd_k, blocks_for (n), false, in, m, first > 0, y, n, scale,
              relu && first + m == k);
      cudaError_t e = cudaGetLastError ();
      if (e != cudaSuccess)
        return e;
    }
  return cudaSuccess;
}

extern "C" cudaError_t
cs_cu_join_backward (cudaStream_t s, const float *dy, const float *y, float *const *dx,
                     unsigned int k, size_t n, float scale, int relu)
{
  if (n == 0 || k == 0)
    return cudaSuccess;
  for (unsigned int first = 0; first < k; first += JOIN_MAX)
    {
      JoinOut out = {};
      unsigned int m = min (k - first, (unsigned int) JOIN_MAX);
      for (unsigned int j = 0; j < m; j++)
        out.dx[j] = dx[first + j];
      KERNEL (join_bwd_k, blocks_for (n), false, dy, y, out, m, n, scale, relu);
      cudaError_t e = cudaGetLastError ();
      if (e != cudaSuccess)
        return e;
    }
  return cudaSuccess;
}

// ---- pooling -----------------------------------------------------------------------------

// One thread per output. Max pooling clips the window to the input (padding never wins) and
// gives 0 to a window wholly in the padding; backward routes to the first maximum in scan order.
__global__ static void
maxpool_fwd_k (const float *x, float *y, size_t n, CsPoolGeom g)
{
  FOR_EACH (o, n)
    {
      size_t pl = o / ((size_t) g.oh * g.ow);
      int oh = (int) (o / g.ow % g.oh), ow = (int) (o % g.ow);
      int h0 = max (oh * g.sh - g.ph, 0), h1 = min (oh * g.sh - g.ph + g.kh, g.h);
      int w0 = max (ow * g.sw - g.pw, 0), w1 = min (ow * g.sw - g.pw + g.kw, g.w);
      const float *p = x + pl * g.h * g.w;
      float best = 0.0f;
      if (h0 < h1 && w0 < w1)
        {
          best = p[h0 * g.w + w0];
          for (int i = h0; i < h1; i++)
            for (int j = w0; j < w1; j++)
              best = p[i * g.w + j] > best ? p[i * g.w + j] : best;
        }
      y[o] = best;
    }
}

__global__ static void
maxpool_bwd_k (const float *x, const float *y, const float *dy, float *dx, size_t n, CsPoolGeom g)
{
  FOR_EACH (o, n)
    {
      size_t pl = o / ((size_t) g.oh * g.ow);
      int oh = (int) (o / g.ow % g.oh), ow = (int) (o % g.ow);
      int h0 = max (oh * g.sh - g.ph, 0), h1 = min (oh * g.sh - g.ph + g.kh, g.h);
      int w0 = max (ow * g.sw - g.pw, 0), w1 = min (ow * g.sw - g.pw + g.kw, g.w);
      const float *p = x + pl * g.h * g.w;
      float m = y[o];
      for (int i = h0; i < h1; i++)
        for (int j = w0; j < w1; j++)
          if (p[i * g.w + j] == m)
            {
              atomicAdd (dx + pl * g.h * g.w + i * g.w + j, dy[o]);
              goto next;
            }
    next:;
    }
}

// Average pooling divides by the window clipped to the padded input, as the CPU backend does.
__global__ static void
avgpool_k (const float *x, float *y, const float *dy, float *dx, size_t n, CsPoolGeom g)
{
  FOR_EACH (o, n)
    {
      size_t pl = o / ((size_t) g.oh * g.ow);
      int oh = (int) (o / g.ow % g.oh), ow = (int) (o % g.ow);
      int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
      int h1 = min (h0 + g.kh, g.h + g.ph), w1 = min (w0 + g.kw, g.w + g.pw);
      float count = (float) ((h1 - h0) * (w1 - w0));
      h0 = max (h0, 0), w0 = max (w0, 0);
      h1 = min (h1, g.h), w1 = min (w1, g.w);
      size_t base = pl * g.h * g.w;
      if (dx)
        {
          float d = dy[o] / count;
          for (int i = h0; i < h1; i++)
            for (int j = w0; j < w1; j++)
              atomicAdd (dx + base + i * g.w + j, d);
        }
      else
        {
          float sum = 0.0f;
          for (int i = h0; i < h1; i++)
            for (int j = w0; j < w1; j++)
              sum += x[base + i * g.w + j];
          y[o] = sum / count;
        }
    }
}

extern "C" cudaError_t
cs_cu_maxpool_forward (cudaStream_t s, const float *x, float *y, size_t planes, CsPoolGeom g)
{
  size_t n = planes * g.oh * g.ow;
  LAUNCH (maxpool_fwd_k, n, x, y, n, g);
}

extern "C" cudaError_t
cs_cu_maxpool_backward (cudaStream_t s, const float *x, const float *y, const float *dy,
                        float *dx, size_t planes, CsPoolGeom g)
{
  size_t n = planes * g.oh * g.ow;
  LAUNCH (maxpool_bwd_k, n, x, y, dy, dx, n, g);
}

extern "C" cudaError_t
cs_cu_avgpool_forward (cudaStream_t s, const float *x, float *y, size_t planes, CsPoolGeom g)
{
  size_t n = planes * g.oh * g.ow;
  LAUNCH (avgpool_k, n, x, y, (const float *) 0, (float *) 0, n, g);
}

extern "C" cudaError_t
cs_cu_avgpool_backward (cudaStream_t s, const float *dy, float *dx, size_t planes, CsPoolGeom g)
{
  size_t n = planes * g.oh * g.ow;
  LAUNCH (avgpool_k, n, (const float *) 0, (float *) 0, dy, dx, n, g);
}

// ---- local response normalisation ----------------------------------------------------------

__device__ static inline float
lrn_scale (const float *x, int c, int ch, size_t hw, int half, float coef, float k)
{
  float sum = 0.0f;
  for (int j = max (0, ch - half); j <= min (c - 1, ch + half); j++)
    sum += x[j * hw] * x[j * hw];
  return k + coef * sum;
}

// scale^-beta as the CPU backend's lrn_power computes it: by square roots for beta 0.75.
__device__ static inline float
lrn_power (float scale, float beta)
{
  if (beta == 0.75f)
    {
      float r = sqrtf (scale);
      return 1.0f / (r * sqrtf (r));
    }
  return powf (scale, -beta);
}

// Thread per value; X points at position i of channel 0 of its image.
__global__ static void
lrn_fwd_k (const float *x, float *y, size_t n, int c, size_t hw, int half, float coef, float beta,
           float k)
{
  FOR_EACH (o, n)
    {
      size_t b = o / (c * hw), i = o % hw;
      int ch = (int) (o / hw % c);
      const float *col = x + b * c * hw + i;
      y[o] = x[o] * lrn_power (lrn_scale (col, c, ch, hw, half, coef, k), beta);
    }
}

__global__ static void
lrn_bwd_k (const float *x, const float *y, const float *dy, float *dx, size_t n, int c, size_t hw,
           int half, float coef, float coef2, float beta, float k)
{
  FOR_EACH (o, n)
    {
      size_t b = o / (c * hw), i = o % hw, base = b * c * hw + i;
      int ch = (int) (o / hw % c);
      const float *col = x + base;
      float sum = 0.0f;
      for (int j = max (0, ch - half); j <= min (c - 1, ch + half); j++)
        {
          size_t q = base + j * hw;
          sum += dy[q] * y[q] / lrn_scale (col, c, j, hw, half, coef, k);
        }
      float scale = lrn_scale (col, c, ch, hw, half, coef, k);
      dx[o] += dy[o] * lrn_power (scale, beta) - coef2 * x[o] * sum;
    }
}

extern "C" cudaError_t
cs_cu_lrn_forward (cudaStream_t s, const float *x, float *y, size_t batch, int c, size_t hw,
                   int size, float coef, float beta, float k)
{
  size_t n = batch * c * hw;
  LAUNCH (lrn_fwd_k, n, x, y, n, c, hw, size / 2, coef, beta, k);
}

extern "C" cudaError_t
cs_cu_lrn_backward (cudaStream_t s, const float *x, const float *y, const float *dy, float *dx,
                    size_t batch, int c, size_t hw, int size, float coef, float coef2, float beta,
                    float k)
{
  size_t n = batch * c * hw;
  LAUNCH (lrn_bwd_k, n, x, y, dy, dx, n, c, hw, size / 2, coef, coef2, beta, k);
}

// ---- batch norm at inference ----------------------------------------------------------------

__global__ static void
bn_inference_k (const float *x, float *y, const float *gamma, const float *beta,
                const float *mean, const float *var, double eps, int relu, size_t n, int c,
                size_t hw)
{
  FOR_EACH (i, n)
    {
      int ch = (int) (i / hw % c);
      float invstd = (float) (1.0 / sqrt ((double) var[ch] + eps));
      float g = gamma ? gamma[ch] : 1.0f, bt = beta ? beta[ch] : 0.0f;
      float scale = g * invstd, shift = bt - mean[ch] * scale;
      float v = x[i] * scale + shift;
      y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;  // as the ReLU kernel computes it
    }
}

extern "C" cudaError_t
cs_cu_bn_inference (cudaStream_t s, const float *x, float *y, const float *gamma,
                    const float *beta, const float *mean, const float *var, double eps, int relu,
                    size_t batch, int c, size_t hw)
{
  size_t n = batch * c * hw;
  LAUNCH (bn_inference_k, n, x, y, gamma, beta, mean, var, eps, relu, n, c, hw);
}

// ---- softmax -------------------------------------------------------------------------------

// Thread per (image, position); it may run in place (x == y).
__global__ static void
softmax_fwd_k (const float *x, float *y, size_t n, int c, size_t hw)
{
  FOR_EACH (t, n)
    {
      size_t base = (t / hw) * c * hw + t % hw;
      float mx = -INFINITY, sum = 0.0f;
      for (int j = 0; j < c; j++)
        mx = fmaxf (mx, x[base + j * hw]);
      for (int j = 0; j < c; j++)
        {
          float e = expf (x[base + j * hw] - mx);
          y[base + j * hw] = e;
          sum += e;
        }
      for (int j = 0; j < c; j++)
        y[base + j * hw] /= sum;
    }
}

__global__ static void
softmax_bwd_k (const float *y, const float *dy, float *dx, size_t n, int c, size_t hw)
{
  FOR_EACH (t, n)
    {
      size_t base = (t / hw) * c * hw + t % hw;
      float dot = 0.0f;
      for (int j = 0; j < c; j++)
        dot += y[base + j * hw] * dy[base + j * hw];
      for (int j = 0; j < c; j++)
        dx[base + j * hw] += y[base + j * hw] * (dy[base + j * hw] - dot);
    }
}

extern "C" cudaError_t
cs_cu_softmax_forward (cudaStream_t s, const float *x, float *y, size_t batch, int c, size_t hw)
{
  size_t n = batch * hw;
  LAUNCH (softmax_fwd_k, n, x, y, n, c, hw);
}

extern "C" cudaError_t
cs_cu_softmax_backward (cudaStream_t s, const float *y, const float *dy, float *dx, size_t batch,
                        int c, size_t hw)
{
  size_t n = batch * hw;
  LAUNCH (softmax_bwd_k, n, y, dy, dx, n, c, hw);
}

// ---- loss and update -------------------------------------------------------------------------

// Thread per row, in double like the CPU backend; the sums are added atomically.
__global__ static void
cross_entropy_k (const float *logits, const unsigned int *labels, unsigned int n,
                 unsigned int classes, float scale, float *d, CsCuLossSums *sums)
{
  FOR_EACH (row, (size_t) n)
    {
      const float *z = logits + row * classes;
      float *g = d + row * classes;
      unsigned int label = labels[row];
      float mx = -INFINITY;
      for (unsigned int c = 0; c < classes; c++)
        mx = fmaxf (mx, z[c]);
      double s = 0;
      for (unsigned int c = 0; c < classes; c++)
        s += exp ((double) z[c] - mx);
      double lse = mx + log (s);
      unsigned int above = 0;
      for (unsigned int c = 0; c < classes; c++)
        {
          above += z[c] > z[label];
          g[c] = (float) (scale * (exp ((double) z[c] - lse) - (c == label)) / n);
        }
      atomicAdd (&sums->loss, lse - z[label]);
      if (above == 0)
        atomicAdd (&sums->top1, 1u);
      if (above < 5)
        atomicAdd (&sums->top5, 1u);
    }
}

extern "C" cudaError_t
cs_cu_cross_entropy (cudaStream_t s, const float *logits, const unsigned int *labels,
                     unsigned int n, unsigned int classes, float scale, float *d,
                     CsCuLossSums *sums)
{
  LAUNCH (cross_entropy_k, (size_t) n, logits, labels, n, classes, scale, d, sums);
}

__global__ static void
sgd_k (float *w, const float *g, float *m, size_t n, float lr, float momentum, float decay)
{
  FOR_EACH (i, n)
    {
      float mi = momentum * m[i] + g[i] + decay * w[i];
      m[i] = mi;
      w[i] -= lr * mi;
    }
}

extern "C" cudaError_t
cs_cu_sgd (cudaStream_t s, float *w, const float *g, float *m, size_t n, float lr, float momentum,
           float decay)
{
  LAUNCH (sgd_k, n, w, g, m, n, lr, momentum, decay);
}
