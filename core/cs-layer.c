/* The layer table: parameters, shape rules and counts of every layer kind. */
#include "cs-graph.h"
#include "cs-error.h"

#include <math.h>
#include <stddef.h>

#define OFF(f) offsetof (CsLayerParams, f)
#define W(f) sizeof (((CsLayerParams *) 0)->f)
#define MAX_DIM 1048576.0
#define MAX_CH 16777216.0

static const CsParamSpec conv_params[] = {
  { "channels", CS_PARAM_INT,  TRUE,  OFF (out), W (out), 1, MAX_CH, "output channels" },
  { "kernel",   CS_PARAM_SIZE, TRUE,  OFF (kh), 0, 1, MAX_DIM, "kernel size" },
  { "stride",   CS_PARAM_SIZE, FALSE, OFF (sh), 0, 1, MAX_DIM, "stride" },
  { "pad",      CS_PARAM_PAD,  FALSE, OFF (ph), 0, 0, MAX_DIM, "zero padding on each side, or same" },
  { "dilation", CS_PARAM_SIZE, FALSE, OFF (dh), 0, 1, MAX_DIM, "dilation" },
  { "groups",   CS_PARAM_INT,  FALSE, OFF (groups), W (groups), 1, MAX_CH, "channel groups" },
  { "nobias",   CS_PARAM_FLAG, FALSE, OFF (nobias), 0, 0, 0, "no bias term" },
};

static const CsParamSpec pool_params[] = {
  { "kernel", CS_PARAM_SIZE, TRUE,  OFF (kh), 0, 1, MAX_DIM, "window size" },
  { "stride", CS_PARAM_SIZE, FALSE, OFF (sh), 0, 1, MAX_DIM, "stride (default: the window)" },
  { "pad",    CS_PARAM_SIZE, FALSE, OFF (ph), 0, 0, MAX_DIM, "padding on each side" },
  { "ceil",   CS_PARAM_FLAG, FALSE, OFF (ceil), 0, 0, 0, "round the output size up (Caffe)" },
  { "global", CS_PARAM_FLAG, FALSE, OFF (global), 0, 0, 0, "pool the whole input" },
};

static const CsParamSpec lrn_params[] = {
  { "size",  CS_PARAM_INT,   TRUE,  OFF (size), W (size), 1, 1024, "channels in the window" },
  { "alpha", CS_PARAM_FLOAT, FALSE, OFF (alpha), 0, 0, 1e6, "scale" },
  { "beta",  CS_PARAM_FLOAT, FALSE, OFF (beta), 0, 0, 1e6, "exponent" },
  { "k",     CS_PARAM_FLOAT, FALSE, OFF (k), 0, 0, 1e6, "additive constant" },
};

static const CsParamSpec bn_params[] = {
  { "eps",      CS_PARAM_FLOAT, FALSE, OFF (eps), 0, 0, 1, "added to the variance" },
  { "momentum", CS_PARAM_FLOAT, FALSE, OFF (momentum), 0, 0, 1, "running average momentum" },
  { "noaffine", CS_PARAM_FLAG,  FALSE, OFF (noaffine), 0, 0, 0, "no learned scale and shift" },
};

static const CsParamSpec leaky_params[] = {
  { "slope", CS_PARAM_FLOAT, TRUE, OFF (p), 0, 0, 1, "slope for negative inputs" },
};

static const CsParamSpec dropout_params[] = {
  { "p", CS_PARAM_FLOAT, TRUE, OFF (p), 0, 0, 0.999999, "drop probability" },
};

static const CsParamSpec droppath_params[] = {
  { "survival", CS_PARAM_FLOAT, TRUE, OFF (p), 0, 1e-6, 1, "probability of keeping the branch" },
};

static const CsParamSpec fc_params[] = {
  { "outputs", CS_PARAM_INT,  TRUE,  OFF (out), W (out), 1, MAX_CH, "output features" },
  { "nobias",  CS_PARAM_FLAG, FALSE, OFF (nobias), 0, 0, 0, "no bias term" },
};

static const CsParamSpec mean_params[] = {
  { "droppath", CS_PARAM_FLOAT, FALSE, OFF (p), 0, 0, 0.999999,
    "local drop-path probability of each input in training" },
};

/* Checked 64-bit arithmetic: an overflow sets *ovf and the result is meaningless. */
static inline guint64
mul (guint64 a, guint64 b, gboolean *ovf)
{
  guint64 r;
  if (!g_uint64_checked_mul (&r, a, b))
    *ovf = TRUE;
  return r;
}

static inline guint64
add (guint64 a, guint64 b, gboolean *ovf)
{
  guint64 r;
  if (!g_uint64_checked_add (&r, a, b))
    *ovf = TRUE;
  return r;
}

gboolean
cs_shape_numel (const CsShape *s, guint64 *out)
{
  gboolean ovf = FALSE;
  *out = mul (mul (s->c, s->h, &ovf), s->w, &ovf);
  return !ovf;
}

static void
init_none (CsLayerParams *p)
{
  (void) p;
}

static void
init_conv (CsLayerParams *p)
{
  p->sh = p->sw = 1;
  p->dh = p->dw = 1;
  p->groups = 1;
}

static void
init_lrn (CsLayerParams *p)
{
  p->size = 5;
  p->alpha = 1e-4;
  p->beta = 0.75;
  p->k = 2;
}

static void
init_bn (CsLayerParams *p)
{
  p->eps = 1e-5;
  p->momentum = 0.1;
}

static void
init_leaky (CsLayerParams *p)
{
  p->p = 0.01;
}

static void
init_dropout (CsLayerParams *p)
{
  p->p = 0.5;
}

static void
init_droppath (CsLayerParams *p)
{
  p->p = 1.0;
}

void
cs_layer_window (const CsNode *n, const CsShape *in,
                 guint64 k[2], guint64 s[2], guint64 pad[2], guint64 d[2])
{
  const CsLayerParams *p = &n->p;
  const CsLayerClass *klass = cs_layer_class (n->op);

  if ((klass->flags & CS_LAYER_WHOLE) || p->global)
    {
      k[0] = in->h, k[1] = in->w;
      s[0] = s[1] = d[0] = d[1] = 1;
      pad[0] = pad[1] = 0;
      return;
    }
  if (!(klass->flags & CS_LAYER_WINDOW))
    {
      k[0] = k[1] = s[0] = s[1] = d[0] = d[1] = 1;
      pad[0] = pad[1] = 0;
      return;
    }
  k[0] = p->kh, k[1] = p->kw;
  s[0] = p->sh ? p->sh : p->kh;
  s[1] = p->sw ? p->sw : p->kw;
  d[0] = p->dh ? p->dh : 1;
  d[1] = p->dw ? p->dw : 1;
  if (p->pad_same)
    {
      pad[0] = d[0] * (k[0] - 1) / 2;
      pad[1] = d[1] * (k[1] - 1) / 2;
    }
  else
    pad[0] = p->ph, pad[1] = p->pw;
}

static gboolean
shape_error (const CsNode *n, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* The node's position is added by the caller, which knows the graph. */
static gboolean
shape_error (const CsNode *n, GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, CS_ERROR, CS_ERROR_SHAPE, msg);
  g_free (msg);
  (void) n;
  return FALSE;
}

/* One spatial axis of a window. With ceil rounding a last window that would start in the right
 * padding, or past the input, is dropped: Caffe's rule (which it applies only with padding) made
 * general, as PyTorch does; for a kernel at least as large as the stride both agree. */
static gboolean
window_axis (const CsNode *n, const char *axis, guint64 size, guint64 k, guint64 s, guint64 pad,
             guint64 d, gboolean ceil_mode, guint64 *out, GError **error)
{
  gboolean ovf = FALSE;
  guint64 span = add (mul (d, k - 1, &ovf), 1, &ovf);
  guint64 padded = add (size, mul (2, pad, &ovf), &ovf);
  if (ovf)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW, "%s size overflows", axis);
      return FALSE;
    }
  if (span > padded)
    return shape_error (n, error,
                        "kernel %" G_GUINT64_FORMAT " (spanning %" G_GUINT64_FORMAT ") is larger "
                        "than its padded input %s %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT
                        " + 2*%" G_GUINT64_FORMAT ")",
                        k, span, axis, padded, size, pad);
  guint64 o = (padded - span) / s + 1;
  if (ceil_mode && (padded - span) % s != 0)
    {
      o++;
      if ((o - 1) * s >= size + pad)
        o--;
    }
  *out = o;
  return TRUE;
}

static gboolean
check_spatial_input (const CsNode *n, const CsShape *in, GError **error)
{
  (void) in;
  (void) n;
  (void) error;
  return TRUE;
}

static gboolean
infer_same (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) n, (void) n_in, (void) error;
  *out = in[0];
  return TRUE;
}

static gboolean
infer_input (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) in, (void) n_in;
  if (n->p.shape.c == 0 || n->p.shape.h == 0 || n->p.shape.w == 0)
    return shape_error (n, error, "the input volume must not be empty");
  *out = n->p.shape;
  return TRUE;
}

static gboolean
infer_window (const CsNode *n, const CsShape *in, CsShape *out, GError **error)
{
  guint64 k[2], s[2], pad[2], d[2];
  cs_layer_window (n, in, k, s, pad, d);
  if (n->p.pad_same && ((k[0] % 2) == 0 || (k[1] % 2) == 0))
    return shape_error (n, error, "pad same needs an odd kernel, not %" G_GUINT64_FORMAT "x%"
                        G_GUINT64_FORMAT, k[0], k[1]);
  if (n->op != CS_OP_CONV && (pad[0] >= k[0] || pad[1] >= k[1]))
    return shape_error (n, error, "padding %" G_GUINT64_FORMAT " must be smaller than the "
                        "window %" G_GUINT64_FORMAT, pad[0] >= k[0] ? pad[0] : pad[1],
                        pad[0] >= k[0] ? k[0] : k[1]);
  return window_axis (n, "height", in->h, k[0], s[0], pad[0], d[0], n->p.ceil, &out->h, error)
      && window_axis (n, "width", in->w, k[1], s[1], pad[1], d[1], n->p.ceil, &out->w, error);
}

static gboolean
infer_conv (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) n_in;
  guint64 g = n->p.groups;
  if (in->c % g != 0)
    return shape_error (n, error, "%" G_GUINT64_FORMAT " input channels cannot be split into %"
                        G_GUINT64_FORMAT " groups", in->c, g);
  if (n->p.out % g != 0)
    return shape_error (n, error, "%" G_GUINT64_FORMAT " output channels cannot be split into %"
                        G_GUINT64_FORMAT " groups", n->p.out, g);
  out->c = n->p.out;
  return check_spatial_input (n, in, error) && infer_window (n, in, out, error);
}

static gboolean
infer_pool (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) n_in;
  if (!n->p.global && n->p.kh == 0)
    return shape_error (n, error, "a pool needs a kernel size or the flag global");
  out->c = in->c;
  return infer_window (n, in, out, error);
}

static gboolean
infer_lrn (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  if (n->p.size % 2 == 0)
    return shape_error (n, error, "an LRN window must be odd, not %u", n->p.size);
  return infer_same (n, in, n_in, out, error);
}

static gboolean
infer_fc (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) in, (void) n_in, (void) error;
  *out = (CsShape) { n->p.out, 1, 1 };
  return TRUE;
}

static gboolean
infer_flatten (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  (void) n_in;
  guint64 c;
  if (!cs_shape_numel (in, &c))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW, "the flattened size overflows");
      return FALSE;
    }
  (void) n;
  *out = (CsShape) { c, 1, 1 };
  return TRUE;
}

static gboolean
infer_concat (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  gboolean ovf = FALSE;
  *out = in[0];
  for (guint i = 1; i < n_in; i++)
    {
      if (in[i].h != in[0].h || in[i].w != in[0].w)
        return shape_error (n, error, "cannot concatenate input %u of %" G_GUINT64_FORMAT "x%"
                            G_GUINT64_FORMAT " with input 1 of %" G_GUINT64_FORMAT "x%"
                            G_GUINT64_FORMAT ": spatial sizes differ",
                            i + 1, in[i].h, in[i].w, in[0].h, in[0].w);
      out->c = add (out->c, in[i].c, &ovf);
    }
  if (ovf)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW, "the concatenated depth overflows");
      return FALSE;
    }
  return TRUE;
}

static gboolean
infer_elementwise (const CsNode *n, const CsShape *in, guint n_in, CsShape *out, GError **error)
{
  for (guint i = 1; i < n_in; i++)
    if (in[i].c != in[0].c || in[i].h != in[0].h || in[i].w != in[0].w)
      {
        char *a = cs_shape_to_string (&in[0]), *b = cs_shape_to_string (&in[i]);
        gboolean r = shape_error (n, error, "input %u is %s but input 1 is %s: %s needs equal "
                                  "shapes%s", i + 1, b, a, cs_layer_class (n->op)->name,
                                  in[i].c != in[0].c ? " (the channels differ)" : "");
        g_free (a), g_free (b);
        return r;
      }
  *out = in[0];
  return TRUE;
}

/* Counts. Every count is per image; stats scales by the batch. */

static gboolean
count_none (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n, (void) in, (void) n_in, (void) st;
  return TRUE;
}

static gboolean
count_conv (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n_in;
  gboolean ovf = FALSE;
  guint64 per_out = mul (mul (in->c / n->p.groups, n->p.kh, &ovf), n->p.kw, &ovf);
  st->weights = mul (per_out, n->p.out, &ovf);
  st->biases = n->p.nobias ? 0 : n->p.out;
  guint64 positions = mul (n->shape.h, n->shape.w, &ovf);
  st->macs = mul (mul (positions, n->p.out, &ovf), per_out, &ovf);
  st->other_ops = n->p.nobias ? 0 : mul (positions, n->p.out, &ovf);
  return !ovf;
}

static gboolean
count_fc (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n_in;
  gboolean ovf = FALSE;
  guint64 fan_in;
  if (!cs_shape_numel (in, &fan_in))
    return FALSE;
  st->weights = mul (fan_in, n->p.out, &ovf);
  st->biases = n->p.nobias ? 0 : n->p.out;
  st->macs = st->weights;
  st->other_ops = st->biases;
  return !ovf;
}

static gboolean
count_pool (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n_in;
  guint64 k[2], s[2], pad[2], d[2];
  gboolean ovf = FALSE;
  cs_layer_window (n, in, k, s, pad, d);
  /* One comparison or addition per window element, plus the division of an average. */
  st->other_ops = mul (st->activations, add (mul (k[0], k[1], &ovf),
                                             n->op == CS_OP_AVGPOOL, &ovf), &ovf);
  return !ovf;
}

static gboolean
count_lrn (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) in, (void) n_in;
  gboolean ovf = FALSE;
  /* A sum of `size` squares, then the power and the division. */
  st->other_ops = mul (st->activations, n->p.size + 2, &ovf);
  return !ovf;
}

static gboolean
count_bn (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n_in;
  gboolean ovf = FALSE;
  st->weights = n->p.noaffine ? 0 : in->c;
  st->biases = n->p.noaffine ? 0 : in->c;
  st->buffers = mul (2, in->c, &ovf);
  /* At inference batch norm is one multiply-add per value. */
  st->other_ops = mul (2, st->activations, &ovf);
  return !ovf;
}

static gboolean
count_pointwise (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n, (void) in, (void) n_in;
  st->other_ops = st->activations;
  return TRUE;
}

static gboolean
count_softmax (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n, (void) in, (void) n_in;
  gboolean ovf = FALSE;
  /* An exponential, a sum and a division per value. */
  st->other_ops = mul (3, st->activations, &ovf);
  return !ovf;
}

static gboolean
count_add (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n, (void) in;
  gboolean ovf = FALSE;
  st->other_ops = mul (st->activations, n_in - 1, &ovf);
  return !ovf;
}

static gboolean
count_mean (const CsNode *n, const CsShape *in, guint n_in, CsLayerStats *st)
{
  (void) n, (void) in;
  gboolean ovf = FALSE;
  st->other_ops = mul (st->activations, n_in, &ovf);
  return !ovf;
}

#define PARAMS(a) a, G_N_ELEMENTS (a)
#define NO_PARAMS NULL, 0
#define MAX_JOIN 4096

static const CsLayerClass layer_classes[CS_OP_COUNT] = {
  [CS_OP_INPUT]     = { "input", "Input", NO_PARAMS, 0, 0, 0,
                        init_none, infer_input, count_none },
  [CS_OP_CONV]      = { "conv", "Convolution", PARAMS (conv_params), 1, 1,
                        CS_LAYER_WINDOW | CS_LAYER_BWD_INPUT,
                        init_conv, infer_conv, count_conv },
  [CS_OP_MAXPOOL]   = { "maxpool", "Max pooling", PARAMS (pool_params), 1, 1,
                        CS_LAYER_WINDOW | CS_LAYER_BWD_INPUT | CS_LAYER_BWD_OUTPUT,
                        init_none, infer_pool, count_pool },
  [CS_OP_AVGPOOL]   = { "avgpool", "Average pooling", PARAMS (pool_params), 1, 1,
                        CS_LAYER_WINDOW, init_none, infer_pool, count_pool },
  [CS_OP_LRN]       = { "lrn", "Local response normalisation", PARAMS (lrn_params), 1, 1,
                        CS_LAYER_BWD_INPUT | CS_LAYER_BWD_OUTPUT,
                        init_lrn, infer_lrn, count_lrn },
  [CS_OP_BN]        = { "bn", "Batch normalisation", PARAMS (bn_params), 1, 1,
                        CS_LAYER_INPLACE | CS_LAYER_BWD_INPUT,
                        init_bn, infer_same, count_bn },
  [CS_OP_RELU]      = { "relu", "ReLU", NO_PARAMS, 1, 1, CS_LAYER_INPLACE | CS_LAYER_BWD_OUTPUT,
                        init_none, infer_same, count_pointwise },
  [CS_OP_LEAKYRELU] = { "leakyrelu", "Leaky ReLU", PARAMS (leaky_params), 1, 1,
                        CS_LAYER_INPLACE | CS_LAYER_BWD_OUTPUT, init_leaky, infer_same, count_pointwise },
  [CS_OP_SIGMOID]   = { "sigmoid", "Sigmoid", NO_PARAMS, 1, 1, CS_LAYER_INPLACE | CS_LAYER_BWD_OUTPUT,
                        init_none, infer_same, count_pointwise },
  [CS_OP_TANH]      = { "tanh", "Tanh", NO_PARAMS, 1, 1, CS_LAYER_INPLACE | CS_LAYER_BWD_OUTPUT,
                        init_none, infer_same, count_pointwise },
  [CS_OP_DROPOUT]   = { "dropout", "Dropout", PARAMS (dropout_params), 1, 1, CS_LAYER_INPLACE,
                        init_dropout, infer_same, count_none },
  [CS_OP_FC]        = { "fc", "Fully connected", PARAMS (fc_params), 1, 1,
                        CS_LAYER_WHOLE | CS_LAYER_BWD_INPUT,
                        init_none, infer_fc, count_fc },
  [CS_OP_FLATTEN]   = { "flatten", "Flatten", NO_PARAMS, 1, 1, CS_LAYER_WHOLE,
                        init_none, infer_flatten, count_none },
  [CS_OP_SOFTMAX]   = { "softmax", "Softmax", NO_PARAMS, 1, 1, CS_LAYER_INPLACE | CS_LAYER_BWD_OUTPUT,
                        init_none, infer_same, count_softmax },
  [CS_OP_CONCAT]    = { "concat", "Concatenation", NO_PARAMS, 2, MAX_JOIN, CS_LAYER_JOIN,
                        init_none, infer_concat, count_none },
  [CS_OP_ADD]       = { "add", "Elementwise sum", NO_PARAMS, 2, MAX_JOIN, CS_LAYER_JOIN,
                        init_none, infer_elementwise, count_add },
  [CS_OP_MEAN]      = { "mean", "Mean join", PARAMS (mean_params), 2, MAX_JOIN, CS_LAYER_JOIN,
                        init_none, infer_elementwise, count_mean },
  [CS_OP_DROPPATH]  = { "droppath", "Drop-path gate", PARAMS (droppath_params), 1, 1,
                        CS_LAYER_INPLACE, init_droppath, infer_same, count_none },
  [CS_OP_IDENTITY]  = { "identity", "Identity", NO_PARAMS, 1, 1, CS_LAYER_INPLACE,
                        init_none, infer_same, count_none },
};

const CsLayerClass *
cs_layer_class (CsOp op)
{
  g_return_val_if_fail (op < CS_OP_COUNT, NULL);
  return &layer_classes[op];
}

const CsLayerClass *
cs_layer_class_lookup (const char *name, CsOp *op)
{
  for (guint i = 0; i < CS_OP_COUNT; i++)
    if (g_str_equal (layer_classes[i].name, name))
      {
        if (op)
          *op = i;
        return &layer_classes[i];
      }
  return NULL;
}
