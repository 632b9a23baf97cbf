/* The layer kinds: one table entry per kind drives parsing, shape inference, counting and output. */
#pragma once

#include "cs-types.h"

G_BEGIN_DECLS

typedef enum {
  CS_OP_INPUT,
  CS_OP_CONV,
  CS_OP_MAXPOOL,
  CS_OP_AVGPOOL,
  CS_OP_LRN,
  CS_OP_BN,
  CS_OP_RELU,
  CS_OP_LEAKYRELU,
  CS_OP_SIGMOID,
  CS_OP_TANH,
  CS_OP_DROPOUT,
  CS_OP_FC,
  CS_OP_FLATTEN,
  CS_OP_SOFTMAX,
  CS_OP_CONCAT,
  CS_OP_ADD,
  CS_OP_MEAN,
  CS_OP_DROPPATH,
  CS_OP_IDENTITY,
  CS_OP_COUNT
} CsOp;

/* All parameters any kind takes; each kind reads the fields its CsParamSpec table names. */
typedef struct {
  guint64 out;                 /* conv channels, fc outputs */
  guint32 kh, kw;              /* kernel */
  guint32 sh, sw;              /* stride; 0 on a pool means "the kernel" */
  guint32 ph, pw;              /* padding */
  guint32 dh, dw;              /* dilation */
  guint32 groups;
  gboolean nobias;
  gboolean pad_same;           /* conv: pad = dilation*(k-1)/2, odd kernels only */
  gboolean ceil;               /* pools: round the output size up, Caffe's rule */
  gboolean global;             /* pools: the kernel is the whole input */
  gboolean noaffine;           /* bn without learned scale and shift */
  guint32 size;                /* lrn window */
  double alpha, beta, k;       /* lrn */
  double eps, momentum;        /* bn */
  double p;                    /* dropout: drop probability; droppath: survival probability;
                                  leakyrelu: slope; mean: local drop-path probability */
  CsShape shape;               /* input */
} CsLayerParams;

typedef enum {
  CS_PARAM_INT,      /* guint64 or guint32 field */
  CS_PARAM_FLOAT,    /* double field */
  CS_PARAM_SIZE,     /* two guint32 fields, h then w: "3" or "3x3" */
  CS_PARAM_PAD,      /* a size, or the word "same" */
  CS_PARAM_FLAG,     /* gboolean field, set by the keyword alone */
} CsParamType;

typedef struct {
  const char *name;
  CsParamType type;
  gboolean positional;
  gsize offset;             /* into CsLayerParams; SIZE: the h field, w follows it */
  gsize width;              /* INT: sizeof the field */
  double min, max;          /* INT, FLOAT and SIZE bounds, inclusive */
  const char *help;
} CsParamSpec;

/* What stats computes per node, per image. */
typedef struct {
  guint64 size, jump;
  double start;             /* centre of the first output's field, in input pixels from 0 */
} CsRf;

typedef struct {
  guint64 weights, biases, buffers;
  guint64 activations;      /* values of the output */
  guint64 macs;             /* multiply-adds of conv and fc */
  guint64 other_ops;        /* bias adds, pooling, normalisation, elementwise work */
  CsRf rf_h, rf_w;
} CsLayerStats;

enum {
  CS_LAYER_INPLACE = 1 << 0,  /* may overwrite its input: folded into it in the lecture view */
  CS_LAYER_JOIN    = 1 << 1,  /* takes several inputs; written with branches */
  CS_LAYER_WINDOW  = 1 << 2,  /* slides a kernel: kh.. dw define its receptive field */
  CS_LAYER_WHOLE   = 1 << 3,  /* sees its whole input at once (fc, flatten) */
  CS_LAYER_BWD_INPUT  = 1 << 4,  /* its backward reads its input: the input may not be overwritten */
  CS_LAYER_BWD_OUTPUT = 1 << 5,  /* its backward reads its output */
};

struct _CsLayerClass {
  const char *name;         /* as written in .cnn files */
  const char *title;        /* for people */
  const CsParamSpec *params;
  guint n_params;
  guint min_inputs, max_inputs;
  guint flags;
  void     (*init)        (CsLayerParams *p);
  gboolean (*infer_shape) (const CsNode *n, const CsShape *in, guint n_in, CsShape *out,
                           GError **error);
  gboolean (*count)       (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st);
};

const CsLayerClass *cs_layer_class (CsOp op);
const CsLayerClass *cs_layer_class_lookup (const char *name, CsOp *op);

/* The kernel, stride, padding and dilation a windowed node applies to an input of shape IN. */
void cs_layer_window (const CsNode *n, const CsShape *in,
                      guint64 k[2], guint64 s[2], guint64 pad[2], guint64 d[2]);

gboolean cs_shape_numel (const CsShape *s, guint64 *out);

G_END_DECLS
