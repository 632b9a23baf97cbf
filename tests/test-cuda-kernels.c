/* The CUDA backend's own kernels (gpu/cs-cuda-kernels.cu) against the CPU backend, run on the
 * host: the kernels file is built as C++ with CS_CUDA_EMULATE (gpu/cs-cuda-emulate.h), every
 * simulated thread one after another. This checks, without a GPU, what the kernels compute:
 * indices, windows, clipping, the random draws, in-place runs, gradients added to. It cannot
 * check races, the GPU's own rounding of expf/tanhf/powf, or launch limits: test-gpu does, on a
 * GPU. */
#include "cs-backend.h"
#include "cs-cuda-kernels.h"
#include "test-util.h"

#include <math.h>
#include <string.h>

static CsBackend *cpu;

static void
fill (float *p, gsize n, guint64 seed, float scale)
{
  for (gsize i = 0; i < n; i++)
    p[i] = (2.0f * cs_uniform (seed, i) - 1.0f) * scale;
}

/* The largest difference relative to the largest value of WANT must be at most TOL (0: equal). */
static void
assert_close (const char *what, const float *got, const float *want, gsize n, double tol)
{
  double diff = 0, scale = 0;
  gsize worst = 0;
  for (gsize i = 0; i < n; i++)
    {
      double d = fabs ((double) got[i] - want[i]);
      if (!(d <= diff))
        diff = d, worst = i;
      scale = MAX (scale, fabs (want[i]));
    }
  if (!(diff <= tol * MAX (scale, 1e-30)))
    g_error ("%s: %" G_GSIZE_FORMAT " values differ by up to %.3g (at %" G_GSIZE_FORMAT
             ": %.9g, want %.9g)", what, n, diff, worst, got[worst], want[worst]);
}

static gsize
vol (const CsShape *s)
{
  return (gsize) s->c * s->h * s->w;
}

static void
run_cpu (gboolean forward, CsKernelArgs *a)
{
  GError *error = NULL;
  CsKernelFunc f = (forward ? cpu->forward : cpu->backward)[a->node->op];
  g_assert_true (f (cpu, a, &error));
  g_assert_no_error (error);
}

/* ---- layers with one input ---------------------------------------------------------------- */

typedef struct {
  const char *path, *input, *layer;
  guint batch;
  gboolean inplace, training;
  gboolean relu;                /* a batch norm that applies the ReLU after it */
} Single;

static const Single singles[] = {
#define POOL(name, spec) \
  { "/cuda-kernels/" name "/a", "input 7x6x2", spec, 2, FALSE, TRUE }, \
  { "/cuda-kernels/" name "/b", "input 9x11x3", spec, 3, FALSE, TRUE }
  POOL ("maxpool/3x3-s2-ceil", "maxpool 3x3 stride 2 ceil"),
  POOL ("maxpool/3x3-s2-p1-ceil", "maxpool 3x3 stride 2 pad 1 ceil"),
  POOL ("maxpool/3x3-s1-p1", "maxpool 3x3 stride 1 pad 1"),
  POOL ("maxpool/2x3-s2x1", "maxpool 2x3 stride 2x1"),
  POOL ("maxpool/3x2-s2x3-p1-ceil", "maxpool 3x2 stride 2x3 pad 1 ceil"),
  POOL ("maxpool/global", "maxpool global"),
  POOL ("maxpool/1x1-s2-ceil", "maxpool 1x1 stride 2 ceil"),
  POOL ("avgpool/2x2", "avgpool 2x2"),
  POOL ("avgpool/3x3-s2-ceil", "avgpool 3x3 stride 2 ceil"),
  POOL ("avgpool/3x3-s1-p1", "avgpool 3x3 stride 1 pad 1"),
  POOL ("avgpool/3x3-s2-p1-ceil", "avgpool 3x3 stride 2 pad 1 ceil"),
  POOL ("avgpool/2x2-s3-p1-ceil", "avgpool 2x2 stride 3 pad 1 ceil"),
  POOL ("avgpool/3x2-s2x3-p1-ceil", "avgpool 3x2 stride 2x3 pad 1x1 ceil"),
  POOL ("avgpool/global", "avgpool global"),
  POOL ("lrn/3", "lrn 3 alpha 0.5 beta 0.75 k 1"),
  POOL ("lrn/5", "lrn 5"),
  POOL ("lrn/7-wider-than-depth", "lrn 7 alpha 2 beta 1.5 k 0.5"),
  POOL ("lrn/1", "lrn 1 alpha 0.3"),
#undef POOL
#define POINTWISE(name, spec) \
  { "/cuda-kernels/" name, "input 7x6x2", spec, 2, FALSE, TRUE }, \
  { "/cuda-kernels/" name "/inplace", "input 7x6x2", spec, 2, TRUE, TRUE }, \
  { "/cuda-kernels/" name "/vector", "input 1x1x5", spec, 3, TRUE, TRUE }
  POINTWISE ("relu", "relu"),
  POINTWISE ("leakyrelu", "leakyrelu 0.2"),
  POINTWISE ("sigmoid", "sigmoid"),
  POINTWISE ("tanh", "tanh"),
  POINTWISE ("dropout", "dropout 0.3"),
  POINTWISE ("softmax", "softmax"),
#undef POINTWISE
  { "/cuda-kernels/bn-inference", "input 7x6x2", "bn", 2, FALSE, FALSE },
  { "/cuda-kernels/bn-inference/inplace", "input 7x6x2", "bn eps 0.1", 3, TRUE, FALSE },
  { "/cuda-kernels/bn-inference/relu", "input 7x6x2", "bn", 2, FALSE, FALSE, TRUE },
  { "/cuda-kernels/bn-inference/relu-inplace", "input 9x11x3", "bn", 3, TRUE, FALSE, TRUE },
};

/* Forward, and in training backward with input gradients that already hold values (they are
 * added to), on both; the emulated kernels get the GPU side's own forward output. */
static void
test_single (gconstpointer data)
{
  const Single *c = data;
  g_autofree char *text = g_strdup_printf ("%s\nt: %s\n", c->input, c->layer);
  g_autoptr (CsGraph) g = parse (text);
  const CsNode *n = cs_graph_lookup (g, "t");
  const CsShape in = cs_graph_node (g, n->inputs[0])->shape;
  guint batch = c->batch;
  gsize ni = batch * vol (&in), no = batch * vol (&n->shape);
  gsize saved = cpu->saved_size (cpu, n, &in, batch, c->training);
  gsize work = cpu->workspace_size (cpu, n, &in, batch, c->training);
  g_autofree float *x = g_new (float, ni), *xc = NULL, *xg = NULL;
  fill (x, ni, 1, 3.0f);
  xc = g_memdup2 (x, ni * sizeof (float)), xg = g_memdup2 (x, ni * sizeof (float));
  g_autofree float *yc_own = g_new0 (float, no), *yg_own = g_new0 (float, no);
  float *yc = c->inplace ? xc : yc_own, *yg = c->inplace ? xg : yg_own;
  g_autofree float *keep = g_new0 (float, MAX (saved, 1)), *scratch = g_new0 (float, MAX (work, 1));
  float *in_c[1] = { xc };
  const guint64 seed = 0x1234567;
  CsKernelArgs a = { .node = n, .batch = batch, .training = c->training, .n_in = 1,
                     .in_shape = &in, .in = in_c, .out = yc, .saved = keep, .work = scratch,
                     .work_len = work, .seed = seed, .relu = c->relu };
  guint C = in.c;
  g_autofree float *mean = g_new (float, C), *var = g_new (float, C);
  g_autofree float *gamma = g_new (float, C), *beta = g_new (float, C);
  if (n->op == CS_OP_BN)
    {
      fill (mean, C, 5, 0.3f);
      fill (var, C, 6, 0.5f);
      for (guint i = 0; i < C; i++)
        var[i] += 1.0f;
      fill (gamma, C, 7, 1.0f);
      fill (beta, C, 8, 1.0f);
      a.run_mean = mean, a.run_var = var, a.w = gamma, a.b = beta;
    }
  run_cpu (TRUE, &a);

  const CsLayerParams *p = &n->p;
  gsize planes = (gsize) batch * in.c, hw = (gsize) in.h * in.w;
  CsPoolGeom window = cs_kernel_pool_geom (n, &in);
  float slope = n->op == CS_OP_LEAKYRELU ? (float) p->p : 0.0f;
  float lrn_coef = (float) (p->alpha / p->size);
  cudaStream_t s = 0;
  cudaError_t e = cudaErrorInvalidValue;
  switch (n->op)
    {
    case CS_OP_MAXPOOL: e = cs_cu_maxpool_forward (s, xg, yg, planes, window); break;
    case CS_OP_AVGPOOL: e = cs_cu_avgpool_forward (s, xg, yg, planes, window); break;
    case CS_OP_LRN:
      e = cs_cu_lrn_forward (s, xg, yg, batch, (int) in.c, hw, (int) p->size, lrn_coef,
                             (float) p->beta, (float) p->k);
      break;
    case CS_OP_RELU:
    case CS_OP_LEAKYRELU: e = cs_cu_relu_forward (s, xg, yg, no, slope); break;
    case CS_OP_SIGMOID: e = cs_cu_sigmoid_forward (s, xg, yg, no); break;
    case CS_OP_TANH: e = cs_cu_tanh_forward (s, xg, yg, no); break;
    case CS_OP_DROPOUT: e = cs_cu_dropout_forward (s, xg, yg, no, seed, (float) p->p); break;
    case CS_OP_SOFTMAX:
      e = cs_cu_softmax_forward (s, xg, yg, batch, (int) n->shape.c,
                                 (size_t) n->shape.h * n->shape.w);
      break;
    case CS_OP_BN:
      e = cs_cu_bn_inference (s, xg, yg, gamma, beta, mean, var, p->eps, c->relu, batch,
                              (int) in.c, hw);
      break;
    default:
      g_assert_not_reached ();
    }
  g_assert_cmpint (e, ==, cudaSuccess);
  assert_close ("forward", yg, yc, no, 0);
  if (!c->training)
    return;

  g_autofree float *dy = g_new (float, no), *dxc = g_new (float, ni), *dxg = NULL;
  fill (dy, no, 2, 1.0f);
  fill (dxc, ni, 3, 0.5f);
  dxg = g_memdup2 (dxc, ni * sizeof (float));
  float *din_c[1] = { dxc };
  a.d_in = din_c;
  a.d_out = dy;
  run_cpu (FALSE, &a);
  switch (n->op)
    {
    case CS_OP_MAXPOOL:
      e = cs_cu_maxpool_backward (s, xg, yg, dy, dxg, planes, window);
      break;
    case CS_OP_AVGPOOL: e = cs_cu_avgpool_backward (s, dy, dxg, planes, window); break;
    case CS_OP_LRN:
      e = cs_cu_lrn_backward (s, xg, yg, dy, dxg, batch, (int) in.c, hw, (int) p->size, lrn_coef,
                              (float) (2.0 * p->alpha * p->beta / p->size), (float) p->beta,
                              (float) p->k);
      break;
    case CS_OP_RELU:
    case CS_OP_LEAKYRELU: e = cs_cu_relu_backward (s, yg, dy, dxg, no, slope); break;
    case CS_OP_SIGMOID: e = cs_cu_sigmoid_backward (s, yg, dy, dxg, no); break;
    case CS_OP_TANH: e = cs_cu_tanh_backward (s, yg, dy, dxg, no); break;
    case CS_OP_DROPOUT: e = cs_cu_dropout_backward (s, dy, dxg, no, seed, (float) p->p); break;
    case CS_OP_SOFTMAX:
      e = cs_cu_softmax_backward (s, yg, dy, dxg, batch, (int) n->shape.c,
                                  (size_t) n->shape.h * n->shape.w);
      break;
    default:
      g_assert_not_reached ();
    }
  g_assert_cmpint (e, ==, cudaSuccess);
  /* The pools' overlapping windows add in another order on the GPU (atomics). */
  gboolean pool = n->op == CS_OP_MAXPOOL || n->op == CS_OP_AVGPOOL;
  assert_close ("backward", dxg, dxc, ni, pool ? 1e-6 : 0);
}

/* ---- joins, loss, update, small helpers --------------------------------------------------- */

/* A concatenation, input by input at its offset; backward adds into gradients that hold values. */
static void
test_concat (void)
{
  const char *text = "input 5x4x3\nt: concat { { a: conv 2 1x1 } { b: conv 3 3x3 pad 1 } "
                     "{ c: conv 1 1x1 } }\n";
  g_autoptr (CsGraph) g = parse (text);
  const CsNode *n = NULL;
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    if (cs_graph_node (g, i)->op == CS_OP_CONCAT)
      n = cs_graph_node (g, i);
  g_assert_nonnull (n);
  const guint batch = 3;
  CsShape in[3];
  float *x[3], *dxc[3], *dxg[3];
  for (guint i = 0; i < 3; i++)
    {
      in[i] = cs_graph_node (g, n->inputs[i])->shape;
      gsize len = batch * vol (&in[i]);
      x[i] = g_new (float, len);
      fill (x[i], len, 10 + i, 1);
      dxc[i] = g_new (float, len);
      fill (dxc[i], len, 20 + i, 1);
      dxg[i] = g_memdup2 (dxc[i], len * sizeof (float));
    }
  gsize no = batch * vol (&n->shape), ov = vol (&n->shape), off = 0;
  g_autofree float *yc = g_new0 (float, no), *yg = g_new0 (float, no), *dy = g_new (float, no);
  fill (dy, no, 30, 1);
  CsKernelArgs a = { .node = n, .batch = batch, .training = TRUE, .n_in = 3, .in_shape = in,
                     .in = x, .out = yc, .d_in = dxc, .d_out = dy };
  run_cpu (TRUE, &a);
  run_cpu (FALSE, &a);
  for (guint i = 0; i < 3; i++)
    {
      gsize iv = vol (&in[i]);
      g_assert_cmpint (cs_cu_concat_forward (0, x[i], yg, batch, iv, ov, off), ==, cudaSuccess);
      g_assert_cmpint (cs_cu_concat_backward (0, dy, dxg[i], batch, iv, ov, off), ==,
                       cudaSuccess);
      off += iv;
    }
  assert_close ("forward", yg, yc, no, 0);
  for (guint i = 0; i < 3; i++)
    {
      assert_close ("backward", dxg[i], dxc[i], batch * vol (&in[i]), 0);
      g_free (x[i]), g_free (dxc[i]), g_free (dxg[i]);
    }
}

/* Sums and means, with and without the ReLU folded in, in place, with an input that comes twice,
 * with inputs dropped by drop-path, and with more inputs than one launch takes. */
typedef struct {
  const char *path, *layer;
  guint batch;
  gboolean training, relu, inplace;
  gulong launches;              /* kernels forward, and backward */
} JoinCase;

#define BRANCHES3 "{ { a: conv 3 1x1 } { b: conv 3 3x3 pad 1 } { } }"
#define BRANCHES6 "{ { a: conv 2 1x1 } { b: conv 2 1x1 } { c: conv 2 1x1 } { d: conv 2 1x1 } " \
                  "{ e: conv 2 1x1 } { f: conv 2 3x3 pad 1 } }"

static const JoinCase joins[] = {
  { "/cuda-kernels/join/add", "add " BRANCHES3, 3, TRUE, FALSE, FALSE, 1 },
  { "/cuda-kernels/join/add-relu", "add " BRANCHES3, 3, TRUE, TRUE, FALSE, 1 },
  { "/cuda-kernels/join/add-relu-inplace", "add " BRANCHES3, 2, TRUE, TRUE, TRUE, 1 },
  { "/cuda-kernels/join/add-twice", "add { { } { } }", 2, TRUE, TRUE, FALSE, 1 },
  { "/cuda-kernels/join/mean-relu", "mean " BRANCHES3, 3, TRUE, TRUE, FALSE, 1 },
  { "/cuda-kernels/join/mean-droppath", "mean droppath 0.5 " BRANCHES6, 2, TRUE, TRUE, FALSE, 0 },
  { "/cuda-kernels/join/add-six", "add " BRANCHES6, 2, TRUE, TRUE, FALSE, 2 },
  { "/cuda-kernels/join/mean-six-inference", "mean droppath 0.5 " BRANCHES6, 2, FALSE, TRUE,
    TRUE, 2 },
};

static void
test_join (gconstpointer data)
{
  const JoinCase *c = data;
  g_autofree char *text = g_strdup_printf ("input 5x4x3\nt: %s\n", c->layer);
  g_autoptr (CsGraph) g = parse (text);
  const CsNode *n = cs_graph_lookup (g, "t");
  g_assert_nonnull (n);
  const guint batch = c->batch, k = n->n_inputs;
  gsize len = batch * vol (&n->shape);
  CsShape in[8];
  float *x[8], *xg[8], *dxc[8], *dxg[8];
  g_assert_cmpuint (k, <=, G_N_ELEMENTS (in));
  for (guint i = 0; i < k; i++)
    {
      in[i] = cs_graph_node (g, n->inputs[i])->shape;
      x[i] = g_new (float, len), dxc[i] = g_new (float, len);
      fill (x[i], len, 10 + i, 1), fill (dxc[i], len, 20 + i, 1);
      xg[i] = g_memdup2 (x[i], len * sizeof (float));
      dxg[i] = g_memdup2 (dxc[i], len * sizeof (float));
    }
  /* An input that comes twice has one gradient, added to twice. */
  for (guint i = 1; i < k; i++)
    if (n->inputs[i] == n->inputs[0])
      {
        g_free (dxc[i]), g_free (dxg[i]);
        dxc[i] = dxc[0], dxg[i] = dxg[0];
      }
  g_autofree float *yc_own = g_new0 (float, len), *yg_own = g_new0 (float, len);
  g_autofree float *dy = g_new (float, len);
  fill (dy, len, 30, 1);
  float *yc = c->inplace ? x[0] : yc_own, *yg = c->inplace ? xg[0] : yg_own;
  const guint64 seed = 0xfeed5;
  CsKernelArgs a = { .node = n, .batch = batch, .training = c->training, .n_in = k,
                     .in_shape = in, .in = x, .out = yc, .d_in = dxc, .d_out = dy,
                     .relu = c->relu, .seed = seed };
  run_cpu (TRUE, &a);
  if (c->training)
    run_cpu (FALSE, &a);

  /* The backend's gathering: the kept inputs, in order. */
  gboolean kept[8];
  guint m = cs_kernel_join_kept (&a, kept), j = 0;
  if (g_str_has_suffix (c->path, "droppath"))
    g_assert_cmpuint (m, <, k);  /* the seed drops some: the case tests what it says */
  const float *xk[8];
  float *dk[8];
  for (guint i = 0; i < k; i++)
    if (kept[i])
      xk[j] = xg[i], dk[j++] = dxg[i];
  float scale = n->op == CS_OP_MEAN ? 1.0f / m : 1.0f;
  extern unsigned long cs_emu_launches;
  unsigned long before = cs_emu_launches;
  g_assert_cmpint (cs_cu_join_forward (0, xk, m, yg, len, scale, c->relu), ==, cudaSuccess);
  if (c->launches)
    g_assert_cmpuint (cs_emu_launches - before, ==, c->launches);
  assert_close ("forward", yg, yc, len, 0);
  if (c->training)
    {
      before = cs_emu_launches;
      g_assert_cmpint (cs_cu_join_backward (0, dy, yg, dk, m, len, scale, c->relu), ==,
                       cudaSuccess);
      if (c->launches)
        g_assert_cmpuint (cs_emu_launches - before, ==, c->launches);
    }
  for (guint i = 0; i < k; i++)
    assert_close ("backward", dxg[i], dxc[i], len, 0);
  for (guint i = 0; i < k; i++)
    {
      g_free (x[i]), g_free (xg[i]);
      if (i == 0 || dxc[i] != dxc[0])
        g_free (dxc[i]), g_free (dxg[i]);
    }
}

typedef struct {
  const char *path;
  guint n, classes;
  gboolean ties;                /* logits rounded to integers: top-k must break ties alike */
} LossCase;

static const LossCase losses[] = {
  { "/cuda-kernels/cross-entropy/4x10", 4, 10, FALSE },
  { "/cuda-kernels/cross-entropy/7x6-ties", 7, 6, TRUE },
  { "/cuda-kernels/cross-entropy/16x1000-ties", 16, 1000, TRUE },
};

static void
test_cross_entropy (gconstpointer data)
{
  const LossCase *c = data;
  gsize len = (gsize) c->n * c->classes;
  g_autofree float *z = g_new (float, len), *dc = g_new (float, len), *dg = g_new (float, len);
  fill (z, len, 40, 4.0f);
  if (c->ties)
    for (gsize i = 0; i < len; i++)
      z[i] = roundf (z[i]);
  g_autofree guint *labels = g_new (guint, c->n);
  for (guint i = 0; i < c->n; i++)
    labels[i] = (7 * i + 3) % c->classes;
  double loss = 0;
  guint top1 = 0, top5 = 0;
  GError *error = NULL;
  g_assert_true (cpu->cross_entropy (cpu, z, labels, c->n, c->classes, 0.7f, dc, &loss, &top1,
                                     &top5, &error));
  CsCuLossSums sums = { 0 };
  g_assert_cmpint (cs_cu_cross_entropy (0, z, labels, c->n, c->classes, 0.7f, dg, &sums), ==,
                   cudaSuccess);
  /* The backend scales the sum of the rows' losses as the CPU does: by scale / n. */
  double got = 0.7f * sums.loss / c->n;
  g_assert_cmpfloat (fabs (got - loss), <=, 1e-12 * fabs (loss));
  g_assert_cmpuint (sums.top1, ==, top1);
  g_assert_cmpuint (sums.top5, ==, top5);
  assert_close ("gradient", dg, dc, len, 0);
}

static void
test_sgd (void)
{
  const gsize n = 1000;
  g_autofree float *w = g_new (float, n), *g = g_new (float, n), *m = g_new (float, n);
  fill (w, n, 50, 1), fill (g, n, 51, 1), fill (m, n, 52, 1);
  g_autofree float *w2 = g_memdup2 (w, n * sizeof (float)), *m2 = g_memdup2 (m, n * sizeof (float));
  GError *error = NULL;
  g_assert_true (cpu->sgd (cpu, w, g, m, n, 0.05f, 0.9f, 5e-4f, &error));
  g_assert_cmpint (cs_cu_sgd (0, w2, g, m2, n, 0.05f, 0.9f, 5e-4f), ==, cudaSuccess);
  assert_close ("weights", w2, w, n, 0);
  assert_close ("momenta", m2, m, n, 0);
}

/* The bias of a convolution: added per channel, and its gradient summed by a block per channel
 * whose threads meet at __syncthreads (emulated on real threads). */
static void
test_bias (void)
{
  const struct { gsize batch; int c; gsize hw; } cases[] = { { 3, 5, 7 }, { 4, 7, 1 },
                                                             { 2, 3, 1000 } };
  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      gsize batch = cases[k].batch, hw = cases[k].hw;
      int c = cases[k].c;
      gsize n = batch * c * hw;
      g_autofree float *y = g_new (float, n), *b = g_new (float, c), *want = g_new (float, n);
      fill (y, n, 60, 1), fill (b, c, 61, 1);
      for (gsize i = 0; i < n; i++)
        want[i] = y[i] + b[(i / hw) % c];
      g_assert_cmpint (cs_cu_bias_forward (0, y, b, batch, c, hw), ==, cudaSuccess);
      assert_close ("bias forward", y, want, n, 0);
      g_autofree float *db = g_new (float, c), *dbw = g_new (float, c);
      fill (db, c, 62, 1);
      memcpy (dbw, db, c * sizeof (float));
      for (gsize bb = 0; bb < batch; bb++)
        for (int ch = 0; ch < c; ch++)
          for (gsize j = 0; j < hw; j++)
            dbw[ch] += y[(bb * c + ch) * hw + j];
      g_assert_cmpint (cs_cu_bias_backward (0, y, db, batch, c, hw), ==, cudaSuccess);
      assert_close ("bias backward", db, dbw, c, 1e-5);  /* summed in another order */
    }
}

/* What drop-path and the gradients of copies are made of: y = a x, y += a x, and filling. */
static void
test_scale_axpy_fill (void)
{
  const gsize n = 777;
  g_autofree float *x = g_new (float, n), *y = g_new (float, n), *want = g_new (float, n);
  fill (x, n, 70, 2), fill (y, n, 71, 2);
  for (gsize i = 0; i < n; i++)
    want[i] = y[i] + 0.25f * x[i];
  g_assert_cmpint (cs_cu_axpy (0, x, y, n, 0.25f), ==, cudaSuccess);
  assert_close ("axpy", y, want, n, 0);
  for (gsize i = 0; i < n; i++)
    want[i] = -3.0f * x[i];
  g_assert_cmpint (cs_cu_scale (0, x, y, n, -3.0f), ==, cudaSuccess);
  assert_close ("scale", y, want, n, 0);
  for (gsize i = 0; i < n; i++)
    want[i] = 1.5f;
  g_assert_cmpint (cs_cu_fill (0, y, n, 1.5f), ==, cudaSuccess);
  assert_close ("fill", y, want, n, 0);
  /* Nothing to do launches nothing and succeeds. */
  g_assert_cmpint (cs_cu_fill (0, y, 0, 1.5f), ==, cudaSuccess);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  cpu = cs_cpu_backend_new ();
  for (guint i = 0; i < G_N_ELEMENTS (singles); i++)
    g_test_add_data_func (singles[i].path, &singles[i], test_single);
  for (guint i = 0; i < G_N_ELEMENTS (losses); i++)
    g_test_add_data_func (losses[i].path, &losses[i], test_cross_entropy);
  for (guint i = 0; i < G_N_ELEMENTS (joins); i++)
    g_test_add_data_func (joins[i].path, &joins[i], test_join);
  g_test_add_func ("/cuda-kernels/concat", test_concat);
  g_test_add_func ("/cuda-kernels/sgd", test_sgd);
  g_test_add_func ("/cuda-kernels/bias", test_bias);
  g_test_add_func ("/cuda-kernels/scale-axpy-fill", test_scale_axpy_fill);
  int ret = g_test_run ();
  cs_backend_free (cpu);
  return ret;
}
