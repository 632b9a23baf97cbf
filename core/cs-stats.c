/* Statistics of a finalized graph, the lecture view that folds in-place layers, and the
 * lecture's formulas. */
#include "cs-stats.h"
#include "cs-error.h"

#include <math.h>

#define MAX_BATCH 1048576

static gboolean
checked_add (guint64 *acc, guint64 v)
{
  return g_uint64_checked_add (acc, *acc, v);
}

static gboolean
checked_mul (guint64 *out, guint64 a, guint64 b)
{
  return g_uint64_checked_mul (out, a, b);
}

static gboolean
fold_row (CsRow *row, const CsLayerStats *s)
{
  return checked_add (&row->st.weights, s->weights) && checked_add (&row->st.biases, s->biases)
      && checked_add (&row->st.buffers, s->buffers) && checked_add (&row->st.macs, s->macs)
      && checked_add (&row->st.other_ops, s->other_ops);
}

/* Receptive field of one axis through a window of kernel K, stride S, padding P, dilation D. */
static gboolean
rf_window (const CsRf *in, guint64 k, guint64 s, guint64 p, guint64 d, CsRf *out)
{
  guint64 span = d * (k - 1) + 1, grow;
  if (!checked_mul (&grow, span - 1, in->jump))
    return FALSE;
  out->size = in->size;
  if (!checked_add (&out->size, grow) || !checked_mul (&out->jump, in->jump, s))
    return FALSE;
  out->start = in->start + ((double) (span - 1) / 2.0 - (double) p) * (double) in->jump;
  return TRUE;
}

/* The union of the fields of several inputs, as one interval around a centre. */
static void
rf_union (CsRf *acc, const CsRf *in, gboolean first)
{
  if (first)
    {
      *acc = *in;
      return;
    }
  double lo = MIN (acc->start - (acc->size - 1) / 2.0, in->start - (in->size - 1) / 2.0);
  double hi = MAX (acc->start + (acc->size - 1) / 2.0, in->start + (in->size - 1) / 2.0);
  acc->size = (guint64) llround (hi - lo) + 1;
  acc->start = (lo + hi) / 2.0;
  acc->jump = MAX (acc->jump, in->jump);
}

gboolean
cs_stats_foldable (const CsGraph *g, const CsNode *n)
{
  if (!(cs_layer_class (n->op)->flags & CS_LAYER_INPLACE) || n->n_inputs != 1)
    return FALSE;
  const CsNode *in = cs_graph_node (g, n->inputs[0]);
  return in->op != CS_OP_INPUT && g->n_consumers[in->id] == 1
      && (in->flags & CS_NODE_TRAIN_ONLY) == (n->flags & CS_NODE_TRAIN_ONLY);
}

static gboolean
add_totals (CsTotals *t, const CsRow *row, const CsNode *head)
{
  const CsLayerStats *s = &row->st;
  if (head->flags & CS_NODE_TRAIN_ONLY)
    return checked_add (&t->train_only_params, s->weights)
        && checked_add (&t->train_only_params, s->biases)
        && checked_add (&t->train_only_macs, s->macs);
  return checked_add (&t->weights, s->weights) && checked_add (&t->biases, s->biases)
      && checked_add (&t->buffers, s->buffers) && checked_add (&t->activations, s->activations)
      && checked_add (&t->macs, s->macs) && checked_add (&t->other_ops, s->other_ops);
}

static gboolean
finish_totals (CsTotals *t, guint64 batch)
{
  guint64 a2, p3;
  t->params = t->weights + t->biases;
  return checked_mul (&t->batch_activations, t->activations, batch)
      && checked_mul (&t->batch_macs, t->macs, batch)
      && checked_mul (&t->batch_flops, t->batch_macs, 2)
      && checked_mul (&t->batch_other_ops, t->other_ops, batch)
      && checked_mul (&t->activation_bytes, t->batch_activations, 4)
      && checked_mul (&a2, t->batch_activations, 2)
      && checked_mul (&p3, t->params, 3)
      && checked_add (&a2, p3) && checked_add (&a2, t->buffers)
      && checked_mul (&t->training_bytes, a2, 4);
}

CsStats *
cs_stats_compute (CsGraph *g, guint64 batch, GError **error)
{
  g_return_val_if_fail (g->finalized, NULL);
  if (batch < 1 || batch > MAX_BATCH)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "the batch size must be from 1 to %d",
                   MAX_BATCH);
      return NULL;
    }
  guint n = cs_graph_n_nodes (g);
  g_autoptr (CsStats) st = g_new0 (CsStats, 1);
  st->graph = cs_graph_ref (g);
  st->batch = batch;
  st->nodes = g_new0 (CsLayerStats, n);
  st->folded = g_array_new (FALSE, FALSE, sizeof (CsRow));
  st->unfolded = g_array_sized_new (FALSE, FALSE, sizeof (CsRow), n);
  g_autofree guint *row_of = g_new (guint, n);
  g_autofree CsShape *in = NULL;
  guint in_cap = 0;

  for (guint i = 0; i < n; i++)
    {
      const CsNode *node = cs_graph_node (g, i);
      CsLayerStats *s = &st->nodes[i];
      if (node->n_inputs > in_cap)
        {
          in_cap = node->n_inputs;
          in = g_renew (CsShape, in, in_cap);
        }
      for (guint j = 0; j < node->n_inputs; j++)
        in[j] = cs_graph_node (g, node->inputs[j])->shape;

      gboolean ok = cs_shape_numel (&node->shape, &s->activations)
                 && cs_layer_class (node->op)->count (node, in, node->n_inputs, s);

      /* Receptive field, per axis. */
      if (node->op == CS_OP_INPUT)
        s->rf_h = s->rf_w = (CsRf) { 1, 1, 0.0 };
      else if (cs_layer_class (node->op)->flags & (CS_LAYER_WINDOW | CS_LAYER_WHOLE))
        {
          guint64 k[2], sd[2], p[2], d[2];
          cs_layer_window (node, &in[0], k, sd, p, d);
          const CsLayerStats *is = &st->nodes[node->inputs[0]];
          ok = ok && rf_window (&is->rf_h, k[0], sd[0], p[0], d[0], &s->rf_h)
                  && rf_window (&is->rf_w, k[1], sd[1], p[1], d[1], &s->rf_w);
        }
      else
        for (guint j = 0; j < node->n_inputs; j++)
          {
            rf_union (&s->rf_h, &st->nodes[node->inputs[j]].rf_h, j == 0);
            rf_union (&s->rf_w, &st->nodes[node->inputs[j]].rf_w, j == 0);
          }
      if (!ok)
        {
          cs_graph_node_error (g, node, error, CS_ERROR_OVERFLOW,
                               "a count of this layer does not fit in 64 bits");
          return NULL;
        }

      CsRow row = { .head = i, .n_folded = 0, .st = *s };
      g_array_append_val (st->unfolded, row);
      if (cs_stats_foldable (g, node))
        {
          guint r = row_of[node->inputs[0]];
          CsRow *target = &g_array_index (st->folded, CsRow, r);
          target->n_folded++;
          if (!fold_row (target, s))
            {
              cs_graph_node_error (g, node, error, CS_ERROR_OVERFLOW,
                                   "a count of this layer does not fit in 64 bits");
              return NULL;
            }
          row_of[i] = r;
        }
      else
        {
          row_of[i] = st->folded->len;
          g_array_append_val (st->folded, row);
        }
    }

  gboolean ok = TRUE;
  for (guint r = 0; r < st->folded->len && ok; r++)
    {
      const CsRow *row = &g_array_index (st->folded, CsRow, r);
      ok = add_totals (&st->folded_totals, row, cs_graph_node (g, row->head));
    }
  for (guint r = 0; r < st->unfolded->len && ok; r++)
    {
      const CsRow *row = &g_array_index (st->unfolded, CsRow, r);
      ok = add_totals (&st->unfolded_totals, row, cs_graph_node (g, row->head));
    }
  ok = ok && finish_totals (&st->folded_totals, batch)
          && finish_totals (&st->unfolded_totals, batch);
  if (!ok)
    {
      cs_graph_pos_error (g, NULL, error, CS_ERROR_OVERFLOW,
                          "the totals for a batch of %" G_GUINT64_FORMAT " do not fit in 64 "
                          "bits", batch);
      return NULL;
    }
  return g_steal_pointer (&st);
}

void
cs_stats_free (CsStats *st)
{
  if (st == NULL)
    return;
  cs_graph_unref (st->graph);
  g_free (st->nodes);
  g_array_unref (st->folded);
  g_array_unref (st->unfolded);
  g_free (st);
}

char *
cs_format_count (guint64 v)
{
  char digits[32];
  g_snprintf (digits, sizeof digits, "%" G_GUINT64_FORMAT, v);
  GString *s = g_string_new (NULL);
  gsize len = strlen (digits);
  for (gsize i = 0; i < len; i++)
    {
      if (i > 0 && (len - i) % 3 == 0)
        g_string_append_c (s, ',');
      g_string_append_c (s, digits[i]);
    }
  return g_string_free (s, FALSE);
}

static char *
format_scaled (guint64 v, int sig)
{
  static const char suffix[] = { 'K', 'M', 'G', 'T', 'P', 'E' };
  double x = v;
  int i = -1;
  while (x >= 999.5 && i < (int) G_N_ELEMENTS (suffix) - 1)
    {
      x /= 1000.0;
      i++;
    }
  if (i < 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, v);
  /* Round to SIG significant digits; a carry to 1000 moves to the next prefix. */
  int mag = (int) floor (log10 (x));
  double scale = pow (10.0, sig - 1 - mag);
  x = round (x * scale) / scale;
  if (x >= 1000.0 && i < (int) G_N_ELEMENTS (suffix) - 1)
    {
      x /= 1000.0;
      i++;
    }
  int decimals = MAX (0, sig - 1 - (int) floor (log10 (x)));
  return g_strdup_printf ("%.*f%c", decimals, x, suffix[i]);
}

char *
cs_format_lecture (guint64 v)
{
  return v < 1000 ? cs_format_count (v) : format_scaled (v, 2);
}

char *
cs_format_si (guint64 v)
{
  return format_scaled (v, 3);
}

char *
cs_stats_output_formula (const CsStats *st, guint id)
{
  const CsNode *n = cs_graph_node (st->graph, id);
  if (!(cs_layer_class (n->op)->flags & CS_LAYER_WINDOW) || n->p.global)
    return NULL;
  const CsShape *in = &cs_graph_node (st->graph, n->inputs[0])->shape;
  guint64 k[2], s[2], p[2], d[2];
  cs_layer_window (n, in, k, s, p, d);
  guint64 size[2] = { in->h, in->w }, out[2] = { n->shape.h, n->shape.w };
  GString *f = g_string_new (NULL);
  gboolean same = size[0] == size[1] && k[0] == k[1] && s[0] == s[1] && p[0] == p[1]
               && d[0] == d[1];
  for (guint a = 0; a < (same ? 1u : 2u); a++)
    {
      guint64 span = d[a] * (k[a] - 1) + 1;
      if (a == 1)
        g_string_append (f, "; ");
      if (!same)
        g_string_append (f, a == 0 ? "H: " : "W: ");
      g_autofree char *num = p[a]
        ? g_strdup_printf ("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "+2*%" G_GUINT64_FORMAT,
                           size[a], span, p[a])
        : g_strdup_printf ("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, size[a], span);
      if (n->p.ceil)
        g_string_append_printf (f, "ceil((%s)/%" G_GUINT64_FORMAT ")+1 = %" G_GUINT64_FORMAT,
                                num, s[a], out[a]);
      else
        g_string_append_printf (f, "(%s)/%" G_GUINT64_FORMAT "+1 = %" G_GUINT64_FORMAT,
                                num, s[a], out[a]);
    }
  return g_string_free (f, FALSE);
}

char *
cs_stats_params_formula (const CsStats *st, guint id)
{
  const CsNode *n = cs_graph_node (st->graph, id);
  const CsLayerStats *s = &st->nodes[id];
  g_autofree char *total = cs_format_count (s->weights);
  switch (n->op)
    {
    case CS_OP_CONV:
      {
        const CsShape *in = &cs_graph_node (st->graph, n->inputs[0])->shape;
        return g_strdup_printf ("(%u*%u*%" G_GUINT64_FORMAT ")*%" G_GUINT64_FORMAT " = %s",
                                n->p.kh, n->p.kw, in->c / n->p.groups, n->p.out, total);
      }
    case CS_OP_FC:
      {
        const CsShape *in = &cs_graph_node (st->graph, n->inputs[0])->shape;
        if (in->h == 1 && in->w == 1)
          return g_strdup_printf ("%" G_GUINT64_FORMAT "*%" G_GUINT64_FORMAT " = %s", in->c,
                                  n->p.out, total);
        return g_strdup_printf ("%" G_GUINT64_FORMAT "*%" G_GUINT64_FORMAT "*%" G_GUINT64_FORMAT
                                "*%" G_GUINT64_FORMAT " = %s", in->h, in->w, in->c, n->p.out,
                                total);
      }
    case CS_OP_BN:
      return s->weights ? g_strdup_printf ("%" G_GUINT64_FORMAT " scales", s->weights) : NULL;
    default:
      return NULL;
    }
}

char *
cs_stats_memory_formula (const CsStats *st, guint id)
{
  const CsNode *n = cs_graph_node (st->graph, id);
  g_autofree char *total = cs_format_count (st->nodes[id].activations);
  if (n->shape.h == 1 && n->shape.w == 1)
    return g_strdup (total);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "*%" G_GUINT64_FORMAT "*%" G_GUINT64_FORMAT
                          " = %s", n->shape.h, n->shape.w, n->shape.c, total);
}
