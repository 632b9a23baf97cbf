/* Profiling runs over the executor's per-layer timing, and their reports. */
#include "cs-profile.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-stats.h"

#include <json-glib/json-glib.h>

static gboolean
step (CsExec *x, gboolean train, const float *images, const guint *labels, guint batch,
      GError **error)
{
  /* A learning rate of 0 keeps the weights as they are: every step does the same work. */
  return train ? cs_exec_train_step (x, images, labels, batch, 0.0f, 0.9f, 0.0f, NULL, error)
               : cs_exec_forward (x, images, batch, error);
}

CsProfile *
cs_profile_run (CsNet *net, CsBackend *be, guint batch, gboolean train, guint iters,
                guint warmup, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (batch > 0 && iters > 0, NULL);
  CsGraph *g = net->graph;
  g_autoptr (CsExec) x = cs_exec_new (net, be, batch,
                                      train ? CS_EXEC_TRAINING : CS_EXEC_INFERENCE, 1, error);
  if (x == NULL)
    return NULL;
  const CsShape *in = &cs_graph_node (g, 0)->shape;
  gsize n = (gsize) batch * in->c * in->h * in->w;
  g_autofree float *images = g_try_malloc (n * sizeof (float));
  g_autofree guint *labels = g_new0 (guint, batch);
  if (images == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "no memory for a batch of %u input "
                   "images", batch);
      return NULL;
    }
  for (gsize i = 0; i < n; i++)
    images[i] = cs_uniform (7, i) - 0.5f;

  g_autoptr (CsProfile) p = g_new0 (CsProfile, 1);
  p->model = g_strdup (g->name);
  p->device = g_strdup (be->description);
  p->batch = batch, p->iters = iters, p->warmup = warmup, p->train = train;
  p->n_nodes = cs_graph_n_nodes (g);
  p->planned_bytes = cs_exec_plan (x)->planned_bytes;
  p->naive_bytes = cs_exec_plan (x)->naive_bytes;
  g_autofree double *plain = g_new (double, iters), *timed = g_new (double, iters);

  for (guint r = 0; r < warmup + 2 * iters; r++)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;
      /* Warm-ups, then the timed steps, then the same without timing for the overhead. */
      gboolean timing = r >= warmup && r < warmup + iters;
      if (r == warmup)
        cs_exec_set_timing (x, TRUE);
      if (r == warmup + iters)
        cs_exec_set_timing (x, FALSE);
      gint64 t0 = g_get_monotonic_time ();
      if (!step (x, train, images, labels, batch, error)
          || (be->synchronize && !be->synchronize (be, error)))
        return NULL;
      double ms = (g_get_monotonic_time () - t0) / 1000.0;
      if (timing)
        timed[r - warmup] = ms;
      else if (r >= warmup + iters)
        plain[r - warmup - iters] = ms;
      if (r == warmup + iters - 1)
        {
          p->forward_ms = g_memdup2 (cs_exec_forward_ms (x), p->n_nodes * sizeof (double));
          p->backward_ms = g_memdup2 (cs_exec_backward_ms (x), p->n_nodes * sizeof (double));
        }
    }
  for (guint i = 0; i < p->n_nodes; i++)
    {
      p->forward_ms[i] /= iters;
      p->backward_ms[i] /= iters;
      p->layers_ms += p->forward_ms[i] + p->backward_ms[i];
    }
  /* Means, like the per-layer times, so that the layers add up within the timed step. */
  for (guint i = 0; i < iters; i++)
    {
      p->step_ms += plain[i] / iters;
      p->timed_step_ms += timed[i] / iters;
    }
  return g_steal_pointer (&p);
}

void
cs_profile_free (CsProfile *p)
{
  if (p == NULL)
    return;
  g_free (p->model), g_free (p->device);
  g_free (p->forward_ms), g_free (p->backward_ms);
  g_free (p);
}

static char *
report_table (const CsProfile *p, const CsStats *st)
{
  const CsGraph *g = st->graph;
  GString *out = g_string_new (NULL);
  g_string_append_printf (out, "%s, %s, batch %u, %u timed iterations after %u warm-ups, on %s\n\n",
                          p->model, p->train ? "training step" : "forward pass", p->batch,
                          p->iters, p->warmup, p->device);
  g_string_append_printf (out, "%-28s %-12s %9s %10s %10s %7s %9s\n", "layer", "output", "MACs",
                          "fwd ms", "bwd ms", "% step", "GFLOP/s");
  for (guint r = 0; r < st->unfolded->len; r++)
    {
      const CsRow *row = &g_array_index (st->unfolded, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      double f = p->forward_ms[n->id], b = p->backward_ms[n->id];
      if (n->op == CS_OP_INPUT || (f == 0 && b == 0))
        continue;
      g_autofree char *shape = cs_shape_to_string (&n->shape);
      g_autofree char *macs = cs_format_si (row->st.macs * p->batch);
      double flops = row->st.macs * 2.0 * p->batch * (p->train ? 3 : 1);
      double gflops = f + b > 0 && row->st.macs ? flops / ((f + b) * 1e6) : 0;
      g_autofree char *name = g_utf8_strlen (n->name, -1) > 28
        ? g_strconcat ("…", g_utf8_offset_to_pointer (n->name, g_utf8_strlen (n->name, -1) - 27),
                       NULL)
        : g_strdup (n->name);
      g_string_append_printf (out, "%-*s %-12s %9s %10.3f %10.3f %6.1f%% ",
                              (int) (28 + strlen (name) - g_utf8_strlen (name, -1)), name, shape,
                              macs, f, b, 100 * (f + b) / MAX (p->timed_step_ms, 1e-9));
      if (gflops > 0)
        g_string_append_printf (out, "%9.1f\n", gflops);
      else
        g_string_append (out, "        -\n");
    }
  g_autofree char *planned = g_format_size (p->planned_bytes);
  g_autofree char *naive = g_format_size (p->naive_bytes);
  double overhead = 100 * (p->timed_step_ms - p->step_ms) / MAX (p->step_ms, 1e-9);
  g_string_append_printf (out, "\nstep %.3f ms (mean, untimed); with per-layer timing %.3f ms "
                          "(%+.1f%%)\n", p->step_ms, p->timed_step_ms, overhead);
  g_string_append_printf (out, "sum of layers %.3f ms; gap to the timed step %.3f ms (launch and "
                          "host work)\n", p->layers_ms, p->timed_step_ms - p->layers_ms);
  g_string_append_printf (out, "memory: %s planned (%s if every output had its own buffer)\n",
                          planned, naive);
  return g_string_free (out, FALSE);
}

static char *
report_json (const CsProfile *p, const CsStats *st)
{
  const CsGraph *g = st->graph;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
#define STR(k, v) (json_builder_set_member_name (b, k), json_builder_add_string_value (b, v))
#define INT(k, v) (json_builder_set_member_name (b, k), json_builder_add_int_value (b, v))
#define DBL(k, v) (json_builder_set_member_name (b, k), json_builder_add_double_value (b, v))
  STR ("model", p->model);
  STR ("device", p->device);
  STR ("mode", p->train ? "train" : "infer");
  INT ("batch", p->batch);
  INT ("iters", p->iters);
  INT ("warmup", p->warmup);
  json_builder_set_member_name (b, "layers");
  json_builder_begin_array (b);
  for (guint i = 0; i < p->n_nodes; i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      if (n->op == CS_OP_INPUT || (p->forward_ms[i] == 0 && p->backward_ms[i] == 0))
        continue;
      json_builder_begin_object (b);
      STR ("name", n->name);
      STR ("kind", cs_layer_class (n->op)->name);
      INT ("macs", st->nodes[i].macs * p->batch);
      DBL ("forward_ms", p->forward_ms[i]);
      DBL ("backward_ms", p->backward_ms[i]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "totals");
  json_builder_begin_object (b);
  DBL ("step_ms", p->step_ms);
  DBL ("timed_step_ms", p->timed_step_ms);
  DBL ("layers_ms", p->layers_ms);
  INT ("planned_bytes", p->planned_bytes);
  INT ("naive_bytes", p->naive_bytes);
  json_builder_end_object (b);
  json_builder_end_object (b);
#undef STR
#undef INT
#undef DBL
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  g_autofree char *s = json_generator_to_data (gen, NULL);
  return g_strconcat (s, "\n", NULL);
}

char *
cs_profile_report (const CsProfile *p, CsGraph *g, CsReportFormat format)
{
  g_autoptr (CsStats) st = cs_stats_compute (g, 1, NULL);
  if (st == NULL)
    return g_strdup ("");
  return format == CS_REPORT_JSON ? report_json (p, st) : report_table (p, st);
}
