/* CsGraph: nodes, names, topological order, shape inference and positioned errors. */
#include "cs-graph.h"
#include "cs-error.h"

#define MAX_NODES 200000
#define MAX_EDGES 2000000

CsGraph *
cs_graph_new (const char *file)
{
  CsGraph *g = g_new0 (CsGraph, 1);
  g->ref_count = 1;
  g->file = g_strdup (file ? file : "<model>");
  g->nodes = g_ptr_array_new ();
  g->frames = g_ptr_array_new_with_free_func (g_free);
  g->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  return g;
}

CsGraph *
cs_graph_ref (CsGraph *g)
{
  g_atomic_int_inc (&g->ref_count);
  return g;
}

static void
node_free (CsNode *n)
{
  g_free (n->name);
  g_free (n->module);
  g_free (n->inputs);
  g_free (n);
}

void
cs_graph_unref (CsGraph *g)
{
  if (g == NULL || !g_atomic_int_dec_and_test (&g->ref_count))
    return;
  for (guint i = 0; i < g->nodes->len; i++)
    node_free (g->nodes->pdata[i]);
  g_ptr_array_unref (g->nodes);
  g_ptr_array_unref (g->frames);
  g_hash_table_unref (g->by_name);
  g_free (g->n_consumers);
  g_free (g->name), g_free (g->title), g_free (g->paper), g_free (g->family);
  g_free (g->note), g_free (g->accuracy_source);
  g_free (g->file), g_free (g->text);
  g_free (g);
}

const CsFrame *
cs_graph_add_frame (CsGraph *g, const char *block, guint line, guint col, const CsFrame *parent)
{
  /* The block name is stored after the frame, so one free releases both. */
  gsize len = strlen (block) + 1;
  CsFrame *f = g_malloc (sizeof (CsFrame) + len);
  memcpy ((char *) (f + 1), block, len);
  f->block = (const char *) (f + 1);
  f->line = line;
  f->col = col;
  f->parent = parent;
  g_ptr_array_add (g->frames, f);
  return f;
}

static char *
vformat_at (const CsGraph *g, const CsSrcPos *pos, const CsNode *n, const char *format,
            va_list ap)
{
  GString *s = g_string_new (NULL);
  if (pos && pos->line)
    g_string_append_printf (s, "%s:%u:%u: ", g->file, pos->line, pos->col);
  else
    g_string_append_printf (s, "%s: ", g->file);
  if (n)
    g_string_append_printf (s, "layer '%s': ", n->name);
  g_string_append_vprintf (s, format, ap);
  if (pos && pos->line && g->text)
    {
      char *snip = cs_source_snippet (g->text, g->text_len, pos->line, pos->col);
      if (*snip)
        g_string_append_printf (s, "\n%s", snip);
      g_free (snip);
    }
  for (const CsFrame *f = pos ? pos->frame : NULL; f; f = f->parent)
    g_string_append_printf (s, "\n  in block '%s' called at %s:%u:%u", f->block, g->file,
                            f->line, f->col);
  return g_string_free (s, FALSE);
}

void
cs_graph_pos_error (const CsGraph *g, const CsSrcPos *pos, GError **error, gint code,
                    const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = vformat_at (g, pos, NULL, format, ap);
  va_end (ap);
  g_set_error_literal (error, CS_ERROR, code, msg);
  g_free (msg);
}

void
cs_graph_node_error (const CsGraph *g, const CsNode *n, GError **error, gint code,
                     const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = vformat_at (g, &n->pos, n, format, ap);
  va_end (ap);
  g_set_error_literal (error, CS_ERROR, code, msg);
  g_free (msg);
}

CsNode *
cs_graph_add_node (CsGraph *g, CsOp op, const char *module, const char *name, guint n_inputs,
                   const CsSrcPos *pos, GError **error)
{
  g_return_val_if_fail (!g->finalized, NULL);
  if (g->nodes->len >= MAX_NODES)
    {
      cs_graph_pos_error (g, pos, error, CS_ERROR_LIMIT,
                          "the network has more than %d layers", MAX_NODES);
      return NULL;
    }
  if (g->n_edges + n_inputs > MAX_EDGES)
    {
      cs_graph_pos_error (g, pos, error, CS_ERROR_LIMIT,
                          "the layers have more than %d inputs in all", MAX_EDGES);
      return NULL;
    }
  CsNode *prev = g_hash_table_lookup (g->by_name, name);
  if (prev)
    {
      cs_graph_pos_error (g, pos, error, CS_ERROR_NAME,
                          "the name '%s' is already used by the layer at line %u, column %u",
                          name, prev->pos.line, prev->pos.col);
      return NULL;
    }
  CsNode *n = g_new0 (CsNode, 1);
  n->id = g->nodes->len;
  n->op = op;
  n->name = g_strdup (name);
  n->module = g_strdup (module ? module : "");
  n->n_inputs = n_inputs;
  n->inputs = g_new0 (guint, MAX (n_inputs, 1));
  g->n_edges += n_inputs;
  if (pos)
    n->pos = *pos;
  cs_layer_class (op)->init (&n->p);
  g_ptr_array_add (g->nodes, n);
  g_hash_table_insert (g->by_name, n->name, n);
  return n;
}

CsNode *
cs_graph_lookup (CsGraph *g, const char *name)
{
  return g_hash_table_lookup (g->by_name, name);
}

/* Depth-first post-order from every node in written order: a graph already written in order
 * keeps it, and meeting a node still on the stack is a cycle. Iterative, so depth is no issue. */
static gboolean
topo_sort (CsGraph *g, guint *order, GError **error)
{
  guint n = g->nodes->len, n_out = 0;
  guint8 *state = g_new0 (guint8, n);   /* 0 new, 1 on the stack, 2 done */
  guint *stack = g_new (guint, n), *next = g_new0 (guint, n);
  gboolean ok = TRUE;

  for (guint root = 0; root < n && ok; root++)
    {
      if (state[root])
        continue;
      guint sp = 0;
      stack[sp++] = root;
      state[root] = 1;
      while (sp > 0 && ok)
        {
          guint v = stack[sp - 1];
          CsNode *node = g->nodes->pdata[v];
          if (next[v] < node->n_inputs)
            {
              guint u = node->inputs[next[v]++];
              if (state[u] == 1)
                {
                  CsNode *from = g->nodes->pdata[u];
                  cs_graph_node_error (g, node, error, CS_ERROR_CYCLE,
                                       "the layers form a cycle: it takes input from '%s', "
                                       "which depends on it", from->name);
                  ok = FALSE;
                }
              else if (state[u] == 0)
                {
                  state[u] = 1;
                  stack[sp++] = u;
                }
            }
          else
            {
              state[v] = 2;
              order[n_out++] = v;
              sp--;
            }
        }
    }
  g_free (state), g_free (stack), g_free (next);
  return ok;
}

gboolean
cs_graph_finalize (CsGraph *g, GError **error)
{
  g_return_val_if_fail (!g->finalized, FALSE);
  guint n = g->nodes->len;
  if (n == 0 || ((CsNode *) g->nodes->pdata[0])->op != CS_OP_INPUT)
    {
      cs_graph_pos_error (g, NULL, error, CS_ERROR_PARSE, "the network has no input");
      return FALSE;
    }

  for (guint i = 0; i < n; i++)
    {
      CsNode *node = g->nodes->pdata[i];
      const CsLayerClass *klass = cs_layer_class (node->op);
      if (node->n_inputs < klass->min_inputs || node->n_inputs > klass->max_inputs)
        {
          if (klass->max_inputs == 0)
            cs_graph_node_error (g, node, error, CS_ERROR_SHAPE, "an input layer takes no inputs");
          else if (klass->min_inputs == klass->max_inputs)
            cs_graph_node_error (g, node, error, CS_ERROR_SHAPE,
                                 "%s takes %u input, not %u", klass->name,
                                 klass->min_inputs, node->n_inputs);
          else
            cs_graph_node_error (g, node, error, CS_ERROR_SHAPE,
                                 "%s takes %u to %u inputs, not %u", klass->name,
                                 klass->min_inputs, klass->max_inputs, node->n_inputs);
          return FALSE;
        }
      for (guint j = 0; j < node->n_inputs; j++)
        if (node->inputs[j] >= n)
          {
            cs_graph_node_error (g, node, error, CS_ERROR_NAME, "input %u is not a layer", j + 1);
            return FALSE;
          }
    }

  g_autofree guint *order = g_new (guint, n);
  if (!topo_sort (g, order, error))
    return FALSE;

  /* Renumber so that a node's id is its place in the order and inputs point backwards. */
  g_autofree guint *new_id = g_new (guint, n);
  GPtrArray *sorted = g_ptr_array_sized_new (n);
  for (guint i = 0; i < n; i++)
    {
      new_id[order[i]] = i;
      g_ptr_array_add (sorted, g->nodes->pdata[order[i]]);
    }
  g_ptr_array_unref (g->nodes);
  g->nodes = sorted;
  g->n_consumers = g_new0 (guint, n);
  for (guint i = 0; i < n; i++)
    {
      CsNode *node = g->nodes->pdata[i];
      node->id = i;
      for (guint j = 0; j < node->n_inputs; j++)
        {
          node->inputs[j] = new_id[node->inputs[j]];
          g->n_consumers[node->inputs[j]]++;
        }
    }

  g_autofree CsShape *in = g_new (CsShape, 8);
  guint in_cap = 8;
  for (guint i = 0; i < n; i++)
    {
      CsNode *node = g->nodes->pdata[i];
      if (node->n_inputs > in_cap)
        {
          in_cap = node->n_inputs;
          in = g_renew (CsShape, in, in_cap);
        }
      for (guint j = 0; j < node->n_inputs; j++)
        in[j] = ((CsNode *) g->nodes->pdata[node->inputs[j]])->shape;
      GError *local = NULL;
      if (!cs_layer_class (node->op)->infer_shape (node, in, node->n_inputs, &node->shape,
                                                   &local))
        {
          cs_graph_node_error (g, node, error, local->code, "%s", local->message);
          g_error_free (local);
          return FALSE;
        }
      guint64 numel;
      if (!cs_shape_numel (&node->shape, &numel) || numel > (G_MAXUINT64 >> 20))
        {
          cs_graph_node_error (g, node, error, CS_ERROR_OVERFLOW,
                               "the output volume is too large to count");
          return FALSE;
        }
    }
  g->finalized = TRUE;
  return TRUE;
}

const CsNode *
cs_graph_output (const CsGraph *g)
{
  for (guint i = g->nodes->len; i > 0; i--)
    {
      const CsNode *n = g->nodes->pdata[i - 1];
      if (!(n->flags & CS_NODE_TRAIN_ONLY))
        return n;
    }
  return NULL;
}

char *
cs_shape_to_string (const CsShape *s)
{
  return g_strdup_printf ("%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT,
                          s->h, s->w, s->c);
}

CsGraph *
cs_graph_read_file (const char *path, CsModelReader read, GError **error)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: is a folder, not a model file", path);
      return NULL;
    }
  GError *local = NULL;
  g_autoptr (GMappedFile) mf = g_mapped_file_new (path, FALSE, &local);
  if (mf == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %s", path, local->message);
      g_error_free (local);
      return NULL;
    }
  gsize len = g_mapped_file_get_length (mf);
  const char *text = len ? g_mapped_file_get_contents (mf) : "";
  return read (path, text, len, error);
}

gboolean
cs_graph_set_source (CsGraph *g, const char *text, gsize len, gsize max, const char *what,
                     GError **error)
{
  if (len > max)
    {
      cs_graph_pos_error (g, NULL, error, CS_ERROR_LIMIT,
                          "the file is %" G_GSIZE_FORMAT " bytes; %s are limited to %"
                          G_GSIZE_FORMAT, len, what, max);
      return FALSE;
    }
  g_free (g->text);
  g->text = g_malloc (len + 1);
  if (len)
    memcpy (g->text, text, len);
  g->text[len] = '\0';
  g->text_len = len;
  return TRUE;
}
