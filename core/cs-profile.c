/* Profiling runs over the executor's per-layer timing, and their reports. */
#include "cs-profile.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-stats.h"

#include <json-glib/json-glib.h>

static int
by_start (gconstpointer a, gconstpointer b, gpointer data)
{
  const CsTraceRecord *x = *(const CsTraceRecord *const *) a, *y = *(const CsTraceRecord *const *) b;
  return (x->start_ns > y->start_ns) - (x->start_ns < y->start_ns);
}

static gboolean
step (CsExec *x, gboolean train, const float *images, const guint *labels, guint batch,
      GError **error)
{
  /* A learning rate of 0 keeps the weights as they are: every step does the same work. */
  return train ? cs_exec_train_step (x, images, labels, batch, 0.0f, 0.9f, 0.0f, NULL, error)
               : cs_exec_forward (x, images, batch, error);
}

/* One step's wall time: the device's clock when it has one, else the host's after synchronize. */
static gboolean
timed_step (CsExec *x, CsBackend *be, gboolean train, const float *images, const guint *labels,
            guint batch, double *ms, GError **error)
{
  if (be->clock_start)
    return be->clock_start (be, error) && step (x, train, images, labels, batch, error)
           && be->clock_stop (be, ms, error);
  gint64 t0 = g_get_monotonic_time ();
  if (!step (x, train, images, labels, batch, error)
      || (be->synchronize && !be->synchronize (be, error)))
    return FALSE;
  *ms = (g_get_monotonic_time () - t0) / 1000.0;
  return TRUE;
}

static int
by_value (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
mean (const double *v, guint n)
{
  double sum = 0;
  for (guint i = 0; i < n; i++)
    sum += v[i];
  return sum / n;
}

static CsProfile *
profile_new (CsGraph *g, CsBackend *be, guint batch, gboolean train, guint iters, guint warmup)
{
  CsProfile *p = g_new0 (CsProfile, 1);
  p->model = g_strdup (g->name);
  p->device = g_strdup (be->description);
  p->batch = batch, p->iters = iters, p->warmup = warmup, p->train = train;
  p->n_nodes = cs_graph_n_nodes (g);
  p->forward_ms = g_new0 (double, p->n_nodes);
  p->backward_ms = g_new0 (double, p->n_nodes);
  p->forward_kernels = g_new0 (double, p->n_nodes);
  p->backward_kernels = g_new0 (double, p->n_nodes);
  p->kernel_names = g_new0 (char *, p->n_nodes + 1);
  p->algorithms = g_new0 (char *, p->n_nodes + 1);
  p->peak_tflops = be->peak_tflops;
  return p;
}

/* What the steps run on: the executor and a batch of random images, made once the plan is
 * known to fit (so that a batch too large for memory fails on its plan). */
typedef struct {
  CsExec *x;
  float *images;
  guint *labels;
} Bench;

static void
bench_clear (Bench *b)
{
  g_clear_pointer (&b->x, cs_exec_free);
  g_clear_pointer (&b->images, g_free);
  g_clear_pointer (&b->labels, g_free);
}

static gboolean
bench_init (Bench *b, CsNet *net, CsBackend *be, guint batch, CsExecFlags flags,
            GError **error)
{
  if ((b->x = cs_exec_new (net, be, batch, flags, 1, error)) == NULL)
    return FALSE;
  const CsShape *in = &cs_graph_node (net->graph, 0)->shape;
  gsize n = (gsize) batch * in->c * in->h * in->w;
  if ((b->images = g_try_malloc (n * sizeof (float))) == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "no memory for a batch of %u input "
                   "images (a smaller batch needs less)", batch);
      return FALSE;
    }
  for (gsize i = 0; i < n; i++)
    b->images[i] = cs_uniform (7, i) - 0.5f;
  b->labels = g_new0 (guint, batch);
  return TRUE;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Bench, bench_clear)

/* The steps of a profile, between the tracer's start and stop (which the caller makes). */
static gboolean
traced_steps (CsProfile *p, CsNet *net, CsBackend *be, CsExecFlags flags, Bench *b,
              double *timed, GCancellable *cancellable, GError **error)
{
  /* Planning (cuDNN measures its algorithms) and the warm-ups are set-up, left out. */
  be->trace_push (be, cs_trace_tag (0, CS_PHASE_SETUP));
  gboolean ok = bench_init (b, net, be, p->batch, flags, error);
  double warm_ms;
  for (guint r = 0; ok && r < p->warmup; r++)
    ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
         && timed_step (b->x, be, p->train, b->images, b->labels, p->batch, &warm_ms, error);
  be->trace_pop (be);
  if (!ok)
    return FALSE;
  cs_exec_set_tracing (b->x, TRUE);
  for (guint r = 0; ok && r < p->iters; r++)
    ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
         && timed_step (b->x, be, p->train, b->images, b->labels, p->batch, &timed[r], error);
  cs_exec_set_tracing (b->x, FALSE);
  return ok;
}

CsProfile *
cs_profile_run (CsNet *net, CsBackend *be, guint batch, CsExecFlags flags, guint iters,
                guint warmup, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (batch > 0 && iters > 0, NULL);
  g_return_val_if_fail (be->trace_start && be->trace_stop, NULL);
  CsGraph *g = net->graph;
  gboolean train = (flags & CS_EXEC_TRAINING) != 0;
  g_autoptr (CsProfile) p = profile_new (g, be, batch, train, iters, warmup);
  g_autofree double *plain = g_new0 (double, iters), *timed = g_new0 (double, iters);
  g_auto (Bench) b = { 0 };

  /* The tracer starts before anything runs and always stops, also after an error. */
  if (!be->trace_start (be, error))
    return NULL;
  GError *step_error = NULL;
  gboolean ok = traced_steps (p, net, be, flags, &b, timed, cancellable, &step_error);
  g_autoptr (GArray) records = be->trace_stop (be, &p->dropped, ok ? error : NULL);
  if (!ok)
    {
      g_propagate_error (error, step_error);
      return NULL;
    }
  if (records == NULL)
    return NULL;
  cs_profile_add_trace (p, (const CsTraceRecord *) records->data, records->len, iters);

  /* The same steps again without the tracer: its overhead. */
  for (guint r = 0; r < iters; r++)
    if (g_cancellable_set_error_if_cancelled (cancellable, error)
        || !timed_step (b.x, be, train, b.images, b.labels, batch, &plain[r], error))
      return NULL;
  p->timed_step_ms = mean (timed, iters);
  p->step_ms = mean (plain, iters);
  qsort (plain, iters, sizeof (double), by_value);
  p->step_median_ms = iters % 2 ? plain[iters / 2] : (plain[iters / 2 - 1] + plain[iters / 2]) / 2;

  const CsExecPlan *plan = cs_exec_plan (b.x);
  p->planned_bytes = plan->planned_bytes;
  p->naive_bytes = plan->naive_bytes;
  p->n_folded = plan->n_folded;
  p->n_fused_relus = plan->n_fused_relus;
  if (be->memory)
    be->memory (be, &p->peak_allocated_bytes, &p->device_in_use_bytes);
  if (be->describe)
    {
      for (guint i = 0; i < p->n_nodes; i++)
        {
          const CsNode *node = cs_graph_node (g, i);
          g_autofree CsShape *shapes = g_new (CsShape, MAX (node->n_inputs, 1));
          for (guint k = 0; k < node->n_inputs; k++)
            shapes[k] = cs_graph_node (g, node->inputs[k])->shape;
          p->algorithms[i] = be->describe (be, node, shapes, batch, p->train);
        }
    }
  return g_steal_pointer (&p);
}

static void
free_list (gpointer list)
{
  if (list)
    g_ptr_array_unref (list);
}

void
cs_profile_add_trace (CsProfile *p, const CsTraceRecord *records, guint n_records, guint steps)
{
  g_return_if_fail (steps > 0);
  /* In launch order, so that each node's kernel names come in the order they ran. */
  g_autofree const CsTraceRecord **sorted = g_new (const CsTraceRecord *, n_records);
  for (guint i = 0; i < n_records; i++)
    sorted[i] = &records[i];
  g_qsort_with_data (sorted, n_records, sizeof *sorted, by_start, NULL);

  g_autoptr (GPtrArray) names = g_ptr_array_new_full (p->n_nodes, free_list);
  for (guint i = 0; i < p->n_nodes; i++)
    g_ptr_array_add (names, NULL);
  double fwd_ms = 0, bwd_ms = 0, loss = 0, update = 0, other = 0;
  for (guint i = 0; i < n_records; i++)
    {
      const CsTraceRecord *r = sorted[i];
      double ms = (r->end_ns - MIN (r->start_ns, r->end_ns)) / 1e6;
      CsPhase phase = r->tag ? cs_trace_tag_phase (r->tag) : CS_PHASE_COUNT;
      guint node = cs_trace_tag_node (r->tag);
      if (phase == CS_PHASE_SETUP)
        continue;
      p->records++;
      gboolean per_node = (phase == CS_PHASE_FORWARD || phase == CS_PHASE_BACKWARD)
                          && node < p->n_nodes;
      if (phase == CS_PHASE_LOSS)
        loss += ms;
      else if (phase == CS_PHASE_UPDATE)
        update += ms;
      else if (!per_node)
        other += ms;
      if (!per_node)
        continue;
      gboolean fwd = phase == CS_PHASE_FORWARD;
      (fwd ? p->forward_ms : p->backward_ms)[node] += ms;
      *(fwd ? &fwd_ms : &bwd_ms) += ms;
      if (r->name == NULL)
        continue;  /* a host-clock interval, not a kernel */
      (fwd ? p->forward_kernels : p->backward_kernels)[node] += 1;
      if (names->pdata[node] == NULL)
        names->pdata[node] = g_ptr_array_new ();
      if (!g_ptr_array_find (names->pdata[node], r->name, NULL))  /* interned: pointers compare */
        g_ptr_array_add (names->pdata[node], (gpointer) r->name);
    }
  for (guint i = 0; i < p->n_nodes; i++)
    {
      p->forward_ms[i] /= steps, p->backward_ms[i] /= steps;
      p->forward_kernels[i] /= steps, p->backward_kernels[i] /= steps;
      GPtrArray *list = names->pdata[i];
      if (list && list->len && p->kernel_names[i] == NULL)
        {
          g_ptr_array_add (list, NULL);
          p->kernel_names[i] = g_strjoinv ("\n", (char **) list->pdata);
        }
    }
  p->loss_ms = loss / steps, p->update_ms = update / steps, p->unattributed_ms = other / steps;
  p->layers_ms = (fwd_ms + bwd_ms + loss + update + other) / steps;
}

void
cs_profile_free (CsProfile *p)
{
  if (p == NULL)
    return;
  g_free (p->model), g_free (p->device);
  g_free (p->forward_ms), g_free (p->backward_ms);
  g_free (p->forward_kernels), g_free (p->backward_kernels);
  if (p->kernel_names)
    for (guint i = 0; i < p->n_nodes; i++)
      g_free (p->kernel_names[i]);
  if (p->algorithms)
    for (guint i = 0; i < p->n_nodes; i++)
      g_free (p->algorithms[i]);
  g_free (p->kernel_names), g_free (p->algorithms);
  g_free (p);
}

double
cs_profile_layer_tflops (const CsProfile *p, guint64 macs, guint node)
{
  double ms = p->forward_ms[node] + p->backward_ms[node];
  return ms > 0 ? macs * 2.0 * p->batch * (p->train ? 3 : 1) / (ms * 1e9) : 0;
}

static gboolean
has_kernels (const CsProfile *p)
{
  for (guint i = 0; i < p->n_nodes; i++)
    if (p->forward_kernels[i] > 0 || p->backward_kernels[i] > 0)
      return TRUE;
  return FALSE;
}

static double
overhead_percent (const CsProfile *p)
{
  return 100 * (p->timed_step_ms - p->step_ms) / MAX (p->step_ms, 1e-9);
}

static char *
report_table (const CsProfile *p, const CsStats *st)
{
  const CsGraph *g = st->graph;
  gboolean kernels = has_kernels (p), peak = p->peak_tflops > 0;
  GString *out = g_string_new (NULL);
  g_string_append_printf (out, "%s, %s, batch %u, %u traced steps after %u warm-ups, on %s\n\n",
                          p->model, p->train ? "training step" : "forward pass", p->batch,
                          p->iters, p->warmup, p->device);
  g_string_append_printf (out, "%-28s %-12s %9s %10s %10s %7s %8s", "layer", "output", "MACs",
                          "fwd ms", "bwd ms", "% step", "TFLOP/s");
  if (peak)
    g_string_append_printf (out, " %6s", "% peak");
  if (kernels)
    g_string_append_printf (out, " %7s", "kernels");
  g_string_append_c (out, '\n');
  for (guint r = 0; r < st->unfolded->len; r++)
    {
      const CsRow *row = &g_array_index (st->unfolded, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      double f = p->forward_ms[n->id], b = p->backward_ms[n->id];
      if (f == 0 && b == 0)  /* did not run (the input's row is its upload) */
        continue;
      g_autofree char *shape = cs_shape_to_string (&n->shape);
      g_autofree char *macs = cs_format_si (row->st.macs * p->batch);
      double tflops = cs_profile_layer_tflops (p, row->st.macs, n->id);
      g_autofree char *name = g_utf8_strlen (n->name, -1) > 28
        ? g_strconcat ("…", g_utf8_offset_to_pointer (n->name, g_utf8_strlen (n->name, -1) - 27),
                       NULL)
        : g_strdup (n->name);
      g_string_append_printf (out, "%-*s %-12s %9s %10.3f %10.3f %6.1f%% ",
                              (int) (28 + strlen (name) - g_utf8_strlen (name, -1)), name, shape,
                              macs, f, b, 100 * (f + b) / MAX (p->timed_step_ms, 1e-9));
      if (tflops > 0)
        g_string_append_printf (out, "%8.3f", tflops);
      else
        g_string_append_printf (out, "%8s", "-");
      if (peak && tflops > 0)
        g_string_append_printf (out, " %5.1f%%", 100 * tflops / p->peak_tflops);
      else if (peak)
        g_string_append_printf (out, " %6s", "-");
      if (kernels)
        g_string_append_printf (out, " %7.4g", p->forward_kernels[n->id]
                                + p->backward_kernels[n->id]);
      g_string_append_c (out, '\n');
    }
  g_string_append_c (out, '\n');
  if (p->train)
    g_string_append_printf (out, "loss %.3f ms, update %.3f ms; ", p->loss_ms, p->update_ms);
  g_string_append_printf (out, "not attributed to a layer %.3f ms (%" G_GUINT64_FORMAT
                          " records traced, %" G_GUINT64_FORMAT " dropped)\n",
                          p->unattributed_ms, p->records, p->dropped);
  g_string_append_printf (out, "step %.3f ms (mean of %u, median %.3f) untraced; %.3f ms traced "
                          "(%+.1f%%: the tracer's cost)\n", p->step_ms, p->iters,
                          p->step_median_ms, p->timed_step_ms, overhead_percent (p));
  g_string_append_printf (out, "sum of the traced work %.3f ms; gap to the traced step %.3f ms "
                          "(launch and host work)\n", p->layers_ms,
                          p->timed_step_ms - p->layers_ms);
  if (peak)
    g_string_append_printf (out, "device peak %.1f TFLOP/s in this math mode\n", p->peak_tflops);
  if (p->n_folded || p->n_fused_relus)
    g_string_append_printf (out, "%u batch norms and %u ReLUs folded into the layers before them "
                            "(not listed: they cost nothing)\n", p->n_folded, p->n_fused_relus);
  g_autofree char *planned = g_format_size (p->planned_bytes);
  g_autofree char *naive = g_format_size (p->naive_bytes);
  g_string_append_printf (out, "memory: %s planned (%s if every output had its own buffer)",
                          planned, naive);
  if (p->peak_allocated_bytes)
    {
      g_autofree char *alloc = g_format_size (p->peak_allocated_bytes);
      g_autofree char *used = g_format_size (p->device_in_use_bytes);
      g_string_append_printf (out, "; at most %s allocated on the device, %s of it in use "
                              "(the CUDA context and libraries included)", alloc, used);
    }
  g_string_append_c (out, '\n');
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
      if (p->forward_ms[i] == 0 && p->backward_ms[i] == 0)
        continue;
      json_builder_begin_object (b);
      STR ("name", n->name);
      STR ("kind", cs_layer_class (n->op)->name);
      INT ("macs", st->nodes[i].macs * p->batch);
      DBL ("forward_ms", p->forward_ms[i]);
      DBL ("backward_ms", p->backward_ms[i]);
      DBL ("tflops", cs_profile_layer_tflops (p, st->nodes[i].macs, i));
      if (p->peak_tflops > 0)
        DBL ("peak_fraction", cs_profile_layer_tflops (p, st->nodes[i].macs, i) / p->peak_tflops);
      DBL ("forward_kernels", p->forward_kernels[i]);
      DBL ("backward_kernels", p->backward_kernels[i]);
      json_builder_set_member_name (b, "kernel_names");
      json_builder_begin_array (b);
      g_auto (GStrv) names = p->kernel_names[i] ? g_strsplit (p->kernel_names[i], "\n", -1) : NULL;
      for (guint k = 0; names && names[k]; k++)
        json_builder_add_string_value (b, names[k]);
      json_builder_end_array (b);
      if (p->algorithms[i])
        STR ("algorithm", p->algorithms[i]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "totals");
  json_builder_begin_object (b);
  DBL ("step_ms", p->step_ms);
  DBL ("step_median_ms", p->step_median_ms);
  DBL ("timed_step_ms", p->timed_step_ms);
  DBL ("tracer_overhead_percent", overhead_percent (p));
  DBL ("layers_ms", p->layers_ms);
  DBL ("gap_ms", p->timed_step_ms - p->layers_ms);
  DBL ("loss_ms", p->loss_ms);
  DBL ("update_ms", p->update_ms);
  DBL ("unattributed_ms", p->unattributed_ms);
  INT ("records", p->records);
  INT ("dropped", p->dropped);
  DBL ("peak_tflops", p->peak_tflops);
  INT ("planned_bytes", p->planned_bytes);
  INT ("naive_bytes", p->naive_bytes);
  INT ("folded_batch_norms", p->n_folded);
  INT ("fused_relus", p->n_fused_relus);
  INT ("peak_allocated_bytes", p->peak_allocated_bytes);
  INT ("device_in_use_bytes", p->device_in_use_bytes);
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
