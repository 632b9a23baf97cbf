/* Per-layer and total statistics of a graph: volumes, parameters, memory, MACs, receptive fields. */
#pragma once

#include "cs-graph.h"

G_BEGIN_DECLS

/* A row of a view: one node, and in the lecture view the in-place nodes folded into it. */
typedef struct {
  guint head;               /* the node that gives the row its name and output */
  guint n_folded;           /* in-place nodes after it that share its output */
  CsLayerStats st;          /* the head's stats with the folded nodes' parameters and work */
} CsRow;

typedef struct {
  guint64 weights, biases, params, buffers;
  guint64 activations;      /* output values per image, summed over the view's rows */
  guint64 macs, other_ops;  /* per image */
  guint64 train_only_params, train_only_macs;   /* auxiliary branches, not in the above */
  /* For the whole batch; bytes at 4 per value. */
  guint64 batch_activations, batch_macs, batch_flops, batch_other_ops;
  guint64 activation_bytes; /* forward pass, every output kept */
  guint64 training_bytes;   /* 4 * (2 * activations * batch + 3 * params + buffers) */
} CsTotals;

struct _CsStats {
  CsGraph *graph;
  guint64 batch;
  CsLayerStats *nodes;      /* per node, per image, in the graph's order */
  GArray *folded;           /* CsRow: the lecture view */
  GArray *unfolded;         /* CsRow: one per node */
  CsTotals folded_totals, unfolded_totals;
};

CsStats *cs_stats_compute (CsGraph *g, guint64 batch, GError **error);

/* The lecture view's rule: N is an in-place layer whose single input is a layer (not the
 * network's input) that feeds nothing else, on the same side of the training-only line. */
gboolean cs_stats_foldable (const CsGraph *g, const CsNode *n);
void     cs_stats_free    (CsStats *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsStats, cs_stats_free)

/* The lecture's formulas for a node, or NULL where it has none:
 * output "(227-11)/4+1 = 55", parameters "(11*11*3)*96 = 34,848", memory "55*55*96 = 290,400". */
char *cs_stats_output_formula (const CsStats *st, guint node);
char *cs_stats_params_formula (const CsStats *st, guint node);
char *cs_stats_memory_formula (const CsStats *st, guint node);

/* "138,357,544" */
char *cs_format_count (guint64 v);
/* The lecture's rounding for memory: "3.2M", "800K", "25K"; exact below 1,000. */
char *cs_format_lecture (guint64 v);
/* "15.5G" with SI prefixes and three significant digits. */
char *cs_format_si (guint64 v);

G_END_DECLS
