/* Layout of a graph for drawing: series-parallel columns found from post-dominators, rows from a
 * weighted longest path, frames around expanded modules and Bezier curves for the edges. */
#include "cs-layout.h"

#include <math.h>
#include <string.h>

/* How it works, in five passes, each linear or n log n in the number of boxes and edges:
 *
 * 1. Boxes. Every node gets a box, except the nodes of a collapsed module (one box for the
 *    module, keyed by its last node) and, with FOLD, the in-place layers the lecture view folds
 *    into their producer. Boxes are numbered in the topological order of their key nodes, so
 *    edges between boxes run from a lower to a higher number (a collapsed module that is not
 *    convex can give a backward edge: it is drawn but ignored by the structure).
 *
 * 2. Post-dominators of the box graph, with a virtual sink T after every sink. In a DAG the
 *    immediate post-dominator of a box is the nearest common ancestor, in the post-dominator
 *    tree, of its consumers, all of which come later in the order: one pass from the last box
 *    to the first, with jump pointers (each box keeps its parent and one jump) so that ancestor
 *    queries take O(log n) and memory stays O(n).
 *
 * 3. Structure (x). A box v that feeds several boxes opens a region that ends at its immediate
 *    post-dominator j: the boxes in between go into side-by-side columns, one per child of j in
 *    the post-dominator tree that leads back to a consumer of v (inception: four columns; a
 *    residual block: the branch, plus the projection when there is one; FractalNet: the nested
 *    columns, a group of consumers with a common post-dominator below j becoming a sub-region
 *    of its own). An edge v -> j is the identity shortcut: no column, an arc in a lane on the
 *    right of the region. A column is a chain v, ipdom(v), ... down to j. When j is T (an
 *    auxiliary classifier that never rejoins), the column holding the network's output stays
 *    under v and the others go to its right. Each box is placed once, by the first column
 *    that reaches it, so any DAG gets a position for every box; columns never share x.
 *    The work is a stack of tasks, not recursion, so deep nesting cannot overflow the stack.
 *
 * 4. Rows (y): the longest path from the top, where an edge spans a box height, a gap, and
 *    module_pad for every frame it leaves or enters. Every box of a region lies strictly
 *    between its fork and its join, so boxes of one column never overlap, and frames keep
 *    their padding.
 *
 * 5. Geometry: widths bottom-up over the regions (a column is padded by module_pad for each
 *    frame that its siblings do not share), x top-down, frames bottom-up, then the edges:
 *    an edge into a column bends in the gap under its fork, an edge out of one bends in the
 *    gap over its join, a shortcut follows its lane, and anything irregular is one S curve. */

#define NONE G_MAXUINT
#define NO_FRAME (-1)      /* a box at top level, outside every frame */
#define UNSET_FRAME (-2)   /* no box seen yet when taking the common frame of several */
#define CHECK_EVERY 4096   /* iterations between looks at the cancellable */

typedef struct {
  CsLayout pub;
  GStringChunk *strings;   /* module paths the boxes and frames point to */
  double *points;          /* the points of every edge, one block */
} Layout;

/* ---- Modules ---------------------------------------------------------------------------- */

typedef struct {
  const char *path;        /* in the table's string chunk */
  guint parent;            /* NONE at top level */
  guint n_nodes;           /* nodes inside, sub-modules included */
  guint last_node;         /* the last of them in topological order: the module's output */
  guint collapsed;         /* the outermost collapsed module around it, itself included, or NONE */
  gint frame;              /* the innermost frame drawn around its nodes, or NO_FRAME */
} Module;

typedef struct {
  GArray *mods;            /* Module, parents before their sub-modules */
  GHashTable *by_path;     /* path -> index + 1 */
  GStringChunk *chunk;
  guint *of_node;          /* per node: its module, NONE at top level */
} ModTable;

/* The index of module PATH, creating it and its missing ancestors ("a", "a/b" for "a/b/c"). */
static guint
module_intern (ModTable *t, GString *scratch, const char *path)
{
  gsize len = strlen (path);
  if (len == 0)
    return NONE;
  gpointer hit = g_hash_table_lookup (t->by_path, path);
  if (hit)
    return GPOINTER_TO_UINT (hit) - 1;

  /* Walk up to the deepest ancestor that exists, remembering the cuts that do not. */
  GArray *cuts = g_array_new (FALSE, FALSE, sizeof (gsize));
  g_array_append_val (cuts, len);
  guint parent = NONE;
  gsize p = len;
  for (;;)
    {
      while (p > 0 && path[p - 1] != '/')
        p--;
      if (p <= 1)
        break;
      gsize cut = p - 1;
      g_string_truncate (scratch, 0);
      g_string_append_len (scratch, path, cut);
      hit = g_hash_table_lookup (t->by_path, scratch->str);
      if (hit)
        {
          parent = GPOINTER_TO_UINT (hit) - 1;
          break;
        }
      g_array_append_val (cuts, cut);
      p = cut;
    }
  for (guint i = cuts->len; i > 0; i--)
    {
      gsize cut = g_array_index (cuts, gsize, i - 1);
      Module m = { g_string_chunk_insert_len (t->chunk, path, cut), parent, 0, 0, NONE,
                   NO_FRAME };
      parent = t->mods->len;
      g_array_append_val (t->mods, m);
      g_hash_table_insert (t->by_path, (gpointer) m.path, GUINT_TO_POINTER (parent + 1));
    }
  g_array_free (cuts, TRUE);
  return parent;
}

static void
modtable_init (ModTable *t, const CsGraph *g, GStringChunk *chunk)
{
  guint n = cs_graph_n_nodes (g);
  t->mods = g_array_new (FALSE, FALSE, sizeof (Module));
  t->by_path = g_hash_table_new (g_str_hash, g_str_equal);
  t->chunk = chunk;
  t->of_node = g_new (guint, MAX (n, 1));
  GString *scratch = g_string_new (NULL);
  const char *prev = NULL;
  guint prev_mod = NONE;
  for (guint i = 0; i < n; i++)
    {
      const CsNode *node = cs_graph_node (g, i);
      const char *path = node->module ? node->module : "";
      /* Neighbours usually share a module: skip the hash when the string is the same. */
      if (prev == NULL || (path != prev && strcmp (path, prev) != 0))
        prev_mod = module_intern (t, scratch, path);
      prev = path;
      t->of_node[i] = prev_mod;
      if (prev_mod != NONE)
        {
          Module *m = &g_array_index (t->mods, Module, prev_mod);
          m->n_nodes++;
          m->last_node = i;
        }
    }
  g_string_free (scratch, TRUE);
  /* Sub-modules come after their parents: adding backwards sums every subtree. */
  for (guint i = t->mods->len; i > 0; i--)
    {
      const Module *m = &g_array_index (t->mods, Module, i - 1);
      if (m->parent == NONE)
        continue;
      Module *up = &g_array_index (t->mods, Module, m->parent);
      up->n_nodes += m->n_nodes;
      if (m->last_node != NONE && (up->last_node == NONE || m->last_node > up->last_node))
        up->last_node = m->last_node;
    }
}

static void
modtable_clear (ModTable *t)
{
  if (t->mods)
    g_array_free (t->mods, TRUE);
  if (t->by_path)
    g_hash_table_destroy (t->by_path);
  g_free (t->of_node);
  memset (t, 0, sizeof *t);
}

GPtrArray *
cs_graph_modules (const CsGraph *g)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  if (g == NULL || g->nodes == NULL)
    return out;
  GStringChunk *chunk = g_string_chunk_new (4096);
  ModTable t = { 0 };
  modtable_init (&t, g, chunk);
  for (guint i = 0; i < t.mods->len; i++)
    {
      const Module *m = &g_array_index (t.mods, Module, i);
      if (m->n_nodes >= 2)
        g_ptr_array_add (out, g_strdup (m->path));
    }
  modtable_clear (&t);
  g_string_chunk_free (chunk);
  return out;
}

/* ---- The layout ------------------------------------------------------------------------- */

typedef struct {
  guint module;
  gint parent;             /* the enclosing frame, or NO_FRAME */
  guint depth;             /* 1 for an outermost frame */
  double x0, y0, x1, y1;   /* the boxes and frames inside, then padded */
  gboolean used;           /* holds at least one box */
} Frame;

enum { ITEM_BOX, ITEM_REGION };

typedef struct {
  guint kind, index, next;
} Item;

typedef struct {
  guint first, last, next;       /* items, and the next column of the region */
  guint nb, maxd;                /* boxes inside, deepest frame depth of one */
  gint common;                   /* the innermost frame around all its boxes */
  double lext, rext;             /* extent left and right of its axis */
  double off;                    /* its axis relative to the region's */
} Column;

typedef struct {
  guint fork, join;              /* boxes; NONE for the virtual source, B for the sink */
  guint first_col, last_col, n_cols, main_col;
  gboolean arc, side;
  guint nb, maxd;
  gint common;
  double lext, rext, lane, x;    /* lane: the shortcut's x, relative to x */
} Region;

enum { TASK_CHAIN, TASK_FILL };

typedef struct {
  guint kind, target;            /* CHAIN: a column; FILL: a region */
  guint e, t, from;              /* CHAIN: start, stop, fork; FILL: -, join, fork */
  guint off, len;                /* FILL: its entries in ents */
} Task;

typedef struct {
  guint64 key;                   /* from << 32 | to */
  guint region;
} Arc;

typedef struct {
  const CsGraph *g;
  CsLayoutMetrics m;
  GCancellable *cancellable;
  guint ticks;

  ModTable mt;
  GArray *frames;                /* Frame, parents first */

  guint n, B;                    /* nodes, boxes; B is also the virtual sink */
  guint *box_node, *box_module, *box_members, *box_of_node;
  gint *box_frame;

  guint n_edges;
  guint *e_from, *e_to;          /* every box edge, grouped by target */
  guint *in_start;               /* per box: its incoming edges in e_from/e_to */
  guint *out_start, *out_adj;    /* per box: its forward consumers, ascending */

  guint *ipdom, *depth, *jump;   /* the post-dominator tree, B + 1 entries */

  GArray *items, *cols, *regions, *tasks, *ents, *arcs;
  guint8 *placed, *down;
  guint *entry_from;             /* the fork whose column a box starts, or NONE */
  guint *stamp_of, *group_of, stamp;
  guint key_out;                 /* the child of T above the network's output, or NONE */

  double *bx, *by;               /* box centre x, top y */
} Ctx;

static gboolean
cancelled (Ctx *c, GError **error)
{
  if (++c->ticks % CHECK_EVERY != 0)
    return FALSE;
  return g_cancellable_set_error_if_cancelled (c->cancellable, error);
}

static void
ctx_clear (Ctx *c)
{
  modtable_clear (&c->mt);
  GArray *arrays[] = { c->frames, c->items, c->cols, c->regions, c->tasks, c->ents, c->arcs };
  for (guint i = 0; i < G_N_ELEMENTS (arrays); i++)
    if (arrays[i])
      g_array_free (arrays[i], TRUE);
  gpointer blocks[] = { c->box_node, c->box_module, c->box_members, c->box_of_node,
                        c->box_frame, c->e_from, c->e_to, c->in_start, c->out_start,
                        c->out_adj, c->ipdom, c->depth, c->jump, c->placed, c->down,
                        c->entry_from, c->stamp_of, c->group_of, c->bx, c->by };
  for (guint i = 0; i < G_N_ELEMENTS (blocks); i++)
    g_free (blocks[i]);
}

void
cs_layout_metrics_default (CsLayoutMetrics *m)
{
  g_return_if_fail (m != NULL);
  m->node_width = 160;
  m->node_height = 36;
  m->h_gap = 24;
  m->v_gap = 28;
  m->module_pad = 8;
}

/* Metrics from the caller, with anything unusable (NaN, negative, an empty box) replaced by
 * the default, so that no input can make the geometry degenerate. */
static void
sane_metrics (const CsLayoutMetrics *in, CsLayoutMetrics *out)
{
  cs_layout_metrics_default (out);
  if (in == NULL)
    return;
  const double limit = 1e6;
#define TAKE(field, lo) \
  if (isfinite (in->field) && in->field >= (lo) && in->field <= limit) out->field = in->field
  TAKE (node_width, 1e-3);
  TAKE (node_height, 1e-3);
  TAKE (h_gap, 0);
  TAKE (v_gap, 0);
  TAKE (module_pad, 0);
#undef TAKE
}

/* The lecture view's folding rule, kept identical to `foldable` in cs-stats.c (which is static
 * there): an in-place layer whose single input is a layer, not the input, that feeds nothing
 * else, and on the same side of the training-only line. */
static gboolean
layout_foldable (const CsGraph *g, const CsNode *n)
{
  if (!(cs_layer_class (n->op)->flags & CS_LAYER_INPLACE) || n->n_inputs != 1)
    return FALSE;
  const CsNode *in = cs_graph_node (g, n->inputs[0]);
  return in->op != CS_OP_INPUT && g->n_consumers[in->id] == 1
      && (in->flags & CS_NODE_TRAIN_ONLY) == (n->flags & CS_NODE_TRAIN_ONLY);
}

static guint
frame_depth (const Ctx *c, gint f)
{
  return f < 0 ? 0 : g_array_index (c->frames, Frame, f).depth;
}

static gint
frame_parent (const Ctx *c, gint f)
{
  return g_array_index (c->frames, Frame, f).parent;
}

/* The innermost frame around both A and B; UNSET_FRAME is the identity. */
static gint
frame_common (const Ctx *c, gint a, gint b)
{
  if (a == UNSET_FRAME)
    return b;
  if (b == UNSET_FRAME)
    return a;
  while (frame_depth (c, a) > frame_depth (c, b))
    a = frame_parent (c, a);
  while (frame_depth (c, b) > frame_depth (c, a))
    b = frame_parent (c, b);
  while (a != b)
    a = frame_parent (c, a), b = frame_parent (c, b);
  return a;
}

/* Modules, collapsing and frames: which module each box stands for and which frame holds it. */
static void
build_modules (Ctx *c, GHashTable *collapsed, GStringChunk *chunk)
{
  modtable_init (&c->mt, c->g, chunk);
  c->frames = g_array_new (FALSE, FALSE, sizeof (Frame));
  for (guint i = 0; i < c->mt.mods->len; i++)
    {
      Module *m = &g_array_index (c->mt.mods, Module, i);
      const Module *up = m->parent != NONE ? &g_array_index (c->mt.mods, Module, m->parent)
                                           : NULL;
      if (up && up->collapsed != NONE)
        m->collapsed = up->collapsed;
      else if (collapsed && g_hash_table_contains (collapsed, m->path))
        m->collapsed = i;
      gint outer = up ? up->frame : NO_FRAME;
      if (m->collapsed == NONE && m->n_nodes >= 2)
        {
          Frame f = { i, outer, frame_depth (c, outer) + 1, 0, 0, 0, 0, FALSE };
          m->frame = c->frames->len;
          g_array_append_val (c->frames, f);
        }
      else
        m->frame = outer;
    }
}

static gboolean
build_boxes (Ctx *c, gboolean fold, GError **error)
{
  const CsGraph *g = c->g;
  guint n = c->n;
  const Module *mods = (const Module *) c->mt.mods->data;
  /* The node that keys each node's box: the module's output for a collapsed module, the
   * producer's key for a folded layer, else the node itself. */
  g_autofree guint *key = g_new (guint, MAX (n, 1));
  g_autofree guint *box_of_key = g_new (guint, MAX (n, 1));
  c->box_of_node = g_new (guint, MAX (n, 1));
  c->box_node = g_new (guint, MAX (n, 1));
  c->box_module = g_new (guint, MAX (n, 1));
  c->box_members = g_new0 (guint, MAX (n, 1));
  c->box_frame = g_new (gint, MAX (n, 1));
  c->B = 0;
  for (guint i = 0; i < n; i++)
    {
      if (cancelled (c, error))
        return FALSE;
      const CsNode *node = cs_graph_node (g, i);
      guint mod = c->mt.of_node[i];
      guint coll = mod != NONE ? mods[mod].collapsed : NONE;
      if (coll != NONE)
        key[i] = mods[coll].last_node;
      else if (fold && layout_foldable (g, node))
        {
          guint in = node->inputs[0];
          guint in_mod = c->mt.of_node[in];
          /* A collapsed block swallows its own nodes only: a layer after it keeps a box. */
          key[i] = (in_mod != NONE && mods[in_mod].collapsed != NONE) ? i : key[in];
        }
      else
        key[i] = i;
      box_of_key[i] = NONE;
      if (key[i] == i)
        {
          guint b = c->B++;
          box_of_key[i] = b;
          c->box_node[b] = i;
          c->box_module[b] = coll;
          if (coll != NONE)
            c->box_frame[b] = mods[coll].parent != NONE ? mods[mods[coll].parent].frame
                                                        : NO_FRAME;
          else
            c->box_frame[b] = mod != NONE ? mods[mod].frame : NO_FRAME;
        }
    }
  for (guint i = 0; i < n; i++)
    {
      guint b = box_of_key[key[i]];
      c->box_of_node[i] = b;
      c->box_members[b]++;
    }
  return TRUE;
}

/* Box edges without duplicates, grouped by target, and the forward consumers of each box. */
static gboolean
build_edges (Ctx *c, GError **error)
{
  const CsGraph *g = c->g;
  guint n = c->n, B = c->B;
  /* The nodes of each box, by counting sort. */
  g_autofree guint *mstart = g_new0 (guint, B + 1);
  g_autofree guint *members = g_new (guint, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    mstart[c->box_of_node[i] + 1]++;
  for (guint b = 0; b < B; b++)
    mstart[b + 1] += mstart[b];
  g_autofree guint *fill = g_memdup2 (mstart, (B + 1) * sizeof (guint));
  for (guint i = 0; i < n; i++)
    members[fill[c->box_of_node[i]]++] = i;

  guint64 max_edges = g->n_edges;
  c->e_from = g_new (guint, MAX (max_edges, 1));
  c->e_to = g_new (guint, MAX (max_edges, 1));
  c->in_start = g_new (guint, B + 1);
  g_autofree guint *mark = g_new (guint, MAX (B, 1));
  for (guint b = 0; b < B; b++)
    mark[b] = NONE;
  guint ne = 0;
  for (guint b = 0; b < B; b++)
    {
      if (cancelled (c, error))
        return FALSE;
      c->in_start[b] = ne;
      for (guint k = mstart[b]; k < mstart[b + 1]; k++)
        {
          const CsNode *node = cs_graph_node (g, members[k]);
          for (guint j = 0; j < node->n_inputs; j++)
            {
              guint s = c->box_of_node[node->inputs[j]];
              if (s == b || mark[s] == b || ne >= max_edges)
                continue;
              mark[s] = b;
              c->e_from[ne] = s;
              c->e_to[ne] = b;
              ne++;
            }
        }
    }
  c->in_start[B] = ne;
  c->n_edges = ne;

  c->out_start = g_new0 (guint, B + 1);
  for (guint e = 0; e < ne; e++)
    if (c->e_from[e] < c->e_to[e])
      c->out_start[c->e_from[e] + 1]++;
  for (guint b = 0; b < B; b++)
    c->out_start[b + 1] += c->out_start[b];
  c->out_adj = g_new (guint, MAX (c->out_start[B], 1));
  g_autofree guint *pos = g_memdup2 (c->out_start, (B + 1) * sizeof (guint));
  for (guint e = 0; e < ne; e++)
    if (c->e_from[e] < c->e_to[e])
      c->out_adj[pos[c->e_from[e]]++] = c->e_to[e];
  return TRUE;
}

/* ---- The post-dominator tree ------------------------------------------------------------ */

/* The ancestor of V at depth D (D <= depth of V). */
static guint
pd_ancestor (const Ctx *c, guint v, guint d)
{
  while (c->depth[v] > d)
    v = c->depth[c->jump[v]] >= d ? c->jump[v] : c->ipdom[v];
  return v;
}

static guint
pd_common (const Ctx *c, guint a, guint b)
{
  if (c->depth[a] > c->depth[b])
    a = pd_ancestor (c, a, c->depth[b]);
  else
    b = pd_ancestor (c, b, c->depth[a]);
  /* Nodes of equal depth have jumps of equal depth: jump both while the jumps differ. */
  while (a != b)
    {
      if (c->jump[a] != c->jump[b])
        a = c->jump[a], b = c->jump[b];
      else
        a = c->ipdom[a], b = c->ipdom[b];
    }
  return a;
}

static gboolean
build_postdominators (Ctx *c, GError **error)
{
  guint B = c->B, T = B;
  c->ipdom = g_new (guint, B + 1);
  c->depth = g_new (guint, B + 1);
  c->jump = g_new (guint, B + 1);
  c->ipdom[T] = T, c->depth[T] = 0, c->jump[T] = T;
  for (guint v = B; v > 0; v--)
    {
      if (cancelled (c, error))
        return FALSE;
      guint b = v - 1, p = NONE;
      for (guint k = c->out_start[b]; k < c->out_start[b + 1]; k++)
        p = p == NONE ? c->out_adj[k] : pd_common (c, p, c->out_adj[k]);
      if (p == NONE)
        p = T;
      c->ipdom[b] = p;
      c->depth[b] = c->depth[p] + 1;
      /* Skew-binary jump pointers (Myers 1983): O(log n) ancestor queries in O(n) memory. */
      guint jp = c->jump[p];
      c->jump[b] = c->depth[p] - c->depth[jp] == c->depth[jp] - c->depth[c->jump[jp]]
                 ? c->jump[jp] : p;
    }
  return TRUE;
}

/* ---- Structure -------------------------------------------------------------------------- */

static guint
new_region (Ctx *c, guint fork, guint join)
{
  Region r = { fork, join, NONE, NONE, 0, NONE, FALSE, join == c->B, 0, 0, UNSET_FRAME,
               0, 0, 0, 0 };
  g_array_append_val (c->regions, r);
  return c->regions->len - 1;
}

static guint
new_column (Ctx *c, guint region)
{
  Column col = { NONE, NONE, NONE, 0, 0, UNSET_FRAME, 0, 0, 0 };
  g_array_append_val (c->cols, col);
  guint ci = c->cols->len - 1;
  Region *r = &g_array_index (c->regions, Region, region);
  if (r->last_col == NONE)
    r->first_col = ci;
  else
    g_array_index (c->cols, Column, r->last_col).next = ci;
  r->last_col = ci;
  r->n_cols++;
  return ci;
}

static void
append_item (Ctx *c, guint col, guint kind, guint index)
{
  Item it = { kind, index, NONE };
  g_array_append_val (c->items, it);
  guint ii = c->items->len - 1;
  Column *cl = &g_array_index (c->cols, Column, col);
  if (cl->last == NONE)
    cl->first = ii;
  else
    g_array_index (c->items, Item, cl->last).next = ii;
  cl->last = ii;
}

static void
push_task (Ctx *c, guint kind, guint target, guint e, guint t, guint from, guint off, guint len)
{
  Task task = { kind, target, e, t, from, off, len };
  g_array_append_val (c->tasks, task);
}

static void
add_arc (Ctx *c, guint from, guint to, guint region)
{
  Arc a = { (guint64) from << 32 | to, region };
  g_array_append_val (c->arcs, a);
  g_array_index (c->regions, Region, region).arc = TRUE;
}

/* Places V, IPDOM(V), ... in column COL until T, opening a region at every fork on the way. */
static void
run_chain (Ctx *c, guint col, guint e, guint t, guint from)
{
  guint v = e;
  gboolean first = TRUE;
  while (v != t && v < c->B && !c->placed[v])
    {
      c->placed[v] = 1;
      append_item (c, col, ITEM_BOX, v);
      if (first && from != NONE)
        c->entry_from[v] = from;
      first = FALSE;
      guint p = c->ipdom[v];
      guint off = c->ents->len;
      gboolean shortcut = FALSE;
      for (guint k = c->out_start[v]; k < c->out_start[v + 1]; k++)
        {
          guint w = c->out_adj[k];
          if (w == p)
            shortcut = TRUE;
          else
            g_array_append_val (c->ents, w);
        }
      guint len = c->ents->len - off;
      if (len > 0)
        {
          guint r = new_region (c, v, p);
          append_item (c, col, ITEM_REGION, r);
          if (shortcut)
            add_arc (c, v, p, r);
          push_task (c, TASK_FILL, r, NONE, p, v, off, len);
        }
      if (p == t || p >= c->B)
        {
          c->down[v] = 1;
          break;
        }
      if (c->placed[p])
        break;
      c->down[v] = 1;
      v = p;
    }
}

/* The column key of entry E in a region ending at T: the child of T above E in the
 * post-dominator tree. E itself when T is not above it, which a DAG should not give. */
static guint
group_key (const Ctx *c, guint e, guint t)
{
  if (c->depth[e] <= c->depth[t] || pd_ancestor (c, e, c->depth[t]) != t)
    return e;
  return pd_ancestor (c, e, c->depth[t] + 1);
}

/* Sorts the entries of region R (from fork U, ending at T) into columns. */
static void
fill_region (Ctx *c, guint r, guint u, guint t, guint off, guint len)
{
  g_autofree guint *ent = g_memdup2 (&g_array_index (c->ents, guint, off), len * sizeof (guint));
  g_autofree guint *gid = g_new (guint, len);
  g_autofree guint *gkey = g_new (guint, len);
  guint n_groups = 0;
  c->stamp++;
  for (guint i = 0; i < len; i++)
    {
      guint e = ent[i];
      gid[i] = NONE;
      if (e == t)
        {
          /* A consumer of the fork that is the sub-region's own join: a shortcut. */
          if (u != NONE)
            add_arc (c, u, t, r);
          continue;
        }
      guint k = group_key (c, e, t);
      if (c->stamp_of[k] != c->stamp)
        {
          c->stamp_of[k] = c->stamp;
          c->group_of[k] = n_groups;
          gkey[n_groups++] = k;
        }
      gid[i] = c->group_of[k];
    }
  if (n_groups == 0)
    return;

  /* Entries by group, keeping their order. */
  g_autofree guint *gstart = g_new0 (guint, n_groups + 1);
  for (guint i = 0; i < len; i++)
    if (gid[i] != NONE)
      gstart[gid[i] + 1]++;
  for (guint k = 0; k < n_groups; k++)
    gstart[k + 1] += gstart[k];
  g_autofree guint *gfill = g_memdup2 (gstart, (n_groups + 1) * sizeof (guint));
  g_autofree guint *sorted = g_new (guint, MAX (gstart[n_groups], 1));
  for (guint i = 0; i < len; i++)
    if (gid[i] != NONE)
      sorted[gfill[gid[i]]++] = ent[i];

  /* A group of one is a chain; a group of several meets at its common post-dominator j below
   * T: a sub-region from the same fork to j, then the chain from j. */
  typedef struct { guint col, e, j, sub; } Plan;
  GArray *plans = g_array_new (FALSE, FALSE, sizeof (Plan));
  Region *reg = &g_array_index (c->regions, Region, r);
  gboolean side = reg->side;
  for (guint k = 0; k < n_groups; k++)
    {
      guint size = gstart[k + 1] - gstart[k];
      const guint *members = sorted + gstart[k];
      guint j = members[0];
      for (guint i = 1; i < size; i++)
        j = pd_common (c, j, members[i]);
      gboolean nested = size > 1 && j != t && c->depth[j] > c->depth[t];
      if (!nested)
        {
          for (guint i = 0; i < size; i++)
            {
              Plan p = { new_column (c, r), members[i], NONE, NONE };
              if (side && gkey[k] == c->key_out)
                g_array_index (c->regions, Region, r).main_col = p.col;
              g_array_append_val (plans, p);
            }
          continue;
        }
      Plan p = { new_column (c, r), j, j, NONE };
      if (side && gkey[k] == c->key_out)
        g_array_index (c->regions, Region, r).main_col = p.col;
      p.sub = new_region (c, u, j);
      append_item (c, p.col, ITEM_REGION, p.sub);
      guint sub_off = c->ents->len;
      g_array_append_vals (c->ents, members, size);
      /* Pushed before the chain from j, so that it runs after: the columns fill top-down. */
      push_task (c, TASK_CHAIN, p.col, j, t, NONE, 0, 0);
      push_task (c, TASK_FILL, p.sub, NONE, j, u, sub_off, size);
      p.e = NONE;
      g_array_append_val (plans, p);
    }
  /* Chains pushed last to first, so that the first column is laid out first. */
  for (guint i = plans->len; i > 0; i--)
    {
      const Plan *p = &g_array_index (plans, Plan, i - 1);
      if (p->e != NONE)
        push_task (c, TASK_CHAIN, p->col, p->e, t, u, 0, 0);
    }
  g_array_free (plans, TRUE);
}

static gboolean
run_tasks (Ctx *c, GError **error)
{
  while (c->tasks->len > 0)
    {
      if (cancelled (c, error))
        return FALSE;
      Task task = g_array_index (c->tasks, Task, c->tasks->len - 1);
      g_array_set_size (c->tasks, c->tasks->len - 1);
      if (task.kind == TASK_CHAIN)
        run_chain (c, task.target, task.e, task.t, task.from);
      else
        fill_region (c, task.target, task.from, task.t, task.off, task.len);
    }
  return TRUE;
}

static gboolean
build_structure (Ctx *c, GError **error)
{
  guint B = c->B;
  c->items = g_array_new (FALSE, FALSE, sizeof (Item));
  c->cols = g_array_new (FALSE, FALSE, sizeof (Column));
  c->regions = g_array_new (FALSE, FALSE, sizeof (Region));
  c->tasks = g_array_new (FALSE, FALSE, sizeof (Task));
  c->ents = g_array_new (FALSE, FALSE, sizeof (guint));
  c->arcs = g_array_new (FALSE, FALSE, sizeof (Arc));
  c->placed = g_new0 (guint8, B + 1);
  c->down = g_new0 (guint8, B + 1);
  c->entry_from = g_new (guint, B + 1);
  c->stamp_of = g_new0 (guint, B + 1);
  c->group_of = g_new (guint, B + 1);
  for (guint b = 0; b <= B; b++)
    c->entry_from[b] = NONE;

  c->key_out = NONE;
  const CsNode *out = cs_graph_output (c->g);
  if (out)
    c->key_out = pd_ancestor (c, c->box_of_node[out->id], 1);

  /* The root: a region from a virtual source to the virtual sink, its entries the boxes that
   * nothing feeds. */
  guint root = new_region (c, NONE, B);
  guint off = c->ents->len;
  for (guint b = 0; b < B; b++)
    {
      gboolean fed = FALSE;
      for (guint e = c->in_start[b]; e < c->in_start[b + 1] && !fed; e++)
        fed = c->e_from[e] < b;
      if (!fed)
        g_array_append_val (c->ents, b);
    }
  push_task (c, TASK_FILL, root, NONE, B, NONE, off, c->ents->len - off);
  if (!run_tasks (c, error))
    return FALSE;

  /* Every box is reached from a source, so this should find nothing; if it ever does, the box
   * gets a column of its own on the right rather than no place. */
  for (guint b = 0; b < B; b++)
    if (!c->placed[b])
      {
        guint col = new_column (c, root);
        push_task (c, TASK_CHAIN, col, b, B, NONE, 0, 0);
        if (!run_tasks (c, error))
          return FALSE;
      }
  return TRUE;
}

/* ---- Geometry --------------------------------------------------------------------------- */

/* Widths, from the innermost regions out: regions are created after the region that holds
 * them, so going backwards meets every region after its sub-regions. */
static void
measure (Ctx *c)
{
  const CsLayoutMetrics *m = &c->m;
  double half = m->node_width / 2;
  for (guint ri = c->regions->len; ri > 0; ri--)
    {
      Region *r = &g_array_index (c->regions, Region, ri - 1);
      r->nb = 0, r->maxd = 0, r->common = UNSET_FRAME;
      for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
        {
          Column *col = &g_array_index (c->cols, Column, ci);
          col->nb = 0, col->maxd = 0, col->common = UNSET_FRAME, col->lext = col->rext = 0;
          for (guint ii = col->first; ii != NONE; ii = g_array_index (c->items, Item, ii).next)
            {
              const Item *it = &g_array_index (c->items, Item, ii);
              if (it->kind == ITEM_BOX)
                {
                  gint f = c->box_frame[it->index];
                  col->lext = MAX (col->lext, half);
                  col->rext = MAX (col->rext, half);
                  col->common = frame_common (c, col->common, f);
                  col->maxd = MAX (col->maxd, frame_depth (c, f));
                  col->nb++;
                }
              else
                {
                  const Region *sub = &g_array_index (c->regions, Region, it->index);
                  col->lext = MAX (col->lext, sub->lext);
                  col->rext = MAX (col->rext, sub->rext);
                  if (sub->nb > 0)
                    {
                      col->common = frame_common (c, col->common, sub->common);
                      col->maxd = MAX (col->maxd, sub->maxd);
                      col->nb += sub->nb;
                    }
                }
            }
          if (col->nb > 0)
            {
              r->common = frame_common (c, r->common, col->common);
              r->maxd = MAX (r->maxd, col->maxd);
              r->nb += col->nb;
            }
        }

      /* Frames that not all columns share need room between the columns. */
      guint shared = r->common == UNSET_FRAME ? 0 : frame_depth (c, r->common);
      guint main = r->main_col;
      if (main == NONE || g_array_index (c->cols, Column, main).nb == 0)
        {
          main = NONE;
          for (guint ci = r->first_col; ci != NONE && main == NONE;
               ci = g_array_index (c->cols, Column, ci).next)
            if (g_array_index (c->cols, Column, ci).nb > 0)
              main = ci;
        }
      double total = 0;
      guint shown = 0;
      for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
        {
          Column *col = &g_array_index (c->cols, Column, ci);
          col->off = 0;
          if (col->nb == 0)
            continue;
          double margin = m->module_pad * (col->maxd - MIN (col->maxd, shared));
          col->lext += margin;
          col->rext += margin;
          total += col->lext + col->rext;
          shown++;
        }
      if (shown > 1)
        total += (shown - 1) * m->h_gap;
      r->lext = r->rext = 0;
      if (shown > 0 && r->side)
        {
          /* The column with the network's output stays under the fork; the rest go right. */
          const Column *mc = &g_array_index (c->cols, Column, main);
          r->lext = mc->lext;
          double pos = mc->rext;
          for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
            {
              Column *col = &g_array_index (c->cols, Column, ci);
              if (col->nb == 0 || ci == main)
                continue;
              col->off = pos + m->h_gap + col->lext;
              pos = col->off + col->rext;
            }
          r->rext = pos;
        }
      else if (shown > 0)
        {
          double pos = -total / 2;
          for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
            {
              Column *col = &g_array_index (c->cols, Column, ci);
              if (col->nb == 0)
                continue;
              col->off = pos + col->lext;
              pos = col->off + col->rext + m->h_gap;
            }
          r->lext = r->rext = total / 2;
        }
      if (r->arc)
        {
          double base = MAX (r->rext, half);
          r->lane = base + m->h_gap / 2;
          r->rext = base + m->h_gap;
        }
    }
}

/* Axes, from the root in: a region's x is set by the column that holds it. */
static void
place_x (Ctx *c)
{
  if (c->regions->len > 0)
    g_array_index (c->regions, Region, 0).x = 0;
  for (guint ri = 0; ri < c->regions->len; ri++)
    {
      const Region *r = &g_array_index (c->regions, Region, ri);
      double rx = r->x;
      for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
        {
          const Column *col = &g_array_index (c->cols, Column, ci);
          double x = rx + col->off;
          for (guint ii = col->first; ii != NONE; ii = g_array_index (c->items, Item, ii).next)
            {
              const Item *it = &g_array_index (c->items, Item, ii);
              if (it->kind == ITEM_BOX)
                c->bx[it->index] = x;
              else
                g_array_index (c->regions, Region, it->index).x = x;
            }
        }
    }
}

/* Tops: the longest path, an edge spanning a box, a gap and the padding of the frames it
 * leaves and enters. */
static gboolean
place_y (Ctx *c, GError **error)
{
  const CsLayoutMetrics *m = &c->m;
  for (guint b = 0; b < c->B; b++)
    {
      if (cancelled (c, error))
        return FALSE;
      gint fb = c->box_frame[b];
      guint db = frame_depth (c, fb);
      double y = m->module_pad * db;
      for (guint e = c->in_start[b]; e < c->in_start[b + 1]; e++)
        {
          guint a = c->e_from[e];
          if (a >= b)
            continue;
          gint fa = c->box_frame[a];
          guint shared = frame_depth (c, frame_common (c, fa, fb));
          guint crossed = frame_depth (c, fa) + db - 2 * shared;
          y = MAX (y, c->by[a] + m->node_height + m->v_gap + m->module_pad * crossed);
        }
      c->by[b] = y;
    }
  return TRUE;
}

/* Frame rectangles, innermost first: a frame's content is its boxes and its sub-frames. */
static void
place_frames (Ctx *c)
{
  const CsLayoutMetrics *m = &c->m;
  Frame *fr = (Frame *) c->frames->data;
  for (guint b = 0; b < c->B; b++)
    {
      gint f = c->box_frame[b];
      if (f < 0)
        continue;
      double x0 = c->bx[b] - m->node_width / 2, y0 = c->by[b];
      double x1 = x0 + m->node_width, y1 = y0 + m->node_height;
      if (!fr[f].used)
        fr[f].x0 = x0, fr[f].y0 = y0, fr[f].x1 = x1, fr[f].y1 = y1, fr[f].used = TRUE;
      else
        {
          fr[f].x0 = MIN (fr[f].x0, x0), fr[f].y0 = MIN (fr[f].y0, y0);
          fr[f].x1 = MAX (fr[f].x1, x1), fr[f].y1 = MAX (fr[f].y1, y1);
        }
    }
  for (guint i = c->frames->len; i > 0; i--)
    {
      Frame *f = &fr[i - 1];
      if (!f->used)
        continue;
      f->x0 -= m->module_pad, f->y0 -= m->module_pad;
      f->x1 += m->module_pad, f->y1 += m->module_pad;
      if (f->parent < 0)
        continue;
      Frame *up = &fr[f->parent];
      if (!up->used)
        up->x0 = f->x0, up->y0 = f->y0, up->x1 = f->x1, up->y1 = f->y1, up->used = TRUE;
      else
        {
          up->x0 = MIN (up->x0, f->x0), up->y0 = MIN (up->y0, f->y0);
          up->x1 = MAX (up->x1, f->x1), up->y1 = MAX (up->y1, f->y1);
        }
    }
}

static int
compare_arcs (const void *a, const void *b)
{
  guint64 x = ((const Arc *) a)->key, y = ((const Arc *) b)->key;
  return (x > y) - (x < y);
}

static const Arc *
find_arc (const Ctx *c, guint from, guint to)
{
  Arc key = { (guint64) from << 32 | to, 0 };
  return bsearch (&key, c->arcs->data, c->arcs->len, sizeof (Arc), compare_arcs);
}

static void
put (GArray *pts, double x, double y)
{
  double p[2] = { x, y };
  g_array_append_vals (pts, p, 2);
}

/* A straight segment as a cubic, from the last point to (X, Y). */
static void
line_to (GArray *pts, double x, double y)
{
  double x0 = g_array_index (pts, double, pts->len - 2);
  double y0 = g_array_index (pts, double, pts->len - 1);
  put (pts, x0 + (x - x0) / 3, y0 + (y - y0) / 3);
  put (pts, x0 + 2 * (x - x0) / 3, y0 + 2 * (y - y0) / 3);
  put (pts, x, y);
}

/* A bend from the last point to (X, Y), leaving and arriving vertically. */
static void
bend_to (GArray *pts, double x, double y)
{
  double x0 = g_array_index (pts, double, pts->len - 2);
  double y0 = g_array_index (pts, double, pts->len - 1);
  double mid = (y - y0) / 2;
  if (fabs (mid) < 1e-9)
    mid = 1e-9;
  put (pts, x0, y0 + mid);
  put (pts, x, y - mid);
  put (pts, x, y);
}

/* The points of box edge E, appended to PTS: bottom centre of the source to top centre of the
 * target. */
static void
route_edge (const Ctx *c, guint e, GArray *pts)
{
  const CsLayoutMetrics *m = &c->m;
  guint a = c->e_from[e], b = c->e_to[e];
  double x0 = c->bx[a], y0 = c->by[a] + m->node_height;
  double x1 = c->bx[b], y1 = c->by[b];
  double g = m->v_gap > 0 ? m->v_gap : 1e-3;
  put (pts, x0, y0);
  if (a >= b || y1 <= y0)
    {
      /* Against the order (a collapsed block that is not convex): an S curve that leaves
       * downwards and arrives from above. */
      double d = MAX (g, (y0 - y1) / 2 + g);
      put (pts, x0, y0 + d);
      put (pts, x1, y1 - d);
      put (pts, x1, y1);
      return;
    }
  const Arc *arc = find_arc (c, a, b);
  if (arc)
    {
      /* The shortcut: out into its lane under the fork, down, and in over the join. */
      const Region *r = &g_array_index (c->regions, Region, arc->region);
      double lane = r->x + r->lane;
      double top = y0 + g, bottom = y1 - g;
      if (bottom < top)
        top = bottom = (y0 + y1) / 2;
      bend_to (pts, lane, top);
      line_to (pts, lane, bottom);
      bend_to (pts, x1, y1);
      return;
    }
  if (x0 == x1)
    {
      line_to (pts, x1, y1);
      return;
    }
  if (c->entry_from[b] == a && y1 - y0 > g)
    {
      /* Into a column: sideways in the gap under the fork, where nothing else is. */
      bend_to (pts, x1, y0 + g);
      line_to (pts, x1, y1);
      return;
    }
  if (c->down[a] && c->ipdom[a] == b && y1 - y0 > g)
    {
      /* Out of a column: down its own lane, sideways in the gap over the join. */
      line_to (pts, x0, y1 - g);
      bend_to (pts, x1, y1);
      return;
    }
  bend_to (pts, x1, y1);
}

static CsLayout *
assemble (Ctx *c, GStringChunk *chunk, GError **error)
{
  const CsLayoutMetrics *m = &c->m;
  Layout *l = g_new0 (Layout, 1);
  CsLayout *out = &l->pub;
  l->strings = chunk;

  if (c->arcs->len > 1)
    qsort (c->arcs->data, c->arcs->len, sizeof (Arc), compare_arcs);
  GArray *pts = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree guint *pstart = g_new (guint, c->n_edges + 1);
  for (guint e = 0; e < c->n_edges; e++)
    {
      if (cancelled (c, error))
        {
          g_array_free (pts, TRUE);
          l->strings = NULL;
          cs_layout_free (out);
          return NULL;
        }
      pstart[e] = pts->len;
      route_edge (c, e, pts);
    }
  pstart[c->n_edges] = pts->len;

  /* Move the drawing so that everything in it starts at (0, 0). */
  double minx = G_MAXDOUBLE, miny = G_MAXDOUBLE, maxx = -G_MAXDOUBLE, maxy = -G_MAXDOUBLE;
#define COVER(x0, y0, x1, y1) \
  (minx = MIN (minx, x0), miny = MIN (miny, y0), maxx = MAX (maxx, x1), maxy = MAX (maxy, y1))
  for (guint b = 0; b < c->B; b++)
    COVER (c->bx[b] - m->node_width / 2, c->by[b], c->bx[b] + m->node_width / 2,
           c->by[b] + m->node_height);
  for (guint i = 0; i < c->frames->len; i++)
    {
      const Frame *f = &g_array_index (c->frames, Frame, i);
      if (f->used)
        COVER (f->x0, f->y0, f->x1, f->y1);
    }
  double *p = (double *) pts->data;
  for (guint i = 0; i + 1 < pts->len; i += 2)
    COVER (p[i], p[i + 1], p[i], p[i + 1]);
#undef COVER
  if (c->B == 0)
    minx = miny = maxx = maxy = 0;
  for (guint i = 0; i + 1 < pts->len; i += 2)
    p[i] -= minx, p[i + 1] -= miny;
  out->width = maxx - minx;
  out->height = maxy - miny;

  out->n_boxes = c->B;
  out->boxes = g_new0 (CsLayoutBox, MAX (c->B, 1));
  for (guint b = 0; b < c->B; b++)
    {
      CsLayoutBox *box = &out->boxes[b];
      box->node = c->box_node[b];
      box->module = c->box_module[b] != NONE
                  ? g_array_index (c->mt.mods, Module, c->box_module[b]).path : NULL;
      box->n_members = c->box_members[b];
      box->w = m->node_width;
      box->h = m->node_height;
      box->x = c->bx[b] - m->node_width / 2 - minx;
      box->y = c->by[b] - miny;
    }
  out->box_of_node = c->box_of_node;
  c->box_of_node = NULL;

  out->n_edges = c->n_edges;
  out->edges = g_new0 (CsLayoutEdge, MAX (c->n_edges, 1));
  l->points = (double *) g_array_free (pts, FALSE);
  for (guint e = 0; e < c->n_edges; e++)
    {
      CsLayoutEdge *edge = &out->edges[e];
      edge->from = c->e_from[e];
      edge->to = c->e_to[e];
      edge->n_points = (pstart[e + 1] - pstart[e]) / 2;
      edge->points = l->points + pstart[e];
    }

  guint nf = 0;
  for (guint i = 0; i < c->frames->len; i++)
    nf += g_array_index (c->frames, Frame, i).used;
  out->frames = g_new0 (CsLayoutFrame, MAX (nf, 1));
  for (guint i = 0; i < c->frames->len; i++)
    {
      const Frame *f = &g_array_index (c->frames, Frame, i);
      if (!f->used)
        continue;
      CsLayoutFrame *of = &out->frames[out->n_frames++];
      of->module = g_array_index (c->mt.mods, Module, f->module).path;
      of->x = f->x0 - minx;
      of->y = f->y0 - miny;
      of->w = f->x1 - f->x0;
      of->h = f->y1 - f->y0;
      of->depth = f->depth;
    }
  return out;
}

CsLayout *
cs_layout_compute (const CsGraph *g, GHashTable *collapsed, gboolean fold,
                   const CsLayoutMetrics *m, GCancellable *cancellable, GError **error)
{
  if (g == NULL || !g->finalized || g->n_consumers == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "the graph is not finalized");
      return NULL;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  Ctx c = { 0 };
  c.g = g;
  c.cancellable = cancellable;
  c.n = cs_graph_n_nodes (g);
  sane_metrics (m, &c.m);
  GStringChunk *chunk = g_string_chunk_new (4096);

  build_modules (&c, collapsed, chunk);
  CsLayout *out = NULL;
  if (build_boxes (&c, fold, error) && build_edges (&c, error)
      && build_postdominators (&c, error) && build_structure (&c, error))
    {
      c.bx = g_new0 (double, c.B + 1);
      c.by = g_new0 (double, c.B + 1);
      measure (&c);
      place_x (&c);
      if (place_y (&c, error))
        {
          place_frames (&c);
          out = assemble (&c, chunk, error);
        }
    }
  /* A cancellable that fires at the very end still wins, as documented. */
  if (out && g_cancellable_set_error_if_cancelled (cancellable, error))
    {
      cs_layout_free (out);
      out = NULL;
      chunk = NULL;   /* freed with the layout */
    }
  if (out == NULL && chunk)
    g_string_chunk_free (chunk);
  ctx_clear (&c);
  return out;
}

void
cs_layout_free (CsLayout *layout)
{
  if (layout == NULL)
    return;
  Layout *l = (Layout *) layout;
  g_free (layout->boxes);
  g_free (layout->edges);
  g_free (layout->frames);
  g_free (layout->box_of_node);
  g_free (l->points);
  if (l->strings)
    g_string_chunk_free (l->strings);
  g_free (l);
}

gint
cs_layout_hit (const CsLayout *layout, double x, double y)
{
  if (layout == NULL)
    return -1;
  /* A scan: a few thousand comparisons per pointer motion is far below a frame's time. */
  for (guint i = 0; i < layout->n_boxes; i++)
    {
      const CsLayoutBox *b = &layout->boxes[i];
      if (x >= b->x && x <= b->x + b->w && y >= b->y && y <= b->y + b->h)
        return (gint) i;
    }
  return -1;
}
