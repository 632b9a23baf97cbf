/* Tests of the CPU backend: gradients, forwards against a float64 reference, the memory plan. */
/* Every layer kind's gradients are checked against central finite differences of the loss,
 * forward passes against a naive float64 reference, and the executor's memory plan (in-place
 * runs, buffer reuse) against corrupted values. */
#include "cs-blas.h"
#include "cs-exec.h"
#include "cs-parser.h"
#include "test-util.h"

#include <float.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- A graph, its parameters and an executor ------------------------------------------------ */

typedef struct {
  CsGraph *g;
  CsNet *net;
  CsBackend *be;
  CsExec *x;
  guint batch;
  gsize in_len;                 /* floats in the input batch */
  float *input;
  guint labels[16];
} Rig;

static void
rig_set_input (Rig *r, guint64 seed)
{
  for (gsize i = 0; i < r->in_len; i++)
    r->input[i] = (float) unif (seed, i);
}

/* He initialisation leaves biases at 0 and batch-norm scales at 1; both get other values here so
 * that no term of a check vanishes by construction. */
static Rig *
rig_new (const char *text, guint batch)
{
  g_assert_cmpuint (batch, <=, G_N_ELEMENTS (((Rig *) 0)->labels));
  GError *error = NULL;
  Rig *r = g_new0 (Rig, 1);
  r->g = parse (text);
  r->net = cs_net_new (r->g, &error);
  g_assert_no_error (error);
  cs_net_init (r->net, 1, FALSE);
  for (guint t = 0; t < r->net->tensors->len; t++)
    {
      CsTensor *ten = r->net->tensors->pdata[t];
      if (g_str_has_suffix (ten->name, ".bias"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (0.2 * unif (100 + t, i));
      else if (ten->rank == 1 && g_str_has_suffix (ten->name, ".weight"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (1.0 + 0.4 * unif (200 + t, i));
    }
  r->be = cs_cpu_backend_new ();
  r->batch = batch;
  const CsNode *in = cs_graph_node (r->g, 0);
  g_assert_cmpint (in->op, ==, CS_OP_INPUT);
  r->in_len = (gsize) batch * in->shape.c * in->shape.h * in->shape.w;
  r->input = g_new (float, r->in_len);
  rig_set_input (r, 1);
  const CsNode *out = cs_graph_output (r->g);
  guint classes = out->shape.c * out->shape.h * out->shape.w;
  for (guint i = 0; i < batch; i++)
    r->labels[i] = (3 * i + 1) % classes;
  return r;
}

/* Gradients start as NaN rather than stale values: a backward kernel that adds to a gradient it
 * should set, or leaves part of it unset, shows in every check that reads it. */
static void
rig_exec_flags (Rig *r, CsExecFlags flags, guint64 seed)
{
  GError *error = NULL;
  g_clear_pointer (&r->x, cs_exec_free);
  r->x = cs_exec_new (r->net, r->be, r->batch, flags | CS_EXEC_POISON_FRESH, seed, &error);
  g_assert_no_error (error);
  g_assert_nonnull (r->x);
}

static void
rig_exec (Rig *r, gboolean training, guint64 seed)
{
  rig_exec_flags (r, training ? CS_EXEC_TRAINING : CS_EXEC_INFERENCE, seed);
}

static void
rig_free (Rig *r)
{
  cs_exec_free (r->x);
  cs_net_free (r->net);
  cs_graph_unref (r->g);
  cs_backend_free (r->be);
  g_free (r->input);
  g_free (r);
}

static const CsNode *
node (Rig *r, const char *name)
{
  const CsNode *n = cs_graph_lookup (r->g, name);
  g_assert_nonnull (n);
  return n;
}

static CsTensor *
weight (Rig *r, const char *name)
{
  return cs_net_tensor (r->net, r->net->weight[node (r, name)->id]);
}

static CsTensor *
bias (Rig *r, const char *name)
{
  return cs_net_tensor (r->net, r->net->bias[node (r, name)->id]);
}

static gsize
out_len (Rig *r, const CsNode *n)
{
  return (gsize) r->batch * n->shape.c * n->shape.h * n->shape.w;
}

static CsStepResult
train_step (Rig *r)
{
  GError *error = NULL;
  CsStepResult res;
  /* lr 0: the step leaves the weights as they are, so the loss can be differentiated around
   * exactly the point the gradients were computed at. */
  g_assert_true (cs_exec_train_step (r->x, r->input, r->labels, r->batch, 0, 0, 0, &res,
                                     &error));
  g_assert_no_error (error);
  g_assert_true (isfinite (res.loss));
  return res;
}

/* N SGD steps (learning rate 0.05, momentum 0.9, decay 1e-3) with their results in RES. */
static void
train_steps (Rig *r, guint n, CsStepResult *res)
{
  GError *error = NULL;
  for (guint step = 0; step < n; step++)
    {
      g_assert_true (cs_exec_train_step (r->x, r->input, r->labels, r->batch, 0.05f, 0.9f, 1e-3f,
                                         &res[step], &error));
      g_assert_no_error (error);
    }
}

/* Every tensor of A's net (parameters and buffers) equals B's: bit for bit with TOL 0, else to TOL
 * relative (absolute below 1). Returns how many were compared. */
static guint
assert_same_tensors (Rig *a, Rig *b, double tol)
{
  g_assert_cmpuint (a->net->tensors->len, ==, b->net->tensors->len);
  for (guint t = 0; t < a->net->tensors->len; t++)
    {
      CsTensor *x = a->net->tensors->pdata[t], *y = b->net->tensors->pdata[t];
      g_assert_cmpstr (x->name, ==, y->name);
      if (tol == 0)
        g_assert_cmpmem (x->data, x->numel * sizeof (float), y->data, y->numel * sizeof (float));
      else
        for (gsize i = 0; i < x->numel; i++)
          g_assert_cmpfloat (fabsf (x->data[i] - y->data[i]), <=,
                             tol * MAX (1, fabsf (x->data[i])));
    }
  return a->net->tensors->len;
}

static double
eval_loss (Rig *r)
{
  GError *error = NULL;
  CsStepResult res;
  g_assert_true (cs_exec_sync_from_net (r->x, &error));
  g_assert_no_error (error);
  g_assert_true (cs_exec_evaluate_loss (r->x, r->input, r->labels, r->batch, &res, &error));
  g_assert_no_error (error);
  return res.loss;
}

/* The main output of an inference (or training) forward pass, as doubles. */
static double *
forward (Rig *r)
{
  GError *error = NULL;
  g_assert_true (cs_exec_forward (r->x, r->input, r->batch, &error));
  g_assert_no_error (error);
  gsize n = out_len (r, cs_graph_output (r->g));
  g_autofree float *out = g_new (float, n);
  g_assert_true (cs_exec_get_output (r->x, out, &error));
  g_assert_no_error (error);
  double *d = g_new (double, n);
  for (gsize i = 0; i < n; i++)
    d[i] = out[i];
  return d;
}

static double *
input_as_double (Rig *r)
{
  double *d = g_new (double, r->in_len);
  for (gsize i = 0; i < r->in_len; i++)
    d[i] = r->input[i];
  return d;
}

/* ---- The naive float64 reference ------------------------------------------------------------ */

/* Written from the definitions, one output at a time: no im2col, no matrix products, nothing
 * shared with the backend but the tensors' NCHW layout. */

typedef struct {
  int c, h, w;
} Vol;

static gsize
vsize (Vol v)
{
  return (gsize) v.c * v.h * v.w;
}

static gsize
at (Vol v, int b, int c, int i, int j)
{
  return (((gsize) b * v.c + c) * v.h + i) * v.w + j;
}

typedef struct {
  int out, kh, kw, sh, sw, ph, pw, dh, dw, groups;
} ConvSpec;

static double *
ref_conv (const double *x, int n, Vol in, const ConvSpec *s, const CsTensor *w,
          const CsTensor *b, Vol *out)
{
  Vol o = { s->out, (in.h + 2 * s->ph - s->dh * (s->kh - 1) - 1) / s->sh + 1,
            (in.w + 2 * s->pw - s->dw * (s->kw - 1) - 1) / s->sw + 1 };
  int cig = in.c / s->groups, cog = s->out / s->groups;
  g_assert_cmpuint (w->numel, ==, (gsize) s->out * cig * s->kh * s->kw);
  g_assert_true (b == NULL || b->numel == (gsize) s->out);
  double *y = g_new (double, n * vsize (o));
  for (int bi = 0; bi < n; bi++)
    for (int co = 0; co < o.c; co++)
      for (int i = 0; i < o.h; i++)
        for (int j = 0; j < o.w; j++)
          {
            int g = co / cog;
            double acc = b ? b->data[co] : 0.0;
            for (int ci = 0; ci < cig; ci++)
              for (int ki = 0; ki < s->kh; ki++)
                for (int kj = 0; kj < s->kw; kj++)
                  {
                    int ih = i * s->sh - s->ph + ki * s->dh, iw = j * s->sw - s->pw + kj * s->dw;
                    if (ih < 0 || ih >= in.h || iw < 0 || iw >= in.w)
                      continue;
                    acc += (double) w->data[(((gsize) co * cig + ci) * s->kh + ki) * s->kw + kj]
                         * x[at (in, bi, g * cig + ci, ih, iw)];
                  }
            y[at (o, bi, co, i, j)] = acc;
          }
  *out = o;
  return y;
}

typedef struct {
  int kh, kw, sh, sw, ph, pw;
  gboolean ceil, global;
} PoolSpec;

/* Floor or ceil rounding; with ceil, no window may start past the input and its left padding
 * (Caffe drops such a last window when padded; PyTorch always does). */
static int
pool_size (int size, int k, int s, int p, gboolean ceil_mode)
{
  int span = size + 2 * p - k;
  int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= size + p)
    o--;
  return o;
}

static PoolSpec
pool_resolve (const PoolSpec *spec, Vol in)
{
  if (spec->global)
    return (PoolSpec) { in.h, in.w, 1, 1, 0, 0, FALSE, FALSE };
  return *spec;
}

/* Max over the window's input values (padding never wins); average over the window clipped to
 * the padded input, padding counted as zeros. */
static double *
ref_pool (const double *x, int n, Vol in, const PoolSpec *spec, gboolean max, Vol *out)
{
  PoolSpec s = pool_resolve (spec, in);
  Vol o = { in.c, pool_size (in.h, s.kh, s.sh, s.ph, s.ceil),
            pool_size (in.w, s.kw, s.sw, s.pw, s.ceil) };
  double *y = g_new (double, n * vsize (o));
  for (int b = 0; b < n; b++)
    for (int c = 0; c < in.c; c++)
      for (int i = 0; i < o.h; i++)
        for (int j = 0; j < o.w; j++)
          {
            int h0 = i * s.sh - s.ph, w0 = j * s.sw - s.pw;
            int h1 = MIN (h0 + s.kh, in.h + s.ph), w1 = MIN (w0 + s.kw, in.w + s.pw);
            double count = (double) (h1 - h0) * (w1 - w0);
            double best = -INFINITY, sum = 0;
            for (int ih = MAX (h0, 0); ih < MIN (h1, in.h); ih++)
              for (int iw = MAX (w0, 0); iw < MIN (w1, in.w); iw++)
                {
                  double v = x[at (in, b, c, ih, iw)];
                  best = MAX (best, v);
                  sum += v;
                }
            y[at (o, b, c, i, j)] = max ? best : sum / count;
          }
  *out = o;
  return y;
}

/* The smallest gap, over all windows, between a window's largest input and its runner-up: how
 * far the values may move before a max pool switches which input it routes the gradient to. */
static double
pool_margin (const double *x, int n, Vol in, const PoolSpec *spec)
{
  PoolSpec s = pool_resolve (spec, in);
  Vol o = { in.c, pool_size (in.h, s.kh, s.sh, s.ph, s.ceil),
            pool_size (in.w, s.kw, s.sw, s.pw, s.ceil) };
  double margin = INFINITY;
  for (int b = 0; b < n; b++)
    for (int c = 0; c < in.c; c++)
      for (int i = 0; i < o.h; i++)
        for (int j = 0; j < o.w; j++)
          {
            int h0 = i * s.sh - s.ph, w0 = j * s.sw - s.pw;
            double first = -INFINITY, second = -INFINITY;
            for (int ih = MAX (h0, 0); ih < MIN (h0 + s.kh, in.h); ih++)
              for (int iw = MAX (w0, 0); iw < MIN (w0 + s.kw, in.w); iw++)
                {
                  double v = x[at (in, b, c, ih, iw)];
                  if (v > first)
                    second = first, first = v;
                  else
                    second = MAX (second, v);
                }
            if (isfinite (second))
              margin = MIN (margin, first - second);
          }
  return margin;
}

/* Across channels: y = x * (k + alpha/size * sum of x^2 over the size channels centred on c)^-beta */
static double *
ref_lrn (const double *x, int n, Vol in, int size, double alpha, double beta, double k)
{
  double *y = g_new (double, n * vsize (in));
  for (int b = 0; b < n; b++)
    for (int c = 0; c < in.c; c++)
      for (int i = 0; i < in.h; i++)
        for (int j = 0; j < in.w; j++)
          {
            double s = 0;
            for (int cc = c - size / 2; cc <= c + size / 2; cc++)
              if (cc >= 0 && cc < in.c)
                s += x[at (in, b, cc, i, j)] * x[at (in, b, cc, i, j)];
            y[at (in, b, c, i, j)] = x[at (in, b, c, i, j)] * pow (k + alpha / size * s, -beta);
          }
  return y;
}

/* Inference batch norm from the running statistics. */
static double *
ref_bn (const double *x, int n, Vol in, Rig *r, const char *name, double eps)
{
  const CsNode *nd = node (r, name);
  const CsTensor *g = cs_net_tensor (r->net, r->net->weight[nd->id]);
  const CsTensor *be = cs_net_tensor (r->net, r->net->bias[nd->id]);
  const CsTensor *rm = cs_net_tensor (r->net, r->net->run_mean[nd->id]);
  const CsTensor *rv = cs_net_tensor (r->net, r->net->run_var[nd->id]);
  double *y = g_new (double, n * vsize (in));
  for (int b = 0; b < n; b++)
    for (int c = 0; c < in.c; c++)
      for (int i = 0; i < in.h * in.w; i++)
        {
          gsize o = at (in, b, c, 0, 0) + i;
          y[o] = (g ? g->data[c] : 1.0) * (x[o] - rm->data[c]) / sqrt (rv->data[c] + eps)
               + (be ? be->data[c] : 0.0);
        }
  return y;
}

static double *
ref_fc (const double *x, int n, Vol in, const CsTensor *w, const CsTensor *b, int outs)
{
  gsize fan = vsize (in);
  g_assert_cmpuint (w->numel, ==, fan * outs);
  double *y = g_new (double, (gsize) n * outs);
  for (int bi = 0; bi < n; bi++)
    for (int o = 0; o < outs; o++)
      {
        double acc = b ? b->data[o] : 0.0;
        for (gsize i = 0; i < fan; i++)
          acc += (double) w->data[o * fan + i] * x[bi * fan + i];
        y[bi * outs + o] = acc;
      }
  return y;
}

/* Over the channels at each position. */
static double *
ref_softmax (const double *x, int n, Vol in)
{
  double *y = g_new (double, n * vsize (in));
  for (int b = 0; b < n; b++)
    for (int i = 0; i < in.h; i++)
      for (int j = 0; j < in.w; j++)
        {
          double mx = -INFINITY, s = 0;
          for (int c = 0; c < in.c; c++)
            mx = MAX (mx, x[at (in, b, c, i, j)]);
          for (int c = 0; c < in.c; c++)
            s += exp (x[at (in, b, c, i, j)] - mx);
          for (int c = 0; c < in.c; c++)
            y[at (in, b, c, i, j)] = exp (x[at (in, b, c, i, j)] - mx) / s;
        }
  return y;
}

typedef enum { PW_RELU, PW_LEAKY, PW_SIGMOID, PW_TANH } Pointwise;

static void
ref_pointwise (double *x, gsize n, Pointwise f, double slope)
{
  for (gsize i = 0; i < n; i++)
    switch (f)
      {
      case PW_RELU: x[i] = x[i] > 0 ? x[i] : 0; break;
      case PW_LEAKY: x[i] = x[i] > 0 ? x[i] : slope * x[i]; break;
      case PW_SIGMOID: x[i] = 1 / (1 + exp (-x[i])); break;
      case PW_TANH: x[i] = tanh (x[i]); break;
      }
}

/* Channels of A then channels of B, per image. */
static double *
ref_concat (const double *a, Vol va, const double *b, Vol vb, int n, Vol *out)
{
  g_assert_cmpint (va.h, ==, vb.h);
  g_assert_cmpint (va.w, ==, vb.w);
  Vol o = { va.c + vb.c, va.h, va.w };
  double *y = g_new (double, n * vsize (o));
  for (int i = 0; i < n; i++)
    {
      memcpy (y + i * vsize (o), a + i * vsize (va), vsize (va) * sizeof (double));
      memcpy (y + i * vsize (o) + vsize (va), b + i * vsize (vb), vsize (vb) * sizeof (double));
    }
  *out = o;
  return y;
}

static void
assert_shape (Rig *r, const char *name, Vol v)
{
  const CsNode *n = node (r, name);
  g_assert_cmpuint (n->shape.c, ==, (guint64) v.c);
  g_assert_cmpuint (n->shape.h, ==, (guint64) v.h);
  g_assert_cmpuint (n->shape.w, ==, (guint64) v.w);
}

/* |got - want| <= tol * max(1, |want|) everywhere. */
static void
assert_close (const double *got, const double *want, gsize n, double tol)
{
  for (gsize i = 0; i < n; i++)
    if (!(fabs (got[i] - want[i]) <= tol * MAX (1.0, fabs (want[i]))))
      g_error ("value %zu: got %.9g, want %.9g", i, got[i], want[i]);
}

/* ---- Gradients against finite differences --------------------------------------------------- */

#define MAX_SAMPLES 30
#define ATOL 2e-4
#define RTOL 2e-2
#define GRAD_FLOOR 1e-2         /* a checked node must have a gradient at least this large */

typedef struct {
  guint checked, agreed;
  double max_grad;              /* the largest |analytic gradient| among the samples */
  double worst;                 /* the largest |analytic - numeric| / tolerance */
} FdResult;

/* Spread over the tensor by the golden ratio, so that samples do not all fall on one kernel
 * position or one channel. */
static gsize
sample_index (guint j, gsize numel)
{
  if (numel <= MAX_SAMPLES)
    return j;
  return (gsize) (fmod (0.3 + j * 0.6180339887498949, 1.0) * numel);
}

static void
fd_tensor (Rig *r, gint ti, double eps, FdResult *res)
{
  GError *error = NULL;
  CsTensor *t = cs_net_tensor (r->net, ti);
  g_autofree float *ana = g_new (float, t->numel);
  g_assert_true (cs_exec_get_param_gradient (r->x, ti, ana, &error));
  g_assert_no_error (error);
  for (guint j = 0; j < MIN (t->numel, MAX_SAMPLES); j++)
    {
      gsize i = sample_index (j, t->numel);
      float saved = t->data[i];
      float up = (float) (saved + eps), down = (float) (saved - eps);
      t->data[i] = up;
      double lp = eval_loss (r);
      t->data[i] = down;
      double lm = eval_loss (r);
      t->data[i] = saved;
      /* The step actually taken, after rounding to float. */
      double num = (lp - lm) / ((double) up - (double) down);
      double a = ana[i], tol = ATOL + RTOL * MAX (fabs (a), fabs (num));
      res->checked++;
      if (fabs (a - num) <= tol)
        res->agreed++;
      else
        g_test_message ("%s[%zu]: analytic %.6g, numeric %.6g", t->name, i, a, num);
      res->max_grad = MAX (res->max_grad, fabs (a));
      res->worst = MAX (res->worst, fabs (a - num) / tol);
    }
  g_assert_true (cs_exec_sync_from_net (r->x, &error));
  g_assert_no_error (error);
}

/* Checks the weight and bias gradients of each named node, which must not all be tiny unless
 * FLOOR is 0. */
static void
check_nodes_floor (Rig *r, const char *const *names, double eps, double floor)
{
  for (guint k = 0; names[k]; k++)
    {
      const CsNode *n = node (r, names[k]);
      gint idx[2] = { r->net->weight[n->id], r->net->bias[n->id] };
      FdResult res = { 0 };
      for (guint j = 0; j < 2; j++)
        if (idx[j] >= 0)
          fd_tensor (r, idx[j], eps, &res);
      g_test_message ("%s: %u/%u agree, max |grad| %.3g, worst error %.2f of the tolerance",
                      names[k], res.agreed, res.checked, res.max_grad, res.worst);
      g_assert_cmpuint (res.checked, >, 0);
      if (res.agreed != res.checked)
        g_error ("%s: %u of %u sampled gradients disagree with finite differences (run with "
                 "--verbose for each)", names[k], res.checked - res.agreed, res.checked);
      if (res.max_grad < floor)
        g_error ("%s: the largest gradient is %.3g: the check would pass vacuously", names[k],
                 res.max_grad);
    }
}

static void
check_nodes (Rig *r, const char *const *names, double eps)
{
  check_nodes_floor (r, names, eps, GRAD_FLOOR);
}

/* The usual set-up: a conv to differentiate through, the layer under test, then a classifier. */
#define IN "input 7x6x2\n"
#define PRE "pre: conv 3 3x3 pad 1\n"
#define HEAD "post: fc 6\nfc 4\nsoftmax\n"
#define CHAIN(layer) IN PRE "t: " layer "\n" HEAD

static const Vol in_vol = { 2, 7, 6 };
static const ConvSpec pre_spec = { 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 };

typedef struct {
  const char *path;
  const char *text;
  guint batch;
  const char *nodes[8];         /* whose parameters are checked, NULL after the last: the
                                   tested layer's, and the one before it (which sees the tested
                                   layer's input gradient) */
} GradCase;

static const GradCase grad_cases[] = {
  { "/cpu/grad/conv/3x3-pad1", CHAIN ("conv 4 3x3 pad 1"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/stride2", CHAIN ("conv 4 3x3 stride 2"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/4x4-stride3-pad2", CHAIN ("conv 4 4x4 stride 3 pad 2"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/5x5-pad-same", CHAIN ("conv 4 5x5 pad same"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/dilation2", CHAIN ("conv 4 3x3 dilation 2 pad 1"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/anisotropic", CHAIN ("conv 4 3x2 stride 2x3 pad 1x0 dilation 1x2"), 2,
    { "t", "pre" } },
  { "/cpu/grad/conv/1x3", CHAIN ("conv 5 1x3 pad 0x1"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/3x1-stride2x1", CHAIN ("conv 5 3x1 stride 2x1"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/pointwise", CHAIN ("conv 5 1x1"), 2, { "t", "pre" } },
  /* 3x3, stride 1, 16 channels or more and maps large enough: Winograd's forward and input
   * gradient ("pre" sees the latter), odd sizes for partial tiles, each padding it takes. */
  { "/cpu/grad/conv/winograd-pad1", "input 56x55x3\npre: conv 16 3x3 pad 1\n"
    "t: conv 16 3x3 pad 1\n" HEAD, 2, { "t", "pre" } },
  { "/cpu/grad/conv/winograd-pad0", "input 58x57x3\npre: conv 16 3x3 pad 1\nt: conv 17 3x3\n"
    HEAD, 2, { "t", "pre" } },
  { "/cpu/grad/conv/winograd-pad2x0", "input 53x58x3\npre: conv 18 3x3 pad 1\n"
    "t: conv 16 3x3 pad 2x0 nobias\n" HEAD, 3, { "t", "pre" } },
  { "/cpu/grad/conv/1x1-pad1", CHAIN ("conv 4 1x1 pad 1"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/1x1-stride2", CHAIN ("conv 4 1x1 stride 2"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/pad-beyond-kernel", CHAIN ("conv 4 2x2 pad 2"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/nobias", CHAIN ("conv 4 3x3 nobias"), 2, { "t", "pre" } },
  { "/cpu/grad/conv/groups2", IN "pre: conv 4 3x3 pad 1\nt: conv 6 3x3 pad 1 groups 2\n" HEAD, 2,
    { "t", "pre" } },
  { "/cpu/grad/conv/depthwise", IN "pre: conv 4 3x3 pad 1\nt: conv 4 3x3 pad 1 groups 4\n" HEAD,
    2, { "t", "pre" } },
  /* Groups enough for the threads to share them out (cs-cpu.c's conv_by_groups). */
  { "/cpu/grad/conv/groups8", IN "pre: conv 16 3x3 pad 1\nt: conv 8 3x3 pad 1 groups 8\n" HEAD,
    3, { "t", "pre" } },
  { "/cpu/grad/conv/groups8-pointwise-stride2",
    IN "pre: conv 16 3x3 pad 1\nt: conv 24 1x1 stride 2 groups 8\n" HEAD, 2, { "t", "pre" } },
  { "/cpu/grad/conv/groups2-stride2-nobias",
    IN "pre: conv 4 3x3 pad 1\nt: conv 6 3x3 stride 2 groups 2 nobias\n" HEAD, 3,
    { "t", "pre" } },
  { "/cpu/grad/conv/on-input", IN "t: conv 3 3x3 pad 1\n" HEAD, 2, { "t" } },
  { "/cpu/grad/avgpool/2x2", CHAIN ("avgpool 2x2"), 2, { "pre" } },
  { "/cpu/grad/avgpool/3x3-stride2-ceil", CHAIN ("avgpool 3x3 stride 2 ceil"), 2, { "pre" } },
  { "/cpu/grad/avgpool/3x3-stride1-pad1", CHAIN ("avgpool 3x3 stride 1 pad 1"), 2, { "pre" } },
  { "/cpu/grad/avgpool/3x3-stride2-pad1-ceil", CHAIN ("avgpool 3x3 stride 2 pad 1 ceil"), 2,
    { "pre" } },
  { "/cpu/grad/avgpool/2x3-stride2x1", CHAIN ("avgpool 2x3 stride 2x1"), 2, { "pre" } },
  { "/cpu/grad/avgpool/global", CHAIN ("avgpool global"), 2, { "pre" } },
  { "/cpu/grad/lrn/strong", IN "pre: conv 5 3x3 pad 1\nt: lrn 3 alpha 0.5 beta 0.75 k 1\n" HEAD,
    2, { "pre" } },
  { "/cpu/grad/lrn/default", IN "pre: conv 6 3x3 pad 1\nt: lrn 5\n" HEAD, 2, { "pre" } },
  { "/cpu/grad/lrn/wider-than-depth",
    IN "pre: conv 4 3x3 pad 1\nt: lrn 7 alpha 2 beta 1.5 k 0.5\n" HEAD, 2, { "pre" } },
  { "/cpu/grad/bn/spatial", CHAIN ("bn"), 4, { "t", "pre" } },
  { "/cpu/grad/bn/batch3-eps", CHAIN ("bn eps 0.1"), 3, { "t", "pre" } },
  { "/cpu/grad/bn/noaffine", CHAIN ("bn noaffine"), 3, { "pre", "post" } },
  { "/cpu/grad/bn/vector", IN PRE "pre2: fc 5\nt: bn\n" HEAD, 4, { "t", "pre2", "pre" } },
  { "/cpu/grad/sigmoid", CHAIN ("sigmoid"), 2, { "pre" } },
  { "/cpu/grad/tanh", CHAIN ("tanh"), 2, { "pre" } },
  { "/cpu/grad/dropout", CHAIN ("dropout 0.3"), 2, { "pre", "post" } },
  { "/cpu/grad/fc/spatial", CHAIN ("fc 7"), 2, { "t", "pre" } },
  { "/cpu/grad/fc/nobias", CHAIN ("fc 7 nobias"), 2, { "t", "pre" } },
  { "/cpu/grad/fc/vector", IN PRE "pre2: fc 8\nt: fc 7\n" HEAD, 3, { "t", "pre2", "pre" } },
  { "/cpu/grad/flatten", CHAIN ("flatten"), 2, { "pre" } },
  { "/cpu/grad/softmax-middle", CHAIN ("softmax"), 2, { "pre" } },
  { "/cpu/grad/identity", CHAIN ("identity"), 2, { "pre" } },
  { "/cpu/grad/concat",
    IN PRE "concat { { a: conv 2 1x1 } { b: conv 4 3x3 pad 1 } { } "
    "{ avgpool 3x3 stride 1 pad 1; c: conv 1 1x1 } }\n" HEAD, 2, { "a", "b", "c", "pre" } },
  { "/cpu/grad/add", IN PRE "add { { a: conv 3 3x3 pad 1; tanh; b: conv 3 3x3 pad 1 } { } }\n"
    HEAD, 2, { "a", "b", "pre" } },
  { "/cpu/grad/mean", IN PRE "mean { { a: conv 3 3x3 pad 1 } { b: conv 3 1x1 } { } }\n" HEAD, 2,
    { "a", "b", "pre" } },
  /* One input read by four branches, and a residual sum over the module. */
  { "/cpu/grad/branchy",
    IN "stem: conv 4 3x3 pad 1\n"
    "mod: add { { concat { { b1: conv 2 1x1 } { b2r: conv 2 1x1; tanh; b2: conv 3 3x3 pad 1 } "
    "{ b3r: conv 1 1x1; sigmoid; b3: conv 2 5x5 pad 2 } "
    "{ avgpool 3x3 stride 1 pad 1; b4: conv 1 1x1 } }; proj: conv 4 1x1 } { } }\n"
    "tanh\n" HEAD, 2, { "stem", "b1", "b2r", "b2", "b3r", "b3" } },
  { "/cpu/grad/aux",
    IN PRE "aux weight 0.5 { a: fc 4; softmax }\nmid: conv 3 3x3 pad 1\ntanh\n" HEAD, 2,
    { "a", "mid", "pre" } },
  /* In-place candidates after layers whose backward reads their output or input: the plan must
   * not let them overwrite what a backward needs. */
  { "/cpu/grad/inplace-hazards",
    IN PRE "sigmoid\ndropout 0.3\nc2: conv 4 3x3 pad 1\ntanh\nidentity\nc3: conv 4 1x1\n"
    "softmax\nidentity\nc4: conv 5 1x1\nlrn 3 alpha 0.5 beta 0.75 k 1\ndropout 0.2\n"
    "c5: conv 3 1x1\nbn\ntanh\n" HEAD, 3, { "pre", "c2", "c3", "c4", "c5" } },
  { "/cpu/grad/shared-input",
    IN "stem: conv 3 3x3 pad 1\nadd { { tanh; c: conv 3 1x1 } { sigmoid } }\n" HEAD, 2,
    { "c", "stem" } },
  { "/cpu/grad/head-without-softmax", IN PRE "t: tanh\nlast: fc 4\n", 2, { "last", "pre" } },
};

static void
test_grad_case (gconstpointer data)
{
  const GradCase *c = data;
  Rig *r = rig_new (c->text, c->batch);
  rig_exec (r, TRUE, 1);
  train_step (r);
  check_nodes (r, c->nodes, 1e-2);
  rig_free (r);
}

/* ---- Kinks: rectifiers and max pools --------------------------------------------------------- */

/* A rectifier or a max pool on the output of 'pre': the input is chosen so that no perturbation
 * of the check moves a value across zero or reorders a window's two largest values. */
typedef struct {
  const char *path;
  const char *text;
  gboolean pool;
  PoolSpec spec;
  double eps;
} KinkCase;

static const KinkCase kink_cases[] = {
  { "/cpu/grad/relu", CHAIN ("relu"), FALSE, { 0 }, 5e-3 },
  { "/cpu/grad/leakyrelu", CHAIN ("leakyrelu 0.2"), FALSE, { 0 }, 5e-3 },
  { "/cpu/grad/maxpool/2x2", CHAIN ("maxpool 2x2"), TRUE, { 2, 2, 2, 2, 0, 0, FALSE, FALSE },
    2e-3 },
  { "/cpu/grad/maxpool/3x3-stride2-ceil", CHAIN ("maxpool 3x3 stride 2 ceil"), TRUE,
    { 3, 3, 2, 2, 0, 0, TRUE, FALSE }, 2e-3 },
  { "/cpu/grad/maxpool/3x3-stride1-pad1", CHAIN ("maxpool 3x3 stride 1 pad 1"), TRUE,
    { 3, 3, 1, 1, 1, 1, FALSE, FALSE }, 2e-3 },
  { "/cpu/grad/maxpool/3x3-stride2-pad1-ceil", CHAIN ("maxpool 3x3 stride 2 pad 1 ceil"), TRUE,
    { 3, 3, 2, 2, 1, 1, TRUE, FALSE }, 2e-3 },
  { "/cpu/grad/maxpool/2x3-stride2x1", CHAIN ("maxpool 2x3 stride 2x1"), TRUE,
    { 2, 3, 2, 1, 0, 0, FALSE, FALSE }, 2e-3 },
  { "/cpu/grad/maxpool/global", CHAIN ("maxpool global"), TRUE, { 0, 0, 0, 0, 0, 0, FALSE, TRUE },
    2e-3 },
};

static void
test_kink_case (gconstpointer data)
{
  const KinkCase *c = data;
  Rig *r = rig_new (c->text, 2);
  /* A weight step of eps moves a value of 'pre' by at most eps (inputs are below 1 in
   * magnitude), and two values of one channel apart by at most 2 eps. */
  double need = c->pool ? 3 * c->eps : 1.5 * c->eps, margin = 0;
  guint64 seed;
  for (seed = 1; seed < 20000; seed++)
    {
      rig_set_input (r, seed);
      g_autofree double *x = input_as_double (r);
      Vol pv;
      g_autofree double *z = ref_conv (x, r->batch, in_vol, &pre_spec, weight (r, "pre"),
                                       bias (r, "pre"), &pv);
      if (c->pool)
        margin = pool_margin (z, r->batch, pv, &c->spec);
      else
        {
          margin = INFINITY;
          for (gsize i = 0; i < r->batch * vsize (pv); i++)
            margin = MIN (margin, fabs (z[i]));
        }
      if (margin >= need)
        break;
    }
  g_test_message ("input seed %" G_GUINT64_FORMAT ", margin %.4g", seed, margin);
  g_assert_cmpfloat (margin, >=, need);
  rig_exec (r, TRUE, 1);
  train_step (r);
  const char *nodes[] = { "pre", "post", NULL };
  check_nodes (r, nodes, c->eps);
  rig_free (r);
}

/* ---- Stochastic layers ---------------------------------------------------------------------- */

static gboolean
all_zero (const float *v, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (v[i] != 0)
      return FALSE;
  return TRUE;
}

/* Whether the executor made with SEED kept the droppath branch in its first step: the
 * parameters before the gate get no gradient when it is dropped. */
static gboolean
droppath_kept (Rig *r, guint64 seed)
{
  GError *error = NULL;
  rig_exec (r, TRUE, seed);
  train_step (r);
  CsTensor *w = weight (r, "pre");
  g_autofree float *dw = g_new (float, w->numel);
  g_assert_true (cs_exec_get_param_gradient (r->x, r->net->weight[node (r, "pre")->id], dw,
                                             &error));
  g_assert_no_error (error);
  return !all_zero (dw, w->numel);
}

static void
test_droppath_kept (void)
{
  Rig *r = rig_new (CHAIN ("droppath 0.7"), 2);
  guint64 seed = 1;
  while (!droppath_kept (r, seed))
    g_assert_cmpuint (++seed, <, 50);
  g_test_message ("exec seed %" G_GUINT64_FORMAT " keeps the branch", seed);
  const char *nodes[] = { "pre", "post", NULL };
  check_nodes (r, nodes, 1e-2);
  rig_free (r);
}

/* A dropped branch: the loss does not depend on what comes before the gate, and every gradient
 * there is exactly zero; the layers after it still learn. */
static void
test_droppath_dropped (void)
{
  Rig *r = rig_new (CHAIN ("droppath 0.7"), 2);
  guint64 seed = 1;
  while (droppath_kept (r, seed))
    g_assert_cmpuint (++seed, <, 200);
  g_test_message ("exec seed %" G_GUINT64_FORMAT " drops the branch", seed);
  GError *error = NULL;
  CsTensor *b = bias (r, "pre");
  g_autofree float *db = g_new (float, b->numel);
  g_assert_true (cs_exec_get_param_gradient (r->x, r->net->bias[node (r, "pre")->id], db,
                                             &error));
  g_assert_no_error (error);
  g_assert_true (all_zero (db, b->numel));
  double base = eval_loss (r);
  for (gsize i = 0; i < b->numel; i++)
    {
      float saved = b->data[i];
      b->data[i] += 0.5f;
      g_assert_cmpfloat (eval_loss (r), ==, base);
      b->data[i] = saved;
    }
  const char *nodes[] = { "pre", NULL };
  check_nodes_floor (r, nodes, 1e-2, 0);
  const char *after[] = { "post", NULL };
  check_nodes (r, after, 1e-2);
  rig_free (r);
}

/* Training keeps the whole volume, scaled by 1/p, or drops it whole, about p of the time. */
static void
test_droppath_rate (void)
{
  Rig *r = rig_new ("input 3x2x2\nt: droppath 0.7\n", 2);
  guint kept = 0, runs = 200;
  for (guint64 seed = 1; seed <= runs; seed++)
    {
      rig_exec (r, TRUE, seed);
      g_autofree double *y = forward (r);
      gboolean k = y[0] != 0;
      kept += k;
      for (gsize i = 0; i < r->in_len; i++)
        g_assert_cmpfloat_with_epsilon (y[i], k ? r->input[i] / 0.7 : 0.0, 1e-6);
    }
  g_test_message ("kept %u of %u", kept, runs);
  g_assert_cmpuint (kept, >=, 120);
  g_assert_cmpuint (kept, <=, 160);
  rig_free (r);
}

/* At inference a droppath gate, a dropout, and in training a gate with survival 1, are the
 * identity: the same numbers as the net without them. */
static void
test_stochastic_identity (void)
{
  const char *plain = CHAIN ("identity");
  const char *variants[] = { CHAIN ("droppath 0.7"), CHAIN ("dropout 0.3") };
  Rig *ref = rig_new (plain, 3);
  rig_exec (ref, FALSE, 1);
  g_autofree double *want = forward (ref);
  gsize n = out_len (ref, cs_graph_output (ref->g));
  for (guint v = 0; v < G_N_ELEMENTS (variants); v++)
    {
      Rig *r = rig_new (variants[v], 3);
      rig_exec (r, FALSE, 5);
      g_autofree double *got = forward (r);
      for (gsize i = 0; i < n; i++)
        g_assert_cmpfloat (got[i], ==, want[i]);
      rig_free (r);
    }
  Rig *t1 = rig_new (CHAIN ("droppath 1"), 3), *t2 = rig_new (plain, 3);
  rig_exec (t1, TRUE, 5);
  rig_exec (t2, TRUE, 5);
  g_autofree double *a = forward (t1), *b = forward (t2);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (a[i], ==, b[i]);
  rig_free (t1);
  rig_free (t2);
  rig_free (ref);
}

/* Inverted dropout: about p of the values are zeroed, independently for each image, and the
 * others are scaled by 1/(1-p). */
static void
test_dropout_mask (void)
{
  Rig *r = rig_new ("input 10x10x5\nt: dropout 0.3\n", 2);
  gsize per_image = r->in_len / 2;
  memcpy (r->input + per_image, r->input, per_image * sizeof (float));
  rig_exec (r, TRUE, 3);
  g_autofree double *y = forward (r);
  guint dropped = 0, differ = 0;
  for (gsize i = 0; i < r->in_len; i++)
    {
      if (y[i] == 0)
        dropped++;
      else
        g_assert_cmpfloat_with_epsilon (y[i], r->input[i] / 0.7, 1e-6);
      if (i < per_image)
        differ += (y[i] == 0) != (y[i + per_image] == 0);
    }
  g_test_message ("dropped %u of %zu; masks of the two images differ at %u", dropped, r->in_len,
                  differ);
  g_assert_cmpuint (dropped, >=, 0.25 * r->in_len);
  g_assert_cmpuint (dropped, <=, 0.35 * r->in_len);
  g_assert_cmpuint (differ, >, per_image / 5);
  rig_free (r);
}

#define MEAN_DP IN PRE "mean droppath 0.3 { { a: conv 3 3x3 pad 1 } { b: conv 3 1x1 } " \
  "{ c: conv 3 3x3 pad 1 dilation 1 } }\n" HEAD

/* Local drop-path: each executor seed draws another subset of the branches; the gradients must
 * match the loss with that subset, including branches that were dropped (zero). */
static void
test_grad_mean_droppath (void)
{
  Rig *r = rig_new (MEAN_DP, 2);
  const char *branches[] = { "a", "b", "c" };
  guint dropped_runs = 0;
  for (guint64 seed = 1; seed <= 6; seed++)
    {
      rig_exec (r, TRUE, seed);
      train_step (r);
      guint dropped = 0;
      for (guint k = 0; k < 3; k++)
        {
          GError *error = NULL;
          CsTensor *w = weight (r, branches[k]);
          g_autofree float *dw = g_new (float, w->numel);
          g_assert_true (cs_exec_get_param_gradient (r->x, r->net->weight[node (r,
                                                     branches[k])->id], dw, &error));
          g_assert_no_error (error);
          gboolean gone = all_zero (dw, w->numel);
          dropped += gone;
          const char *one[] = { branches[k], NULL };
          check_nodes_floor (r, one, 1e-2, gone ? 0 : GRAD_FLOOR);
        }
      g_assert_cmpuint (dropped, <, 3);
      dropped_runs += dropped > 0;
      const char *pre[] = { "pre", NULL };
      check_nodes (r, pre, 1e-2);
    }
  g_assert_cmpuint (dropped_runs, >, 0);
  rig_free (r);
}

/* The training output of a mean with local drop-path is the mean of a non-empty subset of its
 * inputs; at inference, of all of them. */
static void
test_mean_droppath_forward (void)
{
  const char *text = "input 3x4x2\nmean droppath 0.3 { { a: conv 2 1x1 } { b: conv 2 3x3 pad 1 } "
                     "{ c: conv 2 1x3 pad 0x1 } }\n";
  Rig *r = rig_new (text, 2);
  Vol v = { 2, 3, 4 }, o;
  const ConvSpec specs[3] = { { 2, 1, 1, 1, 1, 0, 0, 1, 1, 1 }, { 2, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
                              { 2, 1, 3, 1, 1, 0, 1, 1, 1, 1 } };
  const char *names[3] = { "a", "b", "c" };
  g_autofree double *x = input_as_double (r);
  double *br[3];
  for (guint k = 0; k < 3; k++)
    br[k] = ref_conv (x, 2, v, &specs[k], weight (r, names[k]), bias (r, names[k]), &o);
  gsize n = 2 * vsize (o);
  guint seen[8] = { 0 };
  for (guint64 seed = 0; seed < 64; seed++)
    {
      rig_exec (r, TRUE, seed);
      g_autofree double *y = forward (r);
      guint match = 0;
      for (guint mask = 1; mask < 8 && !match; mask++)
        {
          gboolean ok = TRUE;
          for (gsize i = 0; i < n && ok; i++)
            {
              double s = 0;
              guint k = 0;
              for (guint b = 0; b < 3; b++)
                if (mask & (1u << b))
                  s += br[b][i], k++;
              ok = fabs (y[i] - s / k) <= 1e-5;
            }
          if (ok)
            match = mask;
        }
      g_assert_cmpuint (match, !=, 0);
      seen[match]++;
    }
  /* With 3 inputs each kept with probability 0.7: all three about a third of the time. */
  g_test_message ("subsets: all %u, pairs %u %u %u, singles %u %u %u", seen[7], seen[3], seen[5],
                  seen[6], seen[1], seen[2], seen[4]);
  g_assert_cmpuint (seen[7], >=, 8);
  g_assert_cmpuint (seen[7], <=, 40);
  g_assert_cmpuint (seen[3] + seen[5] + seen[6], >=, 10);
  rig_exec (r, FALSE, 1);
  g_autofree double *y = forward (r);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat_with_epsilon (y[i], (br[0][i] + br[1][i] + br[2][i]) / 3, 1e-5);
  for (guint k = 0; k < 3; k++)
    g_free (br[k]);
  rig_free (r);
}

/* ---- Batch normalisation statistics --------------------------------------------------------- */

static void
set_tensor (CsTensor *t, const double *v)
{
  for (gsize i = 0; i < t->numel; i++)
    t->data[i] = (float) v[i];
}

/* One training step moves the running mean and the running (unbiased) variance a fraction
 * `momentum` of the way to the batch's, per channel over images and positions. */
static void
test_bn_running_stats (void)
{
  const char *texts[] = { "input 5x4x3\nc: conv 4 3x3 pad 1\nb: bn\nfc 3\nsoftmax\n",
                          "input 5x4x3\nc: conv 4 3x3 pad 1\nb: bn momentum 0.25\nfc 3\nsoftmax\n" };
  const double momenta[] = { 0.1, 0.25 };
  for (guint t = 0; t < 2; t++)
    {
      GError *error = NULL;
      Rig *r = rig_new (texts[t], 3);
      const CsNode *bn = node (r, "b");
      CsTensor *rm = cs_net_tensor (r->net, r->net->run_mean[bn->id]);
      CsTensor *rv = cs_net_tensor (r->net, r->net->run_var[bn->id]);
      double mean0[4] = { 0.5, -0.25, 0.1, 0 }, var0[4] = { 2, 0.5, 1, 3 };
      set_tensor (rm, mean0);
      set_tensor (rv, var0);
      g_autofree double *x = input_as_double (r);
      Vol v = { 3, 5, 4 }, o;
      ConvSpec cs = { 4, 3, 3, 1, 1, 1, 1, 1, 1, 1 };
      g_autofree double *z = ref_conv (x, 3, v, &cs, weight (r, "c"), bias (r, "c"), &o);
      double mu[4], var[4];
      double m = 3.0 * o.h * o.w;
      for (int c = 0; c < 4; c++)
        {
          double s = 0, ss = 0;
          for (int b = 0; b < 3; b++)
            for (int i = 0; i < o.h * o.w; i++)
              s += z[at (o, b, c, 0, 0) + i];
          mu[c] = s / m;
          for (int b = 0; b < 3; b++)
            for (int i = 0; i < o.h * o.w; i++)
              ss += pow (z[at (o, b, c, 0, 0) + i] - mu[c], 2);
          var[c] = ss / (m - 1);
        }
      rig_exec (r, TRUE, 1);
      double mom = momenta[t], em[4], ev[4];
      memcpy (em, mean0, sizeof em);
      memcpy (ev, var0, sizeof ev);
      for (guint step = 0; step < 2; step++)
        {
          train_step (r);
          g_assert_true (cs_exec_sync_to_net (r->x, &error));
          g_assert_no_error (error);
          for (int c = 0; c < 4; c++)
            {
              em[c] = (1 - mom) * em[c] + mom * mu[c];
              ev[c] = (1 - mom) * ev[c] + mom * var[c];
              g_assert_cmpfloat_with_epsilon (rm->data[c], em[c], 1e-5 * (1 + fabs (em[c])));
              g_assert_cmpfloat_with_epsilon (rv->data[c], ev[c], 1e-5 * (1 + fabs (ev[c])));
            }
        }
      rig_free (r);
    }
}

/* In training, batch norm normalises with the batch's own (biased) statistics. */
static void
test_bn_training_forward (void)
{
  Rig *r = rig_new ("input 4x3x2\nc: conv 3 3x3 pad 1\nb: bn eps 0.01\n", 3);
  g_autofree double *x = input_as_double (r);
  Vol v = { 2, 4, 3 }, o;
  ConvSpec cs = { 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 };
  g_autofree double *z = ref_conv (x, 3, v, &cs, weight (r, "c"), bias (r, "c"), &o);
  CsTensor *g = weight (r, "b"), *be = bias (r, "b");
  rig_exec (r, TRUE, 1);
  g_autofree double *y = forward (r);
  double m = 3.0 * o.h * o.w;
  for (int c = 0; c < 3; c++)
    {
      double s = 0, ss = 0;
      for (int b = 0; b < 3; b++)
        for (int i = 0; i < o.h * o.w; i++)
          s += z[at (o, b, c, 0, 0) + i];
      double mu = s / m;
      for (int b = 0; b < 3; b++)
        for (int i = 0; i < o.h * o.w; i++)
          ss += pow (z[at (o, b, c, 0, 0) + i] - mu, 2);
      double inv = 1 / sqrt (ss / m + 0.01);
      for (int b = 0; b < 3; b++)
        for (int i = 0; i < o.h * o.w; i++)
          {
            gsize k = at (o, b, c, 0, 0) + i;
            g_assert_cmpfloat_with_epsilon (y[k], g->data[c] * (z[k] - mu) * inv + be->data[c],
                                            1e-5);
          }
    }
  rig_free (r);
}

/* ---- Node gradients --------------------------------------------------------------------------- */

/* cs_exec_get_gradient must give each node's own output gradient after the step, even for nodes
 * whose gradient buffer the plan could reuse once their backward has run: the sum of a conv's
 * output gradient over images and positions is its bias gradient, and the logits' gradient is
 * (softmax - one-hot) / n. */
static void
test_node_gradients (void)
{
  const char *text = "input 6x6x2\nc1: conv 3 3x3 pad 1\ntanh\nc2: conv 3 3x3 pad 1\ntanh\n"
                     "c3: conv 3 3x3 pad 1\ntanh\nlogits: fc 4\nsoftmax\n";
  Rig *r = rig_new (text, 2);
  /* Gradient buffers are reused once dead unless the executor is asked to keep them. */
  rig_exec_flags (r, CS_EXEC_TRAINING | CS_EXEC_KEEP_GRADIENTS, 1);
  train_step (r);
  GError *error = NULL;
  const char *convs[] = { "c1", "c2", "c3" };
  for (guint k = 0; k < 3; k++)
    {
      const CsNode *n = node (r, convs[k]);
      g_autofree float *gy = g_new (float, out_len (r, n));
      g_assert_true (cs_exec_get_gradient (r->x, n->id, gy, &error));
      g_assert_no_error (error);
      CsTensor *b = bias (r, convs[k]);
      g_autofree float *db = g_new (float, b->numel);
      g_assert_true (cs_exec_get_param_gradient (r->x, r->net->bias[n->id], db, &error));
      g_assert_no_error (error);
      gsize hw = n->shape.h * n->shape.w;
      for (guint c = 0; c < n->shape.c; c++)
        {
          double s = 0;
          for (guint i = 0; i < r->batch; i++)
            for (gsize j = 0; j < hw; j++)
              s += gy[(i * n->shape.c + c) * hw + j];
          if (!(fabs (s - db[c]) <= 1e-6 + 1e-4 * fabs (db[c])))
            g_error ("%s: output gradient sums to %.9g in channel %u, bias gradient %.9g",
                     convs[k], s, c, db[c]);
        }
    }
  const CsNode *lg = node (r, "logits");
  g_autofree double *p = forward (r);
  g_autofree float *gz = g_new (float, out_len (r, lg));
  g_assert_true (cs_exec_get_gradient (r->x, lg->id, gz, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < r->batch; i++)
    for (guint c = 0; c < 4; c++)
      {
        double want = (p[i * 4 + c] - (c == r->labels[i])) / r->batch;
        if (!(fabs (gz[i * 4 + c] - want) <= 1e-6))
          g_error ("logits gradient [%u][%u]: got %.9g, want %.9g", i, c, gz[i * 4 + c], want);
      }
  rig_free (r);
}

/* ---- Forward passes against the reference --------------------------------------------------- */

typedef enum {
  F_CONV, F_MAXPOOL, F_AVGPOOL, F_LRN, F_BN, F_POINTWISE, F_COPY, F_FC, F_SOFTMAX,
} FwdKind;

typedef struct {
  const char *path;
  const char *layer;            /* the one layer after the input, named t */
  Vol in;
  FwdKind kind;
  ConvSpec conv;
  PoolSpec pool;
  Pointwise pw;
  double a, b, k;               /* lrn alpha, beta, k; leaky slope; bn eps */
  int size;                     /* lrn size; fc outputs */
} FwdCase;

static const FwdCase fwd_cases[] = {
#define CONV(...) .kind = F_CONV, .conv = { __VA_ARGS__ }
#define POOL(k, ...) .kind = k, .pool = { __VA_ARGS__ }
  { "/cpu/forward/conv/3x3-pad1", "conv 4 3x3 pad 1", { 3, 7, 6 },
    CONV (4, 3, 3, 1, 1, 1, 1, 1, 1, 1) },
  { "/cpu/forward/conv/5x5-stride2-pad2-groups2", "conv 6 5x5 pad 2 stride 2 groups 2",
    { 4, 11, 9 }, CONV (6, 5, 5, 2, 2, 2, 2, 1, 1, 2) },
  { "/cpu/forward/conv/dilation2", "conv 3 3x3 dilation 2 pad 2", { 2, 8, 7 },
    CONV (3, 3, 3, 1, 1, 2, 2, 2, 2, 1) },
  { "/cpu/forward/conv/anisotropic", "conv 4 3x2 stride 2x3 pad 1x0 dilation 1x2", { 2, 7, 8 },
    CONV (4, 3, 2, 2, 3, 1, 0, 1, 2, 1) },
  { "/cpu/forward/conv/1x3", "conv 5 1x3 pad 0x1", { 3, 4, 5 },
    CONV (5, 1, 3, 1, 1, 0, 1, 1, 1, 1) },
  { "/cpu/forward/conv/pointwise", "conv 5 1x1", { 3, 4, 5 },
    CONV (5, 1, 1, 1, 1, 0, 0, 1, 1, 1) },
  { "/cpu/forward/conv/1x1-stride2-pad1", "conv 2 1x1 stride 2 pad 1", { 3, 5, 4 },
    CONV (2, 1, 1, 2, 2, 1, 1, 1, 1, 1) },
  /* One image per product (outputs of 1,024 positions or more): the product goes straight into
   * the output and the bias is added there; strides 2 and 4 gather by constant strides. */
  { "/cpu/forward/conv/one-image-stride2", "conv 4 5x5 stride 2 pad 2", { 3, 70, 66 },
    CONV (4, 5, 5, 2, 2, 2, 2, 1, 1, 1) },
  { "/cpu/forward/conv/11x11-stride4", "conv 5 11x11 stride 4 pad 1", { 3, 29, 31 },
    CONV (5, 11, 11, 4, 4, 1, 1, 1, 1, 1) },
  { "/cpu/forward/conv/depthwise-nobias", "conv 6 3x3 pad 1 groups 3 nobias", { 3, 5, 5 },
    CONV (6, 3, 3, 1, 1, 1, 1, 1, 1, 3) },
  { "/cpu/forward/conv/groups8", "conv 16 3x3 pad 1 groups 8", { 24, 9, 7 },
    CONV (16, 3, 3, 1, 1, 1, 1, 1, 1, 8) },
  { "/cpu/forward/conv/groups32-pointwise", "conv 64 1x1 groups 32", { 32, 6, 5 },
    CONV (64, 1, 1, 1, 1, 0, 0, 1, 1, 32) },
  { "/cpu/forward/conv/pad-beyond-kernel", "conv 2 2x2 pad 3", { 1, 3, 2 },
    CONV (2, 2, 2, 1, 1, 3, 3, 1, 1, 1) },
  /* Winograd: 3x3, stride 1, 16 channels or more and maps large enough (cs-cpu.c's
   * WINO_MIN_TILES); odd sizes leave partial tiles. */
  { "/cpu/forward/conv/winograd-pad1", "conv 16 3x3 pad 1", { 16, 55, 56 },
    CONV (16, 3, 3, 1, 1, 1, 1, 1, 1, 1) },
  { "/cpu/forward/conv/winograd-pad0", "conv 17 3x3", { 20, 58, 57 },
    CONV (17, 3, 3, 1, 1, 0, 0, 1, 1, 1) },
  { "/cpu/forward/conv/winograd-pad2", "conv 16 3x3 pad 2 nobias", { 16, 53, 56 },
    CONV (16, 3, 3, 1, 1, 2, 2, 1, 1, 1) },
  { "/cpu/forward/conv/winograd-pad1x2", "conv 24 3x3 pad 1x2", { 32, 56, 55 },
    CONV (24, 3, 3, 1, 1, 1, 2, 1, 1, 1) },
  { "/cpu/forward/maxpool/3x3-stride2-ceil", "maxpool 3x3 stride 2 ceil", { 2, 6, 7 },
    POOL (F_MAXPOOL, 3, 3, 2, 2, 0, 0, TRUE, FALSE) },
  { "/cpu/forward/maxpool/3x3-stride2-pad1-ceil", "maxpool 3x3 stride 2 pad 1 ceil", { 2, 6, 7 },
    POOL (F_MAXPOOL, 3, 3, 2, 2, 1, 1, TRUE, FALSE) },
  { "/cpu/forward/maxpool/3x3-stride1-pad1", "maxpool 3x3 stride 1 pad 1", { 2, 5, 4 },
    POOL (F_MAXPOOL, 3, 3, 1, 1, 1, 1, FALSE, FALSE) },
  /* Stride 1 with outputs as large as the inputs: a chunk of planes at a time (cs-cpu.c's
   * maxpool_same), with windows wider than the plane, one-sided ones, and a batch of planes
   * that spans chunks. */
  { "/cpu/forward/maxpool/same-3x3", "maxpool 3x3 stride 1 pad 1", { 5, 14, 13 },
    POOL (F_MAXPOOL, 3, 3, 1, 1, 1, 1, FALSE, FALSE) },
  { "/cpu/forward/maxpool/same-5x5", "maxpool 5x5 stride 1 pad 2", { 3, 7, 9 },
    POOL (F_MAXPOOL, 5, 5, 1, 1, 2, 2, FALSE, FALSE) },
  { "/cpu/forward/maxpool/same-1x3", "maxpool 1x3 stride 1 pad 0x1", { 2, 6, 5 },
    POOL (F_MAXPOOL, 1, 3, 1, 1, 0, 1, FALSE, FALSE) },
  { "/cpu/forward/maxpool/same-7x7-wider-than-plane", "maxpool 7x7 stride 1 pad 3", { 2, 4, 5 },
    POOL (F_MAXPOOL, 7, 7, 1, 1, 3, 3, FALSE, FALSE) },
  { "/cpu/forward/maxpool/same-3x3-many-planes", "maxpool 3x3 stride 1 pad 1", { 300, 7, 7 },
    POOL (F_MAXPOOL, 3, 3, 1, 1, 1, 1, FALSE, FALSE) },
  { "/cpu/forward/maxpool/2x3-stride2x1", "maxpool 2x3 stride 2x1", { 2, 5, 6 },
    POOL (F_MAXPOOL, 2, 3, 2, 1, 0, 0, FALSE, FALSE) },
  { "/cpu/forward/maxpool/global", "maxpool global", { 3, 5, 4 },
    POOL (F_MAXPOOL, 0, 0, 0, 0, 0, 0, FALSE, TRUE) },
  { "/cpu/forward/avgpool/3x3-stride2-ceil", "avgpool 3x3 stride 2 ceil", { 2, 6, 7 },
    POOL (F_AVGPOOL, 3, 3, 2, 2, 0, 0, TRUE, FALSE) },
  { "/cpu/forward/avgpool/3x3-stride2-pad1-ceil", "avgpool 3x3 stride 2 pad 1 ceil", { 2, 6, 7 },
    POOL (F_AVGPOOL, 3, 3, 2, 2, 1, 1, TRUE, FALSE) },
  { "/cpu/forward/avgpool/2x2-stride3-pad1-ceil", "avgpool 2x2 stride 3 pad 1 ceil", { 1, 4, 5 },
    POOL (F_AVGPOOL, 2, 2, 3, 3, 1, 1, TRUE, FALSE) },
  { "/cpu/forward/avgpool/global", "avgpool global", { 3, 5, 4 },
    POOL (F_AVGPOOL, 0, 0, 0, 0, 0, 0, FALSE, TRUE) },
  /* A kernel smaller than its stride: with ceil rounding and no padding, the last window of
   * each axis would start past the input; no window may. */
  { "/cpu/forward/avgpool/1x1-stride2-ceil", "avgpool 1x1 stride 2 ceil", { 1, 4, 4 },
    POOL (F_AVGPOOL, 1, 1, 2, 2, 0, 0, TRUE, FALSE) },
  { "/cpu/forward/maxpool/1x1-stride2-ceil", "maxpool 1x1 stride 2 ceil", { 1, 4, 4 },
    POOL (F_MAXPOOL, 1, 1, 2, 2, 0, 0, TRUE, FALSE) },
  { "/cpu/forward/lrn/default", "lrn 5", { 6, 3, 4 }, .kind = F_LRN,
    .a = 1e-4, .b = 0.75, .k = 2, .size = 5 },
  { "/cpu/forward/lrn/strong", "lrn 3 alpha 0.5 beta 0.75 k 1", { 5, 3, 2 }, .kind = F_LRN,
    .a = 0.5, .b = 0.75, .k = 1, .size = 3 },
  { "/cpu/forward/lrn/wider-than-depth", "lrn 7 alpha 2 beta 1.5 k 0.5", { 3, 2, 2 },
    .kind = F_LRN, .a = 2, .b = 1.5, .k = 0.5, .size = 7 },
  { "/cpu/forward/bn/inference", "bn eps 0.001", { 3, 4, 3 }, .kind = F_BN, .k = 0.001 },
  { "/cpu/forward/relu", "relu", { 2, 3, 4 }, .kind = F_POINTWISE, .pw = PW_RELU },
  { "/cpu/forward/leakyrelu", "leakyrelu 0.2", { 2, 3, 4 }, .kind = F_POINTWISE,
    .pw = PW_LEAKY, .a = 0.2 },
  { "/cpu/forward/sigmoid", "sigmoid", { 2, 3, 4 }, .kind = F_POINTWISE, .pw = PW_SIGMOID },
  { "/cpu/forward/tanh", "tanh", { 2, 3, 4 }, .kind = F_POINTWISE, .pw = PW_TANH },
  { "/cpu/forward/dropout-inference", "dropout 0.3", { 2, 3, 4 }, .kind = F_COPY },
  { "/cpu/forward/droppath-inference", "droppath 0.5", { 2, 3, 4 }, .kind = F_COPY },
  { "/cpu/forward/identity", "identity", { 2, 3, 4 }, .kind = F_COPY },
  { "/cpu/forward/flatten", "flatten", { 2, 3, 4 }, .kind = F_COPY },
  { "/cpu/forward/fc/spatial", "fc 7", { 3, 4, 5 }, .kind = F_FC, .size = 7 },
  { "/cpu/forward/fc/nobias", "fc 3 nobias", { 5, 1, 1 }, .kind = F_FC, .size = 3 },
  { "/cpu/forward/softmax/spatial", "softmax", { 4, 3, 2 }, .kind = F_SOFTMAX },
  { "/cpu/forward/softmax/vector", "softmax", { 6, 1, 1 }, .kind = F_SOFTMAX },
#undef CONV
#undef POOL
};

static void
test_forward_case (gconstpointer data)
{
  const FwdCase *c = data;
  g_autofree char *text = g_strdup_printf ("input %dx%dx%d\nt: %s\n", c->in.h, c->in.w, c->in.c,
                                           c->layer);
  Rig *r = rig_new (text, 2);
  /* Inputs of several magnitudes, so that LRN and the pointwise functions leave their linear
   * ranges. */
  for (gsize i = 0; i < r->in_len; i++)
    r->input[i] *= 3.0f;
  if (c->kind == F_BN)
    {
      const CsNode *bn = node (r, "t");
      CsTensor *mean = cs_net_tensor (r->net, r->net->run_mean[bn->id]);
      CsTensor *var = cs_net_tensor (r->net, r->net->run_var[bn->id]);
      g_assert_nonnull (mean);
      g_assert_nonnull (var);
      for (int ch = 0; ch < c->in.c; ch++)
        {
          mean->data[ch] = 0.3f * ch - 0.2f;
          var->data[ch] = 0.5f + ch;
        }
    }
  g_autofree double *x = input_as_double (r);
  Vol o = c->in;
  double *want = NULL;
  switch (c->kind)
    {
    case F_CONV:
      want = ref_conv (x, 2, c->in, &c->conv, weight (r, "t"),
                       r->net->bias[node (r, "t")->id] >= 0 ? bias (r, "t") : NULL, &o);
      break;
    case F_MAXPOOL:
    case F_AVGPOOL:
      want = ref_pool (x, 2, c->in, &c->pool, c->kind == F_MAXPOOL, &o);
      break;
    case F_LRN:
      want = ref_lrn (x, 2, c->in, c->size, c->a, c->b, c->k);
      break;
    case F_BN:
      want = ref_bn (x, 2, c->in, r, "t", c->k);
      break;
    case F_POINTWISE:
      want = g_memdup2 (x, r->in_len * sizeof (double));
      ref_pointwise (want, r->in_len, c->pw, c->a);
      break;
    case F_COPY:
      want = g_memdup2 (x, r->in_len * sizeof (double));
      if (g_str_equal (c->layer, "flatten"))
        o = (Vol) { (int) vsize (c->in), 1, 1 };
      break;
    case F_FC:
      want = ref_fc (x, 2, c->in, weight (r, "t"),
                     r->net->bias[node (r, "t")->id] >= 0 ? bias (r, "t") : NULL, c->size);
      o = (Vol) { c->size, 1, 1 };
      break;
    case F_SOFTMAX:
      want = ref_softmax (x, 2, c->in);
      break;
    }
  assert_shape (r, "t", o);
  rig_exec (r, FALSE, 1);
  g_autofree double *got = forward (r);
  assert_close (got, want, 2 * vsize (o), 1e-5);
  g_free (want);
  rig_free (r);
}

/* The gradients of the 3x3 convolutions that run Winograd's algorithm (its filter gradient sums
 * transformed tiles over the whole batch) against float64 sums written from the definition, added
 * to gradients that already hold values: odd sizes (partial tiles, an output gradient past the
 * edge), each padding, and the input gradient by Winograd (large maps) or by the column matrix. */
typedef struct {
  int c, k, h, w, ph, pw;
  guint batch;
} WinoGradCase;

static double
largest (const double *v, gsize n)
{
  double m = 0;
  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs (v[i]));
  return m;
}

/* Every value of GOT within TOL of WANT's. */
static void
assert_within (const char *what, guint ci, const float *got, const double *want, gsize n,
               double tol)
{
  for (gsize i = 0; i < n; i++)
    if (!(fabs (got[i] - want[i]) <= tol))
      g_error ("case %u, %s %zu: got %.9g, want %.9g (tolerance %.3g)", ci, what, i, got[i],
               want[i], tol);
}

static void
test_winograd_filter_gradient (void)
{
  static const WinoGradCase cases[] = {
    { 64, 64, 56, 55, 1, 1, 2 },  /* the input gradient by Winograd too */
    { 64, 64, 25, 23, 0, 0, 3 },  /* sets of 2 images (cs-cpu.c's WINO_FILTER_MACS): 2, then 1 */
    { 72, 64, 14, 13, 2, 1, 2 },  /* 8x7 tiles: WINO_FILTER_MIN_TILES is 49 */
    { 16, 16, 55, 57, 1, 1, 5 },  /* too few channels: the filter's by the column matrix, the
                                     input's by Winograd */
  };
  g_autoptr (CsBackend) cpu = cs_cpu_backend_new ();
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    {
      const WinoGradCase *c = &cases[ci];
      g_autofree char *text = g_strdup_printf ("input %dx%dx%d\nt: conv %d 3x3 pad %dx%d\n", c->h,
                                               c->w, c->c, c->k, c->ph, c->pw);
      g_autoptr (CsGraph) g = parse (text);
      const CsNode *n = cs_graph_lookup (g, "t");
      const CsShape in = cs_graph_node (g, n->inputs[0])->shape, out = n->shape;
      gsize ni = c->batch * in.c * in.h * in.w, no = c->batch * out.c * out.h * out.w;
      gsize nw = (gsize) c->k * c->c * 9, ohw = (gsize) out.h * out.w;
      g_autofree float *x = g_new (float, ni), *dy = g_new (float, no), *w = g_new (float, nw);
      g_autofree float *dw = g_new (float, nw), *db = g_new (float, c->k), *dx = g_new (float, ni);
      for (gsize i = 0; i < ni; i++)
        x[i] = (float) unif (7, i);
      for (gsize i = 0; i < no; i++)
        dy[i] = (float) unif (8, i);
      for (gsize i = 0; i < nw; i++)
        w[i] = (float) unif (9, i), dw[i] = (float) unif (10, i);
      for (int k = 0; k < c->k; k++)
        db[k] = (float) unif (11, k);
      g_autofree double *want_x = g_new (double, ni);
      for (gsize i = 0; i < ni; i++)
        want_x[i] = dx[i] = (float) unif (12, i);
      g_autofree double *want_w = g_new0 (double, nw), *want_b = g_new0 (double, c->k);
      g_autofree double *abs_b = g_new0 (double, c->k);
      for (guint b = 0; b < c->batch; b++)
        for (int k = 0; k < c->k; k++)
          for (guint oy = 0; oy < out.h; oy++)
            for (guint ox = 0; ox < out.w; ox++)
              {
                double d = dy[((gsize) b * c->k + k) * ohw + oy * out.w + ox];
                want_b[k] += d, abs_b[k] += fabs (d);
                for (int ch = 0; ch < c->c; ch++)
                  for (int r = 0; r < 3; r++)
                    for (int q = 0; q < 3; q++)
                      {
                        int iy = (int) oy - c->ph + r, ix = (int) ox - c->pw + q;
                        gsize xi = (((gsize) b * c->c + ch) * c->h + iy) * c->w + ix;
                        gsize wi = ((gsize) k * c->c + ch) * 9 + r * 3 + q;
                        if (iy >= 0 && iy < c->h && ix >= 0 && ix < c->w)
                          want_w[wi] += d * x[xi], want_x[xi] += d * w[wi];
                      }
              }
      double wscale = largest (want_w, nw);  /* of the gradient itself, before what it adds to */
      for (gsize i = 0; i < nw; i++)
        want_w[i] += dw[i];
      for (int k = 0; k < c->k; k++)
        want_b[k] += db[k];
      gsize work = cpu->workspace_size (cpu, n, &in, c->batch, TRUE);
      g_autofree float *scratch = g_new (float, work);
      float *in_x[1] = { x }, *d_in[1] = { dx };
      CsKernelArgs a = { .node = n, .batch = c->batch, .training = TRUE, .n_in = 1,
                         .in_shape = &in, .in = in_x, .out = NULL, .d_in = d_in, .d_out = dy,
                         .w = w, .dw = dw, .db = db, .work = scratch, .work_len = work };
      GError *error = NULL;
      g_assert_true (cpu->backward[CS_OP_CONV] (cpu, &a, &error));
      g_assert_no_error (error);
      assert_within ("filter gradient", ci, dw, want_w, nw, 1e-5 * wscale);
      for (int k = 0; k < c->k; k++)
        /* Summed in float lanes, as any float sum: within a few roundings of the terms' sizes. */
        if (!(fabs (db[k] - want_b[k]) <= 4 * FLT_EPSILON * abs_b[k]))
          g_error ("case %u, bias gradient %d: got %.9g, want %.9g", ci, k, db[k], want_b[k]);
      assert_within ("input gradient", ci, dx, want_x, ni, 1e-5 * largest (want_x, ni));
    }
}

/* Values worked out by hand, which anchor the reference itself. */
static void
test_forward_by_hand (void)
{
  /* A 2x2 kernel 1 2 / 3 4 over the ramp 1 2 / 3 4 with bias 0.5: 1 + 4 + 9 + 16 + 0.5. */
  Rig *r = rig_new ("input 2x2x1\nt: conv 1 2x2\n", 1);
  for (int i = 0; i < 4; i++)
    weight (r, "t")->data[i] = r->input[i] = i + 1;
  bias (r, "t")->data[0] = 0.5f;
  rig_exec (r, FALSE, 1);
  g_autofree double *y = forward (r);
  g_assert_cmpfloat (y[0], ==, 30.5);
  rig_free (r);

  /* avgpool 3x3 stride 2 pad 1 ceil over the 6x6 ramp 1..36: 4x4 outputs; the last row's
   * windows hang one row into the right padding and one past it, so they divide by 2 rows:
   * (31 + 32) / 6 at the left edge (3 columns counted), (32 + 33 + 34) / 6 next to it. */
  r = rig_new ("input 6x6x1\nt: avgpool 3x3 stride 2 pad 1 ceil\n", 1);
  for (int i = 0; i < 36; i++)
    r->input[i] = i + 1;
  assert_shape (r, "t", (Vol) { 1, 4, 4 });
  rig_exec (r, FALSE, 1);
  g_autofree double *p = forward (r);
  g_assert_cmpfloat_with_epsilon (p[0], (1 + 2 + 7 + 8) / 9.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (p[5], (8 + 9 + 10 + 14 + 15 + 16 + 20 + 21 + 22) / 9.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (p[12], (31 + 32) / 6.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (p[13], (32 + 33 + 34) / 6.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (p[15], 36 / 4.0, 1e-6);
  rig_free (r);
}

/* conv 5x5 pad 2 stride 2 groups 2 -> relu -> maxpool 3x3 stride 2 ceil -> fc */
static void
test_forward_small_convnet (void)
{
  Rig *r = rig_new ("input 11x11x4\nc: conv 6 5x5 pad 2 stride 2 groups 2\nrelu\n"
                    "p: maxpool 3x3 stride 2 ceil\nf: fc 10\n", 3);
  g_autofree double *x = input_as_double (r);
  ConvSpec cs = { 6, 5, 5, 2, 2, 2, 2, 1, 1, 2 };
  PoolSpec ps = { 3, 3, 2, 2, 0, 0, TRUE, FALSE };
  Vol v1, v2;
  g_autofree double *z = ref_conv (x, 3, (Vol) { 4, 11, 11 }, &cs, weight (r, "c"), bias (r, "c"),
                                   &v1);
  ref_pointwise (z, 3 * vsize (v1), PW_RELU, 0);
  g_autofree double *p = ref_pool (z, 3, v1, &ps, TRUE, &v2);
  g_autofree double *want = ref_fc (p, 3, v2, weight (r, "f"), bias (r, "f"), 10);
  assert_shape (r, "c", v1);
  assert_shape (r, "p", v2);
  g_assert_cmpint (v2.h, ==, 3);                /* 2 with floor rounding */
  rig_exec (r, FALSE, 1);
  g_autofree double *got = forward (r);
  assert_close (got, want, 30, 1e-4);
  rig_free (r);
}

#define INCEPTION \
  "input 9x8x6\n" \
  "concat {\n" \
  "  { b1: conv 4 1x1; relu }\n" \
  "  { b2r: conv 3 1x1; relu; b2: conv 5 3x3 pad 1; relu }\n" \
  "  { b3r: conv 2 1x1; relu; b3: conv 3 5x5 pad 2; relu }\n" \
  "  { p: maxpool 3x3 stride 1 pad 1; b4: conv 2 1x1; relu }\n" \
  "}\n"

static double *
ref_inception (Rig *r, const double *x, int n, Vol *out)
{
  Vol in = { 6, 9, 8 }, v, u;
  ConvSpec c1 = { 4, 1, 1, 1, 1, 0, 0, 1, 1, 1 }, c2r = { 3, 1, 1, 1, 1, 0, 0, 1, 1, 1 };
  ConvSpec c2 = { 5, 3, 3, 1, 1, 1, 1, 1, 1, 1 }, c3r = { 2, 1, 1, 1, 1, 0, 0, 1, 1, 1 };
  ConvSpec c3 = { 3, 5, 5, 1, 1, 2, 2, 1, 1, 1 }, c4 = { 2, 1, 1, 1, 1, 0, 0, 1, 1, 1 };
  PoolSpec ps = { 3, 3, 1, 1, 1, 1, FALSE, FALSE };
  double *br[4];
  Vol bv[4];
  br[0] = ref_conv (x, n, in, &c1, weight (r, "b1"), bias (r, "b1"), &bv[0]);
  double *t = ref_conv (x, n, in, &c2r, weight (r, "b2r"), bias (r, "b2r"), &v);
  ref_pointwise (t, n * vsize (v), PW_RELU, 0);
  br[1] = ref_conv (t, n, v, &c2, weight (r, "b2"), bias (r, "b2"), &bv[1]);
  g_free (t);
  t = ref_conv (x, n, in, &c3r, weight (r, "b3r"), bias (r, "b3r"), &v);
  ref_pointwise (t, n * vsize (v), PW_RELU, 0);
  br[2] = ref_conv (t, n, v, &c3, weight (r, "b3"), bias (r, "b3"), &bv[2]);
  g_free (t);
  t = ref_pool (x, n, in, &ps, TRUE, &v);
  br[3] = ref_conv (t, n, v, &c4, weight (r, "b4"), bias (r, "b4"), &bv[3]);
  g_free (t);
  double *acc = br[0];
  Vol av = bv[0];
  for (int k = 0; k < 4; k++)
    ref_pointwise (br[k], n * vsize (bv[k]), PW_RELU, 0);
  for (int k = 1; k < 4; k++)
    {
      double *next = ref_concat (acc, av, br[k], bv[k], n, &u);
      g_free (acc);
      g_free (br[k]);
      acc = next;
      av = u;
    }
  *out = av;
  return acc;
}

static void
test_forward_inception (void)
{
  Rig *r = rig_new (INCEPTION, 2);
  g_autofree double *x = input_as_double (r);
  Vol v;
  g_autofree double *want = ref_inception (r, x, 2, &v);
  g_assert_cmpint (v.c, ==, 14);
  assert_shape (r, "concat1", v);
  rig_exec (r, FALSE, 1);
  g_autofree double *got = forward (r);
  assert_close (got, want, 2 * vsize (v), 1e-4);
  rig_free (r);
}

#define RESIDUAL \
  "input 6x5x4\n" \
  "add { { c1: conv 4 3x3 pad 1; n1: bn; relu; c2: conv 4 3x3 pad 1; n2: bn } { } }\n" \
  "relu\n"

static void
set_bn (Rig *r, const char *name, double phase)
{
  const CsNode *n = node (r, name);
  CsTensor *ts[4] = { cs_net_tensor (r->net, r->net->weight[n->id]),
                      cs_net_tensor (r->net, r->net->bias[n->id]),
                      cs_net_tensor (r->net, r->net->run_mean[n->id]),
                      cs_net_tensor (r->net, r->net->run_var[n->id]) };
  for (gsize c = 0; c < ts[0]->numel; c++)
    {
      ts[0]->data[c] = (float) (0.8 + 0.3 * sin (phase + c));
      ts[1]->data[c] = (float) (0.2 * cos (phase + 2 * c));
      ts[2]->data[c] = (float) (0.4 * sin (phase + 3 * c));
      ts[3]->data[c] = (float) (0.3 + 1.7 * (1 + sin (phase + 5 * c)) / 2);
    }
}

static double *
ref_residual (Rig *r, const double *x, int n)
{
  Vol in = { 4, 6, 5 }, v;
  ConvSpec cs = { 4, 3, 3, 1, 1, 1, 1, 1, 1, 1 };
  g_autofree double *a = ref_conv (x, n, in, &cs, weight (r, "c1"), bias (r, "c1"), &v);
  g_autofree double *b = ref_bn (a, n, v, r, "n1", 1e-5);
  ref_pointwise (b, n * vsize (v), PW_RELU, 0);
  g_autofree double *c = ref_conv (b, n, v, &cs, weight (r, "c2"), bias (r, "c2"), &v);
  double *d = ref_bn (c, n, v, r, "n2", 1e-5);
  for (gsize i = 0; i < n * vsize (v); i++)
    d[i] += x[i];
  ref_pointwise (d, n * vsize (v), PW_RELU, 0);
  return d;
}

/* conv-bn-relu-conv-bn plus the identity, then relu, at inference with running statistics set
 * by hand, before the executor is made and again after, pushed with cs_exec_sync_from_net. */
static void
test_forward_residual (void)
{
  Rig *r = rig_new (RESIDUAL, 2);
  set_bn (r, "n1", 0.3);
  set_bn (r, "n2", 1.1);
  g_autofree double *x = input_as_double (r);
  g_autofree double *want = ref_residual (r, x, 2);
  rig_exec (r, FALSE, 1);
  g_autofree double *got = forward (r);
  assert_close (got, want, 2 * 4 * 6 * 5, 1e-4);

  GError *error = NULL;
  set_bn (r, "n1", 2.0);
  set_bn (r, "n2", -0.7);
  g_assert_true (cs_exec_sync_from_net (r->x, &error));
  g_assert_no_error (error);
  g_autofree double *want2 = ref_residual (r, x, 2);
  g_autofree double *got2 = forward (r);
  assert_close (got2, want2, 2 * 4 * 6 * 5, 1e-4);
  double moved = 0;
  for (gsize i = 0; i < 2 * 4 * 6 * 5; i++)
    moved = MAX (moved, fabs (want2[i] - want[i]));
  g_assert_cmpfloat (moved, >, 0.1);
  rig_free (r);
}

/* ---- The memory plan ------------------------------------------------------------------------ */

#define CHAIN20 \
  "input 16x16x3\n" \
  "block stage(c) { conv c 3x3 pad 1; relu; conv c 3x3 pad 1; relu; maxpool 2x2 stride 2 }\n" \
  "stage(4); stage(8); stage(8)\n" \
  "flatten; f1: fc 16; relu; f2: fc 10; softmax\n"

static double *
ref_chain20 (Rig *r, const double *x, int n)
{
  Vol v = { 3, 16, 16 };
  PoolSpec ps = { 2, 2, 2, 2, 0, 0, FALSE, FALSE };
  double *cur = g_memdup2 (x, n * vsize (v) * sizeof (double));
  guint conv = 0;
  for (int s = 0; s < 3; s++)
    {
      for (int k = 0; k < 2; k++)
        {
          /* Unnamed layers in block calls are MODULE/convN. */
          g_autofree char *name = g_strdup_printf ("stage%d/conv%d", s + 1, k + 1);
          ConvSpec cs = { s == 0 ? 4 : 8, 3, 3, 1, 1, 1, 1, 1, 1, 1 };
          double *next = ref_conv (cur, n, v, &cs, weight (r, name), bias (r, name), &v);
          g_free (cur);
          cur = next;
          ref_pointwise (cur, n * vsize (v), PW_RELU, 0);
          conv++;
        }
      double *next = ref_pool (cur, n, v, &ps, TRUE, &v);
      g_free (cur);
      cur = next;
    }
  g_assert_cmpuint (conv, ==, 6);
  double *h = ref_fc (cur, n, v, weight (r, "f1"), bias (r, "f1"), 16);
  g_free (cur);
  ref_pointwise (h, n * 16, PW_RELU, 0);
  double *z = ref_fc (h, n, (Vol) { 16, 1, 1 }, weight (r, "f2"), bias (r, "f2"), 10);
  g_free (h);
  double *p = ref_softmax (z, n, (Vol) { 10, 1, 1 });
  g_free (z);
  return p;
}

/* A 20-layer chain at inference: the plan reuses buffers and runs the rectifiers and the softmax
 * in place, takes less than a buffer per layer, and gives the values of the reference and of a
 * training executor (which keeps every activation). */
static void
test_plan_chain (void)
{
  Rig *r = rig_new (CHAIN20, 3);
  g_assert_cmpuint (cs_graph_n_nodes (r->g), ==, 21);
  g_autofree double *x = input_as_double (r);
  g_autofree double *want = ref_chain20 (r, x, 3);
  rig_exec (r, FALSE, 1);
  const CsExecPlan *plan = cs_exec_plan (r->x);
  g_test_message ("inference: planned %" G_GUINT64_FORMAT " bytes, naive %" G_GUINT64_FORMAT
                  ", %u in place", plan->planned_bytes, plan->naive_bytes, plan->n_inplace);
  /* The plan's activations against every output in its own buffer; the workspace (column
   * matrices, sized by the backend) is reported apart. */
  g_assert_cmpuint (plan->planned_bytes, ==, plan->activation_bytes + plan->gradient_bytes
                                             + plan->saved_bytes + plan->workspace_bytes);
  g_assert_cmpuint (plan->activation_bytes, <, plan->naive_bytes / 2);
  g_assert_cmpuint (plan->n_inplace, ==, 8);    /* 7 relus and the softmax */
  g_autofree double *inf = forward (r);
  assert_close (inf, want, 30, 1e-4);

  /* Another input, then the first again: nothing stale survives between passes. */
  g_autofree float *first = g_memdup2 (r->input, r->in_len * sizeof (float));
  rig_set_input (r, 77);
  g_autofree double *other = forward (r);
  memcpy (r->input, first, r->in_len * sizeof (float));
  g_autofree double *again = forward (r);
  for (gsize i = 0; i < 30; i++)
    g_assert_cmpfloat (again[i], ==, inf[i]);
  gboolean differs = FALSE;
  for (gsize i = 0; i < 30; i++)
    differs |= other[i] != inf[i];
  g_assert_true (differs);

  /* Fewer images than planned. */
  GError *error = NULL;
  float one[10];
  g_assert_true (cs_exec_forward (r->x, r->input + 2 * r->in_len / 3, 1, &error));
  g_assert_no_error (error);
  g_assert_true (cs_exec_get_output (r->x, one, &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < 10; i++)
    g_assert_cmpfloat_with_epsilon (one[i], inf[20 + i], 1e-6);

  rig_exec (r, TRUE, 1);
  g_test_message ("training: planned %" G_GUINT64_FORMAT " bytes, naive %" G_GUINT64_FORMAT
                  ", %u in place", cs_exec_plan (r->x)->planned_bytes,
                  cs_exec_plan (r->x)->naive_bytes, cs_exec_plan (r->x)->n_inplace);
  g_autofree double *tr = forward (r);
  for (gsize i = 0; i < 30; i++)
    g_assert_cmpfloat_with_epsilon (tr[i], inf[i], 1e-6);
  rig_free (r);
}

/* A shared input read by four branches, and a residual sum: inference with reuse against the
 * reference and against a training executor. */
static void
test_plan_branchy (void)
{
  const char *text =
    "input 9x8x6\n"
    "stem: conv 6 3x3 pad 1\n"
    "add { { concat {\n"
    "  { b1: conv 4 1x1; relu }\n"
    "  { b2r: conv 3 1x1; relu; b2: conv 5 3x3 pad 1; relu }\n"
    "  { b3r: conv 2 1x1; relu; b3: conv 3 5x5 pad 2; relu }\n"
    "  { p: maxpool 3x3 stride 1 pad 1; b4: conv 2 1x1; relu } }; proj: conv 6 1x1 } { } }\n"
    "relu\nidentity\n";
  Rig *r = rig_new (text, 2);
  g_autofree double *x = input_as_double (r);
  Vol v = { 6, 9, 8 }, u;
  ConvSpec c3 = { 6, 3, 3, 1, 1, 1, 1, 1, 1, 1 }, c1 = { 6, 1, 1, 1, 1, 0, 0, 1, 1, 1 };
  g_autofree double *s = ref_conv (x, 2, v, &c3, weight (r, "stem"), bias (r, "stem"), &v);
  g_autofree double *m = ref_inception (r, s, 2, &u);
  double *want = ref_conv (m, 2, u, &c1, weight (r, "proj"), bias (r, "proj"), &u);
  for (gsize i = 0; i < 2 * vsize (u); i++)
    want[i] += s[i];
  ref_pointwise (want, 2 * vsize (u), PW_RELU, 0);

  rig_exec (r, FALSE, 1);
  const CsExecPlan *plan = cs_exec_plan (r->x);
  g_assert_cmpuint (plan->activation_bytes + plan->gradient_bytes, <=, plan->naive_bytes);
  g_autofree double *inf = forward (r);
  assert_close (inf, want, 2 * vsize (u), 1e-4);
  rig_exec (r, TRUE, 1);
  g_autofree double *tr = forward (r);
  for (gsize i = 0; i < 2 * vsize (u); i++)
    g_assert_cmpfloat_with_epsilon (tr[i], inf[i], 1e-6);
  g_free (want);
  rig_free (r);
}

/* A value read by two in-place kinds: neither may overwrite it, whichever runs first. */
static void
test_plan_shared_input (void)
{
  Rig *r = rig_new ("input 5x4x3\nstem: conv 3 3x3 pad 1\n"
                    "add { { tanh; c: conv 3 1x1 } { sigmoid } }\n", 2);
  g_autofree double *x = input_as_double (r);
  Vol v = { 3, 5, 4 };
  ConvSpec c3 = { 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 }, c1 = { 3, 1, 1, 1, 1, 0, 0, 1, 1, 1 };
  g_autofree double *s = ref_conv (x, 2, v, &c3, weight (r, "stem"), bias (r, "stem"), &v);
  gsize n = 2 * vsize (v);
  g_autofree double *t = g_memdup2 (s, n * sizeof (double));
  ref_pointwise (t, n, PW_TANH, 0);
  ref_pointwise (s, n, PW_SIGMOID, 0);
  g_autofree double *want = ref_conv (t, 2, v, &c1, weight (r, "c"), bias (r, "c"), &v);
  for (gsize i = 0; i < n; i++)
    want[i] += s[i];
  for (int training = 0; training < 2; training++)
    {
      rig_exec (r, training, 1);
      g_autofree double *got = forward (r);
      assert_close (got, want, n, 1e-5);
    }
  rig_free (r);
}

/* A device-memory backend (the CPU told it is not host memory, so the executor keeps its own
 * copies of the parameters in blocks) trains bit for bit as the host path does, and updates all
 * weights with one SGD call and all biases with another. */
static guint sgd_calls;
static gboolean (*cpu_sgd) (CsBackend *, float *, const float *, float *, gsize, float, float,
                            float, GError **);

static gboolean
counting_sgd (CsBackend *be, float *w, const float *g, float *m, gsize n, float lr,
              float momentum, float decay, GError **error)
{
  sgd_calls++;
  return cpu_sgd (be, w, g, m, n, lr, momentum, decay, error);
}

static void
test_param_blocks (void)
{
  const char *text = IN "stem: conv 4 3x3 pad 1 nobias\nbn\nrelu\n"
                     "add { { a: conv 4 3x3 pad 1; bn; relu; b: conv 4 1x1 } { } }\n"
                     "aux weight 0.4 { aux_fc: fc 4; softmax }\n" HEAD;
  Rig *host = rig_new (text, 3), *dev = rig_new (text, 3);
  dev->be->host_memory = FALSE;
  cpu_sgd = dev->be->sgd;
  dev->be->sgd = counting_sgd;
  rig_exec (host, TRUE, 9);
  rig_exec (dev, TRUE, 9);
  GError *error = NULL;
  for (guint step = 0; step < 3; step++)
    {
      CsStepResult a, b;
      sgd_calls = 0;
      g_assert_true (cs_exec_train_step (host->x, host->input, host->labels, 3, 0.05f, 0.9f,
                                         1e-3f, &a, &error));
      g_assert_true (cs_exec_train_step (dev->x, dev->input, dev->labels, 3, 0.05f, 0.9f, 1e-3f,
                                         &b, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (sgd_calls, ==, 2);
      g_assert_cmpfloat (a.loss, ==, b.loss);
    }
  g_assert_true (cs_exec_sync_to_net (dev->x, &error));
  g_assert_no_error (error);
  /* stem, a, b, aux_fc, post, the last fc with their biases, both batch norms' four tensors */
  g_assert_cmpuint (assert_same_tensors (host, dev, 0), >=, 16);
  rig_free (host);
  rig_free (dev);
}

/* The CPU kernels share their loops out between threads so that each value is computed by one
 * thread in one order: a training step gives the same bits on one thread as on three. The shapes
 * are large enough for every parallel loop to run on several threads (Winograd's transforms, the
 * column matrix, pooling, normalisation, joins, groups shared out) and for max pooling to meet
 * ties. OpenBLAS's tuned kernels give the same bits too; its generic ones (test-cpu-generic)
 * round some products differently when the threads share them out otherwise, so there the
 * results agree to 1e-5. */
static void
test_threads_same_bits (void)
{
#ifndef _OPENMP
  g_test_skip ("built without OpenMP: the CPU kernels run on one thread");
#else
  const char *text = "input 48x48x3\nc1: conv 16 3x3 pad 1\nbn\nrelu\n"
                     "c2: conv 16 3x3 pad 1 nobias\nbn\nrelu\nlrn 5\n"
                     "concat { { conv 8 1x1 } { conv 8 3x3 pad 1 } }\nrelu\n"
                     "maxpool 3x3 stride 2 pad 1\nadd { { conv 16 1x1; bn } { } }\n"
                     "conv 16 3x3 pad 1 groups 8\n"
                     "sigmoid\navgpool 2x2 stride 2\ndropout 0.3\nfc 10\nsoftmax\n";
  int was = omp_get_max_threads ();
  Rig *r[2];
  CsStepResult res[2][3];
  for (int k = 0; k < 2; k++)
    {
      omp_set_num_threads (k == 0 ? 1 : 3);
      r[k] = rig_new (text, 3);
      rig_exec (r[k], TRUE, 5);  /* planned for this many threads */
      train_steps (r[k], 3, res[k]);
    }
  omp_set_num_threads (was);
  gboolean exact = !cs_blas_generic ();
  for (guint step = 0; step < 3; step++)
    if (exact)
      g_assert_cmpfloat (res[0][step].loss, ==, res[1][step].loss);
    else
      g_assert_cmpfloat_with_epsilon (res[0][step].loss, res[1][step].loss, 1e-5);
  g_assert_cmpfloat (res[0][0].loss, !=, res[0][2].loss);  /* the steps did change the weights */
  assert_same_tensors (r[0], r[1], exact ? 0 : 1e-5);
  rig_free (r[0]);
  rig_free (r[1]);
#endif
}

/* Inference folds a batch norm right after a convolution (its only reader) into it, and a ReLU
 * after either: the outputs of the layers as written, to rounding; batch norms and ReLUs after
 * other kinds stay; the fold follows the parameters when they change. The softmax is left out
 * so that the logits are compared. */
static double
max_rel_diff (const double *a, const double *b, gsize n)
{
  double diff = 0, scale = 0;
  for (gsize i = 0; i < n; i++)
    diff = MAX (diff, fabs (a[i] - b[i])), scale = MAX (scale, fabs (b[i]));
  return diff / scale;
}

static void
test_fold_bn (void)
{
  Rig *r = rig_new (IN "c1: conv 4 3x3 pad 1 nobias\nbn1: bn\nrelu\nc2: conv 5 3x3 pad 1\nbn2: bn\n"
                    "add { { c3: conv 5 1x1; bn3: bn } { } }\nrelu\nc4: conv 5 1x1 nobias\nrelu\n"
                    "post: fc 6\nbn4: bn\nrelu\nfc 4\n", 3);
  for (guint t = 0; t < r->net->tensors->len; t++)
    {
      CsTensor *ten = r->net->tensors->pdata[t];
      gboolean mean = g_str_has_suffix (ten->name, ".running_mean");
      if (mean || g_str_has_suffix (ten->name, ".running_var"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (mean ? 0.3 * unif (300 + t, i) : 0.6 + 0.5 * unif (300 + t, i));
    }
  gsize n = out_len (r, cs_graph_output (r->g));

  rig_exec_flags (r, CS_EXEC_UNFUSED, 0);
  g_assert_cmpuint (cs_exec_plan (r->x)->n_folded, ==, 0);
  g_assert_cmpuint (cs_exec_plan (r->x)->n_fused_relus, ==, 0);
  g_autofree double *want = forward (r);
  rig_exec (r, FALSE, 0);
  g_assert_cmpuint (cs_exec_plan (r->x)->n_folded, ==, 3);  /* not bn4, after an fc */
  /* After bn1 and c4 by the convolution, after the sum by it, after bn4 by the batch norm. */
  g_assert_cmpuint (cs_exec_plan (r->x)->n_fused_relus, ==, 4);
  g_autofree double *got = forward (r);
  g_assert_cmpfloat (max_rel_diff (got, want, n), <, 1e-6);
  g_assert_cmpfloat (max_rel_diff (got, want, n), >, 0);  /* it did run differently */

  /* New statistics for bn1, pushed to the executor, are folded again. */
  gint idx = r->net->run_mean[node (r, "bn1")->id];
  g_assert_cmpint (idx, >=, 0);
  CsTensor *m1 = r->net->tensors->pdata[idx];
  for (gsize i = 0; i < m1->numel; i++)
    m1->data[i] += 0.25f;
  GError *error = NULL;
  g_assert_true (cs_exec_sync_from_net (r->x, &error));
  g_assert_no_error (error);
  g_autofree double *moved = forward (r);
  g_assert_cmpfloat (max_rel_diff (moved, got, n), >, 1e-3);
  rig_exec_flags (r, CS_EXEC_UNFUSED, 0);
  g_autofree double *moved_want = forward (r);
  g_assert_cmpfloat (max_rel_diff (moved, moved_want, n), <, 1e-6);
  rig_free (r);
}

/* In training, a ReLU right after a batch norm or a sum is applied by that layer, whose backward
 * masks the gradient: the same sums in the same order as the two layers as written (each checked
 * by finite differences above), so the same bits after a few steps. Not when every gradient is
 * kept (the layer's own would be missing), nor after a convolution. */
static void
test_fuse_relu_training (void)
{
  const char *text = IN "c1: conv 4 3x3 pad 1 nobias\nbn\nrelu\nc2: conv 4 3x3 pad 1\nrelu\n"
                     "add { { c3: conv 4 3x3 pad 1; bn; relu; c4: conv 4 1x1; bn } { } }\nrelu\n"
                     "mean { { c5: conv 4 3x3 pad 1 } { c6: conv 4 1x1 } }\nrelu\n"
                     "post: fc 6\nbn\nrelu\nfc 4\n";
  Rig *r[2] = { rig_new (text, 3), rig_new (text, 3) };
  rig_exec_flags (r[0], CS_EXEC_TRAINING, 4);
  rig_exec_flags (r[1], CS_EXEC_TRAINING | CS_EXEC_UNFUSED, 4);
  g_assert_cmpuint (cs_exec_plan (r[0]->x)->n_fused_relus, ==, 5);
  g_assert_cmpuint (cs_exec_plan (r[0]->x)->n_folded, ==, 0);
  g_assert_cmpuint (cs_exec_plan (r[1]->x)->n_fused_relus, ==, 0);
  CsStepResult res[2][3];
  train_steps (r[0], 3, res[0]);
  train_steps (r[1], 3, res[1]);
  for (guint step = 0; step < 3; step++)
    g_assert_cmpfloat (res[0][step].loss, ==, res[1][step].loss);
  assert_same_tensors (r[0], r[1], 0);
  rig_exec_flags (r[0], CS_EXEC_TRAINING | CS_EXEC_KEEP_GRADIENTS, 4);
  g_assert_cmpuint (cs_exec_plan (r[0]->x)->n_fused_relus, ==, 0);
  rig_free (r[0]);
  rig_free (r[1]);
}

/* Max pooling sends each window's gradient to its first maximum in scan order (smallest row,
 * then column), which matters where values tie: here every value is 0 (a zero 1x1 convolution
 * before the pool), as after a ReLU, and windows overlap and reach into the padding. By rows
 * (stride 2, ceil: the last window starts in the padding's edge) and by chunks of planes (stride
 * 1, outputs as large as the inputs: cs-cpu.c's maxpool_same). */
typedef struct {
  const char *pool;
  int stride, pad, oh, ow;
} TieCase;

static void
test_maxpool_ties (gconstpointer data)
{
  const TieCase *c = data;
  g_autofree char *text = g_strdup_printf ("input 7x8x2\npre: conv 2 1x1\npool: %s\n"
                                           "logits: fc 4\nsoftmax\n", c->pool);
  Rig *r = rig_new (text, 2);
  memset (weight (r, "pre")->data, 0, weight (r, "pre")->numel * sizeof (float));
  memset (bias (r, "pre")->data, 0, bias (r, "pre")->numel * sizeof (float));
  rig_exec_flags (r, CS_EXEC_TRAINING | CS_EXEC_KEEP_GRADIENTS, 1);
  train_step (r);
  const CsNode *pre = node (r, "pre"), *pool = node (r, "pool");
  GError *error = NULL;
  g_autofree float *dy = g_new (float, out_len (r, pool));
  g_autofree float *dx = g_new (float, out_len (r, pre));
  g_assert_true (cs_exec_get_gradient (r->x, pool->id, dy, &error));
  g_assert_true (cs_exec_get_gradient (r->x, pre->id, dx, &error));
  g_assert_no_error (error);
  int H = 7, W = 8, OH = (int) pool->shape.h, OW = (int) pool->shape.w;
  g_assert_cmpint (OH, ==, c->oh);
  g_assert_cmpint (OW, ==, c->ow);
  g_autofree double *want = g_new0 (double, out_len (r, pre));
  for (guint pl = 0; pl < r->batch * 2; pl++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++)
        {
          int h0 = MAX (oh * c->stride - c->pad, 0), w0 = MAX (ow * c->stride - c->pad, 0);
          if (h0 < H && w0 < W)
            want[pl * H * W + h0 * W + w0] += dy[(pl * OH + oh) * OW + ow];
        }
  for (gsize i = 0; i < out_len (r, pre); i++)
    if (!(fabs (dx[i] - want[i]) <= 1e-7))
      g_error ("input gradient %" G_GSIZE_FORMAT ": got %.9g, want %.9g", i, dx[i], want[i]);
  rig_free (r);
}

int
main (int argc, char **argv)
{
  /* The kernels the programs run with; test-cpu-generic runs OpenBLAS's own choice. */
  cs_blas_init (argv);
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (grad_cases); i++)
    g_test_add_data_func (grad_cases[i].path, &grad_cases[i], test_grad_case);
  for (guint i = 0; i < G_N_ELEMENTS (kink_cases); i++)
    g_test_add_data_func (kink_cases[i].path, &kink_cases[i], test_kink_case);
  g_test_add_func ("/cpu/grad/droppath/kept", test_droppath_kept);
  g_test_add_func ("/cpu/grad/droppath/dropped", test_droppath_dropped);
  g_test_add_func ("/cpu/grad/mean-droppath", test_grad_mean_droppath);
  g_test_add_func ("/cpu/droppath/rate", test_droppath_rate);
  g_test_add_func ("/cpu/stochastic/identity", test_stochastic_identity);
  g_test_add_func ("/cpu/dropout/mask", test_dropout_mask);
  g_test_add_func ("/cpu/mean/droppath-forward", test_mean_droppath_forward);
  g_test_add_func ("/cpu/bn/running-stats", test_bn_running_stats);
  g_test_add_func ("/cpu/bn/training-forward", test_bn_training_forward);
  g_test_add_func ("/cpu/exec/node-gradients", test_node_gradients);
  static const TieCase ties[] = { { "maxpool 3x3 stride 2 pad 1 ceil", 2, 1, 4, 5 },
                                  { "maxpool 3x3 stride 1 pad 1", 1, 1, 7, 8 } };
  g_test_add_data_func ("/cpu/maxpool/ties", &ties[0], test_maxpool_ties);
  g_test_add_data_func ("/cpu/maxpool/ties-same-size", &ties[1], test_maxpool_ties);
  for (guint i = 0; i < G_N_ELEMENTS (fwd_cases); i++)
    g_test_add_data_func (fwd_cases[i].path, &fwd_cases[i], test_forward_case);
  g_test_add_func ("/cpu/forward/by-hand", test_forward_by_hand);
  g_test_add_func ("/cpu/backward/conv/winograd-filters", test_winograd_filter_gradient);
  g_test_add_func ("/cpu/forward/small-convnet", test_forward_small_convnet);
  g_test_add_func ("/cpu/forward/inception", test_forward_inception);
  g_test_add_func ("/cpu/forward/residual", test_forward_residual);
  g_test_add_func ("/cpu/plan/chain", test_plan_chain);
  g_test_add_func ("/cpu/plan/param-blocks", test_param_blocks);
  g_test_add_func ("/cpu/plan/fold-bn", test_fold_bn);
  g_test_add_func ("/cpu/plan/fuse-relu-training", test_fuse_relu_training);
  g_test_add_func ("/cpu/threads/same-bits", test_threads_same_bits);
  g_test_add_func ("/cpu/plan/branchy", test_plan_branchy);
  g_test_add_func ("/cpu/plan/shared-input", test_plan_shared_input);
  return g_test_run ();
}
