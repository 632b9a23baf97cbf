/* Layout of graphs for drawing (cs-layout): columns of branches, folded and collapsed boxes,
 * frames, edge ends, hit testing and cancellation, on bundled models and odd hand-made graphs. */
#include "cs-layout.h"
#include "cs-stats.h"
#include "cs-zoo.h"

#include <math.h>
#include <string.h>

#define EPS 1e-6

static CsGraph *
load (const char *name)
{
  GError *error = NULL;
  CsGraph *g = cs_load_model (name, &error);
  g_assert_no_error (error);
  return g;
}

static CsLayout *
lay_out (const CsGraph *g, GHashTable *collapsed, gboolean fold)
{
  GError *error = NULL;
  CsLayout *l = cs_layout_compute (g, collapsed, fold, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (l);
  return l;
}

static double
cx (const CsLayoutBox *b)
{
  return b->x + b->w / 2;
}

static gboolean
boxes_overlap (const CsLayoutBox *a, const CsLayoutBox *b)
{
  return a->x < b->x + b->w - EPS && b->x < a->x + a->w - EPS
      && a->y < b->y + b->h - EPS && b->y < a->y + a->h - EPS;
}

static gboolean
y_overlap (const CsLayoutBox *a, const CsLayoutBox *b)
{
  return a->y < b->y + b->h - EPS && b->y < a->y + a->h - EPS;
}

/* Whether module path INNER is PATH or inside it. */
static gboolean
in_module (const char *inner, const char *path)
{
  gsize n = strlen (path);
  return strncmp (inner, path, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

/* The module path a box is drawn in: its collapsed module, or its node's module. */
static const char *
box_module (const CsGraph *g, const CsLayoutBox *b)
{
  return b->module ? b->module : cs_graph_node (g, b->node)->module;
}

static const CsLayout *sort_layout;

static int
compare_by_y (const void *a, const void *b)
{
  double ya = sort_layout->boxes[*(const guint *) a].y;
  double yb = sort_layout->boxes[*(const guint *) b].y;
  return (ya > yb) - (ya < yb);
}

/* No two boxes overlap: sorted by top, each box is compared only with the boxes that start
 * above its bottom, so a layout of thousands of boxes is checked in n log n plus its rows. */
static void
assert_no_overlap (const CsLayout *l)
{
  g_autofree guint *order = g_new (guint, MAX (l->n_boxes, 1));
  for (guint i = 0; i < l->n_boxes; i++)
    order[i] = i;
  sort_layout = l;
  qsort (order, l->n_boxes, sizeof (guint), compare_by_y);
  for (guint i = 0; i < l->n_boxes; i++)
    {
      const CsLayoutBox *a = &l->boxes[order[i]];
      for (guint j = i + 1; j < l->n_boxes; j++)
        {
          const CsLayoutBox *b = &l->boxes[order[j]];
          if (b->y >= a->y + a->h - EPS)
            break;
          if (boxes_overlap (a, b))
            g_error ("boxes %u and %u overlap: (%g,%g %gx%g) and (%g,%g %gx%g)", order[i],
                     order[j], a->x, a->y, a->w, a->h, b->x, b->y, b->w, b->h);
        }
    }
}

/* The same, pair by pair, for graphs of a few hundred boxes. */
static void
assert_no_overlap_pairs (const CsLayout *l)
{
  for (guint i = 0; i < l->n_boxes; i++)
    for (guint j = i + 1; j < l->n_boxes; j++)
      g_assert_false (boxes_overlap (&l->boxes[i], &l->boxes[j]));
}

static void
assert_point (const double *p, double x, double y)
{
  g_assert_cmpfloat_with_epsilon (p[0], x, 1e-6);
  g_assert_cmpfloat_with_epsilon (p[1], y, 1e-6);
}

/* What every layout must satisfy, whatever the graph: every node shown by a box that shows it,
 * members adding up, each graph edge between two boxes drawn once from the bottom centre of
 * its source to the top centre of its target, everything finite and inside the drawing. */
static void
assert_sane (const CsGraph *g, const CsLayout *l)
{
  guint n = cs_graph_n_nodes (g);
  g_assert_cmpuint (l->n_boxes, >=, 1);
  g_assert_cmpuint (l->n_boxes, <=, n);
  g_assert_true (isfinite (l->width) && isfinite (l->height));
  guint members = 0;
  for (guint i = 0; i < l->n_boxes; i++)
    {
      const CsLayoutBox *b = &l->boxes[i];
      g_assert_true (isfinite (b->x) && isfinite (b->y));
      g_assert_cmpfloat (b->w, >, 0);
      g_assert_cmpfloat (b->h, >, 0);
      g_assert_cmpfloat (b->x, >=, -EPS);
      g_assert_cmpfloat (b->y, >=, -EPS);
      g_assert_cmpfloat (b->x + b->w, <=, l->width + EPS);
      g_assert_cmpfloat (b->y + b->h, <=, l->height + EPS);
      g_assert_cmpuint (b->node, <, n);
      g_assert_cmpuint (l->box_of_node[b->node], ==, i);
      g_assert_cmpuint (b->n_members, >=, 1);
      members += b->n_members;
    }
  g_assert_cmpuint (members, ==, n);
  g_autofree guint *count = g_new0 (guint, l->n_boxes);
  for (guint v = 0; v < n; v++)
    {
      g_assert_cmpuint (l->box_of_node[v], <, l->n_boxes);
      count[l->box_of_node[v]]++;
    }
  for (guint i = 0; i < l->n_boxes; i++)
    g_assert_cmpuint (count[i], ==, l->boxes[i].n_members);

  g_autoptr (GHashTable) drawn = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autofree gint64 *keys = g_new (gint64, MAX (l->n_edges, 1));
  for (guint e = 0; e < l->n_edges; e++)
    {
      const CsLayoutEdge *edge = &l->edges[e];
      g_assert_cmpuint (edge->from, <, l->n_boxes);
      g_assert_cmpuint (edge->to, <, l->n_boxes);
      g_assert_cmpuint (edge->from, !=, edge->to);
      g_assert_cmpuint (edge->n_points, >=, 4);
      g_assert_cmpuint ((edge->n_points - 1) % 3, ==, 0);
      const CsLayoutBox *a = &l->boxes[edge->from], *b = &l->boxes[edge->to];
      assert_point (edge->points, cx (a), a->y + a->h);
      assert_point (edge->points + 2 * (edge->n_points - 1), cx (b), b->y);
      for (guint k = 0; k < 2 * edge->n_points; k++)
        g_assert_true (isfinite (edge->points[k]));
      keys[e] = (gint64) edge->from << 32 | edge->to;
      g_assert_false (g_hash_table_contains (drawn, &keys[e]));
      g_hash_table_add (drawn, &keys[e]);
    }
  for (guint v = 0; v < n; v++)
    {
      const CsNode *node = cs_graph_node (g, v);
      for (guint j = 0; j < node->n_inputs; j++)
        {
          guint a = l->box_of_node[node->inputs[j]], b = l->box_of_node[v];
          gint64 key = (gint64) a << 32 | b;
          if (a != b)
            g_assert_true (g_hash_table_contains (drawn, &key));
        }
    }

  for (guint f = 0; f < l->n_frames; f++)
    {
      const CsLayoutFrame *fr = &l->frames[f];
      g_assert_nonnull (fr->module);
      g_assert_cmpuint (fr->depth, >=, 1);
      g_assert_cmpfloat (fr->x, >=, -EPS);
      g_assert_cmpfloat (fr->y, >=, -EPS);
      g_assert_cmpfloat (fr->x + fr->w, <=, l->width + EPS);
      g_assert_cmpfloat (fr->y + fr->h, <=, l->height + EPS);
    }
}

/* Frames enclose exactly their module's boxes, with padding, and their sub-frames; for
 * networks whose modules are contiguous, no other box enters a frame. */
static void
assert_frames_tight (const CsGraph *g, const CsLayout *l)
{
  for (guint f = 0; f < l->n_frames; f++)
    {
      const CsLayoutFrame *fr = &l->frames[f];
      guint inside = 0;
      for (guint i = 0; i < l->n_boxes; i++)
        {
          const CsLayoutBox *b = &l->boxes[i];
          gboolean mine = in_module (box_module (g, b), fr->module);
          gboolean within = b->x >= fr->x + EPS && b->y >= fr->y + EPS
                         && b->x + b->w <= fr->x + fr->w - EPS
                         && b->y + b->h <= fr->y + fr->h - EPS;
          gboolean touches = b->x < fr->x + fr->w && fr->x < b->x + b->w
                          && b->y < fr->y + fr->h && fr->y < b->y + b->h;
          if (mine)
            {
              g_assert_true (within);
              inside++;
            }
          else if (touches)
            g_error ("box %s enters the frame of %s", cs_graph_node (g, b->node)->name,
                     fr->module);
        }
      g_assert_cmpuint (inside, >=, 2);
      for (guint p = 0; p < l->n_frames; p++)
        {
          const CsLayoutFrame *up = &l->frames[p];
          if (p == f || !in_module (fr->module, up->module))
            continue;
          g_assert_cmpuint (up->depth, <, fr->depth);
          g_assert_cmpfloat (up->x, <, fr->x);
          g_assert_cmpfloat (up->y, <, fr->y);
          g_assert_cmpfloat (up->x + up->w, >, fr->x + fr->w);
          g_assert_cmpfloat (up->y + up->h, >, fr->y + fr->h);
        }
    }
}

static gint
box_named (const CsGraph *g, const CsLayout *l, const char *name)
{
  CsNode *node = cs_graph_lookup ((CsGraph *) g, name);
  g_assert_nonnull (node);
  return (gint) l->box_of_node[node->id];
}

/* VGG16 is one column: a box per row of the lecture's table with FOLD, a box per layer
 * without, one x for all, and y growing down the chain. */
static void
test_vgg16 (void)
{
  g_autoptr (CsGraph) g = load ("vgg16");
  for (int fold = 0; fold <= 1; fold++)
    {
      g_autoptr (CsLayout) l = lay_out (g, NULL, fold);
      assert_sane (g, l);
      g_assert_cmpuint (l->n_boxes, ==, fold ? 22 : cs_graph_n_nodes (g));
      g_assert_cmpuint (l->n_edges, ==, l->n_boxes - 1);
      for (guint i = 1; i < l->n_boxes; i++)
        {
          g_assert_cmpfloat_with_epsilon (cx (&l->boxes[i]), cx (&l->boxes[0]), EPS);
          g_assert_cmpfloat (l->boxes[i].y, >=, l->boxes[i - 1].y + l->boxes[i - 1].h);
          g_assert_cmpuint (l->edges[i - 1].from, ==, i - 1);
          g_assert_cmpuint (l->edges[i - 1].to, ==, i);
        }
      /* The five stages are frames, and nothing is nested. */
      g_assert_cmpuint (l->n_frames, ==, 5);
      for (guint f = 0; f < l->n_frames; f++)
        g_assert_cmpuint (l->frames[f].depth, ==, 1);
      assert_frames_tight (g, l);
    }
}

/* With FOLD, the boxes are the rows of the lecture view, in the same order, for every model. */
static void
test_fold_matches_lecture (void)
{
  g_auto (GStrv) names = cs_zoo_list ();
  for (guint m = 0; names[m]; m++)
    {
      g_autoptr (CsGraph) g = load (names[m]);
      GError *error = NULL;
      g_autoptr (CsStats) st = cs_stats_compute (g, 1, &error);
      g_assert_no_error (error);
      g_autoptr (CsLayout) l = lay_out (g, NULL, TRUE);
      assert_sane (g, l);
      g_assert_cmpuint (l->n_boxes, ==, st->folded->len);
      for (guint i = 0; i < l->n_boxes; i++)
        {
          const CsRow *row = &g_array_index (st->folded, CsRow, i);
          g_assert_cmpuint (l->boxes[i].node, ==, row->head);
          g_assert_cmpuint (l->boxes[i].n_members, ==, row->n_folded + 1);
        }
      /* A folded layer points at its producer's box. */
      for (guint v = 0; v < cs_graph_n_nodes (g); v++)
        {
          const CsNode *node = cs_graph_node (g, v);
          if (node->op == CS_OP_RELU && node->n_inputs == 1
              && g->n_consumers[node->inputs[0]] == 1
              && cs_graph_node (g, node->inputs[0])->op == CS_OP_CONV)
            g_assert_cmpuint (l->box_of_node[v], ==, l->box_of_node[node->inputs[0]]);
        }
    }
}

/* Every bundled model, folded or not: sane, and no box over another. */
static void
test_all_models (void)
{
  g_auto (GStrv) names = cs_zoo_list ();
  for (guint m = 0; names[m]; m++)
    {
      g_autoptr (CsGraph) g = load (names[m]);
      for (int fold = 0; fold <= 1; fold++)
        {
          g_autoptr (CsLayout) l = lay_out (g, NULL, fold);
          assert_sane (g, l);
          assert_no_overlap (l);
          if (l->n_boxes <= 600)
            assert_no_overlap_pairs (l);
        }
    }
}

/* The naive inception module: four columns side by side in one band, the concat under them,
 * centred under the input. */
static void
test_inception_naive (void)
{
  g_autoptr (CsGraph) g = load ("inception_naive");
  g_autoptr (CsLayout) l = lay_out (g, NULL, TRUE);
  assert_sane (g, l);
  g_assert_cmpuint (l->n_boxes, ==, 6);
  const char *names[] = { "conv_1x1", "conv_3x3", "conv_5x5", "pool" };
  const CsLayoutBox *col[4];
  for (guint i = 0; i < 4; i++)
    col[i] = &l->boxes[box_named (g, l, names[i])];
  const CsLayoutBox *concat = &l->boxes[l->n_boxes - 1];
  const CsLayoutBox *input = &l->boxes[0];
  g_assert_cmpint (cs_graph_node (g, concat->node)->op, ==, CS_OP_CONCAT);
  for (guint i = 0; i < 4; i++)
    {
      g_assert_cmpfloat (col[i]->y, >, input->y + input->h);
      g_assert_cmpfloat (concat->y, >, col[i]->y + col[i]->h);
      for (guint j = 0; j < 4; j++)
        if (i != j)
          {
            g_assert_true (y_overlap (col[i], col[j]));
            g_assert_false (boxes_overlap (col[i], col[j]));
          }
      /* Written order, left to right. */
      if (i > 0)
        g_assert_cmpfloat (col[i]->x, >=, col[i - 1]->x + col[i - 1]->w);
    }
  g_assert_cmpfloat_with_epsilon (cx (concat), cx (input), EPS);
  g_assert_cmpfloat_with_epsilon (cx (input), (cx (col[0]) + cx (col[3])) / 2, EPS);
  /* The routing: into a column, the curve bends in the gap under the input and then goes
   * straight down; out of one, straight down and a bend in the gap over the concat. */
  for (guint e = 0; e < l->n_edges; e++)
    {
      const CsLayoutEdge *edge = &l->edges[e];
      for (guint k = 0; k < edge->n_points; k++)
        {
          double y = edge->points[2 * k + 1];
          g_assert_cmpfloat (y, >=, input->y + input->h - EPS);
          g_assert_cmpfloat (y, <=, concat->y + EPS);
        }
    }
}

/* GoogLeNet: no box on another, the main path in one column, the two auxiliary classifiers on
 * the side, to the right of everything at their height, ending there. */
static void
test_googlenet (void)
{
  g_autoptr (CsGraph) g = load ("googlenet");
  for (int fold = 0; fold <= 1; fold++)
    {
      g_autoptr (CsLayout) l = lay_out (g, NULL, fold);
      assert_sane (g, l);
      assert_no_overlap_pairs (l);
      assert_frames_tight (g, l);
      g_assert_cmpuint (l->n_frames, ==, 9);
      double axis = cx (&l->boxes[0]);
      const char *spine[] = { "conv1", "pool2", "inception_3a/concat1", "inception_4a/concat1",
                              "inception_4d/concat1", "inception_5b/concat1", "pool5",
                              "loss3_classifier" };
      for (guint i = 0; i < G_N_ELEMENTS (spine); i++)
        g_assert_cmpfloat_with_epsilon (cx (&l->boxes[box_named (g, l, spine[i])]), axis, EPS);
      guint aux = 0;
      for (guint i = 0; i < l->n_boxes; i++)
        {
          const CsLayoutBox *a = &l->boxes[i];
          if (!(cs_graph_node (g, a->node)->flags & CS_NODE_TRAIN_ONLY))
            continue;
          aux++;
          g_assert_cmpfloat (a->x, >, axis);
          for (guint j = 0; j < l->n_boxes; j++)
            {
              const CsLayoutBox *b = &l->boxes[j];
              if (!(cs_graph_node (g, b->node)->flags & CS_NODE_TRAIN_ONLY) && y_overlap (a, b))
                g_assert_cmpfloat (a->x, >=, b->x + b->w);
            }
        }
      g_assert_cmpuint (aux, ==, fold ? 8 : 16);
      /* Each classifier is its own column, ending at its output: nothing leaves it. */
      gint out1 = -1;
      for (guint v = 0; v < cs_graph_n_nodes (g); v++)
        if ((cs_graph_node (g, v)->flags & CS_NODE_AUX_OUTPUT) && out1 < 0)
          out1 = (gint) l->box_of_node[v];
      g_assert_cmpint (out1, >=, 0);
      for (guint e = 0; e < l->n_edges; e++)
        g_assert_cmpuint (l->edges[e].from, !=, (guint) out1);
      g_assert_cmpfloat_with_epsilon (cx (&l->boxes[box_named (g, l, "loss1_pool")]),
                                      cx (&l->boxes[out1]), EPS);
    }
}

/* ResNet-50 with two stages collapsed: one box each, standing for all their nodes, the
 * sub-modules gone (a nested key changes nothing), the others framed. */
static void
test_resnet50_collapsed (void)
{
  g_autoptr (CsGraph) g = load ("resnet50");
  g_autoptr (GHashTable) collapsed = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (collapsed, "layer2");
  g_hash_table_add (collapsed, "layer3");
  g_hash_table_add (collapsed, "layer3/bottleneck2");
  g_hash_table_add (collapsed, "no/such/module");
  for (int fold = 0; fold <= 1; fold++)
    {
      g_autoptr (CsLayout) l = lay_out (g, collapsed, fold);
      assert_sane (g, l);
      assert_no_overlap_pairs (l);
      assert_frames_tight (g, l);
      const char *paths[] = { "layer2", "layer3" };
      for (guint k = 0; k < 2; k++)
        {
          guint n_in = 0, last = 0, found = 0;
          for (guint v = 0; v < cs_graph_n_nodes (g); v++)
            if (in_module (cs_graph_node (g, v)->module, paths[k]))
              n_in++, last = v;
          for (guint i = 0; i < l->n_boxes; i++)
            {
              const CsLayoutBox *b = &l->boxes[i];
              if (b->module && strcmp (b->module, paths[k]) == 0)
                {
                  found++;
                  g_assert_cmpuint (b->n_members, ==, n_in);
                  g_assert_cmpuint (b->n_members, >, 1);
                  g_assert_cmpuint (b->node, ==, last);
                  for (guint v = 0; v < cs_graph_n_nodes (g); v++)
                    if (in_module (cs_graph_node (g, v)->module, paths[k]))
                      g_assert_cmpuint (l->box_of_node[v], ==, i);
                }
            }
          g_assert_cmpuint (found, ==, 1);
        }
      for (guint i = 0; i < l->n_boxes; i++)
        {
          const CsLayoutBox *b = &l->boxes[i];
          g_assert_true (b->module == NULL || strcmp (b->module, "layer2") == 0
                         || strcmp (b->module, "layer3") == 0);
          if (b->module == NULL)
            g_assert_cmpuint (b->n_members, <=, fold ? 3 : 1);
        }
      /* Frames: layer1 and layer4 with their three blocks each; nothing inside layer2/3. */
      g_assert_cmpuint (l->n_frames, ==, 8);
      for (guint f = 0; f < l->n_frames; f++)
        {
          g_assert_false (in_module (l->frames[f].module, "layer2"));
          g_assert_false (in_module (l->frames[f].module, "layer3"));
          g_assert_cmpuint (l->frames[f].depth, ==, strchr (l->frames[f].module, '/') ? 2 : 1);
        }
      /* The collapsed stages are a chain: layer1's last box, layer2, layer3, layer4's first. */
      gint b2 = -1, b3 = -1;
      for (guint i = 0; i < l->n_boxes; i++)
        if (l->boxes[i].module)
          *(strcmp (l->boxes[i].module, "layer2") == 0 ? &b2 : &b3) = (gint) i;
      gboolean chain = FALSE;
      for (guint e = 0; e < l->n_edges; e++)
        chain |= l->edges[e].from == (guint) b2 && l->edges[e].to == (guint) b3;
      g_assert_true (chain);
      g_assert_cmpfloat_with_epsilon (cx (&l->boxes[b2]), cx (&l->boxes[0]), EPS);
      g_assert_cmpfloat_with_epsilon (cx (&l->boxes[b3]), cx (&l->boxes[0]), EPS);
    }
}

/* Residual blocks: the identity shortcut is an edge with no box, drawn beside the branch; a
 * projection shortcut is a column of its own. */
static void
test_resnet50_blocks (void)
{
  g_autoptr (CsGraph) g = load ("resnet50");
  g_autoptr (CsLayout) l = lay_out (g, NULL, TRUE);
  assert_sane (g, l);
  assert_frames_tight (g, l);
  g_assert_cmpuint (l->n_frames, ==, 20);
  /* layer1/bottleneck2: fork at bottleneck1's output (add + relu, one box), branch of three
   * boxes right under it, the shortcut's curve passing right of them. */
  gint fork = box_named (g, l, "layer1/bottleneck1/add1");
  gint join = box_named (g, l, "layer1/bottleneck2/add1");
  gint convs[3] = { box_named (g, l, "layer1/bottleneck2/conv1"),
                    box_named (g, l, "layer1/bottleneck2/conv2"),
                    box_named (g, l, "layer1/bottleneck2/conv3") };
  const CsLayoutEdge *shortcut = NULL;
  for (guint e = 0; e < l->n_edges; e++)
    if (l->edges[e].from == (guint) fork && l->edges[e].to == (guint) join)
      shortcut = &l->edges[e];
  g_assert_nonnull (shortcut);
  g_assert_cmpuint (shortcut->n_points, >, 4);
  double right = 0;
  for (guint k = 0; k < 3; k++)
    {
      const CsLayoutBox *b = &l->boxes[convs[k]];
      g_assert_cmpfloat_with_epsilon (cx (b), cx (&l->boxes[fork]), EPS);
      right = MAX (right, b->x + b->w);
    }
  double far = 0;
  for (guint k = 0; k < shortcut->n_points; k++)
    far = MAX (far, shortcut->points[2 * k]);
  g_assert_cmpfloat (far, >, right);
  /* Its points at the height of the branch are all right of it. */
  for (guint k = 0; k < shortcut->n_points; k++)
    {
      double x = shortcut->points[2 * k], y = shortcut->points[2 * k + 1];
      for (guint c = 0; c < 3; c++)
        {
          const CsLayoutBox *b = &l->boxes[convs[c]];
          if (y >= b->y && y <= b->y + b->h)
            g_assert_cmpfloat (x, >, right);
        }
    }
  /* layer2/bottleneck1: the projection is a column beside the branch, both under the fork. */
  gint proj = box_named (g, l, "layer2/bottleneck1/downsample");
  gint b1 = box_named (g, l, "layer2/bottleneck1/conv1");
  g_assert_true (y_overlap (&l->boxes[proj], &l->boxes[b1]));
  g_assert_cmpfloat (l->boxes[proj].x, >=, l->boxes[b1].x + l->boxes[b1].w);
}

/* FractalNet: a block's four columns side by side, the deepest on the left, nested columns
 * inside it, every join under its columns. */
static void
test_fractalnet (void)
{
  g_autoptr (CsGraph) g = load ("fractalnet_cifar");
  for (int fold = 0; fold <= 1; fold++)
    {
      g_autoptr (CsLayout) l = lay_out (g, NULL, fold);
      assert_sane (g, l);
      assert_no_overlap_pairs (l);
      assert_frames_tight (g, l);
      /* The first convolution of each column of block 1 starts in the same band. */
      const char *heads[] = { "block1/fractal1/fractal1/fractal1/fractal1/unit1/conv1",
                              "block1/fractal1/fractal1/fractal1/unit1/conv1",
                              "block1/fractal1/fractal1/unit1/conv1",
                              "block1/fractal1/unit1/conv1" };
      const CsLayoutBox *hb[4];
      for (guint i = 0; i < 4; i++)
        hb[i] = &l->boxes[box_named (g, l, heads[i])];
      for (guint i = 1; i < 4; i++)
        {
          g_assert_cmpfloat (hb[i]->x, >=, hb[i - 1]->x + hb[i - 1]->w);
          g_assert_cmpfloat (fabs (hb[i]->y - hb[0]->y), <, hb[0]->h * 3);
        }
      const CsLayoutBox *join = &l->boxes[box_named (g, l, "block1/fractal1/mean1")];
      for (guint i = 0; i < l->n_boxes; i++)
        if (g_str_has_prefix (cs_graph_node (g, l->boxes[i].node)->name, "block1/")
            && &l->boxes[i] != join
            && !g_str_has_prefix (cs_graph_node (g, l->boxes[i].node)->name, "block1/pool"))
          g_assert_cmpfloat (l->boxes[i].y + l->boxes[i].h, <, join->y);
    }
}

/* Collapsing every module: a chain of boxes for GoogLeNet, the auxiliary branches still on
 * the side; a collapsed stage hides its blocks (ResNet-1202). */
static void
test_collapse_all (void)
{
  g_autoptr (CsGraph) g = load ("googlenet");
  g_autoptr (GPtrArray) mods = cs_graph_modules (g);
  g_autoptr (GHashTable) collapsed = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < mods->len; i++)
    g_hash_table_add (collapsed, mods->pdata[i]);
  g_autoptr (CsLayout) l = lay_out (g, collapsed, TRUE);
  assert_sane (g, l);
  assert_no_overlap_pairs (l);
  g_assert_cmpuint (l->n_frames, ==, 0);
  guint blocks = 0;
  for (guint i = 0; i < l->n_boxes; i++)
    if (l->boxes[i].module)
      {
        blocks++;
        g_assert_cmpuint (l->boxes[i].n_members, ==, 14);
        g_assert_cmpfloat_with_epsilon (cx (&l->boxes[i]), cx (&l->boxes[0]), EPS);
      }
  g_assert_cmpuint (blocks, ==, 9);
  g_assert_cmpuint (l->n_boxes, ==, 92 - 9 * 8 + 9);

  g_autoptr (CsGraph) r = load ("resnet1202_cifar");
  g_autoptr (GHashTable) stage = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (stage, "stage3");
  g_hash_table_add (stage, "stage3/basic7");
  g_autoptr (CsLayout) rl = lay_out (r, stage, FALSE);
  assert_sane (r, rl);
  assert_no_overlap (rl);
  guint stage3 = 0;
  for (guint i = 0; i < rl->n_boxes; i++)
    if (rl->boxes[i].module)
      {
        g_assert_cmpstr (rl->boxes[i].module, ==, "stage3");
        g_assert_cmpuint (rl->boxes[i].n_members, >, 1000);
        stage3++;
      }
  g_assert_cmpuint (stage3, ==, 1);
  for (guint f = 0; f < rl->n_frames; f++)
    g_assert_false (in_module (rl->frames[f].module, "stage3"));
}

/* The deepest bundled graph: thousands of boxes, none over another. */
static void
test_resnet1202 (void)
{
  g_autoptr (CsGraph) g = load ("resnet1202_cifar");
  g_assert_cmpuint (cs_graph_n_nodes (g), >, 4000);
  for (int fold = 0; fold <= 1; fold++)
    {
      g_autoptr (CsLayout) l = lay_out (g, NULL, fold);
      assert_sane (g, l);
      assert_no_overlap (l);
      /* A chain of blocks: the blocks' outputs all on one axis. */
      for (guint i = 0; i < l->n_boxes; i++)
        if (cs_graph_node (g, l->boxes[i].node)->op == CS_OP_ADD)
          g_assert_cmpfloat_with_epsilon (cx (&l->boxes[i]), cx (&l->boxes[0]), EPS);
    }
}

static void
test_hit (void)
{
  const char *models[] = { "vgg16", "googlenet", "densenet121" };
  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    {
      g_autoptr (CsGraph) g = load (models[m]);
      g_autoptr (CsLayout) l = lay_out (g, NULL, TRUE);
      for (guint i = 0; i < l->n_boxes; i++)
        {
          const CsLayoutBox *b = &l->boxes[i];
          g_assert_cmpint (cs_layout_hit (l, cx (b), b->y + b->h / 2), ==, (gint) i);
          g_assert_cmpint (cs_layout_hit (l, b->x + 0.5, b->y + 0.5), ==, (gint) i);
        }
      g_assert_cmpint (cs_layout_hit (l, -10, -10), ==, -1);
      g_assert_cmpint (cs_layout_hit (l, l->width + 10, l->height / 2), ==, -1);
      g_assert_cmpint (cs_layout_hit (l, NAN, NAN), ==, -1);
      /* Between the first two boxes of the chain. */
      const CsLayoutBox *a = &l->boxes[0], *b = &l->boxes[1];
      g_assert_cmpint (cs_layout_hit (l, cx (a), (a->y + a->h + b->y) / 2), ==, -1);
    }
  g_assert_cmpint (cs_layout_hit (NULL, 0, 0), ==, -1);
}

static gboolean
ptr_array_has (GPtrArray *a, const char *s)
{
  for (guint i = 0; i < a->len; i++)
    if (strcmp (a->pdata[i], s) == 0)
      return TRUE;
  return FALSE;
}

/* Module paths with at least two nodes, parents before their sub-modules. */
static void
test_modules (void)
{
  g_autoptr (CsGraph) g = load ("resnet50");
  g_autoptr (GPtrArray) mods = cs_graph_modules (g);
  g_assert_cmpuint (mods->len, ==, 4 + 3 + 4 + 6 + 3);
  g_assert_cmpstr (mods->pdata[0], ==, "layer1");
  g_assert_cmpstr (mods->pdata[1], ==, "layer1/bottleneck1");
  g_assert_cmpstr (mods->pdata[4], ==, "layer2");
  g_assert_true (ptr_array_has (mods, "layer3/bottleneck6"));
  g_assert_true (ptr_array_has (mods, "layer4/bottleneck3"));
  g_assert_false (ptr_array_has (mods, ""));
  for (guint i = 0; i < mods->len; i++)
    {
      const char *p = mods->pdata[i];
      const char *slash = strrchr (p, '/');
      if (slash == NULL)
        continue;
      g_autofree char *parent = g_strndup (p, slash - p);
      gboolean before = FALSE;
      for (guint j = 0; j < i; j++)
        before |= strcmp (mods->pdata[j], parent) == 0;
      g_assert_true (before);
    }

  g_autoptr (CsGraph) gn = load ("googlenet");
  g_autoptr (GPtrArray) gm = cs_graph_modules (gn);
  const char *inception[] = { "inception_3a", "inception_3b", "inception_4a", "inception_4b",
                              "inception_4c", "inception_4d", "inception_4e", "inception_5a",
                              "inception_5b" };
  g_assert_cmpuint (gm->len, ==, G_N_ELEMENTS (inception));
  for (guint i = 0; i < gm->len; i++)
    g_assert_cmpstr (gm->pdata[i], ==, inception[i]);

  g_autoptr (CsGraph) v = load ("vgg16");
  g_autoptr (GPtrArray) vm = cs_graph_modules (v);
  g_assert_cmpuint (vm->len, ==, 5);
  g_assert_cmpstr (vm->pdata[0], ==, "block1");

  /* FractalNet: modules that hold one node themselves but more through their sub-modules. */
  g_autoptr (CsGraph) f = load ("fractalnet_cifar");
  g_autoptr (GPtrArray) fm = cs_graph_modules (f);
  g_assert_true (ptr_array_has (fm, "block1"));
  g_assert_true (ptr_array_has (fm, "block1/fractal1/fractal1/fractal1"));
  g_assert_true (ptr_array_has (fm, "block5/fractal1/unit1"));

  g_autoptr (GPtrArray) none = cs_graph_modules (NULL);
  g_assert_cmpuint (none->len, ==, 0);
}

typedef struct {
  GCancellable *cancellable;
  gulong delay_us;
} Canceller;

static gpointer
cancel_later (gpointer data)
{
  Canceller *c = data;
  g_usleep (c->delay_us);
  g_cancellable_cancel (c->cancellable);
  return NULL;
}

static CsGraph *nested_graph (guint depth, guint wide);

static void
test_cancel (void)
{
  g_autoptr (CsGraph) g = load ("resnet152");
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  GError *error = NULL;
  CsLayout *l = cs_layout_compute (g, NULL, TRUE, NULL, cancellable, &error);
  g_assert_no_error (error);
  cs_layout_free (l);
  g_cancellable_cancel (cancellable);
  l = cs_layout_compute (g, NULL, TRUE, NULL, cancellable, &error);
  g_assert_null (l);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  cs_layout_free (NULL);

  /* Cancelled from another thread part way through a large graph, at different moments: a
   * layout or NULL with G_IO_ERROR_CANCELLED, nothing in between (and nothing leaked). */
  g_autoptr (CsGraph) big = nested_graph (20000, 2000);
  guint stopped = 0;
  for (gulong delay = 0; delay < 60000; delay += 3000)
    {
      g_autoptr (GCancellable) later = g_cancellable_new ();
      Canceller canceller = { later, delay };
      GThread *thread = g_thread_new ("cancel", cancel_later, &canceller);
      l = cs_layout_compute (big, NULL, FALSE, NULL, later, &error);
      g_thread_join (thread);
      if (l == NULL)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
          g_clear_error (&error);
          stopped++;
        }
      else
        {
          g_assert_no_error (error);
          g_assert_cmpuint (l->n_boxes, ==, cs_graph_n_nodes (big));
          cs_layout_free (l);
        }
    }
  g_test_message ("cancelled %u times of 20", stopped);
}

/* Metrics: the caller's sizes are used, unusable ones replaced by the defaults. */
static void
test_metrics (void)
{
  g_autoptr (CsGraph) g = load ("squeezenet1_0");
  CsLayoutMetrics m = { 100, 20, 10, 30, 5 };
  GError *error = NULL;
  g_autoptr (CsLayout) l = cs_layout_compute (g, NULL, TRUE, &m, NULL, &error);
  g_assert_no_error (error);
  assert_sane (g, l);
  assert_no_overlap_pairs (l);
  g_assert_cmpfloat (l->boxes[0].w, ==, 100);
  g_assert_cmpfloat (l->boxes[0].h, ==, 20);
  g_assert_cmpfloat (l->boxes[1].y - l->boxes[0].y, ==, 20 + 30);
  /* A fire module: expand 1x1 and 3x3 side by side, 10 apart (no frames between them). */
  const CsLayoutBox *e1 = &l->boxes[box_named (g, l, "fire2/expand1x1")];
  const CsLayoutBox *e3 = &l->boxes[box_named (g, l, "fire2/expand3x3")];
  g_assert_cmpfloat_with_epsilon (e3->x - (e1->x + e1->w), 10, EPS);

  CsLayoutMetrics bad = { NAN, -4, INFINITY, -1, NAN }, def;
  cs_layout_metrics_default (&def);
  g_autoptr (CsLayout) lb = cs_layout_compute (g, NULL, TRUE, &bad, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (CsLayout) ld = cs_layout_compute (g, NULL, TRUE, NULL, NULL, &error);
  g_assert_no_error (error);
  assert_sane (g, lb);
  g_assert_cmpfloat (lb->boxes[0].w, ==, def.node_width);
  g_assert_cmpfloat (lb->boxes[0].h, ==, def.node_height);
  g_assert_cmpfloat (lb->width, ==, ld->width);
  g_assert_cmpfloat (lb->height, ==, ld->height);
}

static void
test_not_finalized (void)
{
  g_autoptr (CsGraph) g = cs_graph_new ("empty");
  GError *error = NULL;
  g_assert_null (cs_layout_compute (g, NULL, TRUE, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (cs_layout_compute (NULL, NULL, TRUE, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

/* ---- Hand-made graphs ------------------------------------------------------------------ */

/* A graph of relu, add and identity layers on 8x8x4, built directly: node I is "nI" in module
 * SPEC[I].module (NULL: top level) with the inputs SPEC[I].ins (-1 ends the list). */
typedef struct {
  const char *module;
  CsOp op;
  gint ins[8];
  const gint *many;         /* instead of INS when set: N_MANY inputs */
  guint n_many;
} Spec;

static CsGraph *
build (const Spec *spec, guint n)
{
  CsGraph *g = cs_graph_new ("hand-made");
  CsSrcPos pos = { 0, 0, NULL };
  GError *error = NULL;
  for (guint i = 0; i < n; i++)
    {
      guint n_in = 0;
      const gint *ins = spec[i].many ? spec[i].many : spec[i].ins;
      if (spec[i].many)
        n_in = spec[i].n_many;
      else
        while (n_in < G_N_ELEMENTS (spec[i].ins) && spec[i].ins[n_in] >= 0)
          n_in++;
      const char *mod = spec[i].module ? spec[i].module : "";
      g_autofree char *name = *mod ? g_strdup_printf ("%s/n%u", mod, i)
                                   : g_strdup_printf ("n%u", i);
      CsNode *node = cs_graph_add_node (g, i == 0 ? CS_OP_INPUT : spec[i].op, mod, name, n_in,
                                        &pos, &error);
      g_assert_no_error (error);
      if (i == 0)
        node->p.shape = (CsShape) { 4, 8, 8 };
      for (guint j = 0; j < n_in; j++)
        node->inputs[j] = ins[j];
    }
  cs_graph_finalize (g, &error);
  g_assert_no_error (error);
  return g;
}

/* Lays G out every way (fold or not, nothing or each module collapsed) and checks the rules. */
static void
check_every_way (const CsGraph *g)
{
  g_autoptr (GPtrArray) mods = cs_graph_modules (g);
  for (int fold = 0; fold <= 1; fold++)
    for (gint k = -1; k < (gint) mods->len; k++)
      {
        g_autoptr (GHashTable) collapsed = g_hash_table_new (g_str_hash, g_str_equal);
        if (k >= 0)
          g_hash_table_add (collapsed, mods->pdata[k]);
        g_autoptr (CsLayout) l = lay_out (g, collapsed, fold);
        assert_sane (g, l);
        assert_no_overlap (l);
        if (l->n_boxes <= 400)
          assert_no_overlap_pairs (l);
      }
}

#define R CS_OP_RELU
#define A CS_OP_ADD

/* A layer with five consumers, joined in one add; then joins of joins sharing their inputs. */
static void
test_odd_fanout (void)
{
  const Spec spec[] = {
    { NULL, 0, { -1 } },
    { NULL, R, { 0, -1 } },                       /* 1: fans out to five */
    { NULL, R, { 1, -1 } }, { NULL, R, { 1, -1 } }, { NULL, R, { 1, -1 } },
    { NULL, R, { 1, -1 } }, { NULL, R, { 1, -1 } },
    { NULL, A, { 2, 3, 4, 5, 6, -1 } },           /* 7 */
    { NULL, A, { 7, 2, -1 } },                    /* 8: reuses a branch */
    { NULL, A, { 8, 3, 7, -1 } },                 /* 9: a join of joins */
    { NULL, R, { 9, -1 } },
  };
  g_autoptr (CsGraph) g = build (spec, G_N_ELEMENTS (spec));
  check_every_way (g);
  g_autoptr (CsLayout) l = lay_out (g, NULL, FALSE);
  /* The five columns share a band, side by side, under their fork. */
  for (guint i = 2; i <= 6; i++)
    {
      g_assert_true (y_overlap (&l->boxes[2], &l->boxes[i]));
      if (i > 2)
        g_assert_cmpfloat (l->boxes[i].x, >=, l->boxes[i - 1].x + l->boxes[i - 1].w);
    }
  for (guint i = 1; i < l->n_boxes; i++)
    for (guint e = 0; e < l->n_edges; e++)
      if (l->edges[e].to == i)
        g_assert_cmpfloat (l->boxes[i].y, >, l->boxes[l->edges[e].from].y);
}

/* Crossing branches (not series-parallel): p and q both feed r and s. Dead ends that are not
 * auxiliary branches. A shortcut that skips several blocks. */
static void
test_odd_irregular (void)
{
  const Spec spec[] = {
    { NULL, 0, { -1 } },
    { NULL, R, { 0, -1 } },                       /* 1 */
    { NULL, R, { 1, -1 } }, { NULL, R, { 1, -1 } },
    { NULL, A, { 2, 3, -1 } }, { NULL, A, { 3, 2, -1 } },   /* 4, 5: crossing */
    { NULL, R, { 4, -1 } },                       /* 6: a dead end */
    { NULL, A, { 4, 5, -1 } },                    /* 7 */
    { NULL, R, { 7, -1 } }, { NULL, R, { 8, -1 } },
    { NULL, A, { 9, 1, -1 } },                    /* 10: skips everything from 1 */
    { NULL, R, { 0, -1 } },                       /* 11: a second path from the input */
    { NULL, A, { 10, 11, 5, -1 } },               /* 12 */
    { NULL, R, { 12, -1 } }, { NULL, R, { 12, -1 } },       /* two sinks */
    { NULL, A, { 1, 1, -1 } },                    /* 15: the same input twice */
  };
  g_autoptr (CsGraph) g = build (spec, G_N_ELEMENTS (spec));
  check_every_way (g);
}

/* Modules that are not convex: a node outside the module between two nodes of it, so that
 * collapsing it makes a cycle of boxes; nested and interleaved modules. */
static void
test_odd_modules (void)
{
  const Spec spec[] = {
    { NULL, 0, { -1 } },
    { "m", R, { 0, -1 } },                        /* 1 */
    { NULL, R, { 1, -1 } },                       /* 2: outside, between m's nodes */
    { "m", A, { 2, 1, -1 } },                     /* 3 */
    { "m/a", R, { 3, -1 } }, { "m/a", R, { 4, -1 } },
    { "x/y/z", R, { 5, -1 } }, { "x", R, { 3, -1 } },
    { "x/y", A, { 6, 7, -1 } },
    { "m/a", R, { 8, -1 } },                      /* 9: back in m/a after x */
    { "", R, { 9, -1 } },
  };
  g_autoptr (CsGraph) g = build (spec, G_N_ELEMENTS (spec));
  g_autoptr (GPtrArray) mods = cs_graph_modules (g);
  g_assert_true (ptr_array_has (mods, "m"));
  g_assert_true (ptr_array_has (mods, "m/a"));
  g_assert_true (ptr_array_has (mods, "x"));
  g_assert_true (ptr_array_has (mods, "x/y"));
  g_assert_false (ptr_array_has (mods, "x/y/z"));   /* one node */
  check_every_way (g);
  /* Collapsing m: one box for m's six nodes, and 2 both feeds it and is fed by it. */
  g_autoptr (GHashTable) collapsed = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (collapsed, "m");
  g_autoptr (CsLayout) l = lay_out (g, collapsed, FALSE);
  assert_sane (g, l);
  guint bm = l->box_of_node[1];
  g_assert_cmpuint (l->boxes[bm].n_members, ==, 5);
  g_assert_cmpuint (l->boxes[bm].node, ==, 9);
}

static guint32
next_random (guint32 *s)
{
  *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
  return *s;
}

/* Random DAGs, random modules, random collapsing: whatever the mess, a sane layout. */
static void
test_odd_random (void)
{
  const char *modules[] = { NULL, "a", "a/b", "a/b/c", "d", "d/e", "a/f" };
  guint32 seed = 12345;
  for (guint round = 0; round < 60; round++)
    {
      guint n = 2 + next_random (&seed) % (round < 50 ? 40 : 400);
      Spec *spec = g_new0 (Spec, n);
      spec[0].ins[0] = -1;
      for (guint i = 1; i < n; i++)
        {
          guint k = 1 + next_random (&seed) % 3;
          k = MIN (k, i);
          spec[i].module = modules[next_random (&seed) % G_N_ELEMENTS (modules)];
          spec[i].op = k == 1 ? (next_random (&seed) % 2 ? R : CS_OP_IDENTITY) : A;
          for (guint j = 0; j < k; j++)
            {
              /* Mostly recent nodes, sometimes any. */
              guint back = next_random (&seed) % 4 == 0 ? i : MIN (i, 4u);
              spec[i].ins[j] = i - 1 - next_random (&seed) % back;
            }
          spec[i].ins[k] = -1;
        }
      g_autoptr (CsGraph) g = build (spec, n);
      g_free (spec);
      if (n <= 60)
        check_every_way (g);
      else
        {
          g_autoptr (CsLayout) l = lay_out (g, NULL, TRUE);
          assert_sane (g, l);
          assert_no_overlap (l);
        }
    }
}

/* Regions inside regions DEPTH deep (fork x_i joins at y_i, after the region of x_i+1), then
 * a fork of WIDE branches into one add. */
static CsGraph *
nested_graph (guint depth, guint wide)
{
  guint n = 1 + 2 * depth + wide + 1;
  Spec *spec = g_new0 (Spec, n);
  spec[0].ins[0] = -1;
  for (guint i = 1; i <= depth; i++)
    spec[i] = (Spec) { NULL, R, { i - 1, -1 } };
  /* y_depth = add (x_depth, x_depth-1), then y_level = add (y_level+1, x_level-1). */
  for (guint k = 0; k < depth; k++)
    {
      guint i = depth + 1 + k, level = depth - k;
      gint prev = k == 0 ? (gint) depth : (gint) i - 1;
      spec[i] = (Spec) { NULL, A, { prev, level - 1, -1 } };
    }
  guint top = 2 * depth;
  gint *many = g_new (gint, wide);
  for (guint k = 0; k < wide; k++)
    {
      spec[top + 1 + k] = (Spec) { NULL, R, { top, -1 } };
      many[k] = top + 1 + k;
    }
  spec[n - 1] = (Spec) { NULL, A, { -1 }, many, wide };
  CsGraph *g = build (spec, n);
  g_free (spec);
  g_free (many);
  return g;
}

/* Deep nesting and a wide fork: no recursion to overflow, no quadratic time. */
static void
test_odd_large (void)
{
  const guint depth = 3000, wide = 2000;
  g_autoptr (CsGraph) g = nested_graph (depth, wide);
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (CsLayout) l = lay_out (g, NULL, FALSE);
  gint64 t1 = g_get_monotonic_time ();
  assert_sane (g, l);
  assert_no_overlap (l);
  g_test_message ("%u nodes, nested %u deep, %u wide: %.1f ms", cs_graph_n_nodes (g), depth,
                  wide, (t1 - t0) / 1000.0);
  /* The wide fork's branches in one band, side by side. */
  guint top = 2 * depth;
  for (guint k = 1; k < wide; k++)
    {
      const CsLayoutBox *a = &l->boxes[top + k], *b = &l->boxes[top + 1 + k];
      g_assert_true (y_overlap (a, b));
      g_assert_cmpfloat (b->x, >=, a->x + a->w);
    }
  /* The nesting: each fork's region is inside the one around it, so the shortcuts' lanes
   * step right, one per level. */
  const CsLayoutBox *outer = &l->boxes[1], *inner = &l->boxes[depth];
  g_assert_cmpfloat_with_epsilon (cx (outer), cx (inner), EPS);
  g_assert_cmpfloat (l->width, >, depth * 10.0);
}

/* A chain of joins each taking one more consumer of the same fork: the columns nest one level
 * per join, and finding them must not cost the square of the fan-out. */
static void
test_odd_join_chain (void)
{
  const guint m = 20000;
  guint n = 2 + m + (m - 1);
  Spec *spec = g_new0 (Spec, n);
  spec[0].ins[0] = -1;
  spec[1] = (Spec) { NULL, R, { 0, -1 } };
  for (guint k = 0; k < m; k++)
    spec[2 + k] = (Spec) { NULL, R, { 1, -1 } };
  for (guint k = 1; k < m; k++)
    spec[1 + m + k] = (Spec) { NULL, A, { k == 1 ? 2 : (gint) (m + k), 2 + k, -1 } };
  g_autoptr (CsGraph) g = build (spec, n);
  g_free (spec);
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (CsLayout) l = lay_out (g, NULL, FALSE);
  double ms = (g_get_monotonic_time () - t0) / 1000.0;
  g_test_message ("%u nodes, a fork of %u joined one by one: %.1f ms", n, m, ms);
  /* Linear work takes tens of milliseconds here, quadratic work tens of seconds. */
  g_assert_cmpfloat (ms, <, 5000);
  assert_sane (g, l);
  assert_no_overlap (l);
  /* Every consumer of the fork starts in the band under it; each join is below both of its
   * inputs. */
  for (guint k = 0; k < m; k++)
    g_assert_true (y_overlap (&l->boxes[2], &l->boxes[2 + k]));
  for (guint e = 0; e < l->n_edges; e++)
    g_assert_cmpfloat (l->boxes[l->edges[e].to].y, >, l->boxes[l->edges[e].from].y);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/core/layout/vgg16", test_vgg16);
  g_test_add_func ("/core/layout/fold-matches-lecture", test_fold_matches_lecture);
  g_test_add_func ("/core/layout/all-models", test_all_models);
  g_test_add_func ("/core/layout/inception-naive", test_inception_naive);
  g_test_add_func ("/core/layout/googlenet", test_googlenet);
  g_test_add_func ("/core/layout/resnet50-collapsed", test_resnet50_collapsed);
  g_test_add_func ("/core/layout/resnet50-blocks", test_resnet50_blocks);
  g_test_add_func ("/core/layout/fractalnet", test_fractalnet);
  g_test_add_func ("/core/layout/collapse-all", test_collapse_all);
  g_test_add_func ("/core/layout/resnet1202", test_resnet1202);
  g_test_add_func ("/core/layout/hit", test_hit);
  g_test_add_func ("/core/layout/modules", test_modules);
  g_test_add_func ("/core/layout/cancel", test_cancel);
  g_test_add_func ("/core/layout/metrics", test_metrics);
  g_test_add_func ("/core/layout/not-finalized", test_not_finalized);
  g_test_add_func ("/core/layout/odd/fanout", test_odd_fanout);
  g_test_add_func ("/core/layout/odd/irregular", test_odd_irregular);
  g_test_add_func ("/core/layout/odd/modules", test_odd_modules);
  g_test_add_func ("/core/layout/odd/random", test_odd_random);
  g_test_add_func ("/core/layout/odd/large", test_odd_large);
  g_test_add_func ("/core/layout/odd/join-chain", test_odd_join_chain);
  return g_test_run ();
}
