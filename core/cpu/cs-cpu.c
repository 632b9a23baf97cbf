/* The CPU backend: float32 NCHW kernels, forward and backward for every layer kind, with
 * convolutions and fully connected layers as OpenBLAS matrix products. */
#include "cs-backend.h"
#include "cs-blas.h"
#include "cs-error.h"
#include "cs-net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Backward kernels add to a->d_in[i], or set it where it is fresh (CsKernelArgs.d_in_fresh: the
 * executor then leaves it unzeroed); an entry may be NULL when that gradient is not needed.
 *
 * The kernels' own loops are split over OpenMP's threads, which are OpenBLAS's threads too (see
 * core/meson.build). Each thread writes its own part of the output and no sum is split between
 * threads, so results do not depend on how many there are. Loops over fewer than PAR_MIN values
 * stay on one thread: waking the others would cost more than they save. */
#define PAR_MIN 32768

/* The threads a parallel loop may have, and which of them runs the caller: a loop that needs
 * scratch space takes a part of the workspace per thread. */
static int
cpu_threads (void)
{
#ifdef _OPENMP
  return omp_get_max_threads ();
#else
  return 1;
#endif
}

static int
thread_index (void)
{
#ifdef _OPENMP
  return omp_get_thread_num ();
#else
  return 0;
#endif
}

/* How many threads may take a part of ROOM floats of scratch, PER_THREAD each: at least one. */
static int
scratch_slots (gsize room, gsize per_thread)
{
  return (int) CLAMP (room / per_thread, 1, (gsize) cpu_threads ());
}

/* The ReLU, wherever a kernel applies one, and the gradient before it from the gradient DY after
 * it and its output Y: a 0/1 factor rather than a select, which GCC turns into a branch. */
static inline float
apply_relu (float v)
{
  return v > 0.0f ? v : 0.0f;
}

static inline float
relu_grad (float dy, float y)
{
  return dy * (float) (y > 0.0f);
}

static gsize
vol (const CsShape *s)
{
  return (gsize) s->c * s->h * s->w;
}

/* The memory the kernel says can be had without swapping, or G_MAXUINT64 when unknown. */
static guint64
available_memory (void)
{
  g_autofree char *info = NULL;
  if (!g_file_get_contents ("/proc/meminfo", &info, NULL, NULL))
    return G_MAXUINT64;
  const char *p = strstr (info, "MemAvailable:");
  return p ? g_ascii_strtoull (p + 13, NULL, 10) * 1024 : G_MAXUINT64;
}

static float *
cpu_alloc (CsBackend *be, gsize n, GError **error)
{
  void *p = NULL;
  /* Linux grants more than it has and kills the process when the pages are touched: large
   * requests are checked against what is available first, so they fail with a message. */
  guint64 bytes = (guint64) MIN (n, G_MAXSIZE / 4) * 4, avail;
  if (bytes > (256u << 20) && bytes > (avail = available_memory ()))
    {
      g_autofree char *size = g_format_size (bytes), *free_size = g_format_size (avail);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY,
                   "out of host memory: asked for %s, %s available", size, free_size);
      return NULL;
    }
  if (n > G_MAXSIZE / sizeof (float) || posix_memalign (&p, 64, n * sizeof (float)) != 0)
    {
      g_autofree char *size = g_format_size (bytes);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "out of host memory (asked for %s)",
                   size);
      return NULL;
    }
  memset (p, 0, n * sizeof (float));
  return p;
}

static void
cpu_release (CsBackend *be, float *p)
{
  free (p);
}

/* Copies and fills of long runs go by blocks, a share of them per thread. */
#define BLOCK (1u << 16)

static gboolean
cpu_copy (CsBackend *be, float *dst, const float *src, gsize n, GError **error)
{
  if (dst == src)
    return TRUE;
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i += BLOCK)
    memcpy (dst + i, src + i, MIN (BLOCK, n - i) * sizeof (float));
  return TRUE;
}

static gboolean
cpu_zero (CsBackend *be, float *p, gsize n, GError **error)
{
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i += BLOCK)
    memset (p + i, 0, MIN (BLOCK, n - i) * sizeof (float));
  return TRUE;
}

/* Whether a kernel sets its I-th input gradient rather than adding to it (d_in_fresh). */
static gboolean
fresh (const CsKernelArgs *a, guint i)
{
  return a->d_in_fresh && a->d_in_fresh[i];
}

/* What a kernel keeps of a gradient's value before adding to it: all of its bits, or none where
 * it sets the gradient. A mask rather than a test, so that the loops stay branch-free and
 * vectorise; and 0 + v rather than v, the bits a zeroed gradient would give. */
static guint32
keep_mask (const CsKernelArgs *a, guint i)
{
  return fresh (a, i) ? 0 : G_MAXUINT32;
}

static inline float
kept_bits (guint32 mask, float old)
{
  guint32 bits;
  memcpy (&bits, &old, sizeof bits);
  bits &= mask;
  memcpy (&old, &bits, sizeof bits);
  return old;
}

/* dst = (dst masked by KEEP, as kept_bits) + scale * src. */
static void
add_into (float *restrict dst, const float *restrict src, gsize n, float scale, guint32 keep)
{
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    dst[i] = kept_bits (keep, dst[i]) + scale * src[i];
}

/* Sums over runs of values, in eight independent float lanes so that the loop vectorises without
 * reassociating, each run's total then added in double. */
static double
sum_run (const float *restrict x, gsize n)
{
  float acc[8] = { 0 };
  gsize i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      acc[k] += x[i + k];
  double s = 0;
  for (int k = 0; k < 8; k++)
    s += acc[k];
  for (; i < n; i++)
    s += x[i];
  return s;
}

/* ---- convolution ------------------------------------------------------------------------ */

typedef struct {
  int c, h, w;                  /* one group's input */
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int oh, ow;
} ConvGeom;

static ConvGeom
conv_geom (const CsKernelArgs *a)
{
  const CsNode *n = a->node;
  guint64 k[2], s[2], p[2], d[2];
  cs_layer_window (n, &a->in_shape[0], k, s, p, d);
  return (ConvGeom) {
    (int) (a->in_shape[0].c / n->p.groups), (int) a->in_shape[0].h, (int) a->in_shape[0].w,
    (int) k[0], (int) k[1], (int) s[0], (int) s[1], (int) p[0], (int) p[1], (int) d[0],
    (int) d[1], (int) n->shape.h, (int) n->shape.w,
  };
}

static gboolean
is_pointwise (const ConvGeom *g)
{
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* The outputs ow in [*lo, *hi) whose input column ow*sw - pw + off lies inside [0, w). */
static void
valid_range (int ow_count, int sw, int pw, int off, int w, int *lo, int *hi)
{
  int first = off - pw;                 /* input column of ow = 0 */
  int l = first >= 0 ? 0 : (-first + sw - 1) / sw;
  int h = first > w - 1 ? 0 : (w - 1 - first) / sw + 1;
  *lo = MIN (l, ow_count);
  *hi = CLAMP (h, *lo, ow_count);
}

/* Rows of the column matrix are filled run by run: zeros where the window is in the padding
 * and a plain (vectorisable) copy in between, instead of a bounds test per element. */
static void
im2col (const float *restrict x, const ConvGeom *g, float *restrict col, gsize ld)
{
  gsize hw = ld;
#pragma omp parallel for collapse (3) if ((gsize) g->c * g->kh * g->kw * g->oh * g->ow >= PAR_MIN) \
  schedule (static)
  for (int c = 0; c < g->c; c++)
    for (int ki = 0; ki < g->kh; ki++)
      for (int kj = 0; kj < g->kw; kj++)
        {
          float *row = col + (gsize) ((c * g->kh + ki) * g->kw + kj) * hw;
          const float *plane = x + (gsize) c * g->h * g->w;
          int lo, hi;
          valid_range (g->ow, g->sw, g->pw, kj * g->dw, g->w, &lo, &hi);
          for (int oh = 0; oh < g->oh; oh++)
            {
              int ih = oh * g->sh - g->ph + ki * g->dh;
              float *r = row + oh * g->ow;
              if (ih < 0 || ih >= g->h)
                {
                  memset (r, 0, g->ow * sizeof (float));
                  continue;
                }
              const float *src = plane + (gsize) ih * g->w + kj * g->dw - g->pw;
              for (int ow = 0; ow < lo; ow++)
                r[ow] = 0.0f;
              if (g->sw == 1)
                memcpy (r + lo, src + lo, (hi - lo) * sizeof (float));
              else if (g->sw == 2)  /* a constant stride, so that the gather vectorises */
                for (int ow = lo; ow < hi; ow++)
                  r[ow] = src[ow * 2];
              else if (g->sw == 4)
                for (int ow = lo; ow < hi; ow++)
                  r[ow] = src[ow * 4];
              else
                for (int ow = lo; ow < hi; ow++)
                  r[ow] = src[ow * g->sw];
              for (int ow = hi; ow < g->ow; ow++)
                r[ow] = 0.0f;
            }
        }
}

static void
col2im_add (const float *restrict col, const ConvGeom *g, float *restrict x, gsize ld)
{
  gsize hw = ld;
  /* Windows overlap within a channel's plane, so the channels are what is shared out. */
#pragma omp parallel for if ((gsize) g->c * g->kh * g->kw * g->oh * g->ow >= PAR_MIN) \
  schedule (static)
  for (int c = 0; c < g->c; c++)
    for (int ki = 0; ki < g->kh; ki++)
      for (int kj = 0; kj < g->kw; kj++)
        {
          const float *row = col + (gsize) ((c * g->kh + ki) * g->kw + kj) * hw;
          float *plane = x + (gsize) c * g->h * g->w;
          int lo, hi;
          valid_range (g->ow, g->sw, g->pw, kj * g->dw, g->w, &lo, &hi);
          for (int oh = 0; oh < g->oh; oh++)
            {
              int ih = oh * g->sh - g->ph + ki * g->dh;
              if (ih < 0 || ih >= g->h)
                continue;
              float *dst = plane + (gsize) ih * g->w + kj * g->dw - g->pw;
              const float *r = row + oh * g->ow;
              if (g->sw == 1)
                for (int ow = lo; ow < hi; ow++)
                  dst[ow] += r[ow];
              else if (g->sw == 2)  /* a constant stride, as in im2col */
                for (int ow = lo; ow < hi; ow++)
                  dst[ow * 2] += r[ow];
              else
                for (int ow = lo; ow < hi; ow++)
                  dst[ow * g->sw] += r[ow];
            }
        }
}

/* Images per matrix product: small outputs (ResNet's 7x7) are batched so that the products
 * are wide enough to run fast, within a workspace of about 16 MB. */
#define TILE_FLOATS (4u << 20)

static guint
conv_tile (const CsNode *n, const CsShape *in, guint batch)
{
  gsize k = (gsize) (in->c / n->p.groups) * n->p.kh * n->p.kw, hw = n->shape.h * n->shape.w;
  gsize cog = n->p.out / n->p.groups, per_image = (k + cog) * hw;
  if (hw >= 1024)
    return 1;
  return (guint) CLAMP (TILE_FLOATS / MAX (per_image, 1), 1, batch);
}

/* ---- Winograd F(2x2, 3x3) ------------------------------------------------------------------ */

/* A 3x3 convolution of stride 1 as 16 matrix products over 4x4 input tiles, each giving a 2x2
 * output tile (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
 * 16 multiplications per tile and channel pair instead of 36. With U = G g G^T (the filter),
 * V = B^T d B (the input tile) and M = sum over channels of U * V (elementwise, so one product
 * per position of the 4x4 tile), the output is A^T M A. The transforms use only halves, sums and
 * differences; the rounding differs from im2col's by a few units in the last place. */

/* For 3x3 windows of stride 1, undilated, one group, padding up to 2 (so that the data gradient
 * is a Winograd convolution too), and enough channels for the products to be wide. */
static gboolean
winograd_fits (const CsNode *n, const CsShape *in)
{
  if (n->op != CS_OP_CONV)
    return FALSE;
  guint64 k[2], s[2], p[2], d[2];
  cs_layer_window (n, in, k, s, p, d);
  return k[0] == 3 && k[1] == 3 && s[0] == 1 && s[1] == 1 && d[0] == 1 && d[1] == 1
         && n->p.groups == 1 && p[0] <= 2 && p[1] <= 2 && in->c >= 16 && n->p.out >= 16;
}

/* Images per set of products, and the floats that takes: the transformed filters [16][K][C],
 * input tiles [16][C][P] and products [16][K][P], P the tiles of T images. */
#define WINO_FLOATS (8u << 20)

static guint
winograd_tile (int c, int k, int oh, int ow, guint batch)
{
  gsize tiles = (gsize) ((oh + 1) / 2) * ((ow + 1) / 2);
  return (guint) CLAMP (WINO_FLOATS / MAX (16 * (gsize) (c + k) * tiles, 1), 1, batch);
}

/* Worth it where each set of products has enough tiles to amortise transforming the filters and
 * for its 16 narrow products to run near im2col's speed: measured on VGG16 and ResNets, large
 * maps win (VGG16's 224x224 and 112x112 layers, ResNet's 56x56 and, in training, 28x28) and
 * small ones lose (ResNet-50's 14x14 at batch 8: 12.2 ms against im2col's 9.4). */
#define WINO_MIN_TILES 1500

static gboolean
winograd_worth (int c, int k, int oh, int ow, guint batch)
{
  return (gsize) ((oh + 1) / 2) * ((ow + 1) / 2) * winograd_tile (c, k, oh, ow, batch)
         >= WINO_MIN_TILES;
}

/* The rows each thread of winograd_run works on, with room to spare. */
static gsize
winograd_rows (int ow)
{
  return 16 * ((gsize) ow + 4);
}

static gsize
winograd_floats (int c, int k, int oh, int ow, guint batch)
{
  gsize tiles = (gsize) ((oh + 1) / 2) * ((ow + 1) / 2) * winograd_tile (c, k, oh, ow, batch);
  gsize rows = cpu_threads () * winograd_rows (ow);
  return 16 * (gsize) k * c + MAX (9 * (gsize) k * c, 16 * (gsize) (c + k) * tiles + rows);
}

/* U = G g G^T for each 3x3 filter g, G's rows being 1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1: U
 * [16][K][C] from the filters [K][C][3][3], or with TURN each filter turned by 180 degrees and U
 * [16][C][K] (for the input gradient). The filters are first copied position by position into
 * SCRATCH [9][K*C], so that the transform runs over contiguous filters and vectorises. */
static void
winograd_filters (const float *g, int K, int C, gboolean turn, float *u, float *scratch)
{
  gsize F = (gsize) K * C;
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++)
      {
        const float *src = g + ((gsize) k * C + c) * 9;
        gsize f = turn ? (gsize) c * K + k : (gsize) k * C + c;
        for (int j = 0; j < 9; j++)
          scratch[j * F + f] = src[turn ? 8 - j : j];
      }
  const float *restrict s0 = scratch;
  for (gsize f = 0; f < F; f++)
    {
      float t[4][3];
      for (int col = 0; col < 3; col++)
        {
          float a = s0[col * F + f], b = s0[(3 + col) * F + f], c = s0[(6 + col) * F + f];
          t[0][col] = a;
          t[1][col] = 0.5f * (a + b + c);
          t[2][col] = 0.5f * (a - b + c);
          t[3][col] = c;
        }
      for (int i = 0; i < 4; i++)
        {
          float a = t[i][0], b = t[i][1], c = t[i][2];
          u[(4 * i + 0) * F + f] = a;
          u[(4 * i + 1) * F + f] = 0.5f * (a + b + c);
          u[(4 * i + 2) * F + f] = 0.5f * (a - b + c);
          u[(4 * i + 3) * F + f] = c;
        }
    }
}

/* The tiles V [16][C][P] = B^T d B of the T images X [T][C][H][W], padded by PH, PW, for TH x
 * TW 2x2 output tiles per image (P = T TH TW). The transform runs a row of tiles at a time, as
 * loops over the tiles that the compiler vectorises: B^T down the four input rows, then B across
 * them (each tile's column j is the row's entry 2 tx + j). The threads (SLOTS at most) share out
 * the input planes, each with STRIDE floats of SCRATCH. */
static void
winograd_input (const float *x, int C, int H, int W, int TH, int TW, int ph, int pw, guint t,
                float *V, float *scratch, gsize stride, int slots)
{
  int RW = 2 * TW + 2;  /* a padded row of tiles */
  gsize P = (gsize) t * TH * TW, VP = (gsize) C * P;
#pragma omp parallel for collapse (2) if ((gsize) t * C * H * W >= PAR_MIN) num_threads (slots) \
  schedule (static)
  for (int b = 0; b < (int) t; b++)
    for (int c = 0; c < C; c++)
      {
        float *rows = scratch + thread_index () * stride;
        float *restrict r[4] = { rows, rows + RW, rows + 2 * RW, rows + 3 * RW };
        float *restrict e = rows + 4 * RW;    /* one transformed row */
        const float *plane = x + ((gsize) b * C + c) * H * W;
        for (int ty = 0; ty < TH; ty++)
          {
            /* The four input rows under this row of tiles, zero outside the image. */
            for (int i = 0; i < 4; i++)
              {
                int yy = 2 * ty - ph + i;
                memset (r[i], 0, RW * sizeof (float));
                if (yy < 0 || yy >= H)
                  continue;
                int lo = MAX (pw, 0), hi = MIN (W + pw, RW);  /* row[j] = plane[j - pw] */
                if (hi > lo)
                  memcpy (r[i] + lo, plane + (gsize) yy * W + lo - pw, (hi - lo) * sizeof (float));
              }
            float *v = V + (gsize) c * P + ((gsize) b * TH + ty) * TW;
            for (int i = 0; i < 4; i++)
              {
                /* B^T's rows: 1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1. */
                for (int j = 0; j < RW; j++)
                  e[j] = i == 0 ? r[0][j] - r[2][j] : i == 1 ? r[1][j] + r[2][j]
                       : i == 2 ? r[2][j] - r[1][j] : r[1][j] - r[3][j];
                float *v0 = v + (gsize) (4 * i) * VP, *v1 = v0 + VP, *v2 = v1 + VP, *v3 = v2 + VP;
                for (int tx = 0; tx < TW; tx++)
                  {
                    const float *d = e + 2 * tx;
                    v0[tx] = d[0] - d[2];
                    v1[tx] = d[1] + d[2];
                    v2[tx] = d[2] - d[1];
                    v3[tx] = d[1] - d[3];
                  }
              }
          }
      }
}

/* Y (or Y +=, with ADD) = the 3x3 stride-1 convolution of the T images X [T][C][H][W], padded
 * by PH, PW, with the filters whose transforms are U [16][K][C], into Y [T][K][OH][OW]; then plus
 * BIAS and clamped at 0 with RELU. WORK holds the tiles V [16][C][P], the products M [16][K][P]
 * and a few rows per thread. On the way out, A^T runs down the tiles' rows and A across them, as
 * the input's transform does; the threads share out the output planes. */
static void
winograd_run (const float *x, int C, int H, int W, float *y, int K, int OH, int OW, int ph,
              int pw, guint t, const float *U, const float *bias, gboolean relu, gboolean add,
              float *work, gsize room)
{
  int TH = (OH + 1) / 2, TW = (OW + 1) / 2, RW = 2 * TW + 2;
  gsize P = (gsize) t * TH * TW, VP = (gsize) C * P, MP = (gsize) K * P;
  float *V = work, *M = V + 16 * VP, *scratch = M + 16 * MP;
  gsize stride = winograd_rows (OW);
  int slots = scratch_slots (room - 16 * (VP + MP), stride);
  winograd_input (x, C, H, W, TH, TW, ph, pw, t, V, scratch, stride, slots);
  for (int xi = 0; xi < 16; xi++)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, K, (int) P, C, 1.0f,
                 U + (gsize) xi * K * C, C, V + (gsize) xi * VP, (int) P, 0.0f,
                 M + (gsize) xi * MP, (int) P);
#pragma omp parallel for collapse (2) if ((gsize) t * K * OH * OW >= PAR_MIN) num_threads (slots) \
  schedule (static)
  for (int b = 0; b < (int) t; b++)
    for (int k = 0; k < K; k++)
      {
        float *rows = scratch + thread_index () * stride;
        float *restrict s0 = rows, *restrict s1 = rows + RW;  /* two output rows of the tiles */
        float *restrict q[2][4];
        for (int i = 0; i < 2; i++)
          for (int j = 0; j < 4; j++)
            q[i][j] = rows + (2 + 4 * i + j) * (gsize) TW + 2 * RW;
        float *out = y + ((gsize) b * K + k) * OH * OW;
        float bk = bias ? bias[k] : 0.0f;
        for (int ty = 0; ty < TH; ty++)
          {
            const float *m = M + (gsize) k * P + ((gsize) b * TH + ty) * TW;
            /* A^T down (rows: 1 1 1 0; 0 1 -1 -1), for each of the four columns j. */
            for (int j = 0; j < 4; j++)
              {
                const float *m0 = m + (gsize) j * MP, *m1 = m0 + 4 * MP, *m2 = m1 + 4 * MP,
                            *m3 = m2 + 4 * MP;
                for (int tx = 0; tx < TW; tx++)
                  {
                    q[0][j][tx] = m0[tx] + m1[tx] + m2[tx];
                    q[1][j][tx] = m1[tx] - m2[tx] - m3[tx];
                  }
              }
            /* Then A across: the two outputs of each tile, side by side in the row. */
            float *srow[2] = { s0, s1 };
            for (int i = 0; i < 2; i++)
              for (int tx = 0; tx < TW; tx++)
                {
                  float a0 = q[i][0][tx], a1 = q[i][1][tx], a2 = q[i][2][tx], a3 = q[i][3][tx];
                  srow[i][2 * tx] = a0 + a1 + a2 + bk;
                  srow[i][2 * tx + 1] = a1 - a2 - a3 + bk;
                }
            for (int i = 0; i < 2 && 2 * ty + i < OH; i++)
              {
                float *dst = out + (gsize) (2 * ty + i) * OW;
                const float *src = srow[i];
                if (relu)
                  for (int ox = 0; ox < OW; ox++)
                    dst[ox] = apply_relu (src[ox]);
                else if (add)
                  for (int ox = 0; ox < OW; ox++)
                    dst[ox] += src[ox];
                else
                  memcpy (dst, src, OW * sizeof (float));
              }
          }
      }
}

static gboolean
winograd_forward (const CsKernelArgs *a)
{
  ConvGeom g = conv_geom (a);  /* one group: g.c is all the input channels */
  int K = (int) a->node->p.out;
  guint tile = winograd_tile (g.c, K, g.oh, g.ow, a->batch);
  gsize filters = 16 * (gsize) K * g.c;
  float *U = a->work, *rest = a->work + filters;
  winograd_filters (a->w, K, g.c, FALSE, U, rest);
  gsize in_vol = (gsize) g.c * g.h * g.w, out_vol = (gsize) K * g.oh * g.ow;
  for (guint b0 = 0; b0 < a->batch; b0 += tile)
    winograd_run (a->in[0] + b0 * in_vol, g.c, g.h, g.w, a->out + b0 * out_vol, K, g.oh, g.ow,
                  g.ph, g.pw, MIN (tile, a->batch - b0), U, a->b, a->relu, FALSE, rest,
                  a->work_len - filters);
  return TRUE;
}

/* The input gradient, added to: the 3x3 convolution of the output gradient with each filter
 * turned by 180 degrees and inputs and outputs swapped, padded by 2 - pad. */
static void
winograd_backward_data (const CsKernelArgs *a)
{
  ConvGeom g = conv_geom (a);
  int K = (int) a->node->p.out;
  guint tile = winograd_tile (K, g.c, g.h, g.w, a->batch);
  gsize filters = 16 * (gsize) K * g.c;
  float *U = a->work, *rest = a->work + filters;
  winograd_filters (a->w, K, g.c, TRUE, U, rest);
  gsize in_vol = (gsize) g.c * g.h * g.w, out_vol = (gsize) K * g.oh * g.ow;
  for (guint b0 = 0; b0 < a->batch; b0 += tile)
    winograd_run (a->d_out + b0 * out_vol, K, g.oh, g.ow, a->d_in[0] + b0 * in_vol, g.c, g.h,
                  g.w, 2 - g.ph, 2 - g.pw, MIN (tile, a->batch - b0), U, NULL, FALSE,
                  !fresh (a, 0), rest, a->work_len - filters);
}

/* The filter gradient, by the same algorithm run backwards. The forward pass computes each output
 * tile as A^T [(G g G^T) * (B^T d B)] A, so the gradient of the filter g over all tiles is
 * G^T [sum over tiles of (B^T d B) * (A dy A^T)] G, dy being the tile's 2x2 output gradient (zero
 * past the map's edge): the input's tiles as in the forward pass, the output gradient's tiles by
 * A, a product [K][P] x [P][C] for each of the 16 positions, summed over the whole batch, and one
 * transform back per filter. The products are wide (P runs over every tile of many images), where
 * im2col's are K x 9C x HW per set of images. The bias gradient is the plain sum of dy. */

/* D [16][K][P] = A dy A^T for each 2x2 tile of the T output gradients DY [T][K][OH][OW], A's rows
 * being 1 0; 1 1; 1 -1; 0 -1: for a tile a b / c d, the rows a b, a+c b+d, a-c b-d, -c -d, each
 * row p q then spread to p, p+q, p-q, -q. */
static void
winograd_grad_tiles (const float *dy, int K, int OH, int OW, int TH, int TW, guint t, float *D,
                     float *scratch, gsize stride, int slots)
{
  gsize P = (gsize) t * TH * TW, DP = (gsize) K * P;
  int RW = 2 * TW;
#pragma omp parallel for collapse (2) if ((gsize) t * K * OH * OW >= PAR_MIN) num_threads (slots) \
  schedule (static)
  for (int b = 0; b < (int) t; b++)
    for (int k = 0; k < K; k++)
      {
        float *restrict r0 = scratch + thread_index () * stride, *restrict r1 = r0 + RW;
        float *restrict e = r1 + RW;  /* the four rows of A dy, side by side */
        const float *plane = dy + ((gsize) b * K + k) * OH * OW;
        for (int ty = 0; ty < TH; ty++)
          {
            float *rr[2] = { r0, r1 };
            for (int i = 0; i < 2; i++)
              {
                int yy = 2 * ty + i;
                memset (rr[i], 0, RW * sizeof (float));
                if (yy < OH)
                  memcpy (rr[i], plane + (gsize) yy * OW, OW * sizeof (float));
              }
            float *e0 = e, *e1 = e + RW, *e2 = e1 + RW, *e3 = e2 + RW;
            for (int j = 0; j < RW; j++)
              {
                e0[j] = r0[j];
                e1[j] = r0[j] + r1[j];
                e2[j] = r0[j] - r1[j];
                e3[j] = -r1[j];
              }
            float *d = D + (gsize) k * P + ((gsize) b * TH + ty) * TW;
            const float *er[4] = { e0, e1, e2, e3 };
            for (int i = 0; i < 4; i++)
              {
                float *d0 = d + (gsize) (4 * i) * DP, *d1 = d0 + DP, *d2 = d1 + DP, *d3 = d2 + DP;
                const float *row = er[i];
                for (int tx = 0; tx < TW; tx++)
                  {
                    float p = row[2 * tx], q = row[2 * tx + 1];
                    d0[tx] = p;
                    d1[tx] = p + q;
                    d2[tx] = p - q;
                    d3[tx] = -q;
                  }
              }
          }
      }
}

/* DW [K][C][3][3] += G^T E G for each filter's 4x4 sums E, from the transformed gradient
 * GW [16][K][C]; G^T's rows are 1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1. */
static void
winograd_filters_back (const float *GW, int K, int C, float *dw)
{
  gsize F = (gsize) K * C;
#pragma omp parallel for if (F * 16 >= PAR_MIN) schedule (static)
  for (gsize f = 0; f < F; f++)
    {
      float t[3][4];
      for (int j = 0; j < 4; j++)
        {
          float e0 = GW[j * F + f], e1 = GW[(4 + j) * F + f], e2 = GW[(8 + j) * F + f],
                e3 = GW[(12 + j) * F + f];
          t[0][j] = e0 + 0.5f * (e1 + e2);
          t[1][j] = 0.5f * (e1 - e2);
          t[2][j] = 0.5f * (e1 + e2) + e3;
        }
      float *g = dw + f * 9;
      for (int r = 0; r < 3; r++)
        {
          g[3 * r + 0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
          g[3 * r + 1] += 0.5f * (t[r][1] - t[r][2]);
          g[3 * r + 2] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
        }
    }
}

/* The filter gradient runs a few images at a time: as few as give each of the 16 products about
 * WINO_FILTER_MACS multiply-adds. Narrower sets ran faster at every size measured where one image
 * already gives that much (ResNet's 56x56x64 to 14x14x256 at batches 8 to 64: one image a set).
 * By Winograd where an image has enough tiles and the products enough channels: at 14x14 (49
 * tiles) 1.25x faster than im2col at batch 32, at 7x7 (16) 1.7x slower; with the CIFAR ResNets'
 * 16 and 32 channels, 1.2 to 1.4x slower (products of 16 x 16 and 32 x 32 outputs). */
#define WINO_FILTER_MIN_TILES 49
#define WINO_FILTER_MIN_CHANNELS 64
#define WINO_FILTER_MACS (1u << 20)

static void
winograd_backward_filters (const CsKernelArgs *a)
{
  ConvGeom g = conv_geom (a);
  int K = (int) a->node->p.out, C = g.c;
  int TH = (g.oh + 1) / 2, TW = (g.ow + 1) / 2;
  gsize F = (gsize) K * C, tiles = (gsize) TH * TW, ohw = (gsize) g.oh * g.ow;
  gsize in_vol = (gsize) C * g.h * g.w, out_vol = (gsize) K * ohw;
  guint most = winograd_tile (C, K, g.oh, g.ow, a->batch);  /* what the workspace holds */
  guint tile = (guint) CLAMP ((WINO_FILTER_MACS + F * tiles - 1) / (F * tiles), 1, most);
  float *GW = a->work, *V = GW + 16 * F;
  gsize stride = winograd_rows (g.ow);
  for (guint b0 = 0; b0 < a->batch; b0 += tile)
    {
      guint t = MIN (tile, a->batch - b0);
      gsize P = t * tiles;
      float *D = V + 16 * (gsize) C * P, *scratch = D + 16 * (gsize) K * P;
      int slots = scratch_slots (a->work_len - (gsize) (scratch - a->work), stride);
      winograd_input (a->in[0] + b0 * in_vol, C, g.h, g.w, TH, TW, g.ph, g.pw, t, V, scratch,
                      stride, slots);
      winograd_grad_tiles (a->d_out + b0 * out_vol, K, g.oh, g.ow, TH, TW, t, D, scratch, stride,
                           slots);
      for (int xi = 0; xi < 16; xi++)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, K, C, (int) P, 1.0f,
                     D + (gsize) xi * K * P, (int) P, V + (gsize) xi * C * P, (int) P,
                     b0 == 0 ? 0.0f : 1.0f, GW + (gsize) xi * F, C);
    }
  winograd_filters_back (GW, K, C, a->dw);
  if (a->db)
#pragma omp parallel for if ((gsize) a->batch * out_vol >= PAR_MIN) schedule (static)
    for (int k = 0; k < K; k++)
      {
        double sum = 0;
        for (guint b = 0; b < a->batch; b++)
          sum += sum_run (a->d_out + b * out_vol + (gsize) k * ohw, ohw);
        a->db[k] += (float) sum;
      }
}

/* With many groups (ResNeXt's 32), each group's products are small: run one after another, each
 * on all the threads, they leave the threads waiting on each other. The threads then share out
 * the groups instead, each group's columns and product on one thread. ResNeXt-50's grouped 3x3
 * convolutions at batch 8, forward: 56x56x128 10.9 -> 4.7 ms, 28x28x256 8.3 -> 5.2 ms. */
static gboolean
conv_by_groups (const CsNode *n)
{
  return cpu_threads () > 1 && n->p.groups >= 2 * (guint) cpu_threads ();
}

/* Workspace of a tile: the column matrix [K, T*HW], then the output or its gradient [Cog, T*HW];
 * one such per thread where the threads share out the groups. */
static gsize
conv_workspace (const CsNode *n, const CsShape *in, guint batch)
{
  gsize k = (gsize) (in->c / n->p.groups) * n->p.kh * n->p.kw, hw = n->shape.h * n->shape.w;
  gsize cog = n->p.out / n->p.groups;
  return (k + cog) * hw * conv_tile (n, in, batch) * (conv_by_groups (n) ? cpu_threads () : 1);
}

/* What forward and backward both derive from a convolution's arguments. */
typedef struct {
  ConvGeom g;
  int groups, cog;              /* groups, output channels per group */
  gsize K, hw;                  /* column matrix rows, output positions per image */
  gsize in_vol, out_vol;
  guint tile;                   /* images per matrix product */
  gboolean pointwise, direct;   /* 1x1 stride 1; and one image at a time: no copies at all */
  gboolean by_groups;           /* the threads share out the groups (conv_by_groups) */
} ConvRun;

static ConvRun
conv_run (const CsKernelArgs *a)
{
  const CsNode *n = a->node;
  ConvRun r = { .g = conv_geom (a), .groups = (int) n->p.groups };
  r.cog = (int) n->p.out / r.groups;
  r.K = (gsize) r.g.c * r.g.kh * r.g.kw;
  r.hw = (gsize) r.g.oh * r.g.ow;
  r.in_vol = vol (&a->in_shape[0]);
  r.out_vol = vol (&n->shape);
  r.tile = conv_tile (n, &a->in_shape[0], a->batch);
  r.pointwise = is_pointwise (&r.g);
  r.direct = r.tile == 1 && r.pointwise;
  r.by_groups = conv_by_groups (n);
  return r;
}

/* The columns of group GI of image IMG into COL, rows LD floats apart: the input's planes as they
 * are for a pointwise convolution, im2col's otherwise. */
static void
group_columns (const CsKernelArgs *a, const ConvRun *r, int gi, guint img, float *col, gsize ld)
{
  const ConvGeom *g = &r->g;
  const float *x = a->in[0] + img * r->in_vol + (gsize) gi * g->c * g->h * g->w;
  if (r->pointwise)
#pragma omp parallel for if (g->c * r->hw >= PAR_MIN) schedule (static)
    for (int c = 0; c < g->c; c++)
      memcpy (col + c * ld, x + (gsize) c * r->hw, r->hw * sizeof (float));
  else
    im2col (x, g, col, ld);
}

/* The columns, product and output (plus bias, then the ReLU) of group GI for the T images from
 * B0, with COL [K, T*HW] and YTILE [Cog, T*HW] to work in. */
static void
conv_forward_group (const CsKernelArgs *a, const ConvRun *r, guint b0, guint t, int gi,
                    float *col, float *ytile)
{
  const ConvGeom *g = &r->g;
  int cog = r->cog;
  gsize K = r->K, hw = r->hw, ld = t * hw;
  const float *src = a->in[0] + b0 * r->in_vol + (gsize) gi * g->c * g->h * g->w;
  if (!r->direct)
    for (guint i = 0; i < t; i++)
      group_columns (a, r, gi, b0 + i, col + i * hw, ld);
  /* One image's product is already its output's layout: it goes there, and the bias and the
   * ReLU are applied in place. */
  float *y = t == 1 ? a->out + b0 * r->out_vol + (gsize) gi * cog * hw : ytile;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, cog, ld, K, 1.0f,
               a->w + (gsize) gi * cog * K, K, r->direct ? src : col, ld, 0.0f, y, ld);
#pragma omp parallel for collapse (2) if (cog * ld >= PAR_MIN) schedule (static)
  for (guint i = 0; i < t; i++)
    for (int c = 0; c < cog; c++)
      {
        float *dst = a->out + (b0 + i) * r->out_vol + (gsize) (gi * cog + c) * hw;
        const float *from = y + c * ld + i * hw;
        float bias = a->b ? a->b[gi * cog + c] : 0.0f;
        if (a->relu)
          for (gsize j = 0; j < hw; j++)
            {
              float v = from[j] + bias;
              dst[j] = apply_relu (v);
            }
        else if (dst != from || bias != 0.0f)
          for (gsize j = 0; j < hw; j++)
            dst[j] = from[j] + bias;
      }
}

/* What one group of a set of images does, forward or backward, in COL and TILE. */
typedef void (*ConvGroupFunc) (const CsKernelArgs *a, const ConvRun *r, guint b0, guint t,
                               int gi, float *col, float *tile);

/* F for each set of images and each group: the groups one after another, each on all the threads,
 * or shared out between the threads, each with its own columns and tile (r->by_groups). */
static void
conv_each_group (const CsKernelArgs *a, const ConvRun *r, ConvGroupFunc f)
{
  gsize room = (r->K + r->cog) * r->tile * r->hw;  /* one group's columns and tile */
  for (guint b0 = 0; b0 < a->batch; b0 += r->tile)
    {
      guint t = MIN (r->tile, a->batch - b0);
      if (r->by_groups)
        {
#pragma omp parallel for num_threads (scratch_slots (a->work_len, room)) schedule (static)
          for (int gi = 0; gi < r->groups; gi++)
            {
              float *col = a->work + thread_index () * room;
              f (a, r, b0, t, gi, col, col + r->K * t * r->hw);
            }
        }
      else
        for (int gi = 0; gi < r->groups; gi++)
          f (a, r, b0, t, gi, a->work, a->work + r->K * t * r->hw);
    }
}

static gboolean
conv_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsShape *in = &a->in_shape[0], *out = &a->node->shape;
  if (winograd_fits (a->node, in)
      && winograd_worth ((int) in->c, (int) out->c, (int) out->h, (int) out->w, a->batch))
    return winograd_forward (a);
  ConvRun r = conv_run (a);
  conv_each_group (a, &r, conv_forward_group);
  return TRUE;
}

static gboolean im2col_backward (const CsKernelArgs *a);

static gboolean
conv_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsShape *in = &a->in_shape[0], *out = &a->node->shape;
  gboolean fits = winograd_fits (a->node, in);
  gboolean data = fits && a->d_in[0]
                  && winograd_worth ((int) out->c, (int) in->c, (int) in->h, (int) in->w,
                                     a->batch);
  gboolean filters = fits
                     && ((gsize) (out->h + 1) / 2) * ((out->w + 1) / 2) >= WINO_FILTER_MIN_TILES
                     && MIN (in->c, out->c) >= WINO_FILTER_MIN_CHANNELS;
  /* The filter gradient first, then the input's, each by Winograd or by the column matrix. */
  if (filters)
    winograd_backward_filters (a);
  if (!filters || (!data && a->d_in[0]))
    {
      float *no_input[1] = { NULL };
      CsKernelArgs rest = *a;
      if (filters)
        rest.dw = rest.db = NULL;
      if (data)
        rest.d_in = no_input;
      im2col_backward (&rest);
    }
  if (data)
    winograd_backward_data (a);
  return TRUE;
}

/* The gradients of group GI for the T images from B0 by the column matrix: the filter's (with DW)
 * and the bias's (with DB), the input's (with d_in), with COL [K, T*HW] and DYTILE [Cog, T*HW]. */
static void
conv_backward_group (const CsKernelArgs *a, const ConvRun *r, guint b0, guint t, int gi,
                     float *col, float *dytile)
{
  const ConvGeom *g = &r->g;
  int cog = r->cog;
  gsize K = r->K, hw = r->hw, ld = t * hw;
  gsize goff = (gsize) gi * g->c * g->h * g->w;
  const float *w = a->w + (gsize) gi * cog * K;
  /* The output gradient and the columns of this tile, as [Cog, T*HW] and [K, T*HW]. */
  const float *dy = a->d_out + b0 * r->out_vol + (gsize) gi * cog * hw;
  const float *src = a->in[0] + b0 * r->in_vol + goff;
  if (!r->direct)
    {
      for (guint i = 0; i < t; i++)
        {
#pragma omp parallel for if (cog * hw >= PAR_MIN) schedule (static)
          for (int c = 0; c < cog; c++)
            memcpy (dytile + c * ld + i * hw,
                    a->d_out + (b0 + i) * r->out_vol + (gsize) (gi * cog + c) * hw,
                    hw * sizeof (float));
          if (a->dw)  /* the input gradient alone needs no columns */
            group_columns (a, r, gi, b0 + i, col + i * hw, ld);
        }
      dy = dytile;
      src = col;
    }
  if (a->dw)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, cog, K, ld, 1.0f, dy, ld, src, ld, 1.0f,
                 a->dw + (gsize) gi * cog * K, K);
  if (a->db)
#pragma omp parallel for if (cog * ld >= PAR_MIN) schedule (static)
    for (int c = 0; c < cog; c++)
      a->db[gi * cog + c] += (float) sum_run (dy + c * ld, ld);
  if (a->d_in[0] == NULL)
    return;
  gboolean set = fresh (a, 0);
  guint32 keep = keep_mask (a, 0);
  if (r->direct)
    {
      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, cog, 1.0f, w, K, dy, ld,
                   set ? 0.0f : 1.0f, a->d_in[0] + b0 * r->in_vol + goff, ld);
      return;
    }
  /* The columns are no longer needed: their gradient takes their place. */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, cog, 1.0f, w, K, dy, ld, 0.0f, col,
               ld);
  for (guint i = 0; i < t; i++)
    {
      float *dx = a->d_in[0] + (b0 + i) * r->in_vol + goff;
      if (r->pointwise)
#pragma omp parallel for if (g->c * hw >= PAR_MIN) schedule (static)
        for (int c = 0; c < g->c; c++)
          {
            const float *from = col + c * ld + i * hw;
            float *d = dx + (gsize) c * hw;
            for (gsize j = 0; j < hw; j++)
              d[j] = kept_bits (keep, d[j]) + from[j];
          }
      else
        {
          /* Windows overlap: a fresh gradient is zeroed first, while it is in cache. */
          if (set)
            cpu_zero (NULL, dx, (gsize) g->c * g->h * g->w, NULL);
          col2im_add (col + i * hw, g, dx, ld);
        }
    }
}

static gboolean
im2col_backward (const CsKernelArgs *a)
{
  ConvRun r = conv_run (a);
  conv_each_group (a, &r, conv_backward_group);
  return TRUE;
}

/* ---- fully connected ---------------------------------------------------------------------- */

static gboolean
fc_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  int in = (int) vol (&a->in_shape[0]), out = (int) a->node->p.out, n = (int) a->batch;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, a->in[0], in, a->w, in,
               0.0f, a->out, out);
  if (a->b)
    for (int i = 0; i < n; i++)
      add_into (a->out + (gsize) i * out, a->b, out, 1.0f, G_MAXUINT32);
  return TRUE;
}

static gboolean
fc_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  int in = (int) vol (&a->in_shape[0]), out = (int) a->node->p.out, n = (int) a->batch;
  if (a->d_in[0])
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, a->d_out, out,
                 a->w, in, fresh (a, 0) ? 0.0f : 1.0f, a->d_in[0], in);
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, a->d_out, out,
               a->in[0], in, 1.0f, a->dw, in);
  if (a->db)
    for (int i = 0; i < n; i++)
      add_into (a->db, a->d_out + (gsize) i * out, out, 1.0f, G_MAXUINT32);
  return TRUE;
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* Max pooling takes the row maxima first (contiguous, so vectorised), then the window maxima
 * along them. In training it also keeps where each window's first maximum in scan order is (the
 * smallest row, then column, holding it: the smallest flat index), from where each column's
 * maximum is first: backward then adds each gradient where it belongs without searching again.
 * Ties are common (zeros after a ReLU) and unpredictable, so the choices are selects, not
 * branches. */

/* Whether candidate C at flat index CI replaces the best B at BI: a larger value, or an equal one
 * earlier in scan order. */
static inline gboolean
maxpool_takes (float c, gint32 ci, float b, gint32 bi)
{
  return (c > b) | ((c == b) & (ci < bi));
}

/* The windows inside the row, [LO, HI), one window column at a time across all of them. SW is
 * the stride, a constant where maxpool_row calls it with one, so that the loops vectorise. */
static inline void
maxpool_inner (const CsPoolGeom *g, int sw, int lo, int hi, const float *restrict rowmax,
               const gint32 *restrict rowarg, float *restrict y, gint32 *restrict at)
{
  for (int ow = lo; ow < hi; ow++)
    {
      y[ow] = rowmax[ow * sw - g->pw];
      if (at)
        at[ow] = rowarg[ow * sw - g->pw];
    }
  for (int kj = 1; kj < g->kw; kj++)
    {
      const float *restrict v = rowmax + kj - g->pw;
      const gint32 *restrict r = rowarg ? rowarg + kj - g->pw : NULL;
      if (at)
        for (int ow = lo; ow < hi; ow++)
          {
            float c = v[ow * sw];
            gint32 ci = r[ow * sw];
            gboolean take = maxpool_takes (c, ci, y[ow], at[ow]);
            y[ow] = take ? c : y[ow];
            at[ow] = take ? ci : at[ow];
          }
      else
        for (int ow = lo; ow < hi; ow++)
          y[ow] = v[ow * sw] > y[ow] ? v[ow * sw] : y[ow];
    }
}

/* The window maxima of one output row from the row maxima ROWMAX, and with ROWARG (not NULL) the
 * flat index of each, into Y and AT: the windows inside the row by maxpool_inner, those reaching
 * into the padding one by one. */
static void
maxpool_row (const CsPoolGeom *g, const float *restrict rowmax, const gint32 *restrict rowarg,
             float *restrict y, gint32 *restrict at)
{
  int lo = MIN ((g->pw + g->sw - 1) / g->sw, g->ow);
  int hi = g->w - g->kw + g->pw >= 0 ? CLAMP ((g->w - g->kw + g->pw) / g->sw + 1, lo, g->ow) : lo;
  if (g->sw == 1)
    maxpool_inner (g, 1, lo, hi, rowmax, rowarg, y, at);
  else if (g->sw == 2)
    maxpool_inner (g, 2, lo, hi, rowmax, rowarg, y, at);
  else
    maxpool_inner (g, g->sw, lo, hi, rowmax, rowarg, y, at);
  /* The windows before LO, then those from HI (LO where there are no inner windows) on. */
  for (int side = 0; side < 2; side++)
    for (int ow = side ? MAX (hi, lo) : 0; ow < (side ? g->ow : lo); ow++)
      {
        int w0 = MAX (ow * g->sw - g->pw, 0), w1 = MIN (ow * g->sw - g->pw + g->kw, g->w);
        float best = w0 < w1 ? rowmax[w0] : 0.0f;
        gint32 bi = w0 < w1 && at ? rowarg[w0] : -1;  /* -1: a window in the padding only */
        for (int j = w0 + 1; j < w1; j++)
          {
            gboolean take = at ? maxpool_takes (rowmax[j], rowarg[j], best, bi)
                               : rowmax[j] > best;
            best = take ? rowmax[j] : best;
            bi = take && at ? rowarg[j] : bi;
          }
        y[ow] = best;
        if (at)
          at[ow] = bi;
      }
}

/* Max pooling with stride 1 and outputs as large as the inputs (GoogLeNet's 3x3 pad 1 branches),
 * on small planes: a chunk of whole planes at a time, as if one tall image. The window maxima
 * down the columns into V, then across the rows into Y, each as flat loops over the chunk
 * (vectorised, with no per-row work); the rows and columns whose windows reach past a plane's
 * edge, which those loops got wrong by reading the next plane or row, are then redone clipped.
 * In training, VI and AT follow where each maximum is, as the row path does: the first in scan
 * order, the smallest flat index, among equal values. */
#define MAXPOOL_CHUNK 8192      /* floats of V (and indices of VI) per thread */

static gboolean
maxpool_same_fits (const CsPoolGeom *g)
{
  return g->sh == 1 && g->sw == 1 && g->oh == g->h && g->ow == g->w && g->ph < g->kh
         && g->pw < g->kw && (gsize) g->h * g->w <= MAXPOOL_CHUNK;
}

static void
maxpool_same (const CsPoolGeom *g, const float *restrict x, float *restrict y,
              gint32 *restrict at, float *restrict v, gint32 *restrict vi, gsize planes)
{
  const int H = g->h, W = g->w, up = g->ph, down = g->kh - 1 - g->ph;
  const int left = g->pw, right = g->kw - 1 - g->pw;
  const gsize hw = (gsize) H * W, n = planes * hw;
  /* Down the columns: rows above come first in scan order, so they win ties; rows below do not. */
  memcpy (v, x, n * sizeof (float));
  if (at)
    for (gsize i = 0; i < n; i++)
      vi[i] = (gint32) i;
  for (int r = 1; r <= up; r++)
    {
      gsize d = (gsize) r * W;
      if (at)
        for (gsize i = d; i < n; i++)
          {
            gboolean take = x[i - d] >= v[i];
            v[i] = take ? x[i - d] : v[i];
            vi[i] = take ? (gint32) (i - d) : vi[i];
          }
      else
        for (gsize i = d; i < n; i++)
          v[i] = x[i - d] > v[i] ? x[i - d] : v[i];
    }
  for (int r = 1; r <= down; r++)
    {
      gsize d = (gsize) r * W;
      if (at)
        for (gsize i = 0; i + d < n; i++)
          {
            gboolean take = x[i + d] > v[i];
            v[i] = take ? x[i + d] : v[i];
            vi[i] = take ? (gint32) (i + d) : vi[i];
          }
      else
        for (gsize i = 0; i + d < n; i++)
          v[i] = x[i + d] > v[i] ? x[i + d] : v[i];
    }
  for (gsize pl = 0; pl < planes; pl++)
    for (int oy = 0; oy < H; oy++)
      {
        if (oy >= up && oy < H - down)
          {
            oy = H - down - 1;  /* the inner rows are right */
            continue;
          }
        int y0 = MAX (oy - up, 0), y1 = MIN (oy + down, H - 1);
        for (int ox = 0; ox < W; ox++)
          {
            gsize best = pl * hw + (gsize) y0 * W + ox;
            for (int yy = y0 + 1; yy <= y1; yy++)
              {
                gsize c = pl * hw + (gsize) yy * W + ox;
                best = x[c] > x[best] ? c : best;
              }
            v[pl * hw + (gsize) oy * W + ox] = x[best];
            if (at)
              vi[pl * hw + (gsize) oy * W + ox] = (gint32) best;
          }
      }
  /* Across the rows: the columns' maxima may come from different rows, so indices decide ties. */
  memcpy (y, v, n * sizeof (float));
  if (at)
    memcpy (at, vi, n * sizeof (gint32));
  for (int c = -left; c <= right; c++)
    {
      /* Candidates C columns away: Y[i] against V[i + c], for every i where that is in the chunk. */
      gsize lo = c < 0 ? (gsize) -c : 0, hi = c > 0 ? n - c : n;
      if (c == 0)
        continue;
      const float *restrict cv = v + lo + c;
      const gint32 *restrict ci = vi + lo + c;
      float *restrict yy = y + lo;
      gint32 *restrict aa = at ? at + lo : NULL;
      if (at)
        for (gsize i = 0; i < hi - lo; i++)
          {
            gboolean take = maxpool_takes (cv[i], ci[i], yy[i], aa[i]);
            yy[i] = take ? cv[i] : yy[i];
            aa[i] = take ? ci[i] : aa[i];
          }
      else
        for (gsize i = 0; i < hi - lo; i++)
          yy[i] = cv[i] > yy[i] ? cv[i] : yy[i];
    }
  for (gsize row = 0; row < planes * H; row++)
    for (int ox = 0; ox < W; ox++)
      {
        if (ox >= left && ox < W - right)
          {
            ox = W - right - 1;
            continue;
          }
        gsize x0 = row * W + MAX (ox - left, 0), x1 = row * W + MIN (ox + right, W - 1);
        gsize best = x0;
        for (gsize j = x0 + 1; j <= x1; j++)
          if (at ? maxpool_takes (v[j], vi[j], v[best], vi[best]) : v[j] > v[best])
            best = j;
        y[row * W + ox] = v[best];
        if (at)
          at[row * W + ox] = vi[best];
      }
  /* The chunk's indices, made the plane's own. */
  for (gsize pl = 0; at && pl < planes; pl++)
    for (gsize j = 0; j < hw; j++)
      at[pl * hw + j] -= (gint32) (pl * hw);
}

static gboolean
maxpool_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsPoolGeom g = cs_kernel_pool_geom (a->node, &a->in_shape[0]);
  gsize planes = (gsize) a->batch * a->in_shape[0].c;
  gint32 *where = a->training ? (gint32 *) a->saved : NULL;
  if (maxpool_same_fits (&g))
    {
      gsize hw = (gsize) g.h * g.w, per = MAXPOOL_CHUNK / hw, chunks = (planes + per - 1) / per;
#pragma omp parallel for if (planes * hw >= PAR_MIN) \
  num_threads (scratch_slots (a->work_len, 2 * MAXPOOL_CHUNK)) schedule (static)
      for (gsize ch = 0; ch < chunks; ch++)
        {
          gsize first = ch * per;
          float *v = a->work + thread_index () * 2 * MAXPOOL_CHUNK;
          maxpool_same (&g, a->in[0] + first * hw, a->out + first * hw,
                        where ? where + first * hw : NULL, v, (gint32 *) (v + MAXPOOL_CHUNK),
                        MIN (per, planes - first));
        }
      return TRUE;
    }
  int slots = scratch_slots (a->work_len, 2 * (gsize) g.w);
  const int W = g.w;  /* not g's: its address is taken, and the loops would not vectorise */
#pragma omp parallel for if (planes * g.h * g.w >= PAR_MIN) num_threads (slots) schedule (static)
  for (gsize pl = 0; pl < planes; pl++)
    {
      float *restrict rowmax = a->work + thread_index () * 2 * (gsize) g.w;
      gint32 *restrict rowarg = (gint32 *) (rowmax + g.w);
      const float *x = a->in[0] + pl * g.h * g.w;
      float *y = a->out + pl * g.oh * g.ow;
      gint32 *at = where ? where + pl * g.oh * g.ow : NULL;
      for (int oh = 0; oh < g.oh; oh++)
        {
          int h0 = MAX (oh * g.sh - g.ph, 0), h1 = MIN (oh * g.sh - g.ph + g.kh, g.h);
          if (h0 >= h1)
            {
              memset (y + oh * g.ow, 0, g.ow * sizeof (float));
              for (int ow = 0; at && ow < g.ow; ow++)
                at[oh * g.ow + ow] = -1;  /* a window in the padding only */
              continue;
            }
          memcpy (rowmax, x + (gsize) h0 * W, W * sizeof (float));
          if (at)
            for (int j = 0; j < W; j++)
              rowarg[j] = h0 * W + j;
          for (int i = h0 + 1; i < h1; i++)
            {
              const float *restrict r = x + (gsize) i * W;
              if (at)
                for (int j = 0; j < W; j++)
                  {
                    /* As masks, which vectorise. */
                    gint32 above = -(gint32) (r[j] > rowmax[j]);
                    rowarg[j] = (rowarg[j] & ~above) | ((i * W + j) & above);
                    rowmax[j] = r[j] > rowmax[j] ? r[j] : rowmax[j];
                  }
              else
                for (int j = 0; j < W; j++)
                  rowmax[j] = r[j] > rowmax[j] ? r[j] : rowmax[j];
            }
          maxpool_row (&g, rowmax, at ? rowarg : NULL, y + oh * g.ow, at ? at + oh * g.ow : NULL);
        }
    }
  return TRUE;
}

static gboolean
maxpool_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0] == NULL)
    return TRUE;
  CsPoolGeom g = cs_kernel_pool_geom (a->node, &a->in_shape[0]);
  gsize planes = (gsize) a->batch * a->in_shape[0].c, n = (gsize) g.oh * g.ow;
  const gint32 *where = (const gint32 *) a->saved;
  gboolean set = fresh (a, 0);
#pragma omp parallel for if (planes * n >= PAR_MIN) schedule (static)
  for (gsize pl = 0; pl < planes; pl++)
    {
      const gint32 *at = where + pl * n;
      const float *dy = a->d_out + pl * n;
      float *dx = a->d_in[0] + pl * g.h * g.w;
      if (set)
        memset (dx, 0, (gsize) g.h * g.w * sizeof (float));
      for (gsize o = 0; o < n; o++)
        if (at[o] >= 0)
          dx[at[o]] += dy[o];
    }
  return TRUE;
}

/* Average pooling divides by the window clipped to the padded input, as Caffe and PyTorch do. */
static gboolean
avgpool_run (const CsKernelArgs *a, gboolean backward)
{
  CsPoolGeom g = cs_kernel_pool_geom (a->node, &a->in_shape[0]);
  gsize planes = (gsize) a->batch * a->in_shape[0].c;
#pragma omp parallel for if (planes * g.h * g.w >= PAR_MIN) schedule (static)
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *x = a->in[0] + pl * g.h * g.w;
      float *dx = backward ? a->d_in[0] + pl * g.h * g.w : NULL;
      if (dx && fresh (a, 0))
        memset (dx, 0, (gsize) g.h * g.w * sizeof (float));
      for (int oh = 0; oh < g.oh; oh++)
        for (int ow = 0; ow < g.ow; ow++)
          {
            int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
            int h1 = MIN (h0 + g.kh, g.h + g.ph), w1 = MIN (w0 + g.kw, g.w + g.pw);
            float count = (float) ((h1 - h0) * (w1 - w0));
            h0 = MAX (h0, 0), w0 = MAX (w0, 0);
            h1 = MIN (h1, g.h), w1 = MIN (w1, g.w);
            gsize o = pl * g.oh * g.ow + oh * g.ow + ow;
            if (backward)
              {
                float d = a->d_out[o] / count;
                for (int i = h0; i < h1; i++)
                  for (int j = w0; j < w1; j++)
                    dx[i * g.w + j] += d;
              }
            else
              {
                float s = 0;
                for (int i = h0; i < h1; i++)
                  for (int j = w0; j < w1; j++)
                    s += x[i * g.w + j];
                a->out[o] = s / count;
              }
          }
    }
  return TRUE;
}

static gboolean
avgpool_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  return avgpool_run (a, FALSE);
}

static gboolean
avgpool_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  return a->d_in[0] == NULL || avgpool_run (a, TRUE);
}

/* ---- local response normalisation (across channels, as AlexNet and Caffe) ---------------- */

/* scale[c] = k + alpha/size * sum of x^2 over the `size` channels centred on c */
static void
lrn_scale (const CsKernelArgs *a, const float *x, float *scale)
{
  const CsLayerParams *p = &a->node->p;
  int C = (int) a->in_shape[0].c, half = (int) p->size / 2;
  gsize hw = (gsize) a->in_shape[0].h * a->in_shape[0].w;
  float coef = (float) (p->alpha / p->size);
  float k = (float) p->k;
  /* Channel by channel, the window's squares added in channel order at every position at once
   * (contiguous, so vectorised): the same sums, term by term, as one position at a time. */
#pragma omp parallel for if (hw * C >= PAR_MIN) schedule (static)
  for (int c = 0; c < C; c++)
    {
      float *restrict s = scale + c * hw;
      int j0 = MAX (0, c - half), j1 = MIN (C - 1, c + half);
      const float *restrict x0 = x + j0 * hw;
      for (gsize i = 0; i < hw; i++)
        s[i] = x0[i] * x0[i];
      for (int j = j0 + 1; j <= j1; j++)
        {
          const float *restrict xj = x + j * hw;
          for (gsize i = 0; i < hw; i++)
            s[i] += xj[i] * xj[i];
        }
      for (gsize i = 0; i < hw; i++)
        s[i] = k + coef * s[i];
    }
}

/* scale^-beta. For the beta of AlexNet, ZFNet and GoogLeNet, 0.75, as 1 / (s^1/2 s^1/4) by square
 * roots, which vectorise, where powf does not: within 2.3e-7 of the exact power (two units in the
 * last place; powf within one), checked over scales 1 to 32768.
 * The CUDA kernels compute it the same way (lrn_power in gpu/cs-cuda-kernels.cu). */
static inline float
lrn_power (float scale, float beta)
{
  if (beta == 0.75f)
    {
      float r = sqrtf (scale);
      return 1.0f / (r * sqrtf (r));
    }
  return powf (scale, -beta);
}

static gboolean
lrn_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize v = vol (&a->in_shape[0]);
  float beta = (float) a->node->p.beta;
  for (guint b = 0; b < a->batch; b++)
    {
      const float *x = a->in[0] + b * v;
      lrn_scale (a, x, a->work);
#pragma omp parallel for simd if (v >= PAR_MIN) schedule (static)
      for (gsize i = 0; i < v; i++)
        a->out[b * v + i] = x[i] * lrn_power (a->work[i], beta);
    }
  return TRUE;
}

static gboolean
lrn_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0] == NULL)
    return TRUE;
  const CsLayerParams *p = &a->node->p;
  gsize v = vol (&a->in_shape[0]), hw = (gsize) a->in_shape[0].h * a->in_shape[0].w;
  int C = (int) a->in_shape[0].c, half = (int) p->size / 2;
  float beta = (float) p->beta, coef = (float) (2.0 * p->alpha * p->beta / p->size);
  float *scale = a->work, *ratio = a->work + v, *sums = a->work + 2 * v;
  int slots = scratch_slots (a->work_len - 2 * v, hw);
  guint32 keep = keep_mask (a, 0);
  for (guint b = 0; b < a->batch; b++)
    {
      const float *x = a->in[0] + b * v, *y = a->out + b * v, *dy = a->d_out + b * v;
      float *dx = a->d_in[0] + b * v;
      lrn_scale (a, x, scale);
#pragma omp parallel for simd if (v >= PAR_MIN) schedule (static)
      for (gsize i = 0; i < v; i++)
        ratio[i] = dy[i] * y[i] / scale[i];
      /* Channel by channel, the window's ratios summed in channel order, as lrn_scale does. */
#pragma omp parallel for if (v >= PAR_MIN) num_threads (slots) schedule (static)
      for (int c = 0; c < C; c++)
        {
          float *restrict s = sums + thread_index () * hw;
          int j0 = MAX (0, c - half), j1 = MIN (C - 1, c + half);
          memcpy (s, ratio + j0 * hw, hw * sizeof (float));
          for (int j = j0 + 1; j <= j1; j++)
            {
              const float *restrict r = ratio + j * hw;
              for (gsize i = 0; i < hw; i++)
                s[i] += r[i];
            }
          gsize o = c * hw;
          for (gsize i = 0; i < hw; i++)
            dx[o + i] = kept_bits (keep, dx[o + i])
                        + (dy[o + i] * lrn_power (scale[o + i], beta) - coef * x[o + i] * s[i]);
        }
    }
  return TRUE;
}

/* ---- batch normalisation ------------------------------------------------------------------ */

/* The sums of g and of g * (x - m), g being the gradient before a ReLU that gave y. */
static void
masked_sums (const float *restrict x, const float *restrict y, const float *restrict dy, gsize n,
             float m, double *sum, double *dot)
{
  float a[8] = { 0 }, b[8] = { 0 };
  gsize i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      {
        float g = relu_grad (dy[i + k], y[i + k]);
        a[k] += g;
        b[k] += g * (x[i + k] - m);
      }
  double s = 0, t = 0;
  for (int k = 0; k < 8; k++)
    s += a[k], t += b[k];
  for (; i < n; i++)
    {
      double g = relu_grad (dy[i], y[i]);
      s += g;
      t += g * ((double) x[i] - m);
    }
  *sum += s;
  *dot += t;
}

/* The sum of (x - m)^2 and, when DY is not NULL, of dy * (x - m), the same way. */
static void
centred_sums (const float *restrict x, const float *restrict dy, gsize n, float m,
              double *sq, double *dot)
{
  float a[8] = { 0 }, b[8] = { 0 };
  gsize i = 0;
  if (dy)
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; k++)
        b[k] += dy[i + k] * (x[i + k] - m);
  else
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; k++)
        {
          float d = x[i + k] - m;
          a[k] += d * d;
        }
  double s = 0, t = 0;
  for (int k = 0; k < 8; k++)
    s += a[k], t += b[k];
  for (; i < n; i++)
    {
      double d = (double) x[i] - m;
      s += d * d;
      t += dy ? dy[i] * d : 0;
    }
  *sq += s;
  *dot += t;
}

static gboolean
bn_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsLayerParams *p = &a->node->p;
  int C = (int) a->in_shape[0].c;
  gsize hw = (gsize) a->in_shape[0].h * a->in_shape[0].w, v = C * hw;
  double m = (double) a->batch * hw;
#pragma omp parallel for if (v * a->batch >= PAR_MIN) schedule (static)
  for (int c = 0; c < C; c++)
    {
      float gamma = a->w ? a->w[c] : 1.0f, beta = a->b ? a->b[c] : 0.0f;
      float mean, invstd;
      if (a->training)
        {
          /* Two passes (mean, then squared deviations) keep the variance accurate. */
          double s = 0, ss = 0, unused = 0;
          for (guint b = 0; b < a->batch; b++)
            s += sum_run (a->in[0] + b * v + c * hw, hw);
          double mu = s / m;
          for (guint b = 0; b < a->batch; b++)
            centred_sums (a->in[0] + b * v + c * hw, NULL, hw, (float) mu, &ss, &unused);
          double var = ss / m;
          mean = (float) mu;
          invstd = (float) (1.0 / sqrt (var + p->eps));
          a->saved[c] = mean;
          a->saved[C + c] = invstd;
          double unbiased = m > 1 ? var * m / (m - 1) : var;
          a->run_mean[c] = (float) ((1 - p->momentum) * a->run_mean[c] + p->momentum * mu);
          a->run_var[c] = (float) ((1 - p->momentum) * a->run_var[c] + p->momentum * unbiased);
        }
      else
        {
          mean = a->run_mean[c];
          invstd = (float) (1.0 / sqrt (a->run_var[c] + p->eps));
        }
      float scale = gamma * invstd, shift = beta - mean * scale;
      for (guint b = 0; b < a->batch; b++)
        {
          const float *x = a->in[0] + b * v + c * hw;
          float *y = a->out + b * v + c * hw;
          if (a->relu)
            for (gsize i = 0; i < hw; i++)
              {
                float t = x[i] * scale + shift;
                y[i] = apply_relu (t);
              }
          else
            for (gsize i = 0; i < hw; i++)
              y[i] = x[i] * scale + shift;
        }
    }
  return TRUE;
}

static gboolean
bn_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (!a->training)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "batch norm backward runs in training mode only");
      return FALSE;
    }
  int C = (int) a->in_shape[0].c;
  gsize hw = (gsize) a->in_shape[0].h * a->in_shape[0].w, v = C * hw;
  double m = (double) a->batch * hw;
  guint32 keep = keep_mask (a, 0);
#pragma omp parallel for if (v * a->batch >= PAR_MIN) schedule (static)
  for (int c = 0; c < C; c++)
    {
      float mean = a->saved[c], invstd = a->saved[C + c], gamma = a->w ? a->w[c] : 1.0f;
      double sdy = 0, sdyd = 0, unused = 0;
      for (guint b = 0; b < a->batch; b++)
        {
          const float *x = a->in[0] + b * v + c * hw, *dy = a->d_out + b * v + c * hw;
          if (a->relu)
            masked_sums (x, a->out + b * v + c * hw, dy, hw, mean, &sdy, &sdyd);
          else
            {
              sdy += sum_run (dy, hw);
              centred_sums (x, dy, hw, mean, &unused, &sdyd);
            }
        }
      double sdyx = sdyd * invstd;   /* the sum of dy times the normalised input */
      if (a->dw)
        a->dw[c] += (float) sdyx;
      if (a->db)
        a->db[c] += (float) sdy;
      if (a->d_in[0] == NULL)
        continue;
      /* dx = k * (m * dy - sum dy - xhat * sum (dy * xhat)), added as A * dy + B * x + C. */
      float k = (float) (gamma * invstd / m);
      float ca = (float) (k * m), cb = (float) (-k * invstd * sdyx);
      float cc = (float) (-k * sdy + k * invstd * sdyx * mean);
      for (guint b = 0; b < a->batch; b++)
        {
          const float *x = a->in[0] + b * v + c * hw, *dy = a->d_out + b * v + c * hw;
          const float *y = a->out + b * v + c * hw;
          float *dx = a->d_in[0] + b * v + c * hw;
          if (a->relu)
            for (gsize i = 0; i < hw; i++)
              dx[i] = kept_bits (keep, dx[i])
                      + (ca * relu_grad (dy[i], y[i]) + cb * x[i] + cc);
          else
            for (gsize i = 0; i < hw; i++)
              dx[i] = kept_bits (keep, dx[i]) + (ca * dy[i] + cb * x[i] + cc);
        }
    }
  return TRUE;
}

/* ---- pointwise ---------------------------------------------------------------------------- */

static gsize
out_numel (const CsKernelArgs *a)
{
  return vol (&a->node->shape) * a->batch;
}

/* Branch-free, so that random signs cost no mispredictions and the loops vectorise. */
static gboolean
relu_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const float *x = a->in[0];
  float *y = a->out, slope = a->node->op == CS_OP_LEAKYRELU ? (float) a->node->p.p : 0.0f;
  gsize n = out_numel (a);
  if (slope == 0.0f)
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
    for (gsize i = 0; i < n; i++)
      y[i] = apply_relu (x[i]);
  else
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
    for (gsize i = 0; i < n; i++)
      y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
  return TRUE;
}

/* Reads the output, so it works in place: y > 0 exactly where x > 0 for a slope >= 0. */
static gboolean
relu_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0] == NULL)
    return TRUE;
  float slope = a->node->op == CS_OP_LEAKYRELU ? (float) a->node->p.p : 0.0f;
  const float *restrict y = a->out, *restrict dy = a->d_out;
  float *restrict dx = a->d_in[0];
  gsize n = out_numel (a);
  guint32 keep = keep_mask (a, 0);
  /* A 0/1 factor rather than a select: GCC turns the select into a branch here. */
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    {
      float pos = (float) (y[i] > 0.0f);
      dx[i] = kept_bits (keep, dx[i]) + dy[i] * (pos + (1.0f - pos) * slope);
    }
  return TRUE;
}

static gboolean
sigmoid_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize n = out_numel (a);
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->out[i] = 1.0f / (1.0f + expf (-a->in[0][i]));
  return TRUE;
}

static gboolean
sigmoid_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize n = a->d_in[0] ? out_numel (a) : 0;
  guint32 keep = keep_mask (a, 0);
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->d_in[0][i] = kept_bits (keep, a->d_in[0][i])
                    + a->d_out[i] * a->out[i] * (1.0f - a->out[i]);
  return TRUE;
}

static gboolean
tanh_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize n = out_numel (a);
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->out[i] = tanhf (a->in[0][i]);
  return TRUE;
}

static gboolean
tanh_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize n = a->d_in[0] ? out_numel (a) : 0;
  guint32 keep = keep_mask (a, 0);
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->d_in[0][i] = kept_bits (keep, a->d_in[0][i])
                    + a->d_out[i] * (1.0f - a->out[i] * a->out[i]);
  return TRUE;
}

static gboolean
copy_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  return cpu_copy (be, a->out, a->in[0], out_numel (a), error);
}

static gboolean
copy_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    add_into (a->d_in[0], a->d_out, out_numel (a), 1.0f, keep_mask (a, 0));
  return TRUE;
}

/* Inverted dropout: kept values are scaled by 1/(1-p) in training, so inference is a copy. The
 * mask is drawn again from the seed in backward rather than stored. */
static gboolean
dropout_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float p = (float) a->node->p.p;
  if (!a->training || p == 0)
    return copy_forward (be, a, error);
  gsize n = out_numel (a);
  float gain = 1.0f / (1.0f - p);
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->out[i] = cs_uniform (a->seed, i) >= p ? a->in[0][i] * gain : 0.0f;
  return TRUE;
}

static gboolean
dropout_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float p = (float) a->node->p.p;
  if (a->d_in[0] == NULL)
    return TRUE;
  if (p == 0)
    return copy_backward (be, a, error);
  gsize n = out_numel (a);
  float gain = 1.0f / (1.0f - p);
  guint32 keep = keep_mask (a, 0);
#pragma omp parallel for if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->d_in[0][i] = kept_bits (keep, a->d_in[0][i])
                    + (cs_uniform (a->seed, i) >= p ? a->d_out[i] * gain : 0.0f);
  return TRUE;
}

/* Stochastic depth: in training the whole branch is kept (scaled by 1/p) or dropped for the
 * batch; at inference it is the identity. */
static gboolean
droppath_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float s = cs_kernel_droppath_factor (a);
  if (s == 1.0f)
    return copy_forward (be, a, error);
  gsize n = out_numel (a);
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    a->out[i] = a->in[0][i] * s;
  return TRUE;
}

static gboolean
droppath_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0] == NULL)
    return TRUE;
  float s = cs_kernel_droppath_factor (a);
  if (s != 0)
    add_into (a->d_in[0], a->d_out, out_numel (a), s, keep_mask (a, 0));
  else if (fresh (a, 0))
    cpu_zero (be, a->d_in[0], out_numel (a), error);
  return TRUE;
}

/* Softmax over the channels at each position (over the classes of an fc output). */
static gboolean
softmax_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  int C = (int) a->node->shape.c;
  gsize hw = (gsize) a->node->shape.h * a->node->shape.w;
  for (guint b = 0; b < a->batch; b++)
    for (gsize i = 0; i < hw; i++)
      {
        const float *x = a->in[0] + b * C * hw + i;
        float *y = a->out + b * C * hw + i;
        float mx = -INFINITY, s = 0;
        for (int c = 0; c < C; c++)
          mx = MAX (mx, x[c * hw]);
        for (int c = 0; c < C; c++)
          {
            y[c * hw] = expf (x[c * hw] - mx);
            s += y[c * hw];
          }
        for (int c = 0; c < C; c++)
          y[c * hw] /= s;
      }
  return TRUE;
}

static gboolean
softmax_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0] == NULL)
    return TRUE;
  int C = (int) a->node->shape.c;
  gsize hw = (gsize) a->node->shape.h * a->node->shape.w;
  guint32 keep = keep_mask (a, 0);
  for (guint b = 0; b < a->batch; b++)
    for (gsize i = 0; i < hw; i++)
      {
        const float *y = a->out + b * C * hw + i, *dy = a->d_out + b * C * hw + i;
        float *dx = a->d_in[0] + b * C * hw + i;
        float dot = 0;
        for (int c = 0; c < C; c++)
          dot += y[c * hw] * dy[c * hw];
        for (int c = 0; c < C; c++)
          dx[c * hw] = kept_bits (keep, dx[c * hw]) + y[c * hw] * (dy[c * hw] - dot);
      }
  return TRUE;
}

/* ---- joins -------------------------------------------------------------------------------- */

static gboolean
concat_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize ov = vol (&a->node->shape);
#pragma omp parallel for if (ov * a->batch >= PAR_MIN) schedule (static)
  for (guint b = 0; b < a->batch; b++)
    {
      float *y = a->out + b * ov;
      for (guint i = 0; i < a->n_in; i++)
        {
          gsize iv = vol (&a->in_shape[i]);
          memcpy (y, a->in[i] + b * iv, iv * sizeof (float));
          y += iv;
        }
    }
  return TRUE;
}

static gboolean
concat_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize ov = vol (&a->node->shape);
#pragma omp parallel for if (ov * a->batch >= PAR_MIN) schedule (static)
  for (guint b = 0; b < a->batch; b++)
    {
      const float *dy = a->d_out + b * ov;
      for (guint i = 0; i < a->n_in; i++)
        {
          gsize iv = vol (&a->in_shape[i]);
          if (a->d_in[i])
            add_into (a->d_in[i] + b * iv, dy, iv, 1.0f, keep_mask (a, i));
          dy += iv;
        }
    }
  return TRUE;
}

static gboolean
sum_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gboolean kept[a->n_in];
  guint k = cs_kernel_join_kept (a, kept);
  float scale = a->node->op == CS_OP_MEAN ? 1.0f / k : 1.0f;
  gsize n = out_numel (a);
  guint last = 0;
  for (guint i = 0; i < a->n_in; i++)
    last = kept[i] ? i : last;
  guint32 keep = 0;  /* the first input is written, the others added */
  float *restrict y = a->out;
  for (guint i = 0; i < a->n_in; i++)
    {
      if (!kept[i])
        continue;
      const float *restrict x = a->in[i];
      if (a->relu && i == last)  /* the ReLU it applies, with the last input */
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
        for (gsize j = 0; j < n; j++)
          y[j] = apply_relu (kept_bits (keep, y[j]) + scale * x[j]);
      else
        add_into (y, x, n, scale, keep);
      keep = G_MAXUINT32;
    }
  return TRUE;
}

static gboolean
sum_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gboolean kept[a->n_in];
  guint k = cs_kernel_join_kept (a, kept);
  float scale = a->node->op == CS_OP_MEAN ? 1.0f / k : 1.0f;
  gsize n = out_numel (a);
  for (guint i = 0; i < a->n_in; i++)
    if (kept[i] && a->d_in[i] && a->relu)
      {
        /* The gradient before the ReLU it applies. */
        const float *restrict y = a->out, *restrict dy = a->d_out;
        float *restrict dx = a->d_in[i];
        guint32 keep = keep_mask (a, i);
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
        for (gsize j = 0; j < n; j++)
          dx[j] = kept_bits (keep, dx[j]) + scale * relu_grad (dy[j], y[j]);
      }
    else if (kept[i] && a->d_in[i])
      add_into (a->d_in[i], a->d_out, n, scale, keep_mask (a, i));
    else if (a->d_in[i] && fresh (a, i))
      cpu_zero (be, a->d_in[i], n, error);  /* a dropped input */
  return TRUE;
}

/* ---- loss and update ---------------------------------------------------------------------- */

static gboolean
cpu_cross_entropy (CsBackend *be, const float *logits, const guint *labels, guint n,
                   guint classes, float scale, float *d, double *loss, guint *top1,
                   guint *top5, GError **error)
{
  double total = 0;
  for (guint i = 0; i < n; i++)
    {
      const float *z = logits + (gsize) i * classes;
      float *g = d + (gsize) i * classes;
      float mx = -INFINITY;
      for (guint c = 0; c < classes; c++)
        mx = MAX (mx, z[c]);
      double s = 0;
      for (guint c = 0; c < classes; c++)
        s += exp ((double) z[c] - mx);
      double lse = mx + log (s);
      total += lse - z[labels[i]];
      guint above = 0;
      for (guint c = 0; c < classes; c++)
        {
          above += z[c] > z[labels[i]];
          g[c] = (float) (scale * (exp ((double) z[c] - lse) - (c == labels[i])) / n);
        }
      *top1 += above == 0;
      *top5 += above < 5;
    }
  *loss += scale * total / n;
  return TRUE;
}

static gboolean
cpu_sgd (CsBackend *be, float *w, const float *g, float *m, gsize n, float lr, float momentum,
         float decay, GError **error)
{
#pragma omp parallel for simd if (n >= PAR_MIN) schedule (static)
  for (gsize i = 0; i < n; i++)
    {
      m[i] = momentum * m[i] + g[i] + decay * w[i];
      w[i] -= lr * m[i];
    }
  return TRUE;
}

static gsize
cpu_saved_size (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                gboolean training)
{
  if (n->op == CS_OP_BN)
    return 2 * (gsize) in[0].c;
  if (n->op == CS_OP_MAXPOOL && training)
    return vol (&n->shape) * batch;  /* where each output's maximum is */
  return 0;
}

static gsize
cpu_workspace_size (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                    gboolean training)
{
  if (n->op == CS_OP_CONV && winograd_fits (n, &in[0]))
    {
      /* Winograd's forward and input gradient; the column matrix for the filter gradient. */
      int C = (int) in[0].c, H = (int) in[0].h, W = (int) in[0].w;
      int K = (int) n->p.out, OH = (int) n->shape.h, OW = (int) n->shape.w;
      gsize need = MAX (winograd_floats (C, K, OH, OW, batch), conv_workspace (n, &in[0], batch));
      if (training)
        need = MAX (need, winograd_floats (K, C, H, W, batch));
      return need;
    }
  if (n->op == CS_OP_CONV)
    return conv_workspace (n, &in[0], batch);
  if (n->op == CS_OP_LRN)  /* the scales, the ratios, a row of sums per thread */
    return 2 * vol (&in[0]) + cpu_threads () * (gsize) in[0].h * in[0].w;
  if (n->op == CS_OP_MAXPOOL)  /* the row maxima and the rows they are in, or maxpool_same's */
    return cpu_threads () * MAX (2 * (gsize) in[0].w, 2 * MAXPOOL_CHUNK);
  return 0;
}

/* ---- tracing ------------------------------------------------------------------------------ */

/* The CPU's work is done when its calls return, so a traced piece of work is the host-clock
 * interval from trace_push to trace_pop. The records have no name: there are no kernels to
 * count, only the time. */
typedef struct {
  CsBackend base;
  GArray *trace;                /* of CsTraceRecord while a trace runs, else NULL */
  guint64 tag, t0;
} CsCpu;

static guint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * G_GUINT64_CONSTANT (1000000000) + (guint64) ts.tv_nsec;
}

static gboolean
cpu_trace_start (CsBackend *be, GError **error)
{
  CsCpu *cpu = (CsCpu *) be;
  if (cpu->trace)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "a trace is already running");
      return FALSE;
    }
  cpu->trace = g_array_new (FALSE, FALSE, sizeof (CsTraceRecord));
  cpu->tag = 0;
  return TRUE;
}

static void
cpu_trace_push (CsBackend *be, guint64 tag)
{
  CsCpu *cpu = (CsCpu *) be;
  cpu->tag = tag;
  cpu->t0 = now_ns ();
}

static void
cpu_trace_pop (CsBackend *be)
{
  CsCpu *cpu = (CsCpu *) be;
  if (cpu->trace && cpu->tag)
    {
      CsTraceRecord r = { cpu->tag, NULL, cpu->t0, now_ns () };
      g_array_append_val (cpu->trace, r);
    }
  cpu->tag = 0;
}

static GArray *
cpu_trace_stop (CsBackend *be, guint64 *dropped, GError **error)
{
  CsCpu *cpu = (CsCpu *) be;
  if (dropped)
    *dropped = 0;
  if (cpu->trace == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no trace is running");
      return NULL;
    }
  return g_steal_pointer (&cpu->trace);
}

static void
cpu_destroy (CsBackend *be)
{
  CsCpu *cpu = (CsCpu *) be;
  if (cpu->trace)
    g_array_unref (cpu->trace);
  g_free (be->description);
  g_free (cpu);
}

CsBackend *
cs_cpu_backend_new (void)
{
  CsCpu *cpu = g_new0 (CsCpu, 1);
  CsBackend *be = &cpu->base;
  be->name = "cpu";
  be->host_memory = TRUE;
  for (int training = 0; training < 2; training++)
    {
      be->applies_relu[training][CS_OP_BN] = TRUE;
      be->applies_relu[training][CS_OP_ADD] = be->applies_relu[training][CS_OP_MEAN] = TRUE;
    }
  be->applies_relu[FALSE][CS_OP_CONV] = TRUE;
  be->fresh_gradients = TRUE;
  be->description = g_strdup_printf ("CPU (%s)", cs_blas_describe ());
  be->alloc = cpu_alloc;
  be->release = cpu_release;
  be->upload = cpu_copy;
  be->download = cpu_copy;
  be->zero = cpu_zero;
  be->saved_size = cpu_saved_size;
  be->workspace_size = cpu_workspace_size;
  be->cross_entropy = cpu_cross_entropy;
  be->sgd = cpu_sgd;
  be->destroy = cpu_destroy;
  be->trace_start = cpu_trace_start;
  be->trace_push = cpu_trace_push;
  be->trace_pop = cpu_trace_pop;
  be->trace_stop = cpu_trace_stop;
  CS_BACKEND_SET_KERNELS (be);
  return be;
}
