/* Layout of a graph for drawing: series-parallel columns found from post-dominators, rows from a
 * weighted longest path, frames around expanded modules and Bezier curves for the edges. */
#include "cs-layout.h"
#include "cs-stats.h"

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
 *    auxiliary classifier that never rejoins), the column leading to the network's output
 *    stays under v and the others go to its right. Each box is placed once, by the first column
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
      Module m = { g_string_chunk_insert_len (t->chunk, path, cut), parent, 0, NONE, NONE,
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
  double lane;             /* the rightmost shortcut lane inside, or -G_MAXDOUBLE */
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
  double lext, rext;             /* extent left and right of its axis, margin included */
  double margin;                 /* room for the frames around its content */
  double y0, y1;                 /* the rows it spans, frames included */
  double off;                    /* its axis relative to the region's */
} Column;

typedef struct {
  guint fork, join;              /* boxes; NONE for the virtual source, B for the sink */
  guint first_col, last_col, main_col;
  gboolean arc, side;
  guint nb, maxd;
  gint common;
  double lext, rext, lane, x;    /* lane: the shortcut's x, relative to x */
  double y0, y1;
} Region;

enum { TASK_CHAIN, TASK_FILL, TASK_TREE };

typedef struct {
  guint kind, target;            /* CHAIN: a column; FILL, TREE: a region */
  guint e, t, from;              /* CHAIN: start, stop, fork; FILL: -, join, fork;
                                    TREE: virtual-tree node, join, fork */
  guint off, len;                /* FILL: its entries in ents */
} Task;

/* A node of the virtual tree of a region's entries in the post-dominator tree. */
typedef struct {
  guint box;
  guint first, next;             /* children and siblings, in the order of their first entry */
  guint key;                     /* the rank of its first entry among the fork's consumers */
  gboolean entry;                /* a consumer of the fork, not only where entries meet */
  guint8 reach, train;           /* some entry below leads to the output; all are train-only */
  guint height;                  /* the longest path ahead of an entry below */
} VNode;

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

  guint *tin, *tout;             /* DFS entry and exit times in the post-dominator tree */

  GArray *items, *cols, *regions, *tasks, *ents, *arcs, *vnodes;
  guint8 *placed, *down;
  guint *entry_from;             /* the fork whose column a box starts, or NONE */
  guint *stamp_of, *group_of, stamp;
  guint8 *reaches_out;           /* per box: a path leads from it to the network's output */
  guint *height;                 /* per box: boxes on the longest path from it to a sink */

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
  GArray *arrays[] = { c->frames, c->items, c->cols, c->regions, c->tasks, c->ents, c->arcs,
                       c->vnodes };
  for (guint i = 0; i < G_N_ELEMENTS (arrays); i++)
    if (arrays[i])
      g_array_free (arrays[i], TRUE);
  gpointer blocks[] = { c->box_node, c->box_module, c->box_members, c->box_of_node,
                        c->box_frame, c->e_from, c->e_to, c->in_start, c->out_start,
                        c->out_adj, c->ipdom, c->depth, c->jump, c->tin, c->tout,
                        c->placed, c->down,
                        c->entry_from, c->stamp_of, c->group_of, c->reaches_out, c->height,
                        c->bx, c->by };
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
          Frame f = { i, outer, frame_depth (c, outer) + 1, 0, 0, 0, 0, -G_MAXDOUBLE, FALSE };
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
      else if (fold && cs_stats_foldable (g, node))
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

/* A frame around a single box says nothing that the box does not (with FOLD, FractalNet's
 * conv-bn-relu unit is one box): such frames go, and their box belongs to the frame around
 * them. A frame's count includes its sub-frames', so a dropped frame's sub-frames go too. */
static void
prune_frames (Ctx *c)
{
  guint nf = c->frames->len;
  if (nf == 0)
    return;
  Frame *fr = (Frame *) c->frames->data;
  g_autofree guint *count = g_new0 (guint, nf);
  g_autofree gint *remap = g_new (gint, nf);
  for (guint b = 0; b < c->B; b++)
    if (c->box_frame[b] >= 0)
      count[c->box_frame[b]]++;
  for (guint i = nf; i > 0; i--)
    if (fr[i - 1].parent >= 0)
      count[fr[i - 1].parent] += count[i - 1];
  for (guint i = 0; i < nf; i++)
    {
      gint up = fr[i].parent >= 0 ? remap[fr[i].parent] : NO_FRAME;
      if (count[i] >= 2)
        {
          remap[i] = (gint) i;
          fr[i].parent = up;
          fr[i].depth = frame_depth (c, up) + 1;
        }
      else
        remap[i] = up;
    }
  for (guint b = 0; b < c->B; b++)
    if (c->box_frame[b] >= 0)
      c->box_frame[b] = remap[c->box_frame[b]];
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

  /* DFS times of the tree, for ancestor tests in O(1): children by counting sort, then an
   * iterative walk from T. */
  g_autofree guint *cstart = g_new0 (guint, B + 2);
  g_autofree guint *child = g_new (guint, MAX (B, 1));
  for (guint b = 0; b < B; b++)
    cstart[c->ipdom[b] + 1]++;
  for (guint b = 0; b <= B; b++)
    cstart[b + 1] += cstart[b];
  g_autofree guint *fill = g_memdup2 (cstart, (B + 2) * sizeof (guint));
  for (guint b = 0; b < B; b++)
    child[fill[c->ipdom[b]]++] = b;
  c->tin = g_new (guint, B + 1);
  c->tout = g_new (guint, B + 1);
  g_autofree guint *stack = g_new (guint, B + 1);
  g_autofree guint *next = g_memdup2 (cstart, (B + 1) * sizeof (guint));
  guint sp = 0, clock = 0;
  stack[sp++] = T;
  c->tin[T] = clock++;
  while (sp > 0)
    {
      guint v = stack[sp - 1];
      if (next[v] < cstart[v + 1])
        {
          guint w = child[next[v]++];
          c->tin[w] = clock++;
          stack[sp++] = w;
        }
      else
        {
          c->tout[v] = clock++;
          sp--;
        }
    }
  return TRUE;
}

/* ---- Structure -------------------------------------------------------------------------- */

static guint
new_region (Ctx *c, guint fork, guint join)
{
  Region r = { fork, join, NONE, NONE, NONE, FALSE, join == c->B, 0, 0, UNSET_FRAME,
               0, 0, 0, 0, 0, 0 };
  g_array_append_val (c->regions, r);
  return c->regions->len - 1;
}

static guint
new_column (Ctx *c, guint region)
{
  Column col = { NONE, NONE, NONE, 0, 0, UNSET_FRAME, 0, 0, 0, 0, 0, 0 };
  g_array_append_val (c->cols, col);
  guint ci = c->cols->len - 1;
  Region *r = &g_array_index (c->regions, Region, region);
  if (r->last_col == NONE)
    r->first_col = ci;
  else
    g_array_index (c->cols, Column, r->last_col).next = ci;
  r->last_col = ci;
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

/* Whether A is B or above it in the post-dominator tree. */
static gboolean
pd_above (const Ctx *c, guint a, guint b)
{
  return c->tin[a] <= c->tin[b] && c->tout[b] <= c->tout[a];
}

/* Sorting with the context passed along, not in a global: layouts may run in threads. */
static gint
compare_tin (gconstpointer a, gconstpointer b, gpointer data)
{
  const Ctx *c = data;
  guint x = c->tin[*(const guint *) a], y = c->tin[*(const guint *) b];
  return (x > y) - (x < y);
}

static int
compare_sibling (const void *a, const void *b)
{
  const guint *x = a, *y = b;   /* (parent, key, index) */
  for (guint i = 0; i < 3; i++)
    if (x[i] != y[i])
      return x[i] < y[i] ? -1 : 1;
  return 0;
}

/* Sorts the entries of region R (consumers of fork U, NONE for the virtual source) into
 * columns, the region ending at T.
 *
 * Two entries share a column when their paths up the post-dominator tree meet below T; the
 * columns are the subtrees of T in the virtual tree of the entries (the entries, T, and the
 * meeting points of entries next to each other in DFS order), and a meeting point j below T
 * makes a sub-region from U to j in its column (FractalNet's nested columns). Building that
 * tree once per region costs O(k log k) for k entries, where splitting the entries level by
 * level would cost O(k^2) for a chain of joins each taking one more consumer of U. */
static void
fill_region (Ctx *c, guint r, guint u, guint t, guint off, guint len)
{
  g_autofree guint *ent = g_memdup2 (&g_array_index (c->ents, guint, off), len * sizeof (guint));
  g_autofree guint *pts = g_new (guint, 2 * len + 1);
  guint n = 0;
  c->stamp++;
  for (guint i = 0; i < len; i++)
    {
      guint e = ent[i];
      if (e == t)
        {
          /* A consumer of the fork that is the region's own join: a shortcut. */
          if (u != NONE)
            add_arc (c, u, t, r);
          continue;
        }
      if (c->depth[e] <= c->depth[t] || !pd_above (c, t, e))
        {
          /* T does not post-dominate E, which a DAG does not give: a column of its own. */
          guint col = new_column (c, r);
          push_task (c, TASK_CHAIN, col, e, t, u, 0, 0);
          continue;
        }
      c->stamp_of[e] = c->stamp;
      c->group_of[e] = i;      /* the entry's rank: columns keep the consumers' order */
      pts[n++] = e;
    }
  if (n == 0)
    return;

  /* The virtual tree: the entries sorted by DFS order, the meeting points of neighbours,
   * and T above them all. */
  g_qsort_with_data (pts, n, sizeof (guint), compare_tin, c);
  guint m = n;
  for (guint i = 0; i + 1 < n; i++)
    pts[m++] = pd_common (c, pts[i], pts[i + 1]);
  pts[m++] = t;
  g_qsort_with_data (pts, m, sizeof (guint), compare_tin, c);
  guint k = 0;
  for (guint i = 0; i < m; i++)
    if (k == 0 || pts[i] != pts[k - 1])
      pts[k++] = pts[i];

  guint base = c->vnodes->len;
  g_array_set_size (c->vnodes, base + k);
  VNode *vn = &g_array_index (c->vnodes, VNode, base);
  g_autofree guint *stack = g_new (guint, k);
  g_autofree guint *parent = g_new (guint, k);
  guint sp = 0;
  for (guint i = 0; i < k; i++)
    {
      guint b = pts[i];
      gboolean entry = c->stamp_of[b] == c->stamp;
      vn[i] = (VNode) { b, NONE, NONE, entry ? c->group_of[b] : G_MAXUINT, entry,
                        entry && c->reaches_out[b],
                        !entry || (cs_graph_node (c->g, c->box_node[b])->flags
                                   & CS_NODE_TRAIN_ONLY) != 0,
                        entry ? c->height[b] : 0 };
      while (sp > 0 && !pd_above (c, pts[stack[sp - 1]], b))
        sp--;
      parent[i] = sp > 0 ? stack[sp - 1] : NONE;
      stack[sp++] = i;
    }
  /* What a column needs to know of its entries, gathered up the tree (children follow their
   * parent in DFS order). */
  for (guint i = k; i > 1; i--)
    {
      VNode *ch = &vn[i - 1], *up = &vn[parent[i - 1]];
      up->key = MIN (up->key, ch->key);
      up->reach |= ch->reach;
      up->train &= ch->train;
      up->height = MAX (up->height, ch->height);
    }
  /* Children linked in the order of their first entry. */
  g_autofree guint *sib = g_new (guint, 3 * MAX (k - 1, 1));
  for (guint i = 1; i < k; i++)
    sib[3 * (i - 1)] = parent[i], sib[3 * (i - 1) + 1] = vn[i].key, sib[3 * (i - 1) + 2] = i;
  qsort (sib, k - 1, 3 * sizeof (guint), compare_sibling);
  for (guint i = k - 1; i > 0; i--)
    {
      guint child = sib[3 * (i - 1) + 2], up = sib[3 * (i - 1)];
      vn[child].next = vn[up].first;
      vn[up].first = base + child;
    }
  push_task (c, TASK_TREE, r, base, t, u, 0, 0);
}

/* Of the columns of a region that never rejoins, the one that stays under the fork: the
 * network's own path rather than a side branch. Best is a column that leads to the network's
 * output, then one that is not training-only, then the one with the longest path ahead of it
 * (GoogLeNet: inception_4b's branches rather than the first auxiliary classifier). */
static guint
main_child (const Ctx *c, guint p)
{
  guint best = NONE;
  guint64 best_score = 0;
  for (guint ch = g_array_index (c->vnodes, VNode, p).first; ch != NONE;
       ch = g_array_index (c->vnodes, VNode, ch).next)
    {
      const VNode *v = &g_array_index (c->vnodes, VNode, ch);
      guint64 score = (guint64) v->reach << 34 | (guint64) !v->train << 33
                    | ((guint64) v->height + 1);
      if (best == NONE || score > best_score)
        best = ch, best_score = score;
    }
  return best;
}

/* The columns of region R under virtual-tree node P (the region's join, or a meeting point
 * of entries below it): one per child, a chain for a single entry, a sub-region from the same
 * fork U to the child's box for several. */
static void
fill_tree (Ctx *c, guint r, guint p, guint u)
{
  guint t = g_array_index (c->vnodes, VNode, p).box;
  guint main = g_array_index (c->regions, Region, r).side ? main_child (c, p) : NONE;
  typedef struct { guint col, node, sub; } Plan;
  GArray *plans = g_array_new (FALSE, FALSE, sizeof (Plan));
  for (guint ch = g_array_index (c->vnodes, VNode, p).first; ch != NONE;
       ch = g_array_index (c->vnodes, VNode, ch).next)
    {
      const VNode v = g_array_index (c->vnodes, VNode, ch);
      Plan plan = { new_column (c, r), ch, NONE };
      if (ch == main)
        g_array_index (c->regions, Region, r).main_col = plan.col;
      if (v.first != NONE)
        {
          plan.sub = new_region (c, u, v.box);
          append_item (c, plan.col, ITEM_REGION, plan.sub);
          if (v.entry && u != NONE)
            add_arc (c, u, v.box, plan.sub);
        }
      g_array_append_val (plans, plan);
    }
  /* Pushed last to first, each sub-region's columns before its chain, so that the columns
   * are laid out left to right and top down. */
  for (guint i = plans->len; i > 0; i--)
    {
      const Plan *plan = &g_array_index (plans, Plan, i - 1);
      guint box = g_array_index (c->vnodes, VNode, plan->node).box;
      push_task (c, TASK_CHAIN, plan->col, box, t, plan->sub == NONE ? u : NONE, 0, 0);
      if (plan->sub != NONE)
        push_task (c, TASK_TREE, plan->sub, plan->node, box, u, 0, 0);
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
      else if (task.kind == TASK_FILL)
        fill_region (c, task.target, task.from, task.t, task.off, task.len);
      else
        fill_tree (c, task.target, task.e, task.from);
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
  c->vnodes = g_array_new (FALSE, FALSE, sizeof (VNode));
  c->placed = g_new0 (guint8, B + 1);
  c->down = g_new0 (guint8, B + 1);
  c->entry_from = g_new (guint, B + 1);
  c->stamp_of = g_new0 (guint, B + 1);
  c->group_of = g_new (guint, B + 1);
  for (guint b = 0; b <= B; b++)
    c->entry_from[b] = NONE;

  /* What side regions need to tell the network's path from a side branch. */
  c->reaches_out = g_new0 (guint8, B + 1);
  c->height = g_new0 (guint, B + 1);
  const CsNode *out = cs_graph_output (c->g);
  if (out)
    c->reaches_out[c->box_of_node[out->id]] = 1;
  for (guint v = B; v > 0; v--)
    for (guint k = c->out_start[v - 1]; k < c->out_start[v]; k++)
      {
        guint w = c->out_adj[k];
        c->reaches_out[v - 1] |= c->reaches_out[w];
        c->height[v - 1] = MAX (c->height[v - 1], c->height[w] + 1);
      }

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

/* The right edge, from the axis of column COL, of what COL holds between rows Y0 and Y1, the
 * margin of COL itself left out. Looks at no more than BUDGET items in all; past that, a
 * column counts whole, as if it filled every row: never an overlap, at worst a side column
 * further right, and the work per side column stays bounded. */
static double
band_right (const Ctx *c, guint col, double y0, double y1, guint *budget)
{
  const CsLayoutMetrics *m = &c->m;
  const Column *cl = &g_array_index (c->cols, Column, col);
  double right = -G_MAXDOUBLE;
  for (guint ii = cl->first; ii != NONE; ii = g_array_index (c->items, Item, ii).next)
    {
      if (*budget == 0)
        return cl->rext - cl->margin;
      (*budget)--;
      const Item *it = &g_array_index (c->items, Item, ii);
      if (it->kind == ITEM_BOX)
        {
          double pad = m->module_pad * frame_depth (c, c->box_frame[it->index]);
          if (c->by[it->index] - pad < y1 && c->by[it->index] + m->node_height + pad > y0)
            right = MAX (right, m->node_width / 2);
          continue;
        }
      const Region *r = &g_array_index (c->regions, Region, it->index);
      if (r->y0 >= y1 || r->y1 <= y0)
        continue;
      for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
        {
          const Column *sub = &g_array_index (c->cols, Column, ci);
          if (sub->nb == 0 || sub->y0 >= y1 || sub->y1 <= y0)
            continue;
          double inner = band_right (c, ci, y0, y1, budget);
          if (inner > -G_MAXDOUBLE)
            right = MAX (right, sub->off + inner + sub->margin);
        }
      if (r->arc)
        right = MAX (right, r->rext);
    }
  return right;
}

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
      r->y0 = G_MAXDOUBLE, r->y1 = -G_MAXDOUBLE;
      for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
        {
          Column *col = &g_array_index (c->cols, Column, ci);
          col->nb = 0, col->maxd = 0, col->common = UNSET_FRAME, col->lext = col->rext = 0;
          col->y0 = G_MAXDOUBLE, col->y1 = -G_MAXDOUBLE;
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
                  double pad = m->module_pad * frame_depth (c, f);
                  col->y0 = MIN (col->y0, c->by[it->index] - pad);
                  col->y1 = MAX (col->y1, c->by[it->index] + m->node_height + pad);
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
                      col->y0 = MIN (col->y0, sub->y0);
                      col->y1 = MAX (col->y1, sub->y1);
                    }
                }
            }
          if (col->nb > 0)
            {
              r->common = frame_common (c, r->common, col->common);
              r->maxd = MAX (r->maxd, col->maxd);
              r->nb += col->nb;
              r->y0 = MIN (r->y0, col->y0);
              r->y1 = MAX (r->y1, col->y1);
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
          col->margin = m->module_pad * (col->maxd - MIN (col->maxd, shared));
          col->lext += col->margin;
          col->rext += col->margin;
          total += col->lext + col->rext;
          shown++;
        }
      if (shown > 1)
        total += (shown - 1) * m->h_gap;
      r->lext = r->rext = 0;
      if (shown > 0 && r->side)
        {
          /* The column with the network's output stays under the fork; the rest go right, the
           * first of them only as far as the main column is wide over the rows it spans
           * (GoogLeNet's first classifier beside inception_4b, not beyond the second one). */
          const Column *mc = &g_array_index (c->cols, Column, main);
          r->lext = mc->lext;
          r->rext = mc->rext;
          double pos = -G_MAXDOUBLE;
          for (guint ci = r->first_col; ci != NONE; ci = g_array_index (c->cols, Column, ci).next)
            {
              Column *col = &g_array_index (c->cols, Column, ci);
              if (col->nb == 0 || ci == main)
                continue;
              double top = r->fork < c->B ? c->by[r->fork] + m->node_height : col->y0;
              guint budget = 256;
              double beside = MAX (band_right (c, main, top, col->y1, &budget) + mc->margin, half);
              col->off = MAX (pos, beside) + m->h_gap + col->lext;
              pos = col->off + col->rext;
              r->rext = MAX (r->rext, pos);
            }
        }
      else if (shown == 1)
        {
          /* One column keeps the fork's axis, whatever hangs on its right (shortcuts). */
          const Column *mc = &g_array_index (c->cols, Column, main);
          r->lext = mc->lext;
          r->rext = mc->rext;
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
          /* The shortcut passes outside the frames of the block it jumps over (those around
           * the columns but not around the fork), as the papers draw it. */
          double base = MAX (r->rext, half);
          if (r->nb > 0 && r->fork < c->B)
            {
              gint outer = frame_common (c, r->common, c->box_frame[r->fork]);
              base += m->module_pad * (frame_depth (c, r->common) - frame_depth (c, outer));
            }
          r->lane = base + m->h_gap / 2;
          r->rext = base + m->h_gap;
          if (r->fork < c->B && r->join < c->B)
            {
              r->y0 = MIN (r->y0, c->by[r->fork] + m->node_height);
              r->y1 = MAX (r->y1, c->by[r->join]);
            }
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
  /* A shortcut's lane lies outside the block it jumps over but inside the frame around both
   * ends (ResNet's stage around its blocks' shortcuts). The columns' margins leave room. */
  for (guint ri = 0; ri < c->regions->len; ri++)
    {
      const Region *r = &g_array_index (c->regions, Region, ri);
      if (!r->arc || r->nb == 0 || r->fork >= c->B || r->join >= c->B)
        continue;
      gint f = frame_common (c, frame_common (c, r->common, c->box_frame[r->fork]),
                             c->box_frame[r->join]);
      if (f >= 0)
        fr[f].lane = MAX (fr[f].lane, r->x + r->lane);
    }
  for (guint i = c->frames->len; i > 0; i--)
    {
      Frame *f = &fr[i - 1];
      if (!f->used)
        continue;
      f->x1 = MAX (f->x1, f->lane);
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
  if (c->arcs->len == 0)
    return NULL;
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
  if (build_boxes (&c, fold, error) && (prune_frames (&c), build_edges (&c, error))
      && build_postdominators (&c, error) && build_structure (&c, error))
    {
      c.bx = g_new0 (double, c.B + 1);
      c.by = g_new0 (double, c.B + 1);
      if (place_y (&c, error))
        {
          measure (&c);
          place_x (&c);
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
