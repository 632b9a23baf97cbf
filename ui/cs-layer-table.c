/* CsLayerTable: a GtkColumnView over row items, with numeric sorters and a totals line. */
#include "cs-layer-table.h"

/* One row: a head node and the numbers shown for it. */
#define CS_TYPE_ROW_ITEM (cs_row_item_get_type ())
G_DECLARE_FINAL_TYPE (CsRowItem, cs_row_item, CS, ROW_ITEM, GObject)

struct _CsRowItem {
  GObject parent_instance;
  guint node;
  char *name, *kind, *output;
  guint64 memory, weights, biases, macs, bias_adds, rf;
  double fwd_ms, bwd_ms;
  guint order;
};

G_DEFINE_FINAL_TYPE (CsRowItem, cs_row_item, G_TYPE_OBJECT)

static void
cs_row_item_finalize (GObject *object)
{
  CsRowItem *self = CS_ROW_ITEM (object);
  g_free (self->name), g_free (self->kind), g_free (self->output);
  G_OBJECT_CLASS (cs_row_item_parent_class)->finalize (object);
}

static void
cs_row_item_class_init (CsRowItemClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cs_row_item_finalize;
}

static void
cs_row_item_init (CsRowItem *self)
{
}

typedef enum {
  COL_NAME, COL_KIND, COL_OUTPUT, COL_MEMORY, COL_BYTES, COL_WEIGHTS, COL_BIASES, COL_MACS,
  COL_RF, COL_FWD, COL_BWD, N_COLS
} Column;

static const char *column_titles[N_COLS] = {
  "Layer", "Kind", "Output", "Memory", "Bytes", "Weights", "Biases", "MACs", "RF",
  "Forward ms", "Backward ms",
};

struct _CsLayerTable {
  GtkWidget parent_instance;
  GtkWidget *box, *view, *totals;
  GListStore *store;
  GtkSingleSelection *selection;
  GtkColumnViewColumn *columns[N_COLS];
  CsStats *stats;
  gboolean unfold, flops, with_biases;
  guint *row_of_node;
  guint batch;
  gboolean syncing;
};

G_DEFINE_FINAL_TYPE (CsLayerTable, cs_layer_table, GTK_TYPE_WIDGET)

enum { SIGNAL_NODE_SELECTED, N_SIGNALS };
static guint signals[N_SIGNALS];

static char *
cell_text (CsLayerTable *self, CsRowItem *it, Column col)
{
  switch (col)
    {
    case COL_NAME: return g_strdup (it->name);
    case COL_KIND: return g_strdup (it->kind);
    case COL_OUTPUT: return g_strdup (it->output);
    case COL_MEMORY: return cs_format_count (it->memory);
    case COL_BYTES: return g_format_size (it->memory * 4);
    case COL_WEIGHTS: return cs_format_count (it->weights);
    case COL_BIASES: return cs_format_count (it->biases);
    case COL_MACS:
      {
        guint64 ops = it->macs + (self->with_biases ? it->bias_adds : 0);
        return cs_format_count (self->flops ? 2 * ops : ops);
      }
    case COL_RF: return g_strdup_printf ("%" G_GUINT64_FORMAT, it->rf);
    case COL_FWD: return it->fwd_ms > 0 ? g_strdup_printf ("%.3f", it->fwd_ms) : g_strdup ("");
    case COL_BWD: return it->bwd_ms > 0 ? g_strdup_printf ("%.3f", it->bwd_ms) : g_strdup ("");
    default: return g_strdup ("");
    }
}

static void
setup_cell (GtkSignalListItemFactory *f, GtkListItem *li, gpointer data)
{
  Column col = GPOINTER_TO_INT (data);
  GtkWidget *l = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (l), col <= COL_OUTPUT ? 0.0f : 1.0f);
  if (col > COL_KIND)
    gtk_widget_add_css_class (l, "numeric");
  gtk_list_item_set_child (li, l);
}

static void
bind_cell (GtkSignalListItemFactory *f, GtkListItem *li, gpointer data)
{
  Column col = GPOINTER_TO_INT (data);
  CsLayerTable *self = g_object_get_data (G_OBJECT (f), "table");
  CsRowItem *it = gtk_list_item_get_item (li);
  g_autofree char *t = cell_text (self, it, col);
  gtk_label_set_text (GTK_LABEL (gtk_list_item_get_child (li)), t);
}

static guint64
sort_key (CsRowItem *it, Column col)
{
  switch (col)
    {
    case COL_MEMORY: case COL_BYTES: return it->memory;
    case COL_WEIGHTS: return it->weights;
    case COL_BIASES: return it->biases;
    case COL_MACS: return it->macs;
    case COL_RF: return it->rf;
    case COL_FWD: return (guint64) (it->fwd_ms * 1e6);
    case COL_BWD: return (guint64) (it->bwd_ms * 1e6);
    default: return it->order;
    }
}

static int
compare_rows (gconstpointer a, gconstpointer b, gpointer data)
{
  Column col = GPOINTER_TO_INT (data);
  CsRowItem *x = (CsRowItem *) a, *y = (CsRowItem *) b;
  if (col == COL_NAME || col == COL_KIND || col == COL_OUTPUT)
    {
      const char *p = col == COL_NAME ? x->name : col == COL_KIND ? x->kind : x->output;
      const char *q = col == COL_NAME ? y->name : col == COL_KIND ? y->kind : y->output;
      int c = g_strcmp0 (p, q);
      return c ? c : (int) x->order - (int) y->order;
    }
  guint64 u = sort_key (x, col), v = sort_key (y, col);
  return u < v ? -1 : u > v ? 1 : (int) x->order - (int) y->order;
}

static void
on_selection (GtkSingleSelection *sel, guint position, guint n, CsLayerTable *self)
{
  if (self->syncing)
    return;
  CsRowItem *it = gtk_single_selection_get_selected_item (sel);
  if (it)
    g_signal_emit (self, signals[SIGNAL_NODE_SELECTED], 0, (gint) it->node);
}

static void
cs_layer_table_dispose (GObject *object)
{
  CsLayerTable *self = CS_LAYER_TABLE (object);
  g_clear_pointer (&self->box, gtk_widget_unparent);
  g_clear_object (&self->store);
  g_clear_pointer (&self->stats, cs_stats_free);
  g_clear_pointer (&self->row_of_node, g_free);
  G_OBJECT_CLASS (cs_layer_table_parent_class)->dispose (object);
}

static void
cs_layer_table_class_init (CsLayerTableClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cs_layer_table_dispose;
  gtk_widget_class_set_layout_manager_type (GTK_WIDGET_CLASS (klass), GTK_TYPE_BIN_LAYOUT);
  signals[SIGNAL_NODE_SELECTED] =
    g_signal_new ("node-selected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_INT);
}

static void
cs_layer_table_init (CsLayerTable *self)
{
  self->box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  gtk_widget_set_parent (self->box, GTK_WIDGET (self));
  self->store = g_list_store_new (CS_TYPE_ROW_ITEM);
  self->view = gtk_column_view_new (NULL);
  gtk_column_view_set_show_column_separators (GTK_COLUMN_VIEW (self->view), TRUE);
  GtkSorter *sorter = g_object_ref (gtk_column_view_get_sorter (GTK_COLUMN_VIEW (self->view)));
  GtkSortListModel *sorted = gtk_sort_list_model_new (G_LIST_MODEL (g_object_ref (self->store)),
                                                      sorter);
  self->selection = gtk_single_selection_new (G_LIST_MODEL (sorted));
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  gtk_single_selection_set_can_unselect (self->selection, TRUE);
  gtk_column_view_set_model (GTK_COLUMN_VIEW (self->view), GTK_SELECTION_MODEL (self->selection));
  g_signal_connect (self->selection, "selection-changed", G_CALLBACK (on_selection), self);
  for (int c = 0; c < N_COLS; c++)
    {
      GtkListItemFactory *f = gtk_signal_list_item_factory_new ();
      g_object_set_data (G_OBJECT (f), "table", self);
      g_signal_connect (f, "setup", G_CALLBACK (setup_cell), GINT_TO_POINTER (c));
      g_signal_connect (f, "bind", G_CALLBACK (bind_cell), GINT_TO_POINTER (c));
      self->columns[c] = gtk_column_view_column_new (column_titles[c], f);
      gtk_column_view_column_set_resizable (self->columns[c], TRUE);
      if (c == COL_NAME)
        gtk_column_view_column_set_expand (self->columns[c], TRUE);
      GtkSorter *s = GTK_SORTER (gtk_custom_sorter_new (compare_rows, GINT_TO_POINTER (c), NULL));
      gtk_column_view_column_set_sorter (self->columns[c], s);
      g_object_unref (s);
      gtk_column_view_append_column (GTK_COLUMN_VIEW (self->view), self->columns[c]);
      g_object_unref (self->columns[c]);
    }
  gtk_column_view_column_set_visible (self->columns[COL_FWD], FALSE);
  gtk_column_view_column_set_visible (self->columns[COL_BWD], FALSE);
  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_widget_set_vexpand (scroll, TRUE);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), self->view);
  gtk_box_append (GTK_BOX (self->box), scroll);
  self->totals = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->totals), 0);
  gtk_label_set_wrap (GTK_LABEL (self->totals), TRUE);
  gtk_label_set_selectable (GTK_LABEL (self->totals), TRUE);
  gtk_widget_add_css_class (self->totals, "totals");
  gtk_box_append (GTK_BOX (self->box), self->totals);
}

GtkWidget *
cs_layer_table_new (void)
{
  return g_object_new (CS_TYPE_LAYER_TABLE, NULL);
}

static void
update_totals (CsLayerTable *self)
{
  if (self->stats == NULL)
    {
      gtk_label_set_text (GTK_LABEL (self->totals), "");
      return;
    }
  const CsTotals *t = self->unfold ? &self->stats->unfolded_totals : &self->stats->folded_totals;
  guint64 bias_adds = 0;
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (CsRowItem) it = g_list_model_get_item (G_LIST_MODEL (self->store), i);
      if (!g_str_has_suffix (it->name, " (training)"))
        bias_adds += it->bias_adds;
    }
  guint64 ops = t->batch_macs + (self->with_biases ? bias_adds : 0);
  g_autofree char *params = cs_format_count (t->params);
  g_autofree char *w = cs_format_count (t->weights), *b = cs_format_count (t->biases);
  g_autofree char *acts = cs_format_count (t->batch_activations);
  g_autofree char *bytes = g_format_size (t->activation_bytes);
  g_autofree char *opstr = cs_format_count (self->flops ? 2 * ops : ops);
  g_autofree char *text = g_strdup_printf (
    "Total (batch %" G_GUINT64_FORMAT "): %s parameters = %s weights + %s biases · memory %s "
    "values (%s) · %s %s%s%s", self->stats->batch, params, w, b, acts, bytes, opstr,
    self->flops ? "FLOPs" : "MACs", self->with_biases ? " with bias additions" : "",
    t->train_only_params ? " · auxiliary (training-only) branches not included" : "");
  gtk_label_set_text (GTK_LABEL (self->totals), text);
}

void
cs_layer_table_set_stats (CsLayerTable *self, CsStats *st, gboolean unfold)
{
  g_return_if_fail (CS_IS_LAYER_TABLE (self));
  g_clear_pointer (&self->stats, cs_stats_free);
  g_clear_pointer (&self->row_of_node, g_free);
  self->unfold = unfold;
  self->syncing = TRUE;
  g_list_store_remove_all (self->store);
  if (st)
    {
      /* The table keeps its own reference to the graph through a private copy of the stats. */
      GError *error = NULL;
      self->stats = cs_stats_compute (st->graph, st->batch, &error);
      g_clear_error (&error);
    }
  if (self->stats)
    {
      const GArray *rows = unfold ? self->stats->unfolded : self->stats->folded;
      guint nn = cs_graph_n_nodes (self->stats->graph);
      self->row_of_node = g_new0 (guint, nn);
      GPtrArray *items = g_ptr_array_new_with_free_func (g_object_unref);
      for (guint r = 0; r < rows->len; r++)
        {
          const CsRow *row = &g_array_index (rows, CsRow, r);
          const CsNode *n = cs_graph_node (self->stats->graph, row->head);
          CsRowItem *it = g_object_new (CS_TYPE_ROW_ITEM, NULL);
          it->node = row->head;
          it->order = r;
          it->name = g_strconcat (n->name, n->flags & CS_NODE_TRAIN_ONLY ? " (training)" : "",
                                  NULL);
          it->kind = g_strdup (cs_layer_class (n->op)->name);
          it->output = cs_shape_to_string (&n->shape);
          it->memory = row->st.activations * self->stats->batch;
          it->weights = row->st.weights;
          it->biases = row->st.biases;
          it->macs = row->st.macs * self->stats->batch;
          it->bias_adds = row->st.biases ? row->st.activations * self->stats->batch : 0;
          it->rf = row->st.rf_h.size;
          g_ptr_array_add (items, it);
        }
      /* Folded nodes map to their row: the row of their head's input chain. */
      for (guint i = 0; i < nn; i++)
        self->row_of_node[i] = G_MAXUINT;
      for (guint r = 0; r < items->len; r++)
        self->row_of_node[((CsRowItem *) items->pdata[r])->node] = r;
      for (guint i = 0; i < nn; i++)
        if (self->row_of_node[i] == G_MAXUINT)
          {
            const CsNode *n = cs_graph_node (self->stats->graph, i);
            self->row_of_node[i] = n->n_inputs ? self->row_of_node[n->inputs[0]] : 0;
          }
      g_list_store_splice (self->store, 0, 0, items->pdata, items->len);
      g_ptr_array_unref (items);
    }
  self->syncing = FALSE;
  update_totals (self);
}

void
cs_layer_table_set_counting (CsLayerTable *self, gboolean flops, gboolean biases)
{
  self->flops = flops;
  self->with_biases = biases;
  gtk_column_view_column_set_title (self->columns[COL_MACS], flops ? "FLOPs" : "MACs");
  /* Rebinding every row is the simplest way to refresh the cells. */
  CsStats *st = self->stats;
  self->stats = NULL;
  cs_layer_table_set_stats (self, st, self->unfold);
  cs_stats_free (st);
}

void
cs_layer_table_set_times (CsLayerTable *self, const double *fwd, const double *bwd)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < n; i++)
    {
      CsRowItem *it = g_list_model_get_item (G_LIST_MODEL (self->store), i);
      it->fwd_ms = fwd ? fwd[it->node] : 0;
      it->bwd_ms = bwd ? bwd[it->node] : 0;
      /* Folded nodes' times count in their row. */
      if (self->stats && !self->unfold && fwd)
        for (guint j = 0; j < cs_graph_n_nodes (self->stats->graph); j++)
          if (j != it->node && self->row_of_node[j] == i)
            {
              it->fwd_ms += fwd[j];
              it->bwd_ms += bwd ? bwd[j] : 0;
            }
      g_ptr_array_add (items, it);
    }
  self->syncing = TRUE;
  g_list_store_splice (self->store, 0, n, items->pdata, n);
  self->syncing = FALSE;
  gtk_column_view_column_set_visible (self->columns[COL_FWD], fwd != NULL);
  gtk_column_view_column_set_visible (self->columns[COL_BWD], bwd != NULL);
}

void
cs_layer_table_select (CsLayerTable *self, gint node)
{
  self->syncing = TRUE;
  guint target = GTK_INVALID_LIST_POSITION;
  if (node >= 0 && self->stats && (guint) node < cs_graph_n_nodes (self->stats->graph))
    {
      guint row = self->row_of_node[node];
      GListModel *m = gtk_single_selection_get_model (self->selection);
      guint n = g_list_model_get_n_items (m);
      for (guint i = 0; i < n && target == GTK_INVALID_LIST_POSITION; i++)
        {
          g_autoptr (CsRowItem) it = g_list_model_get_item (m, i);
          if (it->order == row)
            target = i;
        }
    }
  gtk_single_selection_set_selected (self->selection, target);
  /* GTK 4.8's column view has no scroll call; its inner list view has the action. */
  if (target != GTK_INVALID_LIST_POSITION)
    for (GtkWidget *c = gtk_widget_get_first_child (self->view); c;
         c = gtk_widget_get_next_sibling (c))
      if (GTK_IS_LIST_VIEW (c))
        gtk_widget_activate_action (c, "list.scroll-to-item", "u", target);
  self->syncing = FALSE;
}

gint
cs_layer_table_get_selected (CsLayerTable *self)
{
  CsRowItem *it = gtk_single_selection_get_selected_item (self->selection);
  return it ? (gint) it->node : -1;
}

guint
cs_layer_table_get_n_rows (CsLayerTable *self)
{
  return g_list_model_get_n_items (G_LIST_MODEL (self->store));
}

const char *
cs_layer_table_get_totals (CsLayerTable *self)
{
  return gtk_label_get_text (GTK_LABEL (self->totals));
}
