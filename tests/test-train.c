/* Running the networks: every bundled model trains a step and infers at batch 2 on the CPU, and
 * a small network learns the built-in shapes dataset. */
#include "cs-exec.h"
#include "cs-train.h"
#include "cs-zoo.h"
#include "test-util.h"

#include <math.h>

static gboolean
all_finite (const float *v, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!isfinite (v[i]))
      return FALSE;
  return TRUE;
}

/* One training step and one inference pass, at batch 2, on random images. */
static void
test_zoo_model (gconstpointer data)
{
  const char *name = data;
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model (name, &error);
  g_assert_no_error (error);
  /* With momentum 1 the running statistics become the step's batch statistics, so that the
   * inference pass below sees sane ones: an untrained ResNet-1202 with its initial statistics
   * (mean 0, variance 1) doubles its variance at each of 600 blocks and overflows. */
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    if (cs_graph_node (g, i)->op == CS_OP_BN)
      cs_graph_node (g, i)->p.momentum = 1.0;
  g_autoptr (CsNet) net = cs_net_new (g, &error);
  g_assert_no_error (error);
  cs_net_init (net, 1, FALSE);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();

  const CsShape *in = &cs_graph_node (g, 0)->shape;
  gsize vol = in->c * in->h * in->w;
  g_autofree float *images = g_new (float, 2 * vol);
  for (gsize i = 0; i < 2 * vol; i++)
    images[i] = cs_uniform (5, i) - 0.5f;
  guint labels[2] = { 0, 1 };

  /* A weight that the step must move: the last fc or conv of the main path. */
  CsTensor *w = NULL;
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    if (net->weight[i] >= 0 && !(cs_graph_node (g, i)->flags & CS_NODE_TRAIN_ONLY)
        && cs_graph_node (g, i)->op != CS_OP_BN)
      w = cs_net_tensor (net, net->weight[i]);
  g_assert_nonnull (w);
  g_autofree float *before = g_memdup2 (w->data, w->numel * sizeof (float));

  {
    g_autoptr (CsExec) x = cs_exec_new (net, be, 2, CS_EXEC_TRAINING, 3, &error);
    g_assert_no_error (error);
    const CsExecPlan *plan = cs_exec_plan (x);
    /* Buffers are shared once dead: never more than one buffer per output and gradient. */
    g_assert_cmpuint (plan->activation_bytes + plan->gradient_bytes, <=, plan->naive_bytes);
    CsStepResult r;
    g_assert_true (cs_exec_train_step (x, images, labels, 2, 1e-4f, 0.9f, 5e-4f, &r, &error));
    g_assert_no_error (error);
    g_assert_true (isfinite (r.loss) && r.loss > 0);
    g_assert_cmpuint (r.top1, <=, r.top5);
    g_assert_true (cs_exec_sync_to_net (x, &error));
    g_assert_no_error (error);
  }
  gsize changed = 0;
  for (gsize i = 0; i < w->numel; i++)
    changed += w->data[i] != before[i];
  g_assert_cmpuint (changed, >, w->numel / 2);
  g_assert_true (all_finite (w->data, w->numel));

  g_autoptr (CsExec) x = cs_exec_new (net, be, 2, CS_EXEC_INFERENCE, 0, &error);
  g_assert_no_error (error);
  g_assert_true (cs_exec_forward (x, images, 2, &error));
  g_assert_no_error (error);
  const CsNode *out = cs_graph_output (g);
  gsize classes = out->shape.c * out->shape.h * out->shape.w;
  g_autofree float *scores = g_new (float, 2 * classes);
  g_assert_true (cs_exec_get_output (x, scores, &error));
  g_assert_no_error (error);
  g_assert_true (all_finite (scores, 2 * classes));
  if (out->op == CS_OP_SOFTMAX)
    for (guint b = 0; b < 2; b++)
      {
        double s = 0;
        for (gsize c = 0; c < classes; c++)
          s += scores[b * classes + c];
        g_assert_cmpfloat (fabs (s - 1.0), <, 1e-4);
      }
}

typedef struct {
  guint epochs;
  double last_val;
} Seen;

static gboolean
on_epoch (const CsTrainProgress *p, const CsEpochResult *e, gpointer user_data)
{
  Seen *seen = user_data;
  if (e)
    {
      seen->epochs++;
      seen->last_val = e->val_top1;
      g_test_message ("epoch %u: train loss %.4f, validation top-1 %.3f", e->epoch,
                      e->train_loss, e->val_top1);
    }
  return TRUE;
}

/* LeNet-5 learns the shapes (8 classes, chance 12.5 %) from a fixed seed in 8 epochs. */
static void
test_shapes_lenet (void)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = load_net ("lenet5", 3, &g);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  g_assert_true (cs_data_open ("shapes:3000", 32, 32, 3, &train, &val, &error));
  g_assert_no_error (error);

  CsTrainOptions o = {
    .epochs = 8, .batch = 32, .lr = 0.02, .momentum = 0.9, .decay = 0,
    .schedule = CS_SCHEDULE_CONSTANT, .patience = 2, .augment = FALSE, .seed = 3,
  };
  Seen seen = { 0 };
  g_assert_true (cs_train (net, be, train, val, &o, on_epoch, &seen, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (seen.epochs, ==, 8);
  g_assert_cmpfloat (seen.last_val, >=, 0.85);

  /* The parameters ended in the net: evaluating them again gives the same accuracy. */
  double loss, top1, top5;
  g_assert_true (cs_evaluate (net, be, val, &o.norm, 50, &loss, &top1, &top5, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (fabs (top1 - seen.last_val), <, 1e-9);
  g_assert_cmpfloat (top5, >=, top1);
}

/* The step schedule divides by 10 at the given epochs, and a callback can stop the run. */
static gboolean
stop_after_two (const CsTrainProgress *p, const CsEpochResult *e, gpointer user_data)
{
  GArray *lrs = user_data;
  if (e)
    g_array_append_val (lrs, e->lr);
  return lrs->len < 3;
}

static void
test_schedule (void)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = load_net ("lenet5", 1, &g);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  g_assert_true (cs_data_open ("shapes:64", 32, 32, 1, &train, &val, &error));
  CsTrainOptions o = {
    .epochs = 5, .batch = 16, .lr = 0.1, .momentum = 0.9, .schedule = CS_SCHEDULE_STEP,
    .steps = { 1, 2 }, .n_steps = 2, .patience = 2, .seed = 1,
  };
  g_autoptr (GArray) lrs = g_array_new (FALSE, FALSE, sizeof (double));
  g_assert_true (cs_train (net, be, train, val, &o, stop_after_two, lrs, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (lrs->len, ==, 3);
  g_assert_cmpfloat (fabs (g_array_index (lrs, double, 0) - 0.1), <, 1e-12);
  g_assert_cmpfloat (fabs (g_array_index (lrs, double, 1) - 0.01), <, 1e-12);
  g_assert_cmpfloat (fabs (g_array_index (lrs, double, 2) - 0.001), <, 1e-12);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_auto (GStrv) names = cs_zoo_list ();
  for (char **n = names; *n; n++)
    {
      g_autofree char *path = g_strdup_printf ("/train/zoo/%s", *n);
      g_test_add_data_func_full (path, g_strdup (*n), test_zoo_model, g_free);
    }
  g_test_add_func ("/train/shapes/lenet5", test_shapes_lenet);
  g_test_add_func ("/train/schedule", test_schedule);
  return g_test_run ();
}
