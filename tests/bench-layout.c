/* Benchmark: laying out the largest bundled models for drawing, expanded and with every module
 * collapsed, against the 1 s budget, and time per node across sizes (the layout must stay
 * n log n at most). */
#include "cs-layout.h"
#include "cs-zoo.h"

#include <stdio.h>

#define RUNS 21
#define BUDGET_MS 1000.0

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Median milliseconds of RUNS layouts; the boxes of the last one in *N_BOXES. */
static double
time_layout (const CsGraph *g, GHashTable *collapsed, gboolean fold, guint *n_boxes)
{
  double t[RUNS];
  for (int r = 0; r < RUNS; r++)
    {
      GError *error = NULL;
      gint64 t0 = g_get_monotonic_time ();
      CsLayout *l = cs_layout_compute (g, collapsed, fold, NULL, NULL, &error);
      t[r] = (g_get_monotonic_time () - t0) / 1000.0;
      if (l == NULL)
        {
          fprintf (stderr, "%s\n", error->message);
          exit (1);
        }
      *n_boxes = l->n_boxes;
      cs_layout_free (l);
    }
  qsort (t, RUNS, sizeof t[0], compare_doubles);
  return t[RUNS / 2];
}

static void
row (const char *model, const char *view, guint nodes, guint boxes, double ms)
{
  printf ("%-18s %-10s %7u %7u %10.3f %9.0f %10.5fx %9.2f\n", model, view, nodes, boxes, ms,
          BUDGET_MS, ms / BUDGET_MS, ms * 1000.0 / nodes);
}

static CsNode *
add_node (CsGraph *g, CsOp op, guint n_inputs)
{
  CsSrcPos pos = { 0, 0, NULL };
  g_autofree char *name = g_strdup_printf ("n%u", cs_graph_n_nodes (g));
  CsNode *node = cs_graph_add_node (g, op, "", name, n_inputs, &pos, NULL);
  if (node == NULL)
    exit (1);
  return node;
}

/* Regions nested DEPTH deep and a fork of WIDE branches into one add: no model looks like
 * this, but a hand-written file may, and it must not be quadratic. */
static CsGraph *
nested_graph (guint depth, guint wide)
{
  CsGraph *g = cs_graph_new ("nested");
  add_node (g, CS_OP_INPUT, 0)->p.shape = (CsShape) { 4, 8, 8 };
  for (guint i = 1; i <= depth; i++)
    add_node (g, CS_OP_RELU, 1)->inputs[0] = i - 1;
  for (guint k = 0; k < depth; k++)
    {
      guint n = cs_graph_n_nodes (g);
      CsNode *node = add_node (g, CS_OP_ADD, 2);
      node->inputs[0] = k == 0 ? depth : n - 1;
      node->inputs[1] = depth - k - 1;
    }
  guint top = cs_graph_n_nodes (g) - 1;
  for (guint k = 0; k < wide; k++)
    add_node (g, CS_OP_RELU, 1)->inputs[0] = top;
  CsNode *join = add_node (g, CS_OP_ADD, wide);
  for (guint k = 0; k < wide; k++)
    join->inputs[k] = top + 1 + k;
  GError *error = NULL;
  if (!cs_graph_finalize (g, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      exit (1);
    }
  return g;
}

/* A fork of M consumers joined one by one (each add takes the previous add and one more
 * consumer): the nesting is M deep, the edges only 3M. */
static CsGraph *
join_chain_graph (guint m)
{
  CsGraph *g = cs_graph_new ("join-chain");
  add_node (g, CS_OP_INPUT, 0)->p.shape = (CsShape) { 4, 8, 8 };
  add_node (g, CS_OP_RELU, 1)->inputs[0] = 0;
  for (guint k = 0; k < m; k++)
    add_node (g, CS_OP_RELU, 1)->inputs[0] = 1;
  guint prev = 2;
  for (guint k = 1; k < m; k++)
    {
      CsNode *join = add_node (g, CS_OP_ADD, 2);
      join->inputs[0] = prev;
      join->inputs[1] = 2 + k;
      prev = join->id;
    }
  GError *error = NULL;
  if (!cs_graph_finalize (g, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      exit (1);
    }
  return g;
}

int
main (int argc, char **argv)
{
  const char *models[] = { "resnet18", "resnet50", "resnet152", "resnet1202_cifar",
                           "densenet121", "googlenet", "fractalnet_cifar" };
  printf ("%-18s %-10s %7s %7s %10s %9s %11s %9s\n", "model", "view", "nodes", "boxes",
          "median ms", "budget ms", "ratio", "us/node");
  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    {
      GError *error = NULL;
      g_autoptr (CsGraph) g = cs_load_model (models[m], &error);
      if (g == NULL)
        {
          fprintf (stderr, "%s\n", error->message);
          return 1;
        }
      guint nodes = cs_graph_n_nodes (g), boxes;
      double ms = time_layout (g, NULL, FALSE, &boxes);
      row (models[m], "expanded", nodes, boxes, ms);
      ms = time_layout (g, NULL, TRUE, &boxes);
      row (models[m], "folded", nodes, boxes, ms);
      g_autoptr (GPtrArray) mods = cs_graph_modules (g);
      g_autoptr (GHashTable) all = g_hash_table_new (g_str_hash, g_str_equal);
      for (guint i = 0; i < mods->len; i++)
        g_hash_table_add (all, mods->pdata[i]);
      ms = time_layout (g, all, TRUE, &boxes);
      row (models[m], "collapsed", nodes, boxes, ms);
    }
  /* Worst cases for the structure, far beyond the models: time per node must stay flat. */
  for (guint scale = 1; scale <= 8; scale *= 2)
    {
      g_autoptr (CsGraph) nested = nested_graph (2500 * scale, 500 * scale);
      guint boxes;
      double ms = time_layout (nested, NULL, FALSE, &boxes);
      row ("nested regions", "expanded", cs_graph_n_nodes (nested), boxes, ms);
    }
  for (guint scale = 1; scale <= 8; scale *= 2)
    {
      g_autoptr (CsGraph) chain = join_chain_graph (5000 * scale);
      guint boxes;
      double ms = time_layout (chain, NULL, FALSE, &boxes);
      row ("chained joins", "expanded", cs_graph_n_nodes (chain), boxes, ms);
    }
  return 0;
}
