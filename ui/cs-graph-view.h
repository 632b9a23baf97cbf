/* CsGraphView: the layer graph, drawn top to bottom, with zoom, pan, selection, collapsible
 * blocks and overlays. */
#pragma once

#include <gtk/gtk.h>

#include "cs-stats.h"

G_BEGIN_DECLS

typedef enum {
  CS_OVERLAY_NONE,
  CS_OVERLAY_PARAMS,
  CS_OVERLAY_MEMORY,
  CS_OVERLAY_MACS,
  CS_OVERLAY_RF,
  CS_OVERLAY_FORWARD_TIME,
  CS_OVERLAY_BACKWARD_TIME,
} CsOverlay;

#define CS_TYPE_OVERLAY (cs_overlay_get_type ())
GType cs_overlay_get_type (void);

#define CS_TYPE_GRAPH_VIEW (cs_graph_view_get_type ())
G_DECLARE_FINAL_TYPE (CsGraphView, cs_graph_view, CS, GRAPH_VIEW, GtkWidget)

/* Signal "node-selected" (gint node): the user picked a node, by a click (-1 on empty space) or
 * through cs_graph_view_find; cs_graph_view_select notifies "selected" only. Properties:
 * "stats", "overlay", "fold", "selected", "zoom", "ready" (read-only). */

GtkWidget *cs_graph_view_new            (void);
/* Shows ST's graph (a new layout is computed on a worker thread; "ready" turns TRUE when it is
 * on screen). NULL clears the view. */
void       cs_graph_view_set_stats      (CsGraphView *self, CsStats *st);
CsStats   *cs_graph_view_get_stats      (CsGraphView *self);
void       cs_graph_view_set_overlay    (CsGraphView *self, CsOverlay overlay);
CsOverlay  cs_graph_view_get_overlay    (CsGraphView *self);
/* Per-node times in ms (arrays of the graph's node count), or NULL: for the time overlays. */
void       cs_graph_view_set_times      (CsGraphView *self, const double *forward_ms,
                                         const double *backward_ms);
/* The lecture view (in-place layers folded into the layer before) or every node. */
void       cs_graph_view_set_fold       (CsGraphView *self, gboolean fold);
gboolean   cs_graph_view_get_fold       (CsGraphView *self);
/* Selects a node (-1: none) and scrolls it into view. */
void       cs_graph_view_select         (CsGraphView *self, gint node);
gint       cs_graph_view_get_selected   (CsGraphView *self);
void       cs_graph_view_set_collapsed  (CsGraphView *self, const char *module, gboolean collapsed);
gboolean   cs_graph_view_get_collapsed  (CsGraphView *self, const char *module);
void       cs_graph_view_collapse_all   (CsGraphView *self);
void       cs_graph_view_expand_all     (CsGraphView *self);
/* Selects and centres the next layer whose name contains TEXT; FALSE when none does. */
gboolean   cs_graph_view_find           (CsGraphView *self, const char *text);
void       cs_graph_view_zoom_by        (CsGraphView *self, double factor);
void       cs_graph_view_zoom_fit       (CsGraphView *self);
void       cs_graph_view_zoom_reset     (CsGraphView *self);
double     cs_graph_view_get_zoom       (CsGraphView *self);
gboolean   cs_graph_view_is_ready       (CsGraphView *self);
/* The number of boxes on screen (layers and collapsed blocks), for tests. */
guint      cs_graph_view_get_n_boxes    (CsGraphView *self);
/* The whole drawing at zoom 1 (for export); its size in *WIDTH and *HEIGHT when CR is NULL. */
void       cs_graph_view_render         (CsGraphView *self, cairo_t *cr, double *width,
                                         double *height);

G_END_DECLS
