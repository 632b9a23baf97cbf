/* CsGraph: a network as a directed acyclic graph of layers, with its metadata. */
#pragma once

#include "cs-layer.h"

G_BEGIN_DECLS

enum {
  CS_NODE_TRAIN_ONLY = 1 << 0,  /* part of an auxiliary branch: skipped at inference */
  CS_NODE_AUX_OUTPUT = 1 << 1,  /* ends an auxiliary branch; its loss is weighted */
};

struct _CsNode {
  guint id;                 /* index in the graph; after finalize, a topological order */
  CsOp op;
  char *name;               /* full path: "inception_4a/conv2" */
  char *module;             /* the path of the module the node belongs to; "" at top level */
  CsLayerParams p;
  guint *inputs;
  guint n_inputs;
  guint flags;
  double loss_weight;       /* CS_NODE_AUX_OUTPUT only */
  CsSrcPos pos;
  CsShape shape;            /* output volume, set by cs_graph_finalize */
};

typedef enum {
  CS_SCHEDULE_NONE,
  CS_SCHEDULE_CONSTANT,
  CS_SCHEDULE_STEP,
  CS_SCHEDULE_PLATEAU,
} CsSchedule;

typedef struct {
  guint batch;
  double lr, momentum, decay, dropout;
  guint epochs;
  CsSchedule schedule;
  guint steps[8];           /* CS_SCHEDULE_STEP: divide by 10 at these epochs */
  guint n_steps;
  gboolean xavier;          /* init: He by default */
} CsTrainPreset;

struct _CsGraph {
  gint ref_count;
  char *name, *title, *paper, *family, *note, *accuracy_source;
  guint year;
  double top1, top5;        /* published accuracy in percent; 0 when unknown */
  CsTrainPreset train;
  char *file;               /* where it was read from, for messages */
  char *text;               /* its source text, for snippets in messages; may be NULL */
  gsize text_len;
  GPtrArray *nodes;         /* CsNode*, owned */
  GPtrArray *frames;        /* CsFrame*, owned */
  GHashTable *by_name;      /* name -> CsNode* */
  guint *n_consumers;       /* after finalize */
  guint64 n_edges;          /* inputs of all nodes: bounded, like the nodes */
  gboolean finalized;
};

CsGraph    *cs_graph_new        (const char *file);
CsGraph    *cs_graph_ref        (CsGraph *g);
void        cs_graph_unref      (CsGraph *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsGraph, cs_graph_unref)

/* Adds a node with N_INPUTS input slots (filled by the caller). Fails on a duplicate name. */
CsNode     *cs_graph_add_node   (CsGraph *g, CsOp op, const char *module, const char *name,
                                 guint n_inputs, const CsSrcPos *pos, GError **error);
/* Takes a call frame for CsSrcPos; the graph owns it. */
const CsFrame *cs_graph_add_frame (CsGraph *g, const char *block, guint line, guint col,
                                   const CsFrame *parent);
CsNode     *cs_graph_lookup     (CsGraph *g, const char *name);
static inline guint cs_graph_n_nodes (const CsGraph *g) { return g->nodes->len; }
static inline CsNode *cs_graph_node (const CsGraph *g, guint i) { return g->nodes->pdata[i]; }

/* Sorts the nodes topologically (keeping the written order where it is already one), rejects
 * cycles, and infers every output shape. */
gboolean    cs_graph_finalize   (CsGraph *g, GError **error);

/* Sets ERROR to "FILE:LINE:COL: layer 'NAME': MESSAGE", the source line and the block calls. */
void        cs_graph_node_error (const CsGraph *g, const CsNode *n, GError **error, gint code,
                                 const char *format, ...) G_GNUC_PRINTF (5, 6);
/* The same for a position that is not a node. */
void        cs_graph_pos_error  (const CsGraph *g, const CsSrcPos *pos, GError **error, gint code,
                                 const char *format, ...) G_GNUC_PRINTF (5, 6);

/* The output the network's inference ends at: the last node not marked training-only. */
const CsNode *cs_graph_output   (const CsGraph *g);

/* Reads PATH (mapped, not copied) and hands its text to READ: the one place where model files
 * are opened, for every text format. */
typedef CsGraph *(*CsModelReader) (const char *file, const char *text, gsize len,
                                   GError **error);
CsGraph *cs_graph_read_file (const char *path, CsModelReader read, GError **error);

/* Keeps a copy of the source TEXT (LEN bytes, NUL bytes included) for the snippets of error
 * messages; a text over MAX bytes is a CS_ERROR_LIMIT error naming WHAT is limited. */
gboolean    cs_graph_set_source (CsGraph *g, const char *text, gsize len, gsize max,
                                 const char *what, GError **error);

/* "224x224x64": the lecture's H x W x C; vectors as "4096". */
char       *cs_shape_to_string  (const CsShape *s);

G_END_DECLS
