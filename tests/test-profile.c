/* Tests of profiling: the executor's trace tags (every piece of work under its own node and
 * phase), the aggregation of trace records into a profile, profiles on the CPU and their error
 * paths, and the GPU peak-rate table. The CUDA tracer itself is tested by test-gpu. */
#include "cs-device.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-parser.h"
#include "cs-profile.h"
#include "cs-zoo.h"
#include "test-util.h"

#include <math.h>
#include <string.h>

/* ---- The executor's tags ------------------------------------------------------------------ */

/* A CPU backend whose every call checks the tag it runs under. The wrappers call the CPU's own
 * functions, kept here. */
static struct {
  CsBackend *be;
  CsKernelFunc forward[CS_OP_COUNT], backward[CS_OP_COUNT];
  gboolean (*zero) (CsBackend *, float *, gsize, GError **);
  gboolean (*upload) (CsBackend *, float *, const float *, gsize, GError **);
  gboolean (*sgd) (CsBackend *, float *, const float *, float *, gsize, float, float, float,
                   GError **);
  gboolean (*cross_entropy) (CsBackend *, const float *, const guint *, guint, guint, float,
                             float *, double *, guint *, guint *, GError **);
  void (*push) (CsBackend *, guint64);
  void (*pop) (CsBackend *);
  gboolean tracing;             /* the executor is expected to tag everything */
  guint64 tag;                  /* the tag pushed now, 0 when none */
  guint pushes, pops, mismatches;
  guint *fwd_calls, *bwd_calls; /* per node */
  guint losses, updates, zeros;
} spy;

static void
expect (guint64 want)
{
  if (spy.tracing && spy.tag != want)
    spy.mismatches++;
}

static gboolean
spy_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  expect (cs_trace_tag (a->node->id, CS_PHASE_FORWARD));
  spy.fwd_calls[a->node->id]++;
  return spy.forward[a->node->op] (be, a, error);
}

static gboolean
spy_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  expect (cs_trace_tag (a->node->id, CS_PHASE_BACKWARD));
  spy.bwd_calls[a->node->id]++;
  return spy.backward[a->node->op] (be, a, error);
}

static gboolean
spy_zero (CsBackend *be, float *p, gsize n, GError **error)
{
  /* Only a backward zeroes gradients during a step. */
  if (spy.tracing && (spy.tag == 0 || cs_trace_tag_phase (spy.tag) != CS_PHASE_BACKWARD))
    spy.mismatches++;
  spy.zeros++;
  return spy.zero (be, p, n, error);
}

static gboolean
spy_upload (CsBackend *be, float *dst, const float *src, gsize n, GError **error)
{
  expect (cs_trace_tag (0, CS_PHASE_FORWARD));  /* the input node's forward */
  return spy.upload (be, dst, src, n, error);
}

static gboolean
spy_sgd (CsBackend *be, float *w, const float *g, float *m, gsize n, float lr, float momentum,
         float decay, GError **error)
{
  expect (cs_trace_tag (0, CS_PHASE_UPDATE));
  spy.updates++;
  return spy.sgd (be, w, g, m, n, lr, momentum, decay, error);
}

static gboolean
spy_cross_entropy (CsBackend *be, const float *logits, const guint *labels, guint n,
                   guint classes, float scale, float *d_logits, double *loss, guint *top1,
                   guint *top5, GError **error)
{
  expect (cs_trace_tag (0, CS_PHASE_LOSS));
  spy.losses++;
  return spy.cross_entropy (be, logits, labels, n, classes, scale, d_logits, loss, top1, top5,
                            error);
}

static void
spy_push (CsBackend *be, guint64 tag)
{
  if (spy.tag != 0)
    spy.mismatches++;  /* pushes do not nest */
  spy.tag = tag;
  spy.pushes++;
  spy.push (be, tag);
}

static void
spy_pop (CsBackend *be)
{
  if (spy.tag == 0)
    spy.mismatches++;
  spy.tag = 0;
  spy.pops++;
  spy.pop (be);
}

static CsBackend *
spy_backend_new (guint n_nodes)
{
  memset (&spy, 0, sizeof spy);
  CsBackend *be = spy.be = cs_cpu_backend_new ();
  for (guint op = 0; op < CS_OP_COUNT; op++)
    {
      spy.forward[op] = be->forward[op], spy.backward[op] = be->backward[op];
      if (be->forward[op])
        be->forward[op] = spy_forward;
      if (be->backward[op])
        be->backward[op] = spy_backward;
    }
  spy.zero = be->zero, be->zero = spy_zero;
  spy.upload = be->upload, be->upload = spy_upload;
  spy.sgd = be->sgd, be->sgd = spy_sgd;
  spy.cross_entropy = be->cross_entropy, be->cross_entropy = spy_cross_entropy;
  spy.push = be->trace_push, be->trace_push = spy_push;
  spy.pop = be->trace_pop, be->trace_pop = spy_pop;
  spy.fwd_calls = g_new0 (guint, n_nodes);
  spy.bwd_calls = g_new0 (guint, n_nodes);
  return be;
}

/* Joins, a residual sum, batch norm, dropout, drop-path and an auxiliary head: in a traced
 * training step, every kernel, zeroing, loss and update runs under its own tag, each node's
 * forward and backward once (but the ReLU's, which the batch norm applies), and the tracer's
 * records say the same. */
static void
test_exec_tags (void)
{
  g_autoptr (CsGraph) g = parse (
      "input 8x8x3\n"
      "stem: conv 4 3x3 pad 1; bn; relu\n"
      "mod: add { { concat { { a: conv 2 1x1 } { b: conv 2 3x3 pad 1 } }; gate: droppath 0.5 } "
      "{ } }\n"
      "aux weight 0.3 { aux_fc: fc 5; softmax }\n"
      "pool: maxpool 2x2\n"
      "drop: dropout 0.5\n"
      "out: fc 5\nsoftmax\n");
  guint nn = cs_graph_n_nodes (g);
  GError *error = NULL;
  g_autoptr (CsNet) net = cs_net_new (g, &error);
  g_assert_no_error (error);
  cs_net_init (net, 3, FALSE);
  g_autoptr (CsBackend) be = spy_backend_new (nn);
  g_assert_true (be->trace_start (be, &error));
  g_autoptr (CsExec) x = cs_exec_new (net, be, 2, CS_EXEC_TRAINING, 5, &error);
  g_assert_no_error (error);
  float input[2 * 8 * 8 * 3];
  for (guint i = 0; i < G_N_ELEMENTS (input); i++)
    input[i] = sinf (i * 0.37f);
  guint labels[2] = { 1, 4 };

  /* Untraced, nothing is pushed. */
  g_assert_true (cs_exec_train_step (x, input, labels, 2, 0.01f, 0.9f, 1e-4f, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (spy.pushes, ==, 0);

  memset (spy.fwd_calls, 0, nn * sizeof (guint));
  memset (spy.bwd_calls, 0, nn * sizeof (guint));
  spy.losses = spy.updates = spy.zeros = 0;
  spy.tracing = TRUE;
  cs_exec_set_tracing (x, TRUE);
  g_assert_true (cs_exec_train_step (x, input, labels, 2, 0.01f, 0.9f, 1e-4f, NULL, &error));
  g_assert_no_error (error);
  cs_exec_set_tracing (x, FALSE);
  spy.tracing = FALSE;

  g_assert_cmpuint (spy.mismatches, ==, 0);
  g_assert_cmpuint (spy.pushes, ==, spy.pops);
  g_assert_cmpuint (spy.losses, ==, 2);      /* the main head and the auxiliary one */
  g_assert_cmpuint (spy.updates, >=, 7);     /* stem, bn, a, b, aux_fc, out (weights, biases) */
  g_assert_cmpuint (spy.zeros, >, 0);
  g_assert_cmpuint (cs_exec_plan (x)->n_fused_relus, ==, 1);
  guint heads = 0;
  for (guint i = 1; i < nn; i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      gboolean fused = n->op == CS_OP_RELU;
      g_assert_cmpuint (spy.fwd_calls[i], ==, fused ? 0 : 1);
      /* The softmax heads' backward is the loss's: no kernel of their own. */
      gboolean head = n->op == CS_OP_SOFTMAX;
      heads += head;
      g_assert_cmpuint (spy.bwd_calls[i], ==, head || fused ? 0 : 1);
    }
  g_assert_cmpuint (heads, ==, 2);

  /* The CPU's records: per node one forward and one backward interval (the input's upload
   * included, its backward not; the fused ReLU's neither), the loss and the update. */
  guint64 dropped = 1;
  g_autoptr (GArray) records = be->trace_stop (be, &dropped, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (dropped, ==, 0);
  g_assert_cmpuint (records->len, ==, (nn - 1) + (nn - 2) + 2);
  guint phases[CS_PHASE_COUNT] = { 0 };
  for (guint i = 0; i < records->len; i++)
    {
      const CsTraceRecord *r = &g_array_index (records, CsTraceRecord, i);
      g_assert_cmpuint (r->tag, !=, 0);
      g_assert_cmpuint (r->end_ns, >=, r->start_ns);
      g_assert_null (r->name);
      phases[cs_trace_tag_phase (r->tag)]++;
    }
  g_assert_cmpuint (phases[CS_PHASE_FORWARD], ==, nn - 1);
  g_assert_cmpuint (phases[CS_PHASE_BACKWARD], ==, nn - 2);
  g_assert_cmpuint (phases[CS_PHASE_LOSS], ==, 1);
  g_assert_cmpuint (phases[CS_PHASE_UPDATE], ==, 1);
  g_free (spy.fwd_calls), g_free (spy.bwd_calls);
}

static void
test_tags (void)
{
  guint64 t = cs_trace_tag (4211, CS_PHASE_BACKWARD);
  g_assert_cmpuint (t, !=, 0);
  g_assert_cmpuint (cs_trace_tag_node (t), ==, 4211);
  g_assert_cmpint (cs_trace_tag_phase (t), ==, CS_PHASE_BACKWARD);
  /* Node 0's forward is not "no tag". */
  g_assert_cmpuint (cs_trace_tag (0, CS_PHASE_FORWARD), !=, 0);
  g_assert_cmpint (cs_trace_tag_phase (cs_trace_tag (0, CS_PHASE_SETUP)), ==, CS_PHASE_SETUP);
}

/* ---- Aggregation -------------------------------------------------------------------------- */

static CsProfile *
empty_profile (guint n_nodes)
{
  CsProfile *p = g_new0 (CsProfile, 1);
  p->n_nodes = n_nodes;
  p->forward_ms = g_new0 (double, n_nodes);
  p->backward_ms = g_new0 (double, n_nodes);
  p->forward_kernels = g_new0 (double, n_nodes);
  p->backward_kernels = g_new0 (double, n_nodes);
  p->kernel_names = g_new0 (char *, n_nodes + 1);
  p->algorithms = g_new0 (char *, n_nodes + 1);
  return p;
}

/* Two steps' records of a GPU-like trace, out of order: per node sums, counts and distinct names
 * in launch order; loss, update; set-up left out; no tag or an unknown node is unattributed. */
static void
test_add_trace (void)
{
  const char *gemm = g_intern_static_string ("sgemm_128x64");
  const char *relu = g_intern_static_string ("relu_kernel");
  const char *memset_ = g_intern_static_string ("memset");
  guint64 f1 = cs_trace_tag (1, CS_PHASE_FORWARD), b1 = cs_trace_tag (1, CS_PHASE_BACKWARD);
  guint64 f2 = cs_trace_tag (2, CS_PHASE_FORWARD);
  const CsTraceRecord r[] = {
    /* step 2 */
    { f1, gemm, 10000000, 10500000 },
    { f1, relu, 10500000, 10600000 },
    { b1, memset_, 10700000, 10710000 },
    { b1, gemm, 10710000, 11710000 },
    { f2, relu, 10600000, 10650000 },
    /* step 1 */
    { b1, gemm, 1710000, 2710000 },
    { f1, relu, 1500000, 1600000 },
    { f1, gemm, 1000000, 1500000 },
    { b1, memset_, 1700000, 1710000 },
    { f2, relu, 1600000, 1650000 },
    { cs_trace_tag (0, CS_PHASE_LOSS), relu, 2800000, 2810000 },
    { cs_trace_tag (0, CS_PHASE_LOSS), relu, 11800000, 11810000 },
    { cs_trace_tag (0, CS_PHASE_UPDATE), gemm, 2900000, 2940000 },
    { cs_trace_tag (0, CS_PHASE_UPDATE), gemm, 11900000, 11940000 },
    /* planning and warm-up: not counted at all */
    { cs_trace_tag (0, CS_PHASE_SETUP), gemm, 0, 900000 },
    { cs_trace_tag (7, CS_PHASE_SETUP), relu, 900000, 950000 },
    /* launched under no tag, and under a node the graph has not */
    { 0, memset_, 3000000, 3002000 },
    { cs_trace_tag (9, CS_PHASE_FORWARD), relu, 3002000, 3004000 },
  };
  g_autoptr (CsProfile) p = empty_profile (3);
  cs_profile_add_trace (p, r, G_N_ELEMENTS (r), 2);
  g_assert_cmpfloat_with_epsilon (p->forward_ms[1], 0.6, 1e-12);
  g_assert_cmpfloat_with_epsilon (p->backward_ms[1], 1.01, 1e-12);
  g_assert_cmpfloat_with_epsilon (p->forward_ms[2], 0.05, 1e-12);
  g_assert_cmpfloat (p->forward_ms[0], ==, 0);
  g_assert_cmpfloat (p->backward_ms[2], ==, 0);
  g_assert_cmpfloat (p->forward_kernels[1], ==, 2);
  g_assert_cmpfloat (p->backward_kernels[1], ==, 2);
  g_assert_cmpfloat (p->forward_kernels[2], ==, 1);
  g_assert_cmpstr (p->kernel_names[1], ==, "sgemm_128x64\nrelu_kernel\nmemset");
  g_assert_cmpstr (p->kernel_names[2], ==, "relu_kernel");
  g_assert_null (p->kernel_names[0]);
  g_assert_cmpfloat_with_epsilon (p->loss_ms, 0.01, 1e-12);
  g_assert_cmpfloat_with_epsilon (p->update_ms, 0.04, 1e-12);
  g_assert_cmpfloat_with_epsilon (p->unattributed_ms, 0.002, 1e-12);
  g_assert_cmpfloat_with_epsilon (p->layers_ms, 0.6 + 1.01 + 0.05 + 0.01 + 0.04 + 0.002, 1e-12);
  g_assert_cmpuint (p->records, ==, G_N_ELEMENTS (r) - 2);
}

/* ---- Profiles on the CPU ------------------------------------------------------------------ */

/* A training profile: every layer with weights has forward and backward time, the totals add up,
 * the CPU counts no kernels and names no algorithm. */
static void
test_cpu_profile (void)
{
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = load_net ("lenet5", 1, &g);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  GError *error = NULL;
  g_autoptr (CsProfile) p = cs_profile_run (net, be, 4, CS_EXEC_TRAINING, 3, 1, NULL, &error);
  g_assert_no_error (error);
  double sum = 0;
  for (guint i = 0; i < p->n_nodes; i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      if (n->op == CS_OP_CONV || n->op == CS_OP_FC)
        {
          g_assert_cmpfloat (p->forward_ms[i], >, 0);
          g_assert_cmpfloat (p->backward_ms[i], >, 0);
        }
      g_assert_cmpfloat (p->forward_kernels[i] + p->backward_kernels[i], ==, 0);
      g_assert_null (p->kernel_names[i]);
      g_assert_null (p->algorithms[i]);
      sum += p->forward_ms[i] + p->backward_ms[i];
    }
  g_assert_cmpfloat (p->loss_ms, >, 0);
  g_assert_cmpfloat (p->update_ms, >, 0);
  g_assert_cmpfloat (p->unattributed_ms, ==, 0);
  g_assert_cmpfloat_with_epsilon (p->layers_ms, sum + p->loss_ms + p->update_ms, 1e-9);
  /* Disjoint intervals inside each step. */
  g_assert_cmpfloat (p->layers_ms, <=, p->timed_step_ms + 0.01);
  g_assert_cmpfloat (p->step_median_ms, >, 0);
  g_assert_cmpfloat (p->peak_tflops, ==, 0);
  g_assert_cmpuint (p->peak_allocated_bytes, ==, 0);

  g_autofree char *json = cs_profile_report (p, g, CS_REPORT_JSON);
  g_assert_nonnull (strstr (json, "\"kernel_names\" : ["));
  g_assert_nonnull (strstr (json, "\"tracer_overhead_percent\""));
  g_autofree char *table = cs_profile_report (p, g, CS_REPORT_TABLE);
  /* The header ends with the rate: no peak column and no kernel column on the CPU. */
  g_assert_nonnull (strstr (table, " TFLOP/s\n"));
}

/* A profile while a trace runs fails with the tracer's error; a cancelled one stops the tracer it
 * started, so that the next starts. */
static void
test_profile_errors (void)
{
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = load_net ("lenet5", 1, &g);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  GError *error = NULL;
  g_assert_true (be->trace_start (be, &error));
  g_assert_null (cs_profile_run (net, be, 1, CS_EXEC_INFERENCE, 1, 0, NULL, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_USAGE);
  g_assert_nonnull (strstr (error->message, "already running"));
  g_clear_error (&error);
  g_autoptr (GArray) records = be->trace_stop (be, NULL, &error);
  g_assert_no_error (error);

  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  g_assert_null (cs_profile_run (net, be, 1, CS_EXEC_TRAINING, 2, 1, cancel, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_true (be->trace_start (be, &error));
  g_autoptr (GArray) again = be->trace_stop (be, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (again->len, ==, 0);
}

/* ---- Peak rates --------------------------------------------------------------------------- */

/* Against the white papers' figures, which use the boost clock. */
static void
test_peak (void)
{
  /* H100 SXM: 132 SMs at 1.98 GHz: 66.9 TFLOP/s fp32; 1,024 tf32 multiply-adds per SM and
   * clock. */
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (9, 0, 132, 1980000, CS_MATH_FP32),
                                  66.908, 1e-3);
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (9, 0, 132, 1980000, CS_MATH_TF32),
                                  535.26, 1e-2);
  /* At 1.83 GHz, the data sheet's 494.7 (tf32) and 989.4 (bf16). */
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (9, 0, 132, 1830000, CS_MATH_TF32),
                                  494.7, 0.1);
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (9, 0, 132, 1830000, CS_MATH_BF16),
                                  989.4, 0.1);
  /* A100: 108 SMs at 1.41 GHz: 19.5 fp32, 156 tf32, 312 bf16. */
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (8, 0, 108, 1410000, CS_MATH_FP32),
                                  19.49, 0.01);
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (8, 0, 108, 1410000, CS_MATH_TF32),
                                  155.9, 0.1);
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (8, 0, 108, 1410000, CS_MATH_BF16),
                                  311.9, 0.1);
  /* V100 has no tf32: its CUDA cores' 15.7. */
  g_assert_cmpfloat_with_epsilon (cs_gpu_peak_tflops (7, 0, 80, 1530000, CS_MATH_TF32),
                                  15.67, 0.01);
  g_assert_cmpfloat (cs_gpu_peak_tflops (12, 7, 100, 2000000, CS_MATH_FP32), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/profile/tags", test_tags);
  g_test_add_func ("/profile/exec-tags", test_exec_tags);
  g_test_add_func ("/profile/add-trace", test_add_trace);
  g_test_add_func ("/profile/cpu", test_cpu_profile);
  g_test_add_func ("/profile/errors", test_profile_errors);
  g_test_add_func ("/profile/peak", test_peak);
  return g_test_run ();
}
