/* Layout of a graph for drawing: boxes for layers (or collapsed blocks), top to bottom, branches
 * side by side, and the curves of the edges. Pure geometry: no GTK, testable headless. */
#pragma once

#include "cs-graph.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  double node_width, node_height;   /* a layer's box */
  double h_gap, v_gap;              /* between boxes side by side, and between ranks */
  double module_pad;                /* around a block's frame */
} CsLayoutMetrics;

typedef struct {
  guint node;               /* the node shown; for a collapsed block, its output node */
  const char *module;       /* NULL for a layer; for a collapsed block, its module path */
  guint n_members;          /* nodes the box stands for (1 for a layer) */
  double x, y, w, h;        /* the box, in layout units */
} CsLayoutBox;

typedef struct {
  guint from, to;           /* box indices */
  guint n_points;           /* cubic Bezier: 1 + 3k points, from the source to the target */
  double *points;           /* x, y pairs */
} CsLayoutEdge;

typedef struct {
  const char *module;       /* an expanded block: a frame drawn around its boxes */
  double x, y, w, h;
  guint depth;              /* nesting depth, 1 for a top-level block */
} CsLayoutFrame;

typedef struct {
  CsLayoutBox *boxes;
  guint n_boxes;
  CsLayoutEdge *edges;
  guint n_edges;
  CsLayoutFrame *frames;
  guint n_frames;
  guint *box_of_node;       /* per graph node: the box that shows it */
  double width, height;     /* the whole drawing */
} CsLayout;

void      cs_layout_metrics_default (CsLayoutMetrics *m);

/* Lays G out. COLLAPSED holds module paths (char* keys) drawn as one box each; with FOLD, the
 * in-place layers the lecture view folds (cs-stats) share their producer's box. Linear in the
 * graph's size in practice; returns NULL with G_IO_ERROR_CANCELLED when CANCELLABLE fires. */
CsLayout *cs_layout_compute (const CsGraph *g, GHashTable *collapsed, gboolean fold,
                             const CsLayoutMetrics *m, GCancellable *cancellable,
                             GError **error);
void      cs_layout_free    (CsLayout *layout);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsLayout, cs_layout_free)

/* The box at (X, Y), or -1. */
gint      cs_layout_hit     (const CsLayout *layout, double x, double y);

/* Every module path of G that has at least two nodes, outermost first. */
GPtrArray *cs_graph_modules (const CsGraph *g);

G_END_DECLS
