/* CsDetails: a column of labels describing one layer (or the model) in the lecture's terms. */
#include "cs-details.h"

struct _CsDetails {
  GtkWidget parent_instance;
  GtkWidget *box;
};

G_DEFINE_FINAL_TYPE (CsDetails, cs_details, GTK_TYPE_WIDGET)

static void
cs_details_dispose (GObject *object)
{
  CsDetails *self = CS_DETAILS (object);
  g_clear_pointer (&self->box, gtk_widget_unparent);
  G_OBJECT_CLASS (cs_details_parent_class)->dispose (object);
}

static void
cs_details_class_init (CsDetailsClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cs_details_dispose;
  gtk_widget_class_set_layout_manager_type (GTK_WIDGET_CLASS (klass), GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (GTK_WIDGET_CLASS (klass), "details");
}

static void
cs_details_init (CsDetails *self)
{
  self->box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_widget_add_css_class (self->box, "details");
  gtk_widget_set_parent (self->box, GTK_WIDGET (self));
}

GtkWidget *
cs_details_new (void)
{
  return g_object_new (CS_TYPE_DETAILS, NULL);
}

static void
add_label (CsDetails *self, const char *css, const char *markup)
{
  GtkWidget *l = gtk_label_new (NULL);
  gtk_label_set_markup (GTK_LABEL (l), markup);
  gtk_label_set_xalign (GTK_LABEL (l), 0);
  gtk_label_set_wrap (GTK_LABEL (l), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (l), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_selectable (GTK_LABEL (l), TRUE);
  if (css)
    gtk_widget_add_css_class (l, css);
  gtk_box_append (GTK_BOX (self->box), l);
}

static void
add_pair (CsDetails *self, const char *key, const char *value)
{
  g_autofree char *k = g_markup_escape_text (key, -1), *v = g_markup_escape_text (value, -1);
  g_autofree char *m = g_strdup_printf ("<b>%s</b>  %s", k, v);
  add_label (self, NULL, m);
}

static void
add_formula (CsDetails *self, const char *key, char *formula)
{
  if (formula == NULL)
    return;
  g_autofree char *k = g_markup_escape_text (key, -1), *v = g_markup_escape_text (formula, -1);
  g_autofree char *m = g_strdup_printf ("<b>%s</b>\n<tt>%s</tt>", k, v);
  add_label (self, "formula", m);
  g_free (formula);
}

static void
clear (CsDetails *self)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (self->box)))
    gtk_box_remove (GTK_BOX (self->box), child);
}

/* The parameters the layer's kind takes, from the layer table, as "stride 2x2, pad 1x1". */
static char *
params_text (const CsNode *n)
{
  const CsLayerClass *k = cs_layer_class (n->op);
  GString *s = g_string_new (NULL);
  const guint8 *base = (const guint8 *) &n->p;
  for (guint i = 0; i < k->n_params; i++)
    {
      const CsParamSpec *sp = &k->params[i];
      char buf[64] = "";
      switch (sp->type)
        {
        case CS_PARAM_INT:
          g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT,
                      sp->width == 8 ? *(const guint64 *) (base + sp->offset)
                                     : *(const guint32 *) (base + sp->offset));
          break;
        case CS_PARAM_FLOAT:
          g_snprintf (buf, sizeof buf, "%g", *(const double *) (base + sp->offset));
          break;
        case CS_PARAM_SIZE:
        case CS_PARAM_PAD:
          {
            const guint32 *f = (const guint32 *) (base + sp->offset);
            if (sp->type == CS_PARAM_PAD && n->p.pad_same)
              g_strlcpy (buf, "same", sizeof buf);
            else
              g_snprintf (buf, sizeof buf, "%ux%u", f[0], f[1]);
            break;
          }
        case CS_PARAM_FLAG:
          if (*(const gboolean *) (base + sp->offset))
            g_strlcpy (buf, "yes", sizeof buf);
          break;
        }
      if (*buf)
        g_string_append_printf (s, "%s%s %s", s->len ? ", " : "", sp->name, buf);
    }
  return g_string_free (s, FALSE);
}

void
cs_details_show (CsDetails *self, CsStats *st, gint node, const CsProfile *profile)
{
  g_return_if_fail (CS_IS_DETAILS (self));
  clear (self);
  if (st == NULL)
    return;
  const CsGraph *g = st->graph;
  if (node < 0 || (guint) node >= cs_graph_n_nodes (g))
    {
      g_autofree char *t = g_markup_escape_text (g->title, -1);
      add_label (self, "heading", t);
      if (g->paper)
        {
          g_autofree char *p = g_markup_escape_text (g->paper, -1);
          add_label (self, NULL, p);
        }
      const CsTotals *tt = &st->folded_totals;
      g_autofree char *params = cs_format_count (tt->params);
      g_autofree char *weights = cs_format_count (tt->weights);
      g_autofree char *biases = cs_format_count (tt->biases);
      g_autofree char *acts = cs_format_count (tt->batch_activations);
      g_autofree char *bytes = g_format_size (tt->activation_bytes);
      g_autofree char *macs = cs_format_count (tt->batch_macs);
      g_autofree char *flops = cs_format_si (tt->batch_flops);
      g_autofree char *train = g_format_size (tt->training_bytes);
      g_autofree char *pline = g_strdup_printf ("%s (%s weights + %s biases)", params, weights,
                                                biases);
      g_autofree char *aline = g_strdup_printf ("%s values, %s", acts, bytes);
      g_autofree char *mline = g_strdup_printf ("%s (%s FLOPs)", macs, flops);
      add_pair (self, "Parameters", pline);
      add_pair (self, "Activation memory", aline);
      add_pair (self, "Multiply-adds", mline);
      add_pair (self, "Training memory (estimate)", train);
      if (g->note)
        {
          g_autofree char *n = g_markup_escape_text (g->note, -1);
          add_label (self, "dim-label", n);
        }
      add_label (self, "dim-label", "Select a layer to see its formulas.");
      return;
    }

  const CsNode *n = cs_graph_node (g, node);
  const CsLayerStats *s = &st->nodes[node];
  g_autofree char *name = g_markup_escape_text (n->name, -1);
  add_label (self, "heading", name);
  add_pair (self, "Kind", cs_layer_class (n->op)->title);
  g_autofree char *params = params_text (n);
  if (*params)
    add_pair (self, "Parameters", params);
  if (n->flags & CS_NODE_TRAIN_ONLY)
    add_pair (self, "Training only", "part of an auxiliary branch, skipped at inference");
  g_autofree char *shape = cs_shape_to_string (&n->shape);
  add_pair (self, "Output", shape);
  add_formula (self, "Output size", cs_stats_output_formula (st, node));
  add_formula (self, "Weights", cs_stats_params_formula (st, node));
  g_autofree char *biases = cs_format_count (s->biases);
  add_pair (self, "Biases", biases);
  if (s->buffers)
    {
      g_autofree char *b = cs_format_count (s->buffers);
      add_pair (self, "Buffers (running statistics)", b);
    }
  add_formula (self, "Memory (values per image)", cs_stats_memory_formula (st, node));
  g_autofree char *lecture = cs_format_lecture (s->activations);
  g_autofree char *bytes = g_format_size (s->activations * 4 * st->batch);
  g_autofree char *mem = g_strdup_printf ("%s per image (%s for the batch at float32)", lecture,
                                          bytes);
  add_pair (self, "Memory", mem);
  g_autofree char *macs = cs_format_count (s->macs);
  g_autofree char *other = cs_format_count (s->other_ops);
  g_autofree char *work = g_strdup_printf ("%s multiply-adds, %s other operations", macs, other);
  add_pair (self, "Work per image", work);
  g_autofree char *rf = s->rf_h.size == s->rf_w.size
    ? g_strdup_printf ("%" G_GUINT64_FORMAT " pixels, jump %" G_GUINT64_FORMAT ", start %.1f",
                       s->rf_h.size, s->rf_h.jump, s->rf_h.start)
    : g_strdup_printf ("%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT " pixels, jump %"
                       G_GUINT64_FORMAT, s->rf_h.size, s->rf_w.size, s->rf_h.jump);
  add_pair (self, "Receptive field", rf);
  if (profile && (guint) node < profile->n_nodes
      && profile->forward_ms[node] + profile->backward_ms[node] > 0)
    {
      const CsProfile *p = profile;
      GString *t = g_string_new (NULL);
      g_string_append_printf (t, "%.3f ms forward", p->forward_ms[node]);
      if (p->backward_ms[node] > 0)
        g_string_append_printf (t, ", %.3f ms backward", p->backward_ms[node]);
      g_string_append_printf (t, " at batch %u", p->batch);
      double tflops = cs_profile_layer_tflops (p, s->macs, node);
      if (tflops > 0)
        g_string_append_printf (t, ", %.3f TFLOP/s", tflops);
      if (tflops > 0 && p->peak_tflops > 0)
        g_string_append_printf (t, " (%.1f%% of the device's peak)", 100 * tflops / p->peak_tflops);
      add_pair (self, "Measured", t->str);
      g_string_free (t, TRUE);
      if (p->kernel_names[node])
        {
          g_autofree char *k = g_strdup_printf ("%g per step: %s", p->forward_kernels[node]
                                                + p->backward_kernels[node],
                                                p->kernel_names[node]);
          add_pair (self, "Kernels", k);
        }
      if (p->algorithms[node])
        add_pair (self, "Algorithm", p->algorithms[node]);
    }
}

char *
cs_details_get_text (CsDetails *self)
{
  GString *s = g_string_new (NULL);
  for (GtkWidget *c = gtk_widget_get_first_child (self->box); c; c = gtk_widget_get_next_sibling (c))
    g_string_append_printf (s, "%s\n", gtk_label_get_text (GTK_LABEL (c)));
  return g_string_free (s, FALSE);
}
