/* CsLayerTable: every row of the lecture view (or every layer) with sortable columns and a
 * totals line; the selection follows and leads the graph's. */
#pragma once

#include <gtk/gtk.h>

#include "cs-stats.h"

G_BEGIN_DECLS

#define CS_TYPE_LAYER_TABLE (cs_layer_table_get_type ())
G_DECLARE_FINAL_TYPE (CsLayerTable, cs_layer_table, CS, LAYER_TABLE, GtkWidget)

GtkWidget *cs_layer_table_new        (void);
/* Fills the table from ST's lecture view, or every node when UNFOLD. */
void       cs_layer_table_set_stats  (CsLayerTable *self, CsStats *st, gboolean unfold);
/* Show FLOPs (2 x MACs) instead of MACs, and count the bias additions (one per output value of a
 * layer with biases) with the multiply-adds or not. */
void       cs_layer_table_set_counting (CsLayerTable *self, gboolean flops, gboolean biases);
void       cs_layer_table_set_times  (CsLayerTable *self, const double *forward_ms,
                                      const double *backward_ms);
/* Selects the row showing NODE (folded nodes select their row); -1 clears. */
void       cs_layer_table_select     (CsLayerTable *self, gint node);
gint       cs_layer_table_get_selected (CsLayerTable *self);
guint      cs_layer_table_get_n_rows (CsLayerTable *self);
/* The totals line, for tests. */
const char *cs_layer_table_get_totals (CsLayerTable *self);

G_END_DECLS
