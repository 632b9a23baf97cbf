/* ONNX import and export: maps ONNX graphs onto cnnscope's layer kinds and back, with protobuf-c. */
#include "cs-onnx.h"
#include "cs-error.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define MAX_FILE_BYTES ((gsize) 512 * 1024 * 1024)
#define MAX_NODES 100000
#define MAX_INITS 100000
#define MAX_NODE_IO 4096
#define MAX_ATTRS 256
#define MAX_NAME 4096
#define MAX_NUMEL ((guint64) 1 << 31)     /* a float tensor of 8 GiB: more than any file holds */
#define MAX_CONST 64                      /* the shape vectors we fold are tiny */

/* Folded int64 vectors: the batch size and unknown sizes are symbols, never real values. */
#define SYM_BATCH   G_MININT64
#define SYM_UNKNOWN (G_MININT64 + 1)

typedef struct {
  CsNode *node;
  guint rank;                     /* 2 (N x features) or 4 (NCHW) */
  guint32 pad_h, pad_w;           /* Pad outputs only: zero padding an AveragePool absorbs */
} Val;

typedef struct {
  guint rank;                     /* 0 for a scalar */
  guint len;
  gint64 v[MAX_CONST];
} Const;

/* Which initializers hold a node's parameters, read once the graph is finalized. */
typedef struct {
  CsNode *node;
  const Onnx__TensorProto *w, *b, *mean, *var;
  gboolean transpose;             /* the weight is [in, out] (Gemm transB=0, MatMul) */
} Params;

/* A Reshape's target width, checked once shapes are known. */
typedef struct {
  CsNode *node;
  gint64 features;
} ReshapeCheck;

typedef struct {
  CsGraph *g;
  const char *file;               /* for messages */
  char *dir;                      /* the model's folder for external data, or NULL */
  Onnx__GraphProto *gp;
  gint64 opset;
  GHashTable *inits;              /* name -> Onnx__TensorProto* */
  GHashTable *vals;               /* value name -> Val* */
  GHashTable *consts;             /* value name -> Const* */
  GHashTable *uses;               /* value name -> number of consuming nodes, as a pointer */
  GHashTable *fused;              /* Onnx__NodeProto* folded into an earlier node */
  GHashTable *padded;             /* value name -> Val* of a Pad's input, padding in pads[] */
  GPtrArray *params;              /* Params*, owned */
  GArray *checks;                 /* ReshapeCheck */
} Importer;

static void
importer_clear (Importer *im)
{
  g_free (im->dir);
  g_clear_pointer (&im->inits, g_hash_table_unref);
  g_clear_pointer (&im->vals, g_hash_table_unref);
  g_clear_pointer (&im->consts, g_hash_table_unref);
  g_clear_pointer (&im->uses, g_hash_table_unref);
  g_clear_pointer (&im->fused, g_hash_table_unref);
  g_clear_pointer (&im->padded, g_hash_table_unref);
  g_clear_pointer (&im->params, g_ptr_array_unref);
  g_clear_pointer (&im->checks, g_array_unref);
}

static gboolean
fail (Importer *im, GError **error, gint code, const char *format, ...) G_GNUC_PRINTF (4, 5);

static gboolean
fail (Importer *im, GError **error, gint code, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, CS_ERROR, code, "%s: %s", im->file, msg);
  g_free (msg);
  return FALSE;
}

/* The node's description in messages: its index, name and operator. */
static char *
node_desc (guint index, const Onnx__NodeProto *np)
{
  if (np->name && *np->name)
    return g_strdup_printf ("node %u '%s' (%s)", index, np->name, np->op_type);
  return g_strdup_printf ("node %u (%s)", index, np->op_type);
}

/* Validation of the unpacked message: everything later code indexes is checked here once. */

static gboolean
str_ok (const char *s)
{
  return s == NULL || strnlen (s, MAX_NAME + 1) <= MAX_NAME;
}

static gsize
elem_size (gint32 type)
{
  switch (type)
    {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
    default: return 0;
    }
}

static const char *
ext_value (const Onnx__TensorProto *t, const char *key)
{
  for (gsize i = 0; i < t->n_external_data; i++)
    if (t->external_data[i]->key && g_str_equal (t->external_data[i]->key, key))
      return t->external_data[i]->value;
  return NULL;
}

/* External locations must stay inside the model's folder: relative, no '..', no drive or
 * backslash tricks. */
static gboolean
safe_location (const char *loc)
{
  if (loc == NULL || *loc == '\0' || g_path_is_absolute (loc) || loc[0] == '/'
      || strchr (loc, '\\') || strchr (loc, ':'))
    return FALSE;
  char **parts = g_strsplit (loc, "/", -1);
  gboolean ok = TRUE;
  for (char **p = parts; *p; p++)
    if (g_str_equal (*p, ".."))
      ok = FALSE;
  g_strfreev (parts);
  return ok;
}

static gboolean
parse_u64 (const char *s, guint64 *out)
{
  if (s == NULL)
    {
      *out = 0;
      return TRUE;
    }
  return g_ascii_string_to_unsigned (s, 10, 0, G_MAXUINT64, out, NULL);
}

static gboolean
check_tensor (Importer *im, const Onnx__TensorProto *t, const char *what, GError **error)
{
  const char *name = t->name ? t->name : "";
  if (!str_ok (t->name))
    return fail (im, error, CS_ERROR_LIMIT, "a tensor name is longer than %d bytes", MAX_NAME);
  if (t->n_dims > CS_TENSOR_MAX_RANK)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s '%s' has rank %zu; cnnscope takes at most %d",
                 what, name, t->n_dims, CS_TENSOR_MAX_RANK);
  guint64 numel = 1;
  for (gsize i = 0; i < t->n_dims; i++)
    {
      if (t->dims[i] < 0)
        return fail (im, error, CS_ERROR_IO, "%s '%s' has a negative size", what, name);
      if (!g_uint64_checked_mul (&numel, numel, (guint64) t->dims[i]))
        return fail (im, error, CS_ERROR_OVERFLOW, "the size of %s '%s' overflows", what, name);
    }
  if (numel > MAX_NUMEL)
    return fail (im, error, CS_ERROR_LIMIT, "%s '%s' has %" G_GUINT64_FORMAT " values, more than "
                 "%" G_GUINT64_FORMAT, what, name, numel, MAX_NUMEL);
  gint32 type = t->has_data_type ? t->data_type : 0;
  gsize es = elem_size (type);
  if (es == 0)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s '%s' has data type %d; cnnscope reads float "
                 "and int64 tensors", what, name, type);
  if (t->segment)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s '%s' is stored in segments", what, name);
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    {
      const char *loc = ext_value (t, "location");
      if (!safe_location (loc))
        return fail (im, error, CS_ERROR_IO, "%s '%s' refers to external data at '%s', outside "
                     "the model's folder", what, name, loc ? loc : "");
      if (im->dir == NULL)
        return fail (im, error, CS_ERROR_IO, "%s '%s' is stored in the external file '%s', which "
                     "cannot be read for a model given in memory", what, name, loc);
      guint64 off, len;
      if (!parse_u64 (ext_value (t, "offset"), &off) || !parse_u64 (ext_value (t, "length"), &len))
        return fail (im, error, CS_ERROR_IO, "%s '%s' has a bad external offset or length", what,
                     name);
      if (ext_value (t, "length") && len != numel * es)
        return fail (im, error, CS_ERROR_IO, "%s '%s' has %" G_GUINT64_FORMAT " external bytes for "
                     "%" G_GUINT64_FORMAT " values", what, name, len, numel);
      return TRUE;
    }
  gsize have = 0;
  guint n_sources = 0;
  if (t->has_raw_data)
    {
      n_sources++;
      if (t->raw_data.len != numel * es)
        return fail (im, error, CS_ERROR_IO, "%s '%s' has %zu bytes of data for %" G_GUINT64_FORMAT
                     " values", what, name, t->raw_data.len, numel);
      have = numel;
    }
  if (t->n_float_data)
    n_sources++, have = t->n_float_data;
  if (t->n_int64_data)
    n_sources++, have = t->n_int64_data;
  if (t->n_int32_data || t->n_double_data || t->n_uint64_data || t->n_string_data)
    return fail (im, error, CS_ERROR_IO, "%s '%s' stores its values in a field that does not "
                 "match its type", what, name);
  if (n_sources > 1
      || (t->n_float_data && type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
      || (t->n_int64_data && type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
      || have != numel)
    return fail (im, error, CS_ERROR_IO, "%s '%s' has %zu values for its %" G_GUINT64_FORMAT,
                 what, name, have, numel);
  return TRUE;
}

static guint64
tensor_numel (const Onnx__TensorProto *t)
{
  guint64 n = 1;
  for (gsize i = 0; i < t->n_dims; i++)
    n *= (guint64) t->dims[i];     /* checked by check_tensor */
  return n;
}

static gboolean
check_attr (Importer *im, const Onnx__AttributeProto *a, GError **error)
{
  if (!str_ok (a->name) || !str_ok (a->ref_attr_name))
    return fail (im, error, CS_ERROR_LIMIT, "an attribute name is too long");
  if (a->t && !check_tensor (im, a->t, "the constant", error))
    return FALSE;
  if (a->n_tensors || a->n_graphs || a->g || a->n_sparse_tensors || a->sparse_tensor)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "attribute '%s' holds subgraphs or tensor "
                 "lists, which cnnscope does not read", a->name ? a->name : "");
  return TRUE;
}

static gboolean
validate (Importer *im, Onnx__ModelProto *m, GError **error)
{
  if (m->graph == NULL)
    return fail (im, error, CS_ERROR_IO, "the model has no graph");
  im->opset = -1;
  for (gsize i = 0; i < m->n_opset_import; i++)
    {
      const Onnx__OperatorSetIdProto *o = m->opset_import[i];
      if ((o->domain == NULL || *o->domain == '\0' || g_str_equal (o->domain, "ai.onnx"))
          && o->has_version)
        im->opset = o->version;
    }
  if (im->opset < 0 && m->n_opset_import == 0 && m->has_ir_version && m->ir_version <= 2)
    im->opset = 1;
  if (im->opset < 7)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "the model uses ONNX opset %" G_GINT64_FORMAT
                 "; cnnscope reads opset 7 and later", im->opset);

  Onnx__GraphProto *gp = m->graph;
  if (gp->n_node > MAX_NODES || gp->n_initializer > MAX_INITS || gp->n_input > MAX_INITS + 16
      || gp->n_output > MAX_NODE_IO || gp->n_value_info > (gsize) 4 * MAX_NODES)
    return fail (im, error, CS_ERROR_LIMIT, "the graph has more than %d nodes or %d "
                 "initializers", MAX_NODES, MAX_INITS);
  if (gp->n_sparse_initializer)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "sparse initializers are not supported");
  for (gsize i = 0; i < gp->n_initializer; i++)
    if (!check_tensor (im, gp->initializer[i], "initializer", error))
      return FALSE;
  for (gsize i = 0; i < gp->n_node; i++)
    {
      const Onnx__NodeProto *np = gp->node[i];
      if (np->op_type == NULL || *np->op_type == '\0')
        return fail (im, error, CS_ERROR_IO, "node %zu has no operator", i);
      if (!str_ok (np->op_type) || !str_ok (np->name) || !str_ok (np->domain))
        return fail (im, error, CS_ERROR_LIMIT, "node %zu has a name longer than %d bytes", i,
                     MAX_NAME);
      if (np->n_input > MAX_NODE_IO || np->n_output > MAX_NODE_IO || np->n_attribute > MAX_ATTRS)
        return fail (im, error, CS_ERROR_LIMIT, "node %zu has too many inputs, outputs or "
                     "attributes", i);
      for (gsize j = 0; j < np->n_input; j++)
        if (!str_ok (np->input[j]))
          return fail (im, error, CS_ERROR_LIMIT, "node %zu has an input name that is too long", i);
      for (gsize j = 0; j < np->n_output; j++)
        if (!str_ok (np->output[j]))
          return fail (im, error, CS_ERROR_LIMIT, "node %zu has an output name that is too long",
                       i);
      for (gsize j = 0; j < np->n_attribute; j++)
        if (!check_attr (im, np->attribute[j], error))
          return FALSE;
    }
  for (gsize i = 0; i < gp->n_input; i++)
    if (!str_ok (gp->input[i]->name))
      return fail (im, error, CS_ERROR_LIMIT, "an input name is too long");
  for (gsize i = 0; i < gp->n_output; i++)
    if (!str_ok (gp->output[i]->name))
      return fail (im, error, CS_ERROR_LIMIT, "an output name is too long");
  return TRUE;
}

/* Attributes. */

static const Onnx__AttributeProto *
attr (const Onnx__NodeProto *np, const char *name)
{
  for (gsize i = 0; i < np->n_attribute; i++)
    if (np->attribute[i]->name && g_str_equal (np->attribute[i]->name, name))
      return np->attribute[i];
  return NULL;
}

static gint64
attr_int (const Onnx__NodeProto *np, const char *name, gint64 def)
{
  const Onnx__AttributeProto *a = attr (np, name);
  return a && a->has_i ? a->i : def;
}

static double
attr_float (const Onnx__NodeProto *np, const char *name, double def)
{
  const Onnx__AttributeProto *a = attr (np, name);
  return a && a->has_f ? a->f : def;
}

/* The attribute's ints, or NULL and *N = 0 when it is absent. */
static const int64_t *
attr_ints (const Onnx__NodeProto *np, const char *name, gsize *n)
{
  const Onnx__AttributeProto *a = attr (np, name);
  *n = a ? a->n_ints : 0;
  return a ? a->ints : NULL;
}

static gboolean
attr_str_is (const Onnx__NodeProto *np, const char *name, const char *def, const char *want)
{
  const Onnx__AttributeProto *a = attr (np, name);
  if (a == NULL || !a->has_s)
    return g_str_equal (def, want);
  return a->s.len == strlen (want) && memcmp (a->s.data, want, a->s.len) == 0;
}

/* Values and constants. */

static const char *
in_name (const Onnx__NodeProto *np, gsize i)
{
  return i < np->n_input && np->input[i] && *np->input[i] ? np->input[i] : NULL;
}

static const Onnx__TensorProto *
init_of (Importer *im, const char *name)
{
  return name ? g_hash_table_lookup (im->inits, name) : NULL;
}

/* Reads an int64 tensor held in memory into C, or FALSE. */
static gboolean
const_from_tensor (const Onnx__TensorProto *t, Const *c)
{
  if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->n_dims > 1
      || (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
    return FALSE;
  guint64 n = tensor_numel (t);
  if (n > MAX_CONST)
    return FALSE;
  c->rank = t->n_dims;
  c->len = n;
  for (guint i = 0; i < n; i++)
    {
      if (t->has_raw_data)
        {
          guint64 le;
          memcpy (&le, t->raw_data.data + 8 * i, 8);
          c->v[i] = (gint64) GUINT64_FROM_LE (le);
        }
      else
        c->v[i] = t->int64_data[i];
      /* The symbols must never come from a file. */
      if (c->v[i] == SYM_BATCH || c->v[i] == SYM_UNKNOWN)
        c->v[i] = SYM_UNKNOWN;
    }
  return TRUE;
}

static gboolean
get_const (Importer *im, const char *name, Const *out)
{
  if (name == NULL)
    return FALSE;
  const Const *c = g_hash_table_lookup (im->consts, name);
  if (c)
    {
      *out = *c;
      return TRUE;
    }
  const Onnx__TensorProto *t = init_of (im, name);
  return t && const_from_tensor (t, out);
}

static void
set_const (Importer *im, const char *name, const Const *c)
{
  g_hash_table_replace (im->consts, (gpointer) name, g_memdup2 (c, sizeof *c));
}

/* Floats of a tensor: inline, or from its external file. */
static gboolean
read_floats (Importer *im, const Onnx__TensorProto *t, float *out, guint64 n, GError **error)
{
  if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "tensor '%s' is not float32", t->name);
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    {
      const char *loc = ext_value (t, "location");
      guint64 off = 0;
      parse_u64 (ext_value (t, "offset"), &off);
      g_autofree char *path = g_build_filename (im->dir, loc, NULL);
      GError *e = NULL;
      GMappedFile *mf = g_mapped_file_new (path, FALSE, &e);
      if (mf == NULL)
        {
          fail (im, error, CS_ERROR_IO, "cannot read the external data of '%s': %s", t->name,
                e->message);
          g_error_free (e);
          return FALSE;
        }
      gsize len = g_mapped_file_get_length (mf);
      gboolean ok = off <= len && n * 4 <= len - off;
      if (ok)
        {
          const guint8 *p = (const guint8 *) g_mapped_file_get_contents (mf) + off;
          for (guint64 i = 0; i < n; i++)
            {
              guint32 u;
              memcpy (&u, p + 4 * i, 4);
              u = GUINT32_FROM_LE (u);
              memcpy (&out[i], &u, 4);
            }
        }
      g_mapped_file_unref (mf);
      if (!ok)
        return fail (im, error, CS_ERROR_IO, "the external data of '%s' is shorter than its %"
                     G_GUINT64_FORMAT " values", t->name, n);
      return TRUE;
    }
  if (t->has_raw_data)
    for (guint64 i = 0; i < n; i++)
      {
        guint32 u;
        memcpy (&u, t->raw_data.data + 4 * i, 4);
        u = GUINT32_FROM_LE (u);
        memcpy (&out[i], &u, 4);
      }
  else
    memcpy (out, t->float_data, n * sizeof (float));
  return TRUE;
}

/* A float scalar held in an initializer (Dropout's ratio), or DEF. */
static gboolean
float_scalar (Importer *im, const char *name, double def, double *out, GError **error)
{
  *out = def;
  if (name == NULL)
    return TRUE;
  const Onnx__TensorProto *t = init_of (im, name);
  if (t == NULL || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || tensor_numel (t) != 1)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "'%s' must be a float initializer with one "
                 "value", name);
  float f;
  if (!read_floats (im, t, &f, 1, error))
    return FALSE;
  *out = f;
  return TRUE;
}

/* Node naming: the ONNX name without its leading '/', unique; else the operator and index. */
static char *
unique_name (Importer *im, const char *want, const char *op, guint index)
{
  while (want && *want == '/')
    want++;
  char *name = want && *want ? g_strdup (want) : g_strdup_printf ("%s_%u", op, index);
  for (guint i = 1; cs_graph_lookup (im->g, name); i++)
    {
      g_free (name);
      name = want && *want ? g_strdup_printf ("%s_%u", want, i)
                           : g_strdup_printf ("%s_%u_%u", op, index, i);
    }
  return name;
}

static CsNode *
add_node (Importer *im, CsOp op, const Onnx__NodeProto *np, guint index, guint n_inputs,
          GError **error)
{
  g_autofree char *name = unique_name (im, np ? np->name : NULL, np ? np->op_type : "input",
                                       index);
  const char *slash = strrchr (name, '/');
  g_autofree char *module = slash ? g_strndup (name, slash - name) : g_strdup ("");
  return cs_graph_add_node (im->g, op, module, name, n_inputs, NULL, error);
}

static Val *
val_of (Importer *im, const char *name)
{
  return name ? g_hash_table_lookup (im->vals, name) : NULL;
}

static void
set_val (Importer *im, const char *name, CsNode *n, guint rank)
{
  Val *v = g_new (Val, 1);
  v->node = n;
  v->rank = rank;
  g_hash_table_replace (im->vals, (gpointer) name, v);
}

static Params *
add_params (Importer *im, CsNode *n)
{
  Params *p = g_new0 (Params, 1);
  p->node = n;
  g_ptr_array_add (im->params, p);
  return p;
}

/* Checks the symmetric padding of PADS (begin..., end...) and stores it. */
static gboolean
sym_pads (Importer *im, const Onnx__NodeProto *np, const char *desc, CsLayerParams *p,
          GError **error)
{
  gsize n;
  const int64_t *pads = attr_ints (np, "pads", &n);
  if (pads == NULL)
    return TRUE;
  if (n != 4)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: pads must have 4 values for a 2-D "
                 "operator, not %zu", desc, n);
  for (int i = 0; i < 4; i++)
    if (pads[i] < 0 || pads[i] > 1048576)
      return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: padding %" G_GINT64_FORMAT " is out of "
                   "range", desc, (gint64) pads[i]);
  if (pads[0] != pads[2] || pads[1] != pads[3])
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: asymmetric padding (%" G_GINT64_FORMAT
                 ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ") is not "
                 "supported", desc, (gint64) pads[0], (gint64) pads[1], (gint64) pads[2],
                 (gint64) pads[3]);
  p->ph = pads[0];
  p->pw = pads[1];
  return TRUE;
}

/* Reads a pair attribute (strides, dilations, kernel_shape) into H, W; absent keeps them. */
static gboolean
pair (Importer *im, const Onnx__NodeProto *np, const char *desc, const char *name, guint32 *h,
      guint32 *w, gint64 min, GError **error)
{
  gsize n;
  const int64_t *v = attr_ints (np, name, &n);
  if (v == NULL)
    return TRUE;
  if (n != 2)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: %s must have 2 values, not %zu (only 2-D "
                 "operators are supported)", desc, name, n);
  if (v[0] < min || v[1] < min || v[0] > 1048576 || v[1] > 1048576)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: %s (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                 ") is out of range", desc, name, (gint64) v[0], (gint64) v[1]);
  *h = v[0];
  *w = v[1];
  return TRUE;
}

/* An input that must be a computed activation, not a constant. */
static Val *
need_val (Importer *im, const Onnx__NodeProto *np, gsize i, const char *desc, GError **error)
{
  const char *name = in_name (np, i);
  Val *v = val_of (im, name);
  if (v == NULL && name && g_hash_table_contains (im->padded, name))
    fail (im, error, CS_ERROR_UNSUPPORTED, "%s: input %zu ('%s') comes from a Pad, which is "
          "supported only before an AveragePool", desc, i + 1, name);
  else if (v == NULL)
    {
      if (name && (init_of (im, name) || g_hash_table_contains (im->consts, name)))
        fail (im, error, CS_ERROR_UNSUPPORTED, "%s: input %zu ('%s') is a constant where "
              "cnnscope needs an activation", desc, i + 1, name);
      else
        fail (im, error, CS_ERROR_IO, "%s: input %zu ('%s') is not defined before the node",
              desc, i + 1, name ? name : "");
    }
  return v;
}

/* An input that must be a float initializer of rank RANK (0: any). */
static const Onnx__TensorProto *
need_init (Importer *im, const Onnx__NodeProto *np, gsize i, guint rank, const char *desc,
           GError **error)
{
  const char *name = in_name (np, i);
  const Onnx__TensorProto *t = init_of (im, name);
  if (t == NULL || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
      || (rank && t->n_dims != rank))
    {
      fail (im, error, CS_ERROR_UNSUPPORTED, "%s: input %zu ('%s') must be a float initializer "
            "of rank %u", desc, i + 1, name ? name : "", rank);
      return NULL;
    }
  return t;
}

static gboolean
need_inputs (Importer *im, const Onnx__NodeProto *np, gsize min, gsize max, const char *desc,
             GError **error)
{
  if (np->n_input < min || np->n_input > max || np->n_output < 1 || np->output[0] == NULL
      || *np->output[0] == '\0')
    return fail (im, error, CS_ERROR_IO, "%s has %zu inputs and %zu outputs", desc, np->n_input,
                 np->n_output);
  return TRUE;
}

/* A node with one activation input and no parameters. */
static CsNode *
simple (Importer *im, CsOp op, const Onnx__NodeProto *np, guint index, Val *x, GError **error)
{
  CsNode *n = add_node (im, op, np, index, 1, error);
  if (n == NULL)
    return NULL;
  n->inputs[0] = x->node->id;
  set_val (im, np->output[0], n, x->rank);
  return n;
}

/* How many extra outputs a node may have that nothing uses (BN's and Dropout's optional ones). */
static gboolean
extra_outputs_unused (Importer *im, const Onnx__NodeProto *np)
{
  for (gsize i = 1; i < np->n_output; i++)
    if (np->output[i] && *np->output[i] && g_hash_table_lookup (im->uses, np->output[i]))
      return FALSE;
  return TRUE;
}

static gboolean
import_conv (Importer *im, const Onnx__NodeProto *np, guint index, const char *desc,
             GError **error)
{
  if (!need_inputs (im, np, 2, 3, desc, error))
    return FALSE;
  Val *x = need_val (im, np, 0, desc, error);
  const Onnx__TensorProto *w = x ? need_init (im, np, 1, 4, desc, error) : NULL;
  if (w == NULL)
    return FALSE;
  const Onnx__TensorProto *b = NULL;
  if (in_name (np, 2) && (b = need_init (im, np, 2, 1, desc, error)) == NULL)
    return FALSE;
  if (x->rank != 4)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only 2-D convolutions are supported", desc);
  CsNode *n = add_node (im, CS_OP_CONV, np, index, 1, error);
  if (n == NULL)
    return FALSE;
  CsLayerParams *p = &n->p;
  gint64 group = attr_int (np, "group", 1);
  if (w->dims[0] < 1 || w->dims[0] > 16777216 || w->dims[2] < 1 || w->dims[3] < 1
      || w->dims[2] > 1048576 || w->dims[3] > 1048576 || group < 1 || group > 16777216)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: weight or group size out of range", desc);
  p->out = w->dims[0];
  p->kh = w->dims[2];
  p->kw = w->dims[3];
  p->groups = group;
  p->nobias = b == NULL;
  guint32 kh = p->kh, kw = p->kw;
  if (!pair (im, np, desc, "kernel_shape", &kh, &kw, 1, error)
      || !pair (im, np, desc, "strides", &p->sh, &p->sw, 1, error)
      || !pair (im, np, desc, "dilations", &p->dh, &p->dw, 1, error))
    return FALSE;
  if (kh != p->kh || kw != p->kw)
    return fail (im, error, CS_ERROR_IO, "%s: kernel_shape does not match the weight", desc);
  if (attr_str_is (np, "auto_pad", "NOTSET", "SAME_UPPER")
      || attr_str_is (np, "auto_pad", "NOTSET", "SAME_LOWER"))
    {
      /* Symmetric "same" padding is ONNX's only at stride 1 with an odd kernel. */
      if (p->sh != 1 || p->sw != 1 || p->kh % 2 == 0 || p->kw % 2 == 0)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: auto_pad SAME is supported only for "
                     "odd kernels at stride 1", desc);
      p->pad_same = TRUE;
    }
  else if (!attr_str_is (np, "auto_pad", "NOTSET", "NOTSET")
           && !attr_str_is (np, "auto_pad", "NOTSET", "VALID"))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: unknown auto_pad", desc);
  else if (attr_str_is (np, "auto_pad", "NOTSET", "NOTSET") && !sym_pads (im, np, desc, p, error))
    return FALSE;
  if (b && (guint64) b->dims[0] != p->out)
    return fail (im, error, CS_ERROR_SHAPE, "%s: the bias has %" G_GINT64_FORMAT " values for %"
                 G_GUINT64_FORMAT " channels", desc, (gint64) b->dims[0], p->out);
  n->inputs[0] = x->node->id;
  set_val (im, np->output[0], n, 4);
  Params *pr = add_params (im, n);
  pr->w = w;
  pr->b = b;
  return TRUE;
}

static gboolean
import_pool (Importer *im, CsOp op, const Onnx__NodeProto *np, guint index, const char *desc,
             GError **error)
{
  if (!need_inputs (im, np, 1, 1, desc, error))
    return FALSE;
  /* torch writes an average pool that counts its padding as Pad + AveragePool. */
  Val *padded = op == CS_OP_AVGPOOL ? g_hash_table_lookup (im->padded, in_name (np, 0)) : NULL;
  Val *x = padded ? padded : need_val (im, np, 0, desc, error);
  if (x == NULL)
    return FALSE;
  if (np->n_output > 1 && !extra_outputs_unused (im, np))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the indices output is not supported", desc);
  if (x->rank != 4)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only 2-D pooling is supported", desc);
  if (!attr_str_is (np, "auto_pad", "NOTSET", "NOTSET")
      && !attr_str_is (np, "auto_pad", "NOTSET", "VALID"))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: auto_pad SAME is not supported for pools",
                 desc);
  CsNode *n = add_node (im, op, np, index, 1, error);
  if (n == NULL)
    return FALSE;
  CsLayerParams *p = &n->p;
  guint32 dh = 1, dw = 1;
  if (attr (np, "kernel_shape") == NULL)
    return fail (im, error, CS_ERROR_IO, "%s: kernel_shape is missing", desc);
  p->sh = p->sw = 1;     /* ONNX's default stride is 1, not the kernel */
  if (!pair (im, np, desc, "kernel_shape", &p->kh, &p->kw, 1, error)
      || !pair (im, np, desc, "strides", &p->sh, &p->sw, 1, error)
      || !pair (im, np, desc, "dilations", &dh, &dw, 1, error)
      || (attr_str_is (np, "auto_pad", "NOTSET", "NOTSET") && !sym_pads (im, np, desc, p, error)))
    return FALSE;
  if (dh != 1 || dw != 1)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: dilated pooling is not supported", desc);
  if (padded && (p->ph || p->pw))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: padding both in a Pad and in the pool is "
                 "not supported", desc);
  if (padded)
    {
      /* Padding that is counted, as cnnscope's average pool counts it. */
      p->ph = padded->pad_h, p->pw = padded->pad_w;
    }
  p->ceil = attr_int (np, "ceil_mode", 0) != 0;
  if (!padded && op == CS_OP_AVGPOOL && attr_int (np, "count_include_pad", 0) == 0
      && (p->ph || p->pw))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: average pooling with padding that is not "
                 "counted (count_include_pad=0) is not supported", desc);
  n->inputs[0] = x->node->id;
  set_val (im, np->output[0], n, 4);
  return TRUE;
}

/* Fully connected: Gemm, or MatMul (with the Add of a bias that follows it, when there is one). */
static gboolean
import_fc (Importer *im, const Onnx__NodeProto *np, guint index, const char *desc,
           gboolean gemm, GError **error)
{
  if (!need_inputs (im, np, 2, gemm ? 3 : 2, desc, error))
    return FALSE;
  Val *x = need_val (im, np, 0, desc, error);
  const Onnx__TensorProto *w = x ? need_init (im, np, 1, 2, desc, error) : NULL;
  if (w == NULL)
    return FALSE;
  const Onnx__TensorProto *b = NULL;
  gboolean transpose = TRUE;
  const char *out_name = np->output[0];
  if (gemm)
    {
      if (attr_float (np, "alpha", 1) != 1 || attr_float (np, "beta", 1) != 1
          || attr_int (np, "transA", 0) != 0)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only alpha=1, beta=1 and transA=0 are "
                     "supported", desc);
      transpose = attr_int (np, "transB", 0) == 0;
      if (in_name (np, 2) && (b = need_init (im, np, 2, 0, desc, error)) == NULL)
        return FALSE;
    }
  else if (x->rank != 2)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: MatMul is supported on N x features "
                 "inputs only", desc);
  else
    {
      /* MatMul + Add of a 1-D constant is how some exporters write a biased linear layer. */
      for (gsize i = index + 1; i < im->gp->n_node; i++)
        {
          Onnx__NodeProto *next = im->gp->node[i];
          if (!g_str_equal (next->op_type, "Add") || next->n_input != 2 || next->n_output != 1
              || GPOINTER_TO_UINT (g_hash_table_lookup (im->uses, out_name)) != 1)
            continue;
          gboolean first = in_name (next, 0) && g_str_equal (next->input[0], out_name);
          gboolean second = in_name (next, 1) && g_str_equal (next->input[1], out_name);
          if (first == second)
            continue;
          const Onnx__TensorProto *t = init_of (im, in_name (next, first ? 1 : 0));
          if (t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && t->n_dims == 1
              && next->output[0] && *next->output[0])
            {
              b = t;
              g_hash_table_add (im->fused, next);
              out_name = next->output[0];
            }
          break;
        }
    }
  if (x->rank != 2 && x->rank != 4)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: unsupported input rank", desc);
  guint64 out = w->dims[transpose ? 1 : 0];
  if (out < 1 || out > 16777216)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: %" G_GUINT64_FORMAT " outputs are out of "
                 "range", desc, out);
  if (b && tensor_numel (b) != out)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the bias must have %" G_GUINT64_FORMAT
                 " values (broadcasting is not supported)", desc, out);
  CsNode *n = add_node (im, CS_OP_FC, np, index, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.out = out;
  n->p.nobias = b == NULL;
  n->inputs[0] = x->node->id;
  set_val (im, out_name, n, 2);
  Params *pr = add_params (im, n);
  pr->w = w;
  pr->b = b;
  pr->transpose = transpose;
  return TRUE;
}

static gboolean
import_bn (Importer *im, const Onnx__NodeProto *np, guint index, const char *desc, GError **error)
{
  if (!need_inputs (im, np, 5, 5, desc, error))
    return FALSE;
  if (attr_int (np, "training_mode", 0) != 0 || !extra_outputs_unused (im, np))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: training mode is not supported", desc);
  Val *x = need_val (im, np, 0, desc, error);
  if (x == NULL)
    return FALSE;
  const Onnx__TensorProto *t[4];
  for (int i = 0; i < 4; i++)
    if ((t[i] = need_init (im, np, i + 1, 1, desc, error)) == NULL)
      return FALSE;
  CsNode *n = simple (im, CS_OP_BN, np, index, x, error);
  if (n == NULL)
    return FALSE;
  double eps = attr_float (np, "epsilon", 1e-5), m = attr_float (np, "momentum", 0.9);
  if (!(eps > 0 && eps <= 1) || !(m >= 0 && m <= 1))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: epsilon or momentum out of range", desc);
  n->p.eps = eps;
  n->p.momentum = 1 - m;     /* ONNX weighs the old statistics by momentum, cnnscope the new */
  Params *pr = add_params (im, n);
  pr->w = t[0], pr->b = t[1], pr->mean = t[2], pr->var = t[3];
  return TRUE;
}

/* Reshape to N x features: the shape input is a constant (maybe folded from the input's Shape). */
static gboolean
import_reshape (Importer *im, const Onnx__NodeProto *np, guint index, const char *desc,
                GError **error)
{
  if (!need_inputs (im, np, 2, 2, desc, error))
    return FALSE;
  Val *x = need_val (im, np, 0, desc, error);
  if (x == NULL)
    return FALSE;
  Const c;
  if (!get_const (im, in_name (np, 1), &c))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the target shape is not a constant "
                 "cnnscope can compute", desc);
  gboolean batch_ok = c.len == 2 && c.rank == 1
                      && (c.v[0] == SYM_BATCH || c.v[0] == 0 || c.v[0] > 0);
  gboolean feat_ok = c.len == 2 && (c.v[1] == -1 || c.v[1] > 0);
  if (!batch_ok || !feat_ok)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only reshapes to N x features are "
                 "supported", desc);
  CsNode *n = simple (im, CS_OP_FLATTEN, np, index, x, error);
  if (n == NULL)
    return FALSE;
  set_val (im, np->output[0], n, 2);
  if (c.v[1] > 0)
    g_array_append_val (im->checks, ((ReshapeCheck) { n, c.v[1] }));
  return TRUE;
}

/* Shape, Gather, Unsqueeze, Concat, Cast and Constant on small int64 vectors, which exporters
 * use to compute a reshape's target. Returns FALSE without an error when NP is not one. */
static gboolean
fold (Importer *im, const Onnx__NodeProto *np, gboolean *folded, GError **error)
{
  const char *op = np->op_type;
  Const c = { 0 };
  *folded = FALSE;
  if (np->n_output < 1 || np->output[0] == NULL)
    return TRUE;
  if (g_str_equal (op, "Identity") && np->n_input == 1 && init_of (im, in_name (np, 0)))
    {
      /* torch names a shared weight once and aliases it with Identity nodes. */
      g_hash_table_replace (im->inits, np->output[0], (gpointer) init_of (im, in_name (np, 0)));
      *folded = TRUE;
      return TRUE;
    }
  if (g_str_equal (op, "Constant"))
    {
      const Onnx__AttributeProto *a = attr (np, "value");
      if (a && a->t && const_from_tensor (a->t, &c))
        *folded = TRUE;
      else if ((a = attr (np, "value_ints")) && a->n_ints <= MAX_CONST)
        {
          c.rank = 1, c.len = a->n_ints;
          for (gsize i = 0; i < a->n_ints; i++)
            c.v[i] = a->ints[i] == SYM_BATCH || a->ints[i] == SYM_UNKNOWN ? SYM_UNKNOWN : a->ints[i];
          *folded = TRUE;
        }
      else if ((a = attr (np, "value_int")) && a->has_i)
        {
          c.rank = 0, c.len = 1, c.v[0] = a->i == SYM_BATCH ? SYM_UNKNOWN : a->i;
          *folded = TRUE;
        }
      else
        {
          /* A float constant: the node is harmless unless something uses it as an input. */
          *folded = TRUE;
          return TRUE;
        }
    }
  else if (g_str_equal (op, "Shape") && np->n_input == 1)
    {
      Val *x = val_of (im, in_name (np, 0));
      if (x == NULL)
        return TRUE;
      if (attr (np, "start") || attr (np, "end"))
        return TRUE;
      c.rank = 1, c.len = x->rank;
      c.v[0] = SYM_BATCH;
      for (guint i = 1; i < x->rank; i++)
        c.v[i] = SYM_UNKNOWN;
      *folded = TRUE;
    }
  else if (g_str_equal (op, "Gather") && np->n_input == 2)
    {
      Const d, idx;
      if (!get_const (im, in_name (np, 0), &d) || !get_const (im, in_name (np, 1), &idx)
          || attr_int (np, "axis", 0) != 0 || d.rank != 1 || idx.rank > 1)
        return TRUE;
      c.rank = idx.rank, c.len = idx.len;
      for (guint i = 0; i < idx.len; i++)
        {
          gint64 k = idx.v[i] < 0 && idx.v[i] >= -(gint64) d.len ? idx.v[i] + d.len : idx.v[i];
          if (k < 0 || k >= d.len)
            return fail (im, error, CS_ERROR_IO, "Gather index %" G_GINT64_FORMAT " is out of "
                         "range", idx.v[i]);
          c.v[i] = d.v[k];
        }
      *folded = TRUE;
    }
  else if (g_str_equal (op, "Unsqueeze") && np->n_input >= 1)
    {
      Const x, axes;
      gsize n_axes = 0;
      const int64_t *ax = attr_ints (np, "axes", &n_axes);
      gboolean have_axes = ax != NULL;
      gint64 axis0 = ax && n_axes ? ax[0] : -1;
      if (!have_axes && get_const (im, in_name (np, 1), &axes) && axes.len >= 1)
        n_axes = axes.len, axis0 = axes.v[0], have_axes = TRUE;
      if (!get_const (im, in_name (np, 0), &x) || !have_axes || x.rank != 0 || n_axes != 1
          || (axis0 != 0 && axis0 != -1))
        return TRUE;
      c = x;
      c.rank = 1;
      *folded = TRUE;
    }
  else if (g_str_equal (op, "Concat") && np->n_input >= 1)
    {
      for (gsize i = 0; i < np->n_input; i++)
        {
          Const part;
          if (!get_const (im, in_name (np, i), &part) || part.rank != 1)
            return TRUE;
          if (c.len + part.len > MAX_CONST)
            return TRUE;
          memcpy (c.v + c.len, part.v, part.len * sizeof (gint64));
          c.len += part.len;
        }
      c.rank = 1;
      *folded = TRUE;
    }
  else if (g_str_equal (op, "Cast") && np->n_input == 1)
    {
      if (!get_const (im, in_name (np, 0), &c))
        return TRUE;
      *folded = TRUE;
    }
  if (*folded)
    set_const (im, np->output[0], &c);
  return TRUE;
}

/* Pad with zeros, symmetric on H and W only, read by a single AveragePool that absorbs it. */
static gboolean
import_pad (Importer *im, const Onnx__NodeProto *np, const char *desc, GError **error)
{
  if (!need_inputs (im, np, 1, 3, desc, error))
    return FALSE;
  Val *x = need_val (im, np, 0, desc, error);
  if (x == NULL)
    return FALSE;
  Const c;
  gsize n_attr = 0;
  const int64_t *pa = attr_ints (np, "pads", &n_attr);
  if (pa && n_attr <= MAX_CONST)
    {
      c.rank = 1, c.len = n_attr;
      for (gsize i = 0; i < n_attr; i++)
        c.v[i] = pa[i];
    }
  else if (!get_const (im, in_name (np, 1), &c))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the pads are not a constant", desc);
  const Onnx__TensorProto *cv = init_of (im, in_name (np, 2));
  double value = attr_float (np, "value", 0);
  if (cv && !float_scalar (im, in_name (np, 2), 0, &value, error))
    return FALSE;
  if (in_name (np, 2) && cv == NULL)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the pad value is not a constant", desc);
  gboolean ok = x->rank == 4 && c.len == 8 && value == 0
                && attr_str_is (np, "mode", "constant", "constant")
                && c.v[0] == 0 && c.v[1] == 0 && c.v[4] == 0 && c.v[5] == 0
                && c.v[2] == c.v[6] && c.v[3] == c.v[7] && c.v[2] >= 0 && c.v[3] >= 0
                && c.v[2] <= 1048576 && c.v[3] <= 1048576;
  if (!ok)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only symmetric zero padding of height and "
                 "width before an AveragePool is supported", desc);
  Val *v = g_new0 (Val, 1);
  *v = *x;
  v->pad_h = c.v[2], v->pad_w = c.v[3];
  g_hash_table_replace (im->padded, np->output[0], v);
  return TRUE;
}

static gboolean
import_node (Importer *im, Onnx__NodeProto *np, guint index, GError **error)
{
  if (g_hash_table_contains (im->fused, np))
    return TRUE;
  if (np->domain && *np->domain && !g_str_equal (np->domain, "ai.onnx"))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "node %u '%s': operator %s of domain %s is not "
                 "supported", index, np->name ? np->name : "", np->op_type, np->domain);
  gboolean folded;
  if (!fold (im, np, &folded, error))
    return FALSE;
  if (folded)
    return TRUE;

  g_autofree char *desc = node_desc (index, np);
  const char *op = np->op_type;
  static const struct { const char *name; CsOp op; } pointwise[] = {
    { "Relu", CS_OP_RELU }, { "Sigmoid", CS_OP_SIGMOID }, { "Tanh", CS_OP_TANH },
    { "Identity", CS_OP_IDENTITY },
  };
  for (guint i = 0; i < G_N_ELEMENTS (pointwise); i++)
    if (g_str_equal (op, pointwise[i].name))
      {
        Val *x;
        return need_inputs (im, np, 1, 1, desc, error)
               && (x = need_val (im, np, 0, desc, error))
               && simple (im, pointwise[i].op, np, index, x, error);
      }
  if (g_str_equal (op, "Conv"))
    return import_conv (im, np, index, desc, error);
  if (g_str_equal (op, "Gemm") || g_str_equal (op, "MatMul"))
    return import_fc (im, np, index, desc, g_str_equal (op, "Gemm"), error);
  if (g_str_equal (op, "MaxPool") || g_str_equal (op, "AveragePool"))
    return import_pool (im, op[0] == 'M' ? CS_OP_MAXPOOL : CS_OP_AVGPOOL, np, index, desc, error);
  if (g_str_equal (op, "BatchNormalization"))
    return import_bn (im, np, index, desc, error);
  if (g_str_equal (op, "Reshape"))
    return import_reshape (im, np, index, desc, error);
  if (g_str_equal (op, "Pad"))
    return import_pad (im, np, desc, error);
  if (g_str_equal (op, "GlobalAveragePool") || g_str_equal (op, "GlobalMaxPool"))
    {
      Val *x;
      CsNode *n;
      if (!need_inputs (im, np, 1, 1, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      if (x->rank != 4)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only 2-D pooling is supported", desc);
      if (!(n = simple (im, op[6] == 'A' ? CS_OP_AVGPOOL : CS_OP_MAXPOOL, np, index, x, error)))
        return FALSE;
      n->p.global = TRUE;
      return TRUE;
    }
  if (g_str_equal (op, "LeakyRelu"))
    {
      Val *x;
      CsNode *n;
      double a = attr_float (np, "alpha", 0.01);
      if (!need_inputs (im, np, 1, 1, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      if (!(a >= 0 && a <= 1))
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: slope %g is outside [0, 1]", desc, a);
      if (!(n = simple (im, CS_OP_LEAKYRELU, np, index, x, error)))
        return FALSE;
      n->p.p = a;
      return TRUE;
    }
  if (g_str_equal (op, "LRN"))
    {
      Val *x;
      CsNode *n;
      gint64 size = attr_int (np, "size", 0);
      double alpha = attr_float (np, "alpha", 1e-4), beta = attr_float (np, "beta", 0.75);
      double k = attr_float (np, "bias", 1.0);
      if (!need_inputs (im, np, 1, 1, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      if (size < 1 || size > 1024 || size % 2 == 0 || !(alpha >= 0 && alpha <= 1e6)
          || !(beta >= 0 && beta <= 1e6) || !(k >= 0 && k <= 1e6))
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: size must be odd and at most 1024, "
                     "alpha, beta and bias in [0, 1e6]", desc);
      if (!(n = simple (im, CS_OP_LRN, np, index, x, error)))
        return FALSE;
      n->p.size = size, n->p.alpha = alpha, n->p.beta = beta, n->p.k = k;
      return TRUE;
    }
  if (g_str_equal (op, "Dropout"))
    {
      Val *x;
      CsNode *n;
      double ratio;
      if (!need_inputs (im, np, 1, 3, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      if (!extra_outputs_unused (im, np))
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: the mask output is not supported", desc);
      if (!float_scalar (im, in_name (np, 1), attr_float (np, "ratio", 0.5), &ratio, error))
        return FALSE;
      if (!(ratio >= 0 && ratio <= 0.999999))
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: ratio %g is out of range", desc, ratio);
      if (!(n = simple (im, CS_OP_DROPOUT, np, index, x, error)))
        return FALSE;
      n->p.p = ratio;
      return TRUE;
    }
  if (g_str_equal (op, "Flatten"))
    {
      Val *x;
      CsNode *n;
      if (!need_inputs (im, np, 1, 1, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      if (attr_int (np, "axis", 1) != 1)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only axis 1 is supported", desc);
      /* The exporter's own Flatten before a Gemm: cnnscope's fc flattens by itself. */
      if (np->name && g_str_has_suffix (np->name, ":flatten")
          && GPOINTER_TO_UINT (g_hash_table_lookup (im->uses, np->output[0])) == 1)
        {
          set_val (im, np->output[0], x->node, 2);
          return TRUE;
        }
      if (!(n = simple (im, CS_OP_FLATTEN, np, index, x, error)))
        return FALSE;
      set_val (im, np->output[0], n, 2);
      return TRUE;
    }
  if (g_str_equal (op, "Softmax"))
    {
      Val *x;
      if (!need_inputs (im, np, 1, 1, desc, error) || !(x = need_val (im, np, 0, desc, error)))
        return FALSE;
      gint64 axis = attr_int (np, "axis", im->opset >= 13 ? -1 : 1);
      gboolean ok = x->rank == 2 ? axis == 1 || axis == -1 : axis == 1 || axis == -3;
      if (!ok)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: softmax over axis %" G_GINT64_FORMAT
                     " of a rank-%u tensor is not supported (only over the channels)", desc, axis,
                     x->rank);
      return simple (im, CS_OP_SOFTMAX, np, index, x, error) != NULL;
    }
  if (g_str_equal (op, "Concat") || g_str_equal (op, "Add") || g_str_equal (op, "Sum")
      || g_str_equal (op, "Mean"))
    {
      CsOp kind = op[0] == 'C' ? CS_OP_CONCAT : op[0] == 'M' ? CS_OP_MEAN : CS_OP_ADD;
      if (!need_inputs (im, np, 1, g_str_equal (op, "Add") ? 2 : MAX_NODE_IO, desc, error))
        return FALSE;
      Val *first = need_val (im, np, 0, desc, error);
      if (first == NULL)
        return FALSE;
      if (kind == CS_OP_CONCAT)
        {
          gint64 axis = attr_int (np, "axis", G_MININT64);
          if (axis != 1 && axis != -(gint64) first->rank + 1)
            return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: only concatenation over the "
                         "channels (axis 1) is supported", desc);
        }
      if (np->n_input == 1)
        return simple (im, CS_OP_IDENTITY, np, index, first, error) != NULL;
      CsNode *n = add_node (im, kind, np, index, np->n_input, error);
      if (n == NULL)
        return FALSE;
      for (gsize i = 0; i < np->n_input; i++)
        {
          Val *v = need_val (im, np, i, desc, error);
          if (v == NULL)
            return FALSE;
          if (v->rank != first->rank)
            return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: inputs of different ranks "
                         "(broadcasting is not supported)", desc);
          n->inputs[i] = v->node->id;
        }
      set_val (im, np->output[0], n, first->rank);
      return TRUE;
    }
  if (g_str_equal (op, "Shape") || g_str_equal (op, "Gather") || g_str_equal (op, "Unsqueeze")
      || g_str_equal (op, "Cast"))
    return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: operator %s is supported only on the "
                 "constant shapes that feed a Reshape", desc, op);
  return fail (im, error, CS_ERROR_UNSUPPORTED, "%s: operator %s is not supported", desc, op);
}

/* The graph input: the one input that is not an initializer, float, N x C x H x W or N x F. */
static gboolean
import_input (Importer *im, GError **error)
{
  const Onnx__ValueInfoProto *in = NULL;
  for (gsize i = 0; i < im->gp->n_input; i++)
    {
      const Onnx__ValueInfoProto *v = im->gp->input[i];
      if (v->name && g_hash_table_contains (im->inits, v->name))
        continue;
      if (in)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "the graph has several inputs ('%s', '%s'); "
                     "cnnscope takes one", in->name, v->name ? v->name : "");
      in = v;
    }
  if (in == NULL || in->name == NULL || *in->name == '\0')
    return fail (im, error, CS_ERROR_IO, "the graph has no named input");
  const Onnx__TypeProto *tp = in->type;
  if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || tp->tensor_type == NULL
      || tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
      || tp->tensor_type->shape == NULL)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "input '%s' must be a float tensor of known "
                 "shape", in->name);
  const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
  if (sh->n_dim != 4 && sh->n_dim != 2)
    return fail (im, error, CS_ERROR_UNSUPPORTED, "input '%s' has rank %zu; cnnscope takes N x C x "
                 "H x W or N x features", in->name, sh->n_dim);
  guint64 d[4] = { 1, 1, 1, 1 };
  for (gsize i = 1; i < sh->n_dim; i++)
    {
      const Onnx__TensorShapeProto__Dimension *dim = sh->dim[i];
      if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
          || dim->dim_value < 1 || dim->dim_value > 16777216)
        return fail (im, error, CS_ERROR_UNSUPPORTED, "input '%s': dimension %zu must be a fixed "
                     "size from 1 to 16777216", in->name, i);
      d[i] = dim->dim_value;
    }
  CsNode *n = cs_graph_add_node (im->g, CS_OP_INPUT, "", in->name, 0, NULL, error);
  if (n == NULL)
    return FALSE;
  n->p.shape = (CsShape) { d[1], d[2], d[3] };
  set_val (im, in->name, n, sh->n_dim);
  return TRUE;
}

/* Copies one parameter initializer into the net's tensor T, checking its shape. */
static gboolean
fill_tensor (Importer *im, CsNode *n, const Onnx__TensorProto *src, CsTensor *t,
             gboolean transpose, GError **error)
{
  if (src == NULL || t == NULL)
    return TRUE;
  guint64 want[CS_TENSOR_MAX_RANK];
  guint rank = t->rank;
  memcpy (want, t->shape, sizeof want);
  if (transpose && rank == 2)
    want[0] = t->shape[1], want[1] = t->shape[0];
  gboolean same = src->n_dims == rank;
  for (guint i = 0; same && i < rank; i++)
    same = (guint64) src->dims[i] == want[i];
  if (!same)
    {
      g_autofree char *a = cs_tensor_shape_string (rank, want);
      guint64 have[CS_TENSOR_MAX_RANK];
      for (gsize i = 0; i < src->n_dims; i++)
        have[i] = src->dims[i];
      g_autofree char *b = cs_tensor_shape_string (src->n_dims, have);
      cs_graph_node_error (im->g, n, error, CS_ERROR_SHAPE, "initializer '%s' is %s; the layer "
                           "needs %s", src->name, b, a);
      return FALSE;
    }
  if (!transpose || rank != 2)
    return read_floats (im, src, t->data, t->numel, error);
  g_autofree float *tmp = g_try_new (float, t->numel);
  if (tmp == NULL)
    return fail (im, error, CS_ERROR_OUT_OF_MEMORY, "out of memory reading '%s'", src->name);
  if (!read_floats (im, src, tmp, t->numel, error))
    return FALSE;
  guint64 rows = want[0], cols = want[1];
  for (guint64 r = 0; r < rows; r++)
    for (guint64 c = 0; c < cols; c++)
      t->data[c * rows + r] = tmp[r * cols + c];
  return TRUE;
}

static CsGraph *
import_model (Onnx__ModelProto *m, const char *name, const char *dir, CsNet **net_out,
              GError **error)
{
  g_autofree char *base = g_path_get_basename (name);
  Importer im = { 0 };
  im.file = name;
  im.dir = g_strdup (dir);
  g_autoptr (CsGraph) g = cs_graph_new (name);
  im.g = g;
  gboolean ok = validate (&im, m, error);
  if (ok)
    {
      im.gp = m->graph;
      im.inits = g_hash_table_new (g_str_hash, g_str_equal);
      im.vals = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
      im.consts = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
      im.uses = g_hash_table_new (g_str_hash, g_str_equal);
      im.fused = g_hash_table_new (NULL, NULL);
      im.padded = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
      im.params = g_ptr_array_new_with_free_func (g_free);
      im.checks = g_array_new (FALSE, FALSE, sizeof (ReshapeCheck));
      for (gsize i = 0; i < im.gp->n_initializer; i++)
        if (im.gp->initializer[i]->name)
          g_hash_table_replace (im.inits, im.gp->initializer[i]->name, im.gp->initializer[i]);
      for (gsize i = 0; i < im.gp->n_node; i++)
        for (gsize j = 0; j < im.gp->node[i]->n_input; j++)
          if (in_name (im.gp->node[i], j))
            {
              const char *u = im.gp->node[i]->input[j];
              guint c = GPOINTER_TO_UINT (g_hash_table_lookup (im.uses, u));
              g_hash_table_replace (im.uses, (gpointer) u, GUINT_TO_POINTER (c + 1));
            }
      for (gsize i = 0; i < im.gp->n_output; i++)
        if (im.gp->output[i]->name)
          {
            const char *u = im.gp->output[i]->name;
            guint c = GPOINTER_TO_UINT (g_hash_table_lookup (im.uses, u));
            g_hash_table_replace (im.uses, (gpointer) u, GUINT_TO_POINTER (c + 1));
          }
      ok = import_input (&im, error);
    }
  for (gsize i = 0; ok && i < im.gp->n_node; i++)
    ok = import_node (&im, im.gp->node[i], i, error);
  Val *out = NULL;
  if (ok)
    {
      if (im.gp->n_output != 1 || (out = val_of (&im, im.gp->output[0]->name)) == NULL)
        ok = fail (&im, error, im.gp->n_output == 1 ? CS_ERROR_IO : CS_ERROR_UNSUPPORTED,
                   "the graph must have one output computed by its nodes, not %zu",
                   im.gp->n_output);
    }
  if (ok)
    {
      char *dot = g_str_has_suffix (base, ".onnx") ? base + strlen (base) - 5 : NULL;
      if (dot)
        *dot = '\0';
      g->name = g_strdup (*base ? base : "onnx");
      g->title = g_strdup (m->graph->name && *m->graph->name ? m->graph->name : g->name);
      g->family = g_strdup ("ONNX");
      g->note = g_strdup_printf ("Imported from ONNX (%s%s%s, opset %" G_GINT64_FORMAT ").",
                                 m->producer_name && *m->producer_name ? m->producer_name
                                                                       : "unknown producer",
                                 m->producer_version && *m->producer_version ? " " : "",
                                 m->producer_version ? m->producer_version : "", im.opset);
      ok = cs_graph_finalize (g, error);
    }
  if (ok && cs_graph_output (g) != out->node)
    ok = fail (&im, error, CS_ERROR_UNSUPPORTED, "the graph output '%s' is not its last layer "
               "(unused branches are not supported)", im.gp->output[0]->name);
  for (guint i = 0; ok && i < im.checks->len; i++)
    {
      ReshapeCheck *c = &g_array_index (im.checks, ReshapeCheck, i);
      guint64 numel;
      if (!cs_shape_numel (&c->node->shape, &numel) || numel != (guint64) c->features)
        {
          cs_graph_node_error (g, c->node, error, CS_ERROR_UNSUPPORTED, "reshape to %"
                               G_GINT64_FORMAT " features, but the input has %" G_GUINT64_FORMAT,
                               c->features, numel);
          ok = FALSE;
        }
    }
  /* The parameters' shapes, checked before the net allocates anything, so that a small file
   * cannot make it allocate tensors for huge layers. */
  for (guint i = 0; ok && i < im.params->len; i++)
    {
      Params *p = im.params->pdata[i];
      const CsNode *n = p->node;
      const CsShape *in = &cs_graph_node (g, n->inputs[0])->shape;
      guint64 want = 0, have = 0;
      if (n->op == CS_OP_CONV)
        want = in->c / n->p.groups, have = p->w->dims[1];
      else if (n->op == CS_OP_FC)
        {
          if (!cs_shape_numel (in, &want))
            want = 0;
          have = p->w->dims[p->transpose ? 0 : 1];
        }
      else
        {
          want = in->c;
          have = tensor_numel (p->w);
          for (const Onnx__TensorProto **t = (const Onnx__TensorProto *[]) { p->b, p->mean, p->var,
                                                                           NULL }; *t; t++)
            if (tensor_numel (*t) != want)
              have = 0;
        }
      if (want != have)
        {
          cs_graph_node_error (g, n, error, CS_ERROR_SHAPE, "the parameters are for %"
                               G_GUINT64_FORMAT " inputs, but the layer has %" G_GUINT64_FORMAT,
                               have, want);
          ok = FALSE;
        }
    }
  CsNet *net = NULL;
  if (ok && net_out)
    {
      net = cs_net_new (g, error);
      ok = net != NULL;
      for (guint i = 0; ok && i < im.params->len; i++)
        {
          Params *p = im.params->pdata[i];
          guint id = p->node->id;
          ok = fill_tensor (&im, p->node, p->w, cs_net_tensor (net, net->weight[id]), p->transpose,
                            error)
               && fill_tensor (&im, p->node, p->b, cs_net_tensor (net, net->bias[id]), FALSE, error)
               && fill_tensor (&im, p->node, p->mean, cs_net_tensor (net, net->run_mean[id]), FALSE,
                               error)
               && fill_tensor (&im, p->node, p->var, cs_net_tensor (net, net->run_var[id]), FALSE,
                               error);
        }
    }
  importer_clear (&im);
  if (!ok)
    {
      if (net)
        cs_net_free (net);
      return NULL;
    }
  if (net_out)
    *net_out = net;
  return g_steal_pointer (&g);
}

static CsGraph *
load_data (const guint8 *data, gsize len, const char *name, const char *dir, CsNet **net,
           GError **error)
{
  if (net)
    *net = NULL;
  if (len > MAX_FILE_BYTES)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_LIMIT, "%s: the file is larger than %zu MiB", name,
                   MAX_FILE_BYTES >> 20);
      return NULL;
    }
  Onnx__ModelProto *m = onnx__model_proto__unpack (NULL, len, data);
  if (m == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: not an ONNX model (the protobuf message is "
                   "malformed or truncated)", name);
      return NULL;
    }
  CsGraph *g = import_model (m, name, dir, net, error);
  onnx__model_proto__free_unpacked (m, NULL);
  return g;
}

CsGraph *
cs_onnx_load_data (const guint8 *data, gsize len, const char *name, CsNet **net, GError **error)
{
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  return load_data (data ? data : (const guint8 *) "", len, name ? name : "(memory)", NULL, net,
                    error);
}

CsGraph *
cs_onnx_load (const char *path, CsNet **net, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (net)
    *net = NULL;
  GError *e = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &e);
  if (mf == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %s", path, e->message);
      g_error_free (e);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  const guint8 *data = (const guint8 *) g_mapped_file_get_contents (mf);
  gsize len = g_mapped_file_get_length (mf);
  CsGraph *g = load_data (data ? data : (const guint8 *) "", len, path, dir, net, error);
  g_mapped_file_unref (mf);
  return g;
}

/* Export. Every message and array is allocated from POOL and freed with it. */

typedef struct {
  GPtrArray *pool;
  GPtrArray *nodes, *inits;
  char **names;                   /* per cnnscope node: its output's name, or NULL if skipped */
  guint *ranks;
} Exporter;

static gpointer
palloc (Exporter *ex, gsize size)
{
  gpointer p = g_malloc0 (size);
  g_ptr_array_add (ex->pool, p);
  return p;
}

static char *
pstr (Exporter *ex, char *s)
{
  g_ptr_array_add (ex->pool, s);
  return s;
}

static Onnx__NodeProto *
new_node (Exporter *ex, const char *op, const char *name, const char *output, guint n_inputs)
{
  Onnx__NodeProto *np = palloc (ex, sizeof *np);
  onnx__node_proto__init (np);
  np->op_type = (char *) op;
  np->name = pstr (ex, g_strdup (name));
  np->n_output = 1;
  np->output = palloc (ex, sizeof (char *));
  np->output[0] = pstr (ex, g_strdup (output));
  np->n_input = n_inputs;
  np->input = palloc (ex, sizeof (char *) * MAX (n_inputs, 1));
  np->attribute = palloc (ex, sizeof (Onnx__AttributeProto *) * 8);
  g_ptr_array_add (ex->nodes, np);
  return np;
}

static Onnx__AttributeProto *
new_attr (Exporter *ex, Onnx__NodeProto *np, const char *name, Onnx__AttributeProto__AttributeType t)
{
  g_assert (np->n_attribute < 8);
  Onnx__AttributeProto *a = palloc (ex, sizeof *a);
  onnx__attribute_proto__init (a);
  a->name = (char *) name;
  a->has_type = TRUE;
  a->type = t;
  np->attribute[np->n_attribute++] = a;
  return a;
}

static void
attr_i (Exporter *ex, Onnx__NodeProto *np, const char *name, gint64 v)
{
  Onnx__AttributeProto *a = new_attr (ex, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = TRUE;
  a->i = v;
}

static void
attr_f (Exporter *ex, Onnx__NodeProto *np, const char *name, double v)
{
  Onnx__AttributeProto *a = new_attr (ex, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = TRUE;
  a->f = v;
}

static void
attr_is (Exporter *ex, Onnx__NodeProto *np, const char *name, guint n, const gint64 *v)
{
  Onnx__AttributeProto *a = new_attr (ex, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = n;
  a->ints = palloc (ex, sizeof (int64_t) * n);
  for (guint i = 0; i < n; i++)
    a->ints[i] = v[i];
}

/* A float initializer NAME of the given shape; DATA is copied as little-endian raw data. */
static void
add_init (Exporter *ex, const char *name, guint rank, const guint64 *shape, const float *data,
          gsize n)
{
  Onnx__TensorProto *t = palloc (ex, sizeof *t);
  onnx__tensor_proto__init (t);
  t->name = (char *) name;
  t->has_data_type = TRUE;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  t->n_dims = rank;
  t->dims = palloc (ex, sizeof (int64_t) * MAX (rank, 1));
  for (guint i = 0; i < rank; i++)
    t->dims[i] = shape[i];
  guint32 *raw = palloc (ex, 4 * MAX (n, 1));
  for (gsize i = 0; i < n; i++)
    {
      guint32 u;
      memcpy (&u, &data[i], 4);
      raw[i] = GUINT32_TO_LE (u);
    }
  t->has_raw_data = TRUE;
  t->raw_data.data = (guint8 *) raw;
  t->raw_data.len = 4 * n;
  g_ptr_array_add (ex->inits, t);
}

static Onnx__ValueInfoProto *
value_info (Exporter *ex, const char *name, guint rank, const CsShape *s)
{
  Onnx__ValueInfoProto *v = palloc (ex, sizeof *v);
  onnx__value_info_proto__init (v);
  v->name = (char *) name;
  Onnx__TypeProto *tp = palloc (ex, sizeof *tp);
  onnx__type_proto__init (tp);
  Onnx__TypeProto__Tensor *tt = palloc (ex, sizeof *tt);
  onnx__type_proto__tensor__init (tt);
  Onnx__TensorShapeProto *sh = palloc (ex, sizeof *sh);
  onnx__tensor_shape_proto__init (sh);
  v->type = tp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = TRUE;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  tt->shape = sh;
  guint64 d[4] = { 0, s->c, s->h, s->w };
  sh->n_dim = rank;
  sh->dim = palloc (ex, sizeof (Onnx__TensorShapeProto__Dimension *) * 4);
  for (guint i = 0; i < rank; i++)
    {
      Onnx__TensorShapeProto__Dimension *dim = palloc (ex, sizeof *dim);
      onnx__tensor_shape_proto__dimension__init (dim);
      if (i == 0)
        {
          dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
          dim->dim_param = (char *) "N";
        }
      else
        {
          dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
          dim->dim_value = rank == 2 && i == 1 ? s->c * s->h * s->w : d[i];
        }
      sh->dim[i] = dim;
    }
  return v;
}

static void
add_tensor_init (Exporter *ex, CsTensor *t)
{
  if (t)
    add_init (ex, t->name, t->rank, t->shape, t->data, t->numel);
}

static gboolean
export_node (Exporter *ex, CsNet *net, const CsNode *n, const char *path, GError **error)
{
  const CsGraph *g = net->graph;
  const CsLayerParams *p = &n->p;
  guint rank = n->n_inputs ? ex->ranks[n->inputs[0]] : 4;
  const char *in0 = n->n_inputs ? ex->names[n->inputs[0]] : NULL;
  for (guint i = 0; i < n->n_inputs; i++)
    if (ex->names[n->inputs[i]] == NULL)
      {
        g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: layer '%s' reads a training-only "
                     "layer", path, n->name);
        return FALSE;
      }
  char *out = pstr (ex, g_strdup (n->name));
  Onnx__NodeProto *np = NULL;
  CsTensor *w = cs_net_tensor (net, net->weight[n->id]);
  CsTensor *b = cs_net_tensor (net, net->bias[n->id]);
  gboolean spatial = n->op == CS_OP_CONV || n->op == CS_OP_MAXPOOL || n->op == CS_OP_AVGPOOL
                     || n->op == CS_OP_LRN;
  if (spatial && rank != 4)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: layer '%s' works on a volume but "
                   "follows a flattened vector", path, n->name);
      return FALSE;
    }
  switch (n->op)
    {
    case CS_OP_INPUT:
      break;
    case CS_OP_CONV:
      {
        guint64 k[2], s[2], pad[2], d[2];
        cs_layer_window (n, &cs_graph_node (g, n->inputs[0])->shape, k, s, pad, d);
        np = new_node (ex, "Conv", n->name, out, b ? 3 : 2);
        np->input[1] = w->name;
        if (b)
          np->input[2] = b->name;
        gint64 ks[2] = { k[0], k[1] }, ss[2] = { s[0], s[1] }, ds[2] = { d[0], d[1] };
        gint64 ps[4] = { pad[0], pad[1], pad[0], pad[1] };
        attr_is (ex, np, "kernel_shape", 2, ks);
        attr_is (ex, np, "strides", 2, ss);
        attr_is (ex, np, "pads", 4, ps);
        attr_is (ex, np, "dilations", 2, ds);
        attr_i (ex, np, "group", p->groups);
        add_tensor_init (ex, w);
        add_tensor_init (ex, b);
        break;
      }
    case CS_OP_MAXPOOL:
    case CS_OP_AVGPOOL:
      {
        gboolean max = n->op == CS_OP_MAXPOOL;
        if (p->global)
          {
            np = new_node (ex, max ? "GlobalMaxPool" : "GlobalAveragePool", n->name, out, 1);
            break;
          }
        guint64 k[2], s[2], pad[2], d[2];
        cs_layer_window (n, &cs_graph_node (g, n->inputs[0])->shape, k, s, pad, d);
        np = new_node (ex, max ? "MaxPool" : "AveragePool", n->name, out, 1);
        gint64 ks[2] = { k[0], k[1] }, ss[2] = { s[0], s[1] };
        gint64 ps[4] = { pad[0], pad[1], pad[0], pad[1] };
        attr_is (ex, np, "kernel_shape", 2, ks);
        attr_is (ex, np, "strides", 2, ss);
        attr_is (ex, np, "pads", 4, ps);
        attr_i (ex, np, "ceil_mode", p->ceil);
        if (!max)
          attr_i (ex, np, "count_include_pad", 1);   /* cnnscope divides by the padded window */
        break;
      }
    case CS_OP_LRN:
      np = new_node (ex, "LRN", n->name, out, 1);
      attr_i (ex, np, "size", p->size);
      attr_f (ex, np, "alpha", p->alpha);
      attr_f (ex, np, "beta", p->beta);
      attr_f (ex, np, "bias", p->k);
      break;
    case CS_OP_BN:
      {
        guint64 c = cs_graph_node (g, n->inputs[0])->shape.c;
        np = new_node (ex, "BatchNormalization", n->name, out, 5);
        attr_f (ex, np, "epsilon", p->eps);
        attr_f (ex, np, "momentum", 1 - p->momentum);
        CsTensor *m = cs_net_tensor (net, net->run_mean[n->id]);
        CsTensor *v = cs_net_tensor (net, net->run_var[n->id]);
        if (w == NULL || b == NULL)
          {
            /* Without a learned affine part ONNX still wants a scale and a shift: 1 and 0. */
            float *ones = palloc (ex, sizeof (float) * c), *zeros = palloc (ex, sizeof (float) * c);
            for (guint64 i = 0; i < c; i++)
              ones[i] = 1;
            char *sn = pstr (ex, g_strdup_printf ("%s.weight", n->name));
            char *bn = pstr (ex, g_strdup_printf ("%s.bias", n->name));
            add_init (ex, sn, 1, &c, ones, c);
            add_init (ex, bn, 1, &c, zeros, c);
            np->input[1] = sn, np->input[2] = bn;
          }
        else
          {
            np->input[1] = w->name, np->input[2] = b->name;
            add_tensor_init (ex, w);
            add_tensor_init (ex, b);
          }
        np->input[3] = m->name, np->input[4] = v->name;
        add_tensor_init (ex, m);
        add_tensor_init (ex, v);
        break;
      }
    case CS_OP_RELU:
      np = new_node (ex, "Relu", n->name, out, 1);
      break;
    case CS_OP_LEAKYRELU:
      np = new_node (ex, "LeakyRelu", n->name, out, 1);
      attr_f (ex, np, "alpha", p->p);
      break;
    case CS_OP_SIGMOID:
      np = new_node (ex, "Sigmoid", n->name, out, 1);
      break;
    case CS_OP_TANH:
      np = new_node (ex, "Tanh", n->name, out, 1);
      break;
    case CS_OP_DROPOUT:
      {
        /* The ratio travels as an input (opset 12 and later) so that it survives a round trip;
         * without training_mode the node is the identity. */
        np = new_node (ex, "Dropout", n->name, out, 2);
        char *rn = pstr (ex, g_strdup_printf ("%s.ratio", n->name));
        float *r = palloc (ex, sizeof (float));
        *r = p->p;
        add_init (ex, rn, 0, NULL, r, 1);
        np->input[1] = rn;
        break;
      }
    case CS_OP_FC:
      {
        const char *x = in0;
        if (rank != 2)
          {
            char *fn = pstr (ex, g_strdup_printf ("%s:flatten", n->name));
            Onnx__NodeProto *f = new_node (ex, "Flatten", fn, fn, 1);
            f->input[0] = (char *) in0;
            attr_i (ex, f, "axis", 1);
            x = fn;
          }
        np = new_node (ex, "Gemm", n->name, out, b ? 3 : 2);
        in0 = x;
        np->input[1] = w->name;
        if (b)
          np->input[2] = b->name;
        attr_i (ex, np, "transB", 1);
        add_tensor_init (ex, w);
        add_tensor_init (ex, b);
        rank = 2;
        break;
      }
    case CS_OP_FLATTEN:
      np = new_node (ex, "Flatten", n->name, out, 1);
      attr_i (ex, np, "axis", 1);
      rank = 2;
      break;
    case CS_OP_SOFTMAX:
      np = new_node (ex, "Softmax", n->name, out, 1);
      attr_i (ex, np, "axis", 1);
      break;
    case CS_OP_CONCAT:
    case CS_OP_ADD:
    case CS_OP_MEAN:
      {
        const char *op = n->op == CS_OP_CONCAT ? "Concat" : n->op == CS_OP_ADD ? "Sum" : "Mean";
        for (guint i = 1; i < n->n_inputs; i++)
          if (ex->ranks[n->inputs[i]] != rank)
            {
              g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: layer '%s' joins vectors "
                           "and volumes", path, n->name);
              return FALSE;
            }
        np = new_node (ex, op, n->name, out, n->n_inputs);
        for (guint i = 1; i < n->n_inputs; i++)
          np->input[i] = ex->names[n->inputs[i]];
        if (n->op == CS_OP_CONCAT)
          attr_i (ex, np, "axis", 1);
        break;
      }
    case CS_OP_DROPPATH:
    case CS_OP_IDENTITY:
      np = new_node (ex, "Identity", n->name, out, 1);
      break;
    default:
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: layer '%s': kind %s has no ONNX "
                   "operator", path, n->name, cs_layer_class (n->op)->name);
      return FALSE;
    }
  if (np)
    np->input[0] = (char *) in0;
  ex->names[n->id] = out;
  ex->ranks[n->id] = rank;
  return TRUE;
}

gboolean
cs_onnx_save (CsNet *net, const char *path, GError **error)
{
  g_return_val_if_fail (net != NULL && path != NULL, FALSE);
  const CsGraph *g = net->graph;
  guint nn = cs_graph_n_nodes (g);
  Exporter ex = { 0 };
  ex.pool = g_ptr_array_new_with_free_func (g_free);
  ex.nodes = g_ptr_array_new ();
  ex.inits = g_ptr_array_new ();
  ex.names = g_new0 (char *, nn);
  ex.ranks = g_new0 (guint, nn);
  gboolean ok = TRUE;
  Onnx__ValueInfoProto *input = NULL;
  for (guint i = 0; ok && i < nn; i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      if (n->flags & CS_NODE_TRAIN_ONLY)
        continue;
      if (n->op == CS_OP_INPUT && input)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: ONNX export takes one input",
                       path);
          ok = FALSE;
          break;
        }
      ok = export_node (&ex, net, n, path, error);
      if (ok && n->op == CS_OP_INPUT)
        input = value_info (&ex, ex.names[i], 4, &n->shape);
    }
  const CsNode *last = cs_graph_output (g);
  if (ok && (input == NULL || last == NULL || ex.names[last->id] == NULL))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "%s: the network has no input or output",
                   path);
      ok = FALSE;
    }
  guint8 *buf = NULL;
  gsize len = 0;
  if (ok)
    {
      Onnx__ValueInfoProto *output = value_info (&ex, ex.names[last->id], ex.ranks[last->id],
                                                 &last->shape);
      Onnx__GraphProto gp;
      onnx__graph_proto__init (&gp);
      gp.name = g->name ? g->name : (char *) "cnnscope";
      gp.n_node = ex.nodes->len;
      gp.node = (Onnx__NodeProto **) ex.nodes->pdata;
      gp.n_initializer = ex.inits->len;
      gp.initializer = (Onnx__TensorProto **) ex.inits->pdata;
      gp.n_input = 1;
      gp.input = &input;
      gp.n_output = 1;
      gp.output = &output;
      Onnx__OperatorSetIdProto opset;
      onnx__operator_set_id_proto__init (&opset);
      opset.domain = (char *) "";
      opset.has_version = TRUE;
      opset.version = 13;
      Onnx__OperatorSetIdProto *opsets[1] = { &opset };
      Onnx__ModelProto m;
      onnx__model_proto__init (&m);
      m.has_ir_version = TRUE;
      m.ir_version = 7;
      m.n_opset_import = 1;
      m.opset_import = opsets;
      m.producer_name = (char *) "cnnscope";
      m.graph = &gp;
      len = onnx__model_proto__get_packed_size (&m);
      buf = g_try_malloc (MAX (len, 1));
      if (buf == NULL)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes",
                       path, len);
          ok = FALSE;
        }
      else
        onnx__model_proto__pack (&m, buf);
    }
  g_ptr_array_unref (ex.pool);
  g_ptr_array_unref (ex.nodes);
  g_ptr_array_unref (ex.inits);
  g_free (ex.names);
  g_free (ex.ranks);
  if (ok)
    {
      /* A temporary file in the same folder, renamed over the target once complete. */
      g_autofree char *tmp = g_strdup_printf ("%s.XXXXXX", path);
      int fd = g_mkstemp (tmp);
      if (fd < 0)
        {
          int err = errno;
          g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %s", path, g_strerror (err));
          ok = FALSE;
        }
      else
        {
          gsize done = 0;
          while (done < len)
            {
              gssize w = write (fd, buf + done, len - done);
              if (w < 0 && errno == EINTR)
                continue;
              if (w <= 0)
                break;
              done += w;
            }
          int err = done < len ? errno : 0;
          if (close (fd) != 0 && done == len)
            err = errno, done = 0;
          if (done < len || g_rename (tmp, path) != 0)
            {
              err = err ? err : errno;
              g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %s", path, g_strerror (err));
              g_unlink (tmp);
              ok = FALSE;
            }
        }
    }
  g_free (buf);
  return ok;
}
