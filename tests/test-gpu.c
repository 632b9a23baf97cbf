/* Tests of the CUDA backend against the CPU backend: every layer kind's forward, parameter
 * gradients and batch-norm statistics, and whole training steps, in fp32 and tf32. Without a
 * usable GPU every test is skipped with the reason.
 *
 * With CNNSCOPE_TEST_GPU_HARNESS=1 a second CPU backend stands in for the GPU: the comparisons
 * then check the tests themselves (every case parses, plans and runs, the harness compares what
 * it should) where no GPU is at hand, and the tests of the CUDA backend's own parts skip. */
#include "cs-device.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-parser.h"
#include "cs-profile.h"
#include "cs-train.h"
#include "cs-zoo.h"
#include "test-util.h"

#include <math.h>
#include <string.h>

/* ---- the CUDA backend, opened once per math mode ------------------------------------------ */

static CsBackend *cuda[2];
static char *cuda_error[2];
static gboolean harness;        /* a CPU backend stands in for the GPU */

/* The backend, or NULL after g_test_skip with the reason. */
static CsBackend *get_cuda (CsMath math);

/* The CUDA backend itself, not a stand-in, or NULL after g_test_skip. */
static CsBackend *
get_real_cuda (CsMath math)
{
  if (harness)
    {
      g_test_skip ("tests the CUDA backend's own parts: no stand-in");
      return NULL;
    }
  return get_cuda (math);
}

static CsBackend *
get_cuda (CsMath math)
{
  g_assert_true (math == CS_MATH_FP32 || math == CS_MATH_TF32);
  if (cuda[math] == NULL && cuda_error[math] == NULL)
    {
      GError *error = NULL;
      cuda[math] = harness ? cs_cpu_backend_new () : cs_backend_open ("cuda", math, NULL, &error);
      if (cuda[math] == NULL)
        {
          cuda_error[math] = g_strdup (error->message);
          g_error_free (error);
        }
      else
        g_test_message ("CUDA backend: %s", cuda[math]->description);
    }
  if (cuda[math] == NULL)
    g_test_skip (cuda_error[math]);
  return cuda[math];
}

static double
tolerance (CsMath math)
{
  return math == CS_MATH_FP32 ? 1e-5 : 1e-3;
}

/* Relative error of GOT against WANT: the largest difference over the largest value. */
static void
assert_close (const char *what, const float *got, const float *want, gsize n, double tol)
{
  double diff = 0, scale = 0;
  gsize worst = 0;
  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (got[i]));
      double d = fabs ((double) got[i] - want[i]);
      if (d > diff)
        diff = d, worst = i;
      scale = MAX (scale, fabs (want[i]));
    }
  double rel = diff / MAX (scale, 1e-30);
  if (rel > tol)
    g_error ("%s: relative error %g > %g (element %" G_GSIZE_FORMAT ": gpu %.9g, cpu %.9g, "
             "largest |value| %g)", what, rel, tol, worst, got[worst], want[worst], scale);
}

/* ---- one graph on one backend ------------------------------------------------------------- */

typedef struct {
  CsGraph *g;
  CsNet *net;
  CsExec *x;
  float *input;
  gsize in_len;
  guint labels[16];
} Side;

/* The same graph, parameters and input on each side: He initialisation, then biases, batch-norm
 * scales and running statistics away from 0 and 1, so that no term vanishes by construction. */
static void
side_init (Side *s, const char *text, guint batch)
{
  GError *error = NULL;
  s->g = cs_parse_model ("t.cnn", text, strlen (text), &error);
  g_assert_no_error (error);
  s->net = cs_net_new (s->g, &error);
  g_assert_no_error (error);
  cs_net_init (s->net, 1, FALSE);
  for (guint t = 0; t < s->net->tensors->len; t++)
    {
      CsTensor *ten = s->net->tensors->pdata[t];
      if (g_str_has_suffix (ten->name, ".bias"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (0.2 * unif (100 + t, i));
      else if (ten->rank == 1 && g_str_has_suffix (ten->name, ".weight"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (1.0 + 0.4 * unif (200 + t, i));
      else if (g_str_has_suffix (ten->name, ".running_mean"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (0.3 * unif (300 + t, i));
      else if (g_str_has_suffix (ten->name, ".running_var"))
        for (gsize i = 0; i < ten->numel; i++)
          ten->data[i] = (float) (1.0 + 0.5 * unif (400 + t, i));
    }
  const CsNode *in = cs_graph_node (s->g, 0);
  s->in_len = (gsize) batch * in->shape.c * in->shape.h * in->shape.w;
  s->input = g_new (float, s->in_len);
  for (gsize i = 0; i < s->in_len; i++)
    s->input[i] = (float) (3.0 * unif (1, i));
  const CsNode *out = cs_graph_output (s->g);
  guint classes = out->shape.c * out->shape.h * out->shape.w;
  for (guint i = 0; i < batch && i < G_N_ELEMENTS (s->labels); i++)
    s->labels[i] = (3 * i + 1) % classes;
}

static void
side_clear (Side *s)
{
  cs_exec_free (s->x);
  cs_net_free (s->net);
  cs_graph_unref (s->g);
  g_free (s->input);
}

static float *
side_output (Side *s, guint batch, gsize *n)
{
  GError *error = NULL;
  const CsNode *o = cs_graph_output (s->g);
  *n = (gsize) batch * o->shape.c * o->shape.h * o->shape.w;
  float *out = g_new (float, *n);
  g_assert_true (cs_exec_get_output (s->x, out, &error));
  g_assert_no_error (error);
  return out;
}

/* ---- the cases ---------------------------------------------------------------------------- */

#define IN "input 7x6x2\n"
#define PRE "pre: conv 3 3x3 pad 1\n"
#define HEAD "post: fc 6\nfc 4\nsoftmax\n"
#define CHAIN(layer) IN PRE "t: " layer "\n" HEAD

typedef struct {
  const char *name;
  const char *text;
  guint batch;
} Case;

static const Case cases[] = {
  { "conv/3x3-pad1", CHAIN ("conv 4 3x3 pad 1"), 2 },
  { "conv/stride2", CHAIN ("conv 4 3x3 stride 2"), 2 },
  { "conv/4x4-stride3-pad2", CHAIN ("conv 4 4x4 stride 3 pad 2"), 2 },
  { "conv/5x5-pad-same", CHAIN ("conv 4 5x5 pad same"), 2 },
  { "conv/dilation2", CHAIN ("conv 4 3x3 dilation 2 pad 1"), 2 },
  { "conv/anisotropic", CHAIN ("conv 4 3x2 stride 2x3 pad 1x0 dilation 1x2"), 2 },
  { "conv/1x3", CHAIN ("conv 5 1x3 pad 0x1"), 2 },
  { "conv/pointwise", CHAIN ("conv 5 1x1"), 2 },
  { "conv/1x1-pad1", CHAIN ("conv 4 1x1 pad 1"), 2 },
  { "conv/pad-beyond-kernel", CHAIN ("conv 4 2x2 pad 2"), 2 },
  { "conv/nobias", CHAIN ("conv 4 3x3 nobias"), 2 },
  { "conv/groups2", IN "pre: conv 4 3x3 pad 1\nt: conv 6 3x3 pad 1 groups 2\n" HEAD, 2 },
  { "conv/depthwise", IN "pre: conv 4 3x3 pad 1\nt: conv 4 3x3 pad 1 groups 4\n" HEAD, 2 },
  { "conv/groups2-stride2-nobias",
    IN "pre: conv 4 3x3 pad 1\nt: conv 6 3x3 stride 2 groups 2 nobias\n" HEAD, 3 },
  { "conv/on-input", IN "t: conv 3 3x3 pad 1\n" HEAD, 2 },
  { "conv/wide", "input 16x16x8\nt: conv 32 3x3 pad 1\nrelu\nu: conv 16 3x3 stride 2 pad 1\n"
    "avgpool global\nfc 10\n", 4 },
  { "maxpool/3x3-stride2-ceil", CHAIN ("maxpool 3x3 stride 2 ceil"), 2 },
  { "maxpool/3x3-stride2-pad1-ceil", CHAIN ("maxpool 3x3 stride 2 pad 1 ceil"), 2 },
  { "maxpool/3x3-stride1-pad1", CHAIN ("maxpool 3x3 stride 1 pad 1"), 2 },
  { "maxpool/2x3-stride2x1", CHAIN ("maxpool 2x3 stride 2x1"), 2 },
  { "maxpool/global", CHAIN ("maxpool global"), 2 },
  { "maxpool/1x1-stride2-ceil", CHAIN ("maxpool 1x1 stride 2 ceil"), 2 },
  { "avgpool/2x2", CHAIN ("avgpool 2x2"), 2 },
  { "avgpool/3x3-stride2-ceil", CHAIN ("avgpool 3x3 stride 2 ceil"), 2 },
  { "avgpool/3x3-stride1-pad1", CHAIN ("avgpool 3x3 stride 1 pad 1"), 2 },
  { "avgpool/3x3-stride2-pad1-ceil", CHAIN ("avgpool 3x3 stride 2 pad 1 ceil"), 2 },
  { "avgpool/2x2-stride3-pad1-ceil", CHAIN ("avgpool 2x2 stride 3 pad 1 ceil"), 2 },
  { "avgpool/global", CHAIN ("avgpool global"), 2 },
  { "avgpool/1x1-stride2-ceil", CHAIN ("avgpool 1x1 stride 2 ceil"), 2 },
  { "lrn/strong", IN "pre: conv 5 3x3 pad 1\nt: lrn 3 alpha 0.5 beta 0.75 k 1\n" HEAD, 2 },
  { "lrn/default", IN "pre: conv 6 3x3 pad 1\nt: lrn 5\n" HEAD, 2 },
  { "lrn/wider-than-depth", IN "pre: conv 4 3x3 pad 1\nt: lrn 7 alpha 2 beta 1.5 k 0.5\n" HEAD,
    2 },
  { "bn/spatial", CHAIN ("bn"), 4 },
  { "bn/batch3-eps-momentum", CHAIN ("bn eps 0.1 momentum 0.3"), 3 },
  { "bn/noaffine", CHAIN ("bn noaffine"), 3 },
  { "bn/vector", IN PRE "pre2: fc 5\nt: bn\n" HEAD, 4 },
  { "bn/on-input", IN "t: bn\n" HEAD, 3 },
  { "relu", CHAIN ("relu"), 2 },
  { "leakyrelu", CHAIN ("leakyrelu 0.2"), 2 },
  { "sigmoid", CHAIN ("sigmoid"), 2 },
  { "tanh", CHAIN ("tanh"), 2 },
  { "dropout", CHAIN ("dropout 0.3"), 2 },
  { "droppath/0.7", CHAIN ("droppath 0.7"), 2 },
  { "droppath/0.2", CHAIN ("droppath 0.2"), 2 },
  { "fc/spatial", CHAIN ("fc 7"), 2 },
  { "fc/nobias", CHAIN ("fc 7 nobias"), 2 },
  { "fc/vector", IN PRE "pre2: fc 8\nt: fc 7\n" HEAD, 3 },
  { "flatten", CHAIN ("flatten"), 2 },
  { "softmax-middle", CHAIN ("softmax"), 2 },
  { "identity", CHAIN ("identity"), 2 },
  { "concat", IN PRE "concat { { a: conv 2 1x1 } { b: conv 4 3x3 pad 1 } { } "
    "{ avgpool 3x3 stride 1 pad 1; c: conv 1 1x1 } }\n" HEAD, 2 },
  { "add", IN PRE "add { { a: conv 3 3x3 pad 1; tanh; b: conv 3 3x3 pad 1 } { } }\n" HEAD, 2 },
  { "mean", IN PRE "mean { { a: conv 3 3x3 pad 1 } { b: conv 3 1x1 } { } }\n" HEAD, 2 },
  { "mean-droppath", IN PRE "mean droppath 0.3 { { a: conv 3 3x3 pad 1 } { b: conv 3 1x1 } "
    "{ } }\n" HEAD, 2 },
  { "mean-relu", IN PRE "mean droppath 0.3 { { a: conv 3 3x3 pad 1 } { b: conv 3 1x1 } "
    "{ c: conv 3 3x3 pad 1 } { d: conv 3 1x1 } { e: conv 3 1x1 } { } }\nrelu\n" HEAD, 2 },
  { "branchy", IN "stem: conv 4 3x3 pad 1\n"
    "mod: add { { concat { { b1: conv 2 1x1 } { b2r: conv 2 1x1; tanh; b2: conv 3 3x3 pad 1 } "
    "{ b3r: conv 1 1x1; sigmoid; b3: conv 2 5x5 pad 2 } "
    "{ avgpool 3x3 stride 1 pad 1; b4: conv 1 1x1 } }; proj: conv 4 1x1 } { } }\n"
    "tanh\n" HEAD, 2 },
  { "aux", IN PRE "aux weight 0.5 { a: fc 4; softmax }\nmid: conv 3 3x3 pad 1\ntanh\n" HEAD, 2 },
  { "inplace-hazards",
    IN PRE "sigmoid\ndropout 0.3\nc2: conv 4 3x3 pad 1\ntanh\nidentity\nc3: conv 4 1x1\n"
    "softmax\nidentity\nc4: conv 5 1x1\nlrn 3 alpha 0.5 beta 0.75 k 1\ndropout 0.2\n"
    "c5: conv 3 1x1\nbn\ntanh\n" HEAD, 3 },
  { "shared-input", IN "stem: conv 3 3x3 pad 1\nadd { { tanh; c: conv 3 1x1 } { sigmoid } }\n"
    HEAD, 2 },
  { "head-without-softmax", IN PRE "t: tanh\nlast: fc 4\n", 2 },
  { "residual-bn", "input 6x5x4\n"
    "add { { c1: conv 4 3x3 pad 1; n1: bn; relu; c2: conv 4 3x3 pad 1; n2: bn } { } }\n"
    "relu\nmaxpool 2x2\nfc 5\n", 4 },
};

typedef struct {
  const Case *c;
  CsMath math;
} Test;

/* Inference forward: the outputs agree. */
static void
test_forward (gconstpointer data)
{
  const Test *t = data;
  CsBackend *gpu = get_cuda (t->math);
  if (gpu == NULL)
    return;
  g_autoptr (CsBackend) cpu = cs_cpu_backend_new ();
  GError *error = NULL;
  Side s[2] = { 0 };
  CsBackend *be[2] = { cpu, gpu };
  float *out[2];
  gsize n[2];
  for (int k = 0; k < 2; k++)
    {
      side_init (&s[k], t->c->text, t->c->batch);
      s[k].x = cs_exec_new (s[k].net, be[k], t->c->batch, CS_EXEC_INFERENCE, 7, &error);
      g_assert_no_error (error);
      g_assert_true (cs_exec_forward (s[k].x, s[k].input, t->c->batch, &error));
      g_assert_no_error (error);
      out[k] = side_output (&s[k], t->c->batch, &n[k]);
    }
  g_assert_cmpuint (n[0], ==, n[1]);
  assert_close ("output", out[1], out[0], n[0], tolerance (t->math));
  for (int k = 0; k < 2; k++)
    {
      g_free (out[k]);
      side_clear (&s[k]);
    }
}

/* One training step with learning rate 0: the loss, the hits, the training-mode output, every
 * parameter gradient and the batch-norm running statistics agree. */
static void
test_gradients (gconstpointer data)
{
  const Test *t = data;
  CsBackend *gpu = get_cuda (t->math);
  if (gpu == NULL)
    return;
  g_autoptr (CsBackend) cpu = cs_cpu_backend_new ();
  GError *error = NULL;
  Side s[2] = { 0 };
  CsBackend *be[2] = { cpu, gpu };
  CsStepResult res[2];
  double tol = tolerance (t->math);
  for (int k = 0; k < 2; k++)
    {
      side_init (&s[k], t->c->text, t->c->batch);
      s[k].x = cs_exec_new (s[k].net, be[k], t->c->batch, CS_EXEC_TRAINING, 7, &error);
      g_assert_no_error (error);
      g_assert_true (cs_exec_train_step (s[k].x, s[k].input, s[k].labels, t->c->batch, 0, 0, 0,
                                         &res[k], &error));
      g_assert_no_error (error);
    }
  g_assert_cmpfloat (fabs (res[1].loss - res[0].loss), <=, tol * MAX (fabs (res[0].loss), 1));
  if (t->math == CS_MATH_FP32)
    {
      g_assert_cmpuint (res[1].top1, ==, res[0].top1);
      g_assert_cmpuint (res[1].top5, ==, res[0].top5);
    }
  gsize n0, n1;
  g_autofree float *o0 = side_output (&s[0], t->c->batch, &n0);
  g_autofree float *o1 = side_output (&s[1], t->c->batch, &n1);
  assert_close ("training output", o1, o0, n0, tol);
  for (guint i = 0; i < s[0].net->tensors->len; i++)
    {
      CsTensor *ten = s[0].net->tensors->pdata[i];
      if (!ten->trainable)
        continue;
      g_autofree float *g0 = g_new (float, ten->numel);
      g_autofree float *g1 = g_new (float, ten->numel);
      g_assert_true (cs_exec_get_param_gradient (s[0].x, (gint) i, g0, &error));
      g_assert_no_error (error);
      g_assert_true (cs_exec_get_param_gradient (s[1].x, (gint) i, g1, &error));
      g_assert_no_error (error);
      g_autofree char *what = g_strdup_printf ("gradient of %s", ten->name);
      assert_close (what, g1, g0, ten->numel, tol);
    }
  g_assert_true (cs_exec_sync_to_net (s[1].x, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < s[0].net->tensors->len; i++)
    {
      CsTensor *a = s[0].net->tensors->pdata[i], *b = s[1].net->tensors->pdata[i];
      g_autofree char *what = g_strdup_printf ("%s after the step", a->name);
      assert_close (what, b->data, a->data, a->numel, tol);
    }
  for (int k = 0; k < 2; k++)
    side_clear (&s[k]);
}

/* A few real steps (lr, momentum, weight decay) of a small network: the same weights after. */
static void
test_training (gconstpointer data)
{
  const Test *t = data;
  CsBackend *gpu = get_cuda (t->math);
  if (gpu == NULL)
    return;
  g_autoptr (CsBackend) cpu = cs_cpu_backend_new ();
  GError *error = NULL;
  Side s[2] = { 0 };
  CsBackend *be[2] = { cpu, gpu };
  for (int k = 0; k < 2; k++)
    {
      side_init (&s[k], t->c->text, t->c->batch);
      s[k].x = cs_exec_new (s[k].net, be[k], t->c->batch, CS_EXEC_TRAINING, 11, &error);
      g_assert_no_error (error);
      for (int step = 0; step < 3; step++)
        {
          CsStepResult res;
          g_assert_true (cs_exec_train_step (s[k].x, s[k].input, s[k].labels, t->c->batch, 0.05f,
                                             0.9f, 5e-4f, &res, &error));
          g_assert_no_error (error);
        }
      g_assert_true (cs_exec_sync_to_net (s[k].x, &error));
      g_assert_no_error (error);
    }
  for (guint i = 0; i < s[0].net->tensors->len; i++)
    {
      CsTensor *a = s[0].net->tensors->pdata[i], *b = s[1].net->tensors->pdata[i];
      g_autofree char *what = g_strdup_printf ("%s after 3 steps", a->name);
      /* Three steps compound the differences: ten times the one-step tolerance. */
      assert_close (what, b->data, a->data, a->numel, 10 * tolerance (t->math));
    }
  for (int k = 0; k < 2; k++)
    side_clear (&s[k]);
}

static const Case train_cases[] = {
  { "small-convnet", "input 12x12x3\nc1: conv 8 3x3 pad 1\nbn\nrelu\nmaxpool 2x2\n"
    "c2: conv 16 3x3 pad 1\nrelu\nlrn 5\navgpool 3x3 stride 2 ceil\ndropout 0.2\nfc 32\n"
    "leakyrelu 0.1\nfc 10\nsoftmax\n", 8 },
  { "residual", "input 8x8x4\nstem: conv 8 3x3 pad 1\n"
    "add { { c1: conv 8 3x3 pad 1; bn; relu; c2: conv 8 3x3 pad 1; bn; droppath 0.8 } { } }\n"
    "relu\nconcat { { conv 4 1x1 } { maxpool 3x3 stride 1 pad 1 } }\navgpool global\nfc 10\n",
    8 },
};

/* The backend refuses bf16 plainly rather than computing something else. */
static void
test_bf16_refused (void)
{
  if (get_real_cuda (CS_MATH_FP32) == NULL)
    return;
  GError *error = NULL;
  CsBackend *be = cs_backend_open ("cuda", CS_MATH_BF16, NULL, &error);
  g_assert_null (be);
  g_assert_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED);
  g_error_free (error);
}

/* The shapes of NODE's inputs, for describe (free them). */
static CsShape *
input_shapes (CsGraph *g, const CsNode *node)
{
  CsShape *shapes = g_new (CsShape, MAX (node->n_inputs, 1));
  for (guint k = 0; k < node->n_inputs; k++)
    shapes[k] = cs_graph_node (g, node->inputs[k])->shape;
  return shapes;
}

static gboolean
has_kernels (CsOp op)
{
  return op == CS_OP_CONV || op == CS_OP_FC || op == CS_OP_BN;
}

/* CUPTI traces: one at a time per process; a profile of a training step attributes every
 * kernel to a node or to the loss or the update, loses none, and fits in the step; and a second
 * profile in the same process works as well (CUPTI detached and attached again). */
static void
test_trace (void)
{
  CsBackend *gpu = get_real_cuda (CS_MATH_TF32);
  if (gpu == NULL)
    return;
  g_assert_nonnull (gpu->trace_start);
  g_assert_nonnull (gpu->trace_push);
  g_assert_nonnull (gpu->trace_pop);
  g_assert_nonnull (gpu->trace_stop);
  GError *error = NULL;
  g_assert_true (gpu->trace_start (gpu, &error));
  g_assert_no_error (error);
  g_assert_false (gpu->trace_start (gpu, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_DEVICE);
  g_clear_error (&error);
  /* CUPTI is process-wide: the other backend cannot start one either. */
  if (cuda[CS_MATH_FP32])
    {
      g_assert_false (cuda[CS_MATH_FP32]->trace_start (cuda[CS_MATH_FP32], &error));
      g_assert_error (error, CS_ERROR, CS_ERROR_DEVICE);
      g_clear_error (&error);
    }
  guint64 dropped = 1;
  GArray *none = gpu->trace_stop (gpu, &dropped, &error);
  g_assert_no_error (error);
  g_assert_nonnull (none);
  g_assert_cmpuint (dropped, ==, 0);
  g_array_unref (none);
  g_assert_null (gpu->trace_stop (gpu, &dropped, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_USAGE);
  g_clear_error (&error);

  const guint batch = 8;
  Side s = { 0 };
  side_init (&s, "input 16x16x3\nc1: conv 8 3x3 pad 1\nn1: bn\nrelu\nmaxpool 2x2\n"
             "c2: conv 16 3x3 pad 1\nn2: bn\nrelu\navgpool global\nf1: fc 10\n", batch);
  for (int run = 0; run < 2; run++)
    {
      g_autoptr (CsProfile) p = cs_profile_run (s.net, gpu, batch, CS_EXEC_TRAINING, 3, 1, NULL,
                                                &error);
      g_assert_no_error (error);
      g_assert_nonnull (p);
      g_autofree char *report = cs_profile_report (p, s.g, CS_REPORT_TABLE);
      g_test_message ("run %d: %" G_GUINT64_FORMAT " records, %" G_GUINT64_FORMAT " dropped; "
                      "kernels %.3f ms of a traced step of %.3f ms (untraced %.3f ms); loss "
                      "%.3f ms, update %.3f ms, unattributed %.3f ms\n%s", run, p->records,
                      p->dropped, p->layers_ms, p->timed_step_ms, p->step_ms, p->loss_ms,
                      p->update_ms, p->unattributed_ms, report);
      g_assert_cmpuint (p->records, >, 0);
      g_assert_cmpuint (p->dropped, ==, 0);
      g_assert_cmpfloat (p->unattributed_ms, ==, 0);
      for (guint i = 0; i < p->n_nodes; i++)
        {
          const CsNode *node = cs_graph_node (s.g, i);
          if (!has_kernels (node->op))
            continue;
          g_test_message ("%s: %.1f forward and %.1f backward kernels:\n%s", node->name,
                          p->forward_kernels[i], p->backward_kernels[i],
                          p->kernel_names[i] ? p->kernel_names[i] : "(none)");
          g_assert_cmpfloat (p->forward_kernels[i], >=, 1);
          g_assert_cmpfloat (p->backward_kernels[i], >=, 1);
          g_assert_nonnull (p->kernel_names[i]);
          g_assert_nonnull (p->algorithms[i]);
        }
      g_assert_cmpfloat (p->update_ms, >, 0);
      g_assert_cmpfloat (p->loss_ms, >, 0);
      g_assert_cmpfloat (p->layers_ms, <=, p->timed_step_ms * 1.05);
      g_assert_cmpuint (p->peak_allocated_bytes, >, 0);
      g_assert_cmpuint (p->device_in_use_bytes, >, 0);
    }
  side_clear (&s);
}

/* What a node runs with: cuDNN's algorithms for a convolution, cuBLAS for a fully connected
 * layer, nothing to say for a ReLU. And the device's clock, memory counts and peak rate. */
static void
test_describe (void)
{
  CsBackend *gpu = get_real_cuda (CS_MATH_TF32);
  if (gpu == NULL)
    return;
  g_assert_nonnull (gpu->describe);
  const guint batch = 2;
  Side s = { 0 };
  side_init (&s, "input 8x8x3\nc1: conv 4 3x3 pad 1\nr1: relu\nf1: fc 5\n", batch);
  guint seen = 0;
  for (guint i = 0; i < cs_graph_n_nodes (s.g); i++)
    {
      const CsNode *node = cs_graph_node (s.g, i);
      g_autofree CsShape *shapes = input_shapes (s.g, node);
      g_autofree char *d = gpu->describe (gpu, node, shapes, batch, TRUE);
      g_test_message ("%s: %s", node->name, d ? d : "(nothing)");
      if (node->op == CS_OP_CONV)
        {
          g_assert_nonnull (d);
          g_assert_nonnull (strstr (d, "fwd "));
          g_assert_nonnull (strstr (d, "bwd data "));
          g_assert_nonnull (strstr (d, "bwd filter "));
          seen++;
        }
      else if (node->op == CS_OP_RELU)
        {
          g_assert_null (d);
          seen++;
        }
      else if (node->op == CS_OP_FC)
        {
          g_assert_nonnull (d);
          g_assert_nonnull (strstr (d, "cuBLAS"));
          seen++;
        }
    }
  g_assert_cmpuint (seen, ==, 3);

  GError *error = NULL;
  s.x = cs_exec_new (s.net, gpu, batch, CS_EXEC_TRAINING, 7, &error);
  g_assert_no_error (error);
  g_assert_nonnull (gpu->clock_start);
  g_assert_nonnull (gpu->clock_stop);
  double ms = -1;
  g_assert_true (gpu->clock_start (gpu, &error));
  g_assert_no_error (error);
  g_assert_true (cs_exec_forward (s.x, s.input, batch, &error));
  g_assert_no_error (error);
  g_assert_true (gpu->clock_stop (gpu, &ms, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (ms, >, 0);
  g_assert_nonnull (gpu->memory);
  guint64 peak = 0, in_use = 0;
  gpu->memory (gpu, &peak, &in_use);
  g_test_message ("forward %.3f ms; peak allocated %" G_GUINT64_FORMAT " bytes, device in use "
                  "%" G_GUINT64_FORMAT " bytes; peak %.1f TFLOP/s", ms, peak, in_use,
                  gpu->peak_tflops);
  g_assert_cmpuint (peak, >, 0);
  g_assert_cmpuint (in_use, >, 0);
  g_assert_cmpfloat (gpu->peak_tflops, >=, 0);
  side_clear (&s);
}

/* A few hundred steps of LeNet-5 on the shapes dataset, from the same initial weights and batch
 * order, reach the same validation accuracy on the GPU as on the CPU (to a few images: rounding
 * differs, so the paths drift apart). */
static double
train_shapes (CsBackend *be, const CsDataset *train, const CsDataset *val)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = load_net ("lenet5", 3, &g);
  CsTrainOptions o = {
    .epochs = 4, .batch = 32, .lr = 0.02, .momentum = 0.9, .decay = 5e-4,
    .schedule = CS_SCHEDULE_CONSTANT, .augment = FALSE, .seed = 3,
  };
  g_assert_true (cs_train (net, be, train, val, &o, NULL, NULL, &error));
  g_assert_no_error (error);
  double loss, top1, top5;
  g_assert_true (cs_evaluate (net, be, val, &o.norm, 50, &loss, &top1, &top5, &error));
  g_assert_no_error (error);
  g_test_message ("%s: validation loss %.4f, top-1 %.3f", be->name, loss, top1);
  return top1;
}

static void
test_shapes (gconstpointer data)
{
  CsMath math = GPOINTER_TO_INT (data);
  CsBackend *gpu = get_cuda (math);
  if (gpu == NULL)
    return;
  GError *error = NULL;
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  g_assert_true (cs_data_open ("shapes:3000", 32, 32, 3, &train, &val, &error));
  g_assert_no_error (error);
  g_autoptr (CsBackend) cpu = cs_cpu_backend_new ();
  double want = train_shapes (cpu, train, val), got = train_shapes (gpu, train, val);
  g_assert_cmpfloat (want, >=, 0.7);
  g_assert_cmpfloat (fabs (got - want), <=, 0.05);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  harness = g_strcmp0 (g_getenv ("CNNSCOPE_TEST_GPU_HARNESS"), "1") == 0;
  GPtrArray *tests = g_ptr_array_new_with_free_func (g_free);
  CsMath maths[] = { CS_MATH_FP32, CS_MATH_TF32 };
  for (guint m = 0; m < G_N_ELEMENTS (maths); m++)
    {
      const char *ms = cs_math_to_string (maths[m]);
      for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
        {
          Test *t = g_new (Test, 1);
          *t = (Test) { &cases[i], maths[m] };
          g_ptr_array_add (tests, t);
          g_autofree char *fwd = g_strdup_printf ("/gpu/%s/forward/%s", ms, cases[i].name);
          g_autofree char *grad = g_strdup_printf ("/gpu/%s/grad/%s", ms, cases[i].name);
          g_test_add_data_func (fwd, t, test_forward);
          g_test_add_data_func (grad, t, test_gradients);
        }
      for (guint i = 0; i < G_N_ELEMENTS (train_cases); i++)
        {
          Test *t = g_new (Test, 1);
          *t = (Test) { &train_cases[i], maths[m] };
          g_ptr_array_add (tests, t);
          g_autofree char *path = g_strdup_printf ("/gpu/%s/train/%s", ms, train_cases[i].name);
          g_test_add_data_func (path, t, test_training);
        }
    }
  g_test_add_data_func ("/gpu/fp32/shapes-lenet5", GINT_TO_POINTER (CS_MATH_FP32), test_shapes);
  g_test_add_data_func ("/gpu/tf32/shapes-lenet5", GINT_TO_POINTER (CS_MATH_TF32), test_shapes);
  g_test_add_func ("/gpu/bf16-refused", test_bf16_refused);
  g_test_add_func ("/gpu/trace", test_trace);
  g_test_add_func ("/gpu/describe", test_describe);
  int ret = g_test_run ();
  for (guint m = 0; m < G_N_ELEMENTS (cuda); m++)
    {
      g_clear_pointer (&cuda[m], cs_backend_free);
      g_free (cuda_error[m]);
    }
  g_ptr_array_unref (tests);
  return ret;
}
