/* Renders CsStats for people (an aligned table, Markdown) and programs (CSV, JSON). */
#include "cs-report.h"

#include <json-glib/json-glib.h>

gboolean
cs_report_format_from_string (const char *s, CsReportFormat *out)
{
  static const char *names[] = { "table", "markdown", "csv", "json" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (s, names[i]))
      {
        *out = i;
        return TRUE;
      }
  return FALSE;
}

static const CsTotals *
view_totals (const CsStats *st, gboolean unfold)
{
  return unfold ? &st->unfolded_totals : &st->folded_totals;
}

static const GArray *
view_rows (const CsStats *st, gboolean unfold)
{
  return unfold ? st->unfolded : st->folded;
}

static char *
rf_string (const CsLayerStats *s)
{
  if (s->rf_h.size == s->rf_w.size)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, s->rf_h.size);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT, s->rf_h.size,
                          s->rf_w.size);
}

/* The row's parameter formula: the head's, plus what folded layers add. */
static char *
row_params (const CsStats *st, const CsRow *row)
{
  char *f = cs_stats_params_formula (st, row->head);
  const CsLayerStats *head = &st->nodes[row->head];
  if (f == NULL)
    f = cs_format_count (row->st.weights);
  else if (row->st.weights != head->weights)
    {
      g_autofree char *extra = cs_format_count (row->st.weights - head->weights);
      char *both = g_strdup_printf ("%s +%s", f, extra);
      g_free (f);
      f = both;
    }
  return f;
}

static void
ellipsize (GString *out, const char *s, guint width)
{
  glong len = g_utf8_strlen (s, -1);
  if (len <= (glong) width)
    g_string_append_printf (out, "%-*s", (int) (width + strlen (s) - len), s);
  else
    g_string_append_printf (out, "…%s", g_utf8_offset_to_pointer (s, len - width + 1));
}

static void
append_totals_text (GString *out, const CsStats *st, gboolean unfold)
{
  const CsTotals *t = view_totals (st, unfold);
  g_autofree char *params = cs_format_count (t->params);
  g_autofree char *weights = cs_format_count (t->weights);
  g_autofree char *biases = cs_format_count (t->biases);
  g_autofree char *buffers = cs_format_count (t->buffers);
  g_autofree char *acts = cs_format_count (t->batch_activations);
  g_autofree char *act_bytes = g_format_size (t->activation_bytes);
  g_autofree char *macs = cs_format_count (t->batch_macs);
  g_autofree char *flops = cs_format_si (t->batch_flops);
  g_autofree char *other = cs_format_si (t->batch_other_ops);
  g_autofree char *train = g_format_size (t->training_bytes);
  g_autofree char *param_bytes = g_format_size (t->params * 4);

  g_string_append_printf (out, "\nTotals for a batch of %" G_GUINT64_FORMAT "%s:\n", st->batch,
                          st->batch == 1 ? " image" : " images");
  g_string_append_printf (out, "  parameters   %s = %s weights + %s biases (%s at float32)\n",
                          params, weights, biases, param_bytes);
  if (t->buffers)
    g_string_append_printf (out, "  buffers      %s (batch-norm running mean and variance)\n",
                            buffers);
  g_string_append_printf (out, "  activations  %s values = %s at float32 (forward pass, every "
                          "%s output kept)\n", acts, act_bytes, unfold ? "layer's" : "row's");
  g_string_append_printf (out, "  MACs         %s multiply-adds = %s FLOPs (conv and fc); other "
                          "work %s ops\n", macs, flops, other);
  g_string_append_printf (out, "  training     %s estimated = 4 bytes * (2 * activations + 3 * "
                          "parameters + buffers)\n", train);
  if (t->train_only_params || t->train_only_macs)
    {
      g_autofree char *ap = cs_format_count (t->train_only_params);
      g_autofree char *am = cs_format_count (t->train_only_macs * st->batch);
      g_string_append_printf (out, "  auxiliary    %s parameters, %s MACs in training-only "
                              "branches\n               (marked *, not in the totals above)\n",
                              ap, am);
    }
}

/* TEXT in lines of at most WIDTH characters, broken at spaces. */
static void
append_wrapped (GString *out, const char *text, const char *first, const char *rest,
                guint width)
{
  g_auto (GStrv) words = g_strsplit (text, " ", -1);
  const char *indent = first;
  glong col = g_utf8_strlen (first, -1);
  g_string_append (out, first);
  gboolean line_empty = TRUE;
  for (char **w = words; *w; w++)
    {
      glong len = g_utf8_strlen (*w, -1);
      if (!line_empty && col + 1 + len > (glong) width)
        {
          indent = rest;
          g_string_append_printf (out, "\n%s", indent);
          col = g_utf8_strlen (indent, -1);
          line_empty = TRUE;
        }
      if (!line_empty)
        {
          g_string_append_c (out, ' ');
          col++;
        }
      g_string_append (out, *w);
      col += len;
      line_empty = FALSE;
    }
  g_string_append_c (out, '\n');
}

static char *
report_table (const CsStats *st, gboolean unfold)
{
  const CsGraph *g = st->graph;
  const GArray *rows = view_rows (st, unfold);
  GString *out = g_string_new (NULL);
  const CsShape *in = &cs_graph_node (g, 0)->shape;

  g_autofree char *heading = g->paper ? g_strdup_printf ("%s (%s) — %s", g->title, g->name,
                                                         g->paper)
                                       : g_strdup_printf ("%s (%s)", g->title, g->name);
  append_wrapped (out, heading, "", "  ", 98);
  g_string_append_printf (out, "input %" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT "x%"
                          G_GUINT64_FORMAT ", batch %" G_GUINT64_FORMAT ", %s\n\n",
                          in->h, in->w, in->c, st->batch,
                          unfold ? "every layer" : "lecture view: in-place layers (ReLU, batch "
                          "norm, dropout, softmax)\nfolded into the layer before them");
  g_string_append_printf (out, "%-24s %-12s %10s  %-30s %6s %7s %4s\n", "layer", "output",
                          "memory", "params (weights)", "biases", "MACs", "RF");
  for (guint r = 0; r < rows->len; r++)
    {
      const CsRow *row = &g_array_index (rows, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      g_autofree char *name = g_strconcat (n->name, n->flags & CS_NODE_TRAIN_ONLY ? "*" : "",
                                           NULL);
      g_autofree char *shape = cs_shape_to_string (&n->shape);
      g_autofree char *mem = cs_format_count (row->st.activations * st->batch);
      g_autofree char *params = row_params (st, row);
      g_autofree char *biases = cs_format_count (row->st.biases);
      g_autofree char *macs = cs_format_si (row->st.macs * st->batch);
      g_autofree char *rf = rf_string (&row->st);
      ellipsize (out, name, 24);
      g_string_append_printf (out, " %-12s %10s  ", shape, mem);
      ellipsize (out, params, 30);
      g_string_append_printf (out, " %6s %7s %4s\n", biases, macs, rf);
    }
  append_totals_text (out, st, unfold);
  if (g->note)
    {
      g_auto (GStrv) lines = g_strsplit (g->note, "\n", -1);
      g_string_append (out, "\nNotes:\n");
      for (char **l = lines; *l; l++)
        append_wrapped (out, *l, "  - ", "    ", 98);
    }
  return g_string_free (out, FALSE);
}

static void
md_escape (GString *out, const char *s)
{
  for (; *s; s++)
    {
      if (*s == '|' || *s == '*' || *s == '_')
        g_string_append_c (out, '\\');
      g_string_append_c (out, *s);
    }
}

static char *
report_markdown (const CsStats *st, gboolean unfold)
{
  const CsGraph *g = st->graph;
  const GArray *rows = view_rows (st, unfold);
  const CsTotals *t = view_totals (st, unfold);
  GString *out = g_string_new (NULL);
  g_string_append (out, "### ");
  md_escape (out, g->title);
  g_string_append_printf (out, " (batch %" G_GUINT64_FORMAT ")\n\n", st->batch);
  g_string_append (out, "| layer | kind | output | memory | params (weights) | biases | MACs "
                        "| RF |\n|---|---|---|---:|---|---:|---:|---:|\n");
  for (guint r = 0; r < rows->len; r++)
    {
      const CsRow *row = &g_array_index (rows, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      g_autofree char *shape = cs_shape_to_string (&n->shape);
      g_autofree char *mem = cs_format_count (row->st.activations * st->batch);
      g_autofree char *params = row_params (st, row);
      g_autofree char *biases = cs_format_count (row->st.biases);
      g_autofree char *macs = cs_format_count (row->st.macs * st->batch);
      g_autofree char *rf = rf_string (&row->st);
      g_string_append (out, "| ");
      md_escape (out, n->name);
      if (n->flags & CS_NODE_TRAIN_ONLY)
        g_string_append (out, " (training only)");
      g_string_append_printf (out, " | %s | %s | %s | ", cs_layer_class (n->op)->name, shape,
                              mem);
      md_escape (out, params);
      g_string_append_printf (out, " | %s | %s | %s |\n", biases, macs, rf);
    }
  g_autofree char *params = cs_format_count (t->params);
  g_autofree char *acts = cs_format_count (t->batch_activations);
  g_autofree char *macs = cs_format_count (t->batch_macs);
  g_autofree char *weights = cs_format_count (t->weights);
  g_autofree char *biases = cs_format_count (t->biases);
  g_string_append_printf (out, "| **total** | | | %s | %s | %s | %s | |\n\n", acts, weights,
                          biases, macs);
  g_string_append_printf (out, "Parameters: %s. MACs are multiply-adds (FLOPs = 2 x MACs).\n",
                          params);
  return g_string_free (out, FALSE);
}

static char *
report_csv (const CsStats *st, gboolean unfold)
{
  const CsGraph *g = st->graph;
  const GArray *rows = view_rows (st, unfold);
  GString *out = g_string_new ("name,kind,module,out_h,out_w,out_c,activations,weights,biases,"
                               "buffers,macs,other_ops,rf_h,rf_w,rf_jump,training_only\n");
  for (guint r = 0; r < rows->len; r++)
    {
      const CsRow *row = &g_array_index (rows, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      const CsLayerStats *s = &row->st;
      g_string_append_printf (out, "%s,%s,%s,%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%"
                              G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%"
                              G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%"
                              G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%"
                              G_GUINT64_FORMAT ",%d\n",
                              n->name, cs_layer_class (n->op)->name, n->module, n->shape.h,
                              n->shape.w, n->shape.c, s->activations * st->batch, s->weights,
                              s->biases, s->buffers, s->macs * st->batch,
                              s->other_ops * st->batch, s->rf_h.size, s->rf_w.size, s->rf_h.jump,
                              (n->flags & CS_NODE_TRAIN_ONLY) != 0);
    }
  return g_string_free (out, FALSE);
}

static void
add_shape (JsonBuilder *b, const char *member, const CsShape *s)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  json_builder_add_int_value (b, s->c);
  json_builder_add_int_value (b, s->h);
  json_builder_add_int_value (b, s->w);
  json_builder_end_array (b);
}

static void
add_int (JsonBuilder *b, const char *member, guint64 v)
{
  json_builder_set_member_name (b, member);
  json_builder_add_int_value (b, (gint64) v);
}

static void
add_train_preset (JsonBuilder *b, const CsTrainPreset *t)
{
  static const char *schedules[] = { NULL, "constant", "step", "plateau" };
  json_builder_set_member_name (b, "train");
  json_builder_begin_object (b);
  if (t->batch)
    add_int (b, "batch", t->batch);
  if (t->epochs)
    add_int (b, "epochs", t->epochs);
  const char *names[] = { "lr", "momentum", "decay", "dropout" };
  double values[] = { t->lr, t->momentum, t->decay, t->dropout };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (values[i] > 0)
      {
        json_builder_set_member_name (b, names[i]);
        json_builder_add_double_value (b, values[i]);
      }
  if (schedules[t->schedule])
    {
      json_builder_set_member_name (b, "schedule");
      json_builder_add_string_value (b, schedules[t->schedule]);
    }
  if (t->n_steps)
    {
      json_builder_set_member_name (b, "steps");
      json_builder_begin_array (b);
      for (guint i = 0; i < t->n_steps; i++)
        json_builder_add_int_value (b, t->steps[i]);
      json_builder_end_array (b);
    }
  json_builder_set_member_name (b, "init");
  json_builder_add_string_value (b, t->xavier ? "xavier" : "he");
  json_builder_end_object (b);
}

/* The lecture's formulas for a row, where the layer has them. */
static void
add_formulas (JsonBuilder *b, const CsStats *st, guint node)
{
  g_autofree char *output = cs_stats_output_formula (st, node);
  g_autofree char *params = cs_stats_params_formula (st, node);
  g_autofree char *memory = cs_stats_memory_formula (st, node);
  json_builder_set_member_name (b, "formulas");
  json_builder_begin_object (b);
  const char *names[] = { "output", "params", "memory" };
  const char *values[] = { output, params, memory };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (values[i])
      {
        json_builder_set_member_name (b, names[i]);
        json_builder_add_string_value (b, values[i]);
      }
  json_builder_end_object (b);
}

static char *
report_json (const CsStats *st, gboolean unfold)
{
  const CsGraph *g = st->graph;
  const GArray *rows = view_rows (st, unfold);
  const CsTotals *t = view_totals (st, unfold);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, g->name);
  json_builder_set_member_name (b, "title");
  json_builder_add_string_value (b, g->title);
  const char *strings[][2] = { { "paper", g->paper }, { "family", g->family },
                               { "note", g->note } };
  for (guint i = 0; i < G_N_ELEMENTS (strings); i++)
    if (strings[i][1])
      {
        json_builder_set_member_name (b, strings[i][0]);
        json_builder_add_string_value (b, strings[i][1]);
      }
  if (g->year)
    add_int (b, "year", g->year);
  if (g->top1 > 0)
    {
      json_builder_set_member_name (b, "accuracy");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "top1");
      json_builder_add_double_value (b, g->top1);
      if (g->top5 > 0)
        {
          json_builder_set_member_name (b, "top5");
          json_builder_add_double_value (b, g->top5);
        }
      if (g->accuracy_source)
        {
          json_builder_set_member_name (b, "source");
          json_builder_add_string_value (b, g->accuracy_source);
        }
      json_builder_end_object (b);
    }
  add_train_preset (b, &g->train);
  add_shape (b, "input", &cs_graph_node (g, 0)->shape);
  add_int (b, "batch", st->batch);
  json_builder_set_member_name (b, "view");
  json_builder_add_string_value (b, unfold ? "unfolded" : "lecture");

  json_builder_set_member_name (b, "layers");
  json_builder_begin_array (b);
  for (guint r = 0; r < rows->len; r++)
    {
      const CsRow *row = &g_array_index (rows, CsRow, r);
      const CsNode *n = cs_graph_node (g, row->head);
      const CsLayerStats *s = &row->st;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, n->name);
      json_builder_set_member_name (b, "kind");
      json_builder_add_string_value (b, cs_layer_class (n->op)->name);
      json_builder_set_member_name (b, "module");
      json_builder_add_string_value (b, n->module);
      json_builder_set_member_name (b, "inputs");
      json_builder_begin_array (b);
      for (guint i = 0; i < n->n_inputs; i++)
        json_builder_add_string_value (b, cs_graph_node (g, n->inputs[i])->name);
      json_builder_end_array (b);
      if (row->n_folded)
        {
          /* The folded nodes follow the head in order; find them by walking consumers. */
          json_builder_set_member_name (b, "folded");
          json_builder_begin_array (b);
          guint cur = row->head;
          for (guint k = 0; k < row->n_folded; k++)
            for (guint j = cur + 1; j < cs_graph_n_nodes (g); j++)
              {
                const CsNode *c = cs_graph_node (g, j);
                if (c->n_inputs == 1 && c->inputs[0] == cur)
                  {
                    json_builder_add_string_value (b, c->name);
                    cur = j;
                    break;
                  }
              }
          json_builder_end_array (b);
        }
      add_shape (b, "output", &n->shape);
      add_int (b, "weights", s->weights);
      add_int (b, "biases", s->biases);
      add_int (b, "buffers", s->buffers);
      add_int (b, "activations", s->activations * st->batch);
      add_int (b, "macs", s->macs * st->batch);
      add_int (b, "other_ops", s->other_ops * st->batch);
      json_builder_set_member_name (b, "rf");
      json_builder_begin_array (b);
      json_builder_add_int_value (b, s->rf_h.size);
      json_builder_add_int_value (b, s->rf_h.jump);
      json_builder_end_array (b);
      if (s->rf_w.size != s->rf_h.size || s->rf_w.jump != s->rf_h.jump)
        {
          json_builder_set_member_name (b, "rf_w");
          json_builder_begin_array (b);
          json_builder_add_int_value (b, s->rf_w.size);
          json_builder_add_int_value (b, s->rf_w.jump);
          json_builder_end_array (b);
        }
      json_builder_set_member_name (b, "rf_start");
      json_builder_add_double_value (b, s->rf_h.start);
      add_formulas (b, st, row->head);
      if (n->flags & CS_NODE_TRAIN_ONLY)
        {
          json_builder_set_member_name (b, "training_only");
          json_builder_add_boolean_value (b, TRUE);
        }
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "totals");
  json_builder_begin_object (b);
  add_int (b, "weights", t->weights);
  add_int (b, "biases", t->biases);
  add_int (b, "params", t->params);
  add_int (b, "buffers", t->buffers);
  add_int (b, "activations", t->batch_activations);
  add_int (b, "activation_bytes", t->activation_bytes);
  add_int (b, "training_bytes", t->training_bytes);
  add_int (b, "macs", t->batch_macs);
  add_int (b, "flops", t->batch_flops);
  add_int (b, "other_ops", t->batch_other_ops);
  add_int (b, "train_only_params", t->train_only_params);
  add_int (b, "train_only_macs", t->train_only_macs * st->batch);
  json_builder_end_object (b);
  json_builder_end_object (b);

  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  char *s = json_generator_to_data (gen, NULL);
  char *with_nl = g_strconcat (s, "\n", NULL);
  g_free (s);
  return with_nl;
}

char *
cs_report (const CsStats *st, CsReportFormat format, gboolean unfold)
{
  switch (format)
    {
    case CS_REPORT_TABLE: return report_table (st, unfold);
    case CS_REPORT_MARKDOWN: return report_markdown (st, unfold);
    case CS_REPORT_CSV: return report_csv (st, unfold);
    case CS_REPORT_JSON: return report_json (st, unfold);
    }
  g_return_val_if_reached (NULL);
}
