/* Every bundled model loads, and its totals agree with independent references: torchvision's
 * counts (tests/data/torchvision-reference.tsv, made by tests/tools/torchvision-reference.py),
 * the papers' published counts, and the Caffe deploy files' check values. */
#include "cs-stats.h"
#include "cs-zoo.h"
#include "test-util.h"

#include <math.h>

typedef struct {
  const char *name;
  guint64 params, macs;
} Pinned;

/* Exact totals per image. Each is cross-checked in the comment against a source outside
 * cnnscope; where the match is exact the test below also checks it from the TSV. */
static const Pinned pinned[] = {
  { "alexnet", 62378344, 1135256096 },              /* lecture: 62,367,776 w + 10,568 b */
  { "alexnet_2gpu", 60965224, 724406816 },          /* Caffe bvlc_alexnet: 60,965,224, 0.724G */
  { "densenet121", 7978856, 2834161664 },           /* torchvision, exact */
  { "fractalnet_cifar", 76106634, 2036077568 },     /* B=5, C=4, widths 64..512 */
  { "googlenet", 6998552, 1582671872 },             /* Caffe bvlc_googlenet without aux: 6,998,552 */
  { "inception_naive", 1089952, 854196224 },        /* lecture: 854M ops */
  { "inception_reduced", 346720, 271351808 },       /* lecture's six terms */
  { "lenet5", 61706, 416520 },                      /* LeCun et al. 1998: ~60K parameters */
  { "nin", 7595176, 1100188800 },                   /* Caffe model zoo NIN-ImageNet: 7.6M */
  { "preact_resnet164_cifar", 1703258, 244500992 }, /* He et al. 2016: 1.7M */
  { "resnet101", 44549160, 7570194432 },            /* torchvision params; Caffe ResNet-101 7.570G */
  { "resnet110_cifar", 1730714, 253149824 },        /* He et al. 2015: 1.7M */
  { "resnet1202_cifar", 19424026, 2829501056 },     /* He et al. 2015: 19.4M */
  { "resnet152", 60192808, 11282415616 },           /* torchvision params; paper: 11.3 GFLOPs */
  { "resnet18", 11689512, 1814073344 },             /* torchvision, exact */
  { "resnet34", 21797672, 3663761408 },             /* torchvision, exact */
  { "resnet50", 25557032, 3857973248 },             /* torchvision params; paper: 3.8 GFLOPs */
  { "resnext50_32x4d", 25028904, 4230479872 },      /* torchvision, exact */
  { "squeezenet1_0", 1248424, 818924576 },          /* torchvision, exact */
  { "squeezenet1_1", 1235496, 349151936 },          /* torchvision, exact */
  { "stochastic_depth_resnet110", 1730714, 253149824 }, /* the ResNet-110 it gates */
  { "vgg16", 138357544, 15470264320 },              /* lecture 138M; torchvision, exact */
  { "vgg19", 143667240, 19632062464 },              /* torchvision, exact */
  { "wide_resnet50_2", 68883240, 11398021120 },     /* torchvision, exact */
  { "wrn_28_10_cifar", 36479194, 5243328768 },      /* Zagoruyko & Komodakis 2016: 36.5M */
  { "zfnet", 107627624, 2476704896 },
};

static void
test_pinned (gconstpointer data)
{
  const Pinned *p = data;
  g_autoptr (CsStats) st = load (p->name);
  g_assert_cmpuint (st->folded_totals.params, ==, p->params);
  g_assert_cmpuint (st->folded_totals.macs, ==, p->macs);
  /* Both views count the same parameters and work. */
  g_assert_cmpuint (st->unfolded_totals.params, ==, p->params);
  g_assert_cmpuint (st->unfolded_totals.macs, ==, p->macs);
  g_assert_cmpuint (st->folded_totals.weights + st->folded_totals.biases, ==, p->params);
  g_assert_cmpstr (st->graph->name, ==, p->name);
  g_assert_nonnull (st->graph->paper);
  g_assert_cmpuint (st->graph->year, >=, 1998);
}

/* Every bundled model is in the table above, and nothing else is bundled. */
static void
test_complete (void)
{
  g_auto (GStrv) names = cs_zoo_list ();
  g_assert_cmpuint (g_strv_length (names), ==, G_N_ELEMENTS (pinned));
  for (guint i = 0; i < G_N_ELEMENTS (pinned); i++)
    g_assert_cmpstr (names[i], ==, pinned[i].name);
}

/* Models whose torchvision version is the same network: parameters, buffers and, where the
 * layers are identical, MACs too. ResNet-50/101/152 follow the paper (v1, stride on the first
 * 1x1), torchvision is v1.5 (stride on the 3x3): same parameters, different MACs. */
static void
test_torchvision (void)
{
  static const struct { const char *name; gboolean same_macs; } models[] = {
    { "vgg16", TRUE }, { "vgg19", TRUE }, { "resnet18", TRUE }, { "resnet34", TRUE },
    { "resnet50", FALSE }, { "resnet101", FALSE }, { "resnet152", FALSE },
    { "wide_resnet50_2", TRUE }, { "resnext50_32x4d", TRUE }, { "densenet121", TRUE },
    { "squeezenet1_0", TRUE }, { "squeezenet1_1", TRUE },
  };
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data",
                                                 "torchvision-reference.tsv", NULL);
  g_autofree char *text = NULL;
  GError *error = NULL;
  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  guint checked = 0;
  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    for (char **l = lines; *l; l++)
      {
        g_auto (GStrv) f = g_strsplit (*l, "\t", -1);
        if (g_strv_length (f) < 10 || !g_str_equal (f[0], models[m].name))
          continue;
        g_autoptr (CsStats) st = load (models[m].name);
        guint64 params = g_ascii_strtoull (f[1], NULL, 10);
        guint64 buffers = g_ascii_strtoull (f[5], NULL, 10);
        guint64 macs = g_ascii_strtoull (f[6], NULL, 10);
        g_test_message ("%s: params %" G_GUINT64_FORMAT " vs torchvision %" G_GUINT64_FORMAT,
                        models[m].name, st->folded_totals.params, params);
        g_assert_cmpuint (st->folded_totals.params, ==, params);
        g_assert_cmpuint (st->folded_totals.buffers, ==, buffers);
        if (models[m].same_macs)
          g_assert_cmpuint (st->folded_totals.macs, ==, macs);
        else
          /* v1 against v1.5: within 8 %, and v1 is the cheaper. */
          g_assert_true (st->folded_totals.macs < macs
                         && st->folded_totals.macs > macs * 0.92);
        checked++;
      }
  g_assert_cmpuint (checked, ==, G_N_ELEMENTS (models));
}

/* Published figures that are only given rounded: within the paper's rounding. */
static void
test_papers (void)
{
  static const struct { const char *name; double millions; double tolerance; } papers[] = {
    { "resnet110_cifar", 1.7, 0.05 },           /* He et al. 2015, Table 6 */
    { "resnet1202_cifar", 19.4, 0.05 },
    { "preact_resnet164_cifar", 1.7, 0.05 },    /* He et al. 2016, Table 2 */
    { "wrn_28_10_cifar", 36.5, 0.05 },          /* Zagoruyko & Komodakis 2016, Table 2 */
    { "nin", 7.6, 0.05 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (papers); i++)
    {
      g_autoptr (CsStats) st = load (papers[i].name);
      double m = st->folded_totals.params / 1e6;
      g_assert_cmpfloat (fabs (m - papers[i].millions), <=, papers[i].tolerance);
    }
}

/* GoogLeNet: 22 layers with weights on the main path, 9 inception modules, two auxiliary
 * classifiers marked training-only, and no large FC layer. */
static void
test_googlenet (void)
{
  g_autoptr (CsStats) st = load ("googlenet");
  const CsGraph *g = st->graph;
  guint aux = 0, concat = 0;
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      if (n->flags & CS_NODE_AUX_OUTPUT)
        {
          aux++;
          g_assert_cmpfloat (n->loss_weight, ==, 0.3);
        }
      if (n->op == CS_OP_CONCAT && !(n->flags & CS_NODE_TRAIN_ONLY))
        concat++;
    }
  g_assert_cmpuint (aux, ==, 2);
  g_assert_cmpuint (concat, ==, 9);
  g_assert_cmpint (cs_graph_output (g)->op, ==, CS_OP_SOFTMAX);
  g_assert_false (cs_graph_output (g)->flags & CS_NODE_TRAIN_ONLY);
  /* "12x fewer params than AlexNet" (the lecture), AlexNet being 60M. */
  g_assert_cmpuint (st->folded_totals.params * 8, <, 60965224);
  g_assert_cmpuint (st->folded_totals.train_only_params, >, 0);
}

/* ResNet-1202 for CIFAR: about 4,200 layers unfolded. */
static void
test_resnet1202 (void)
{
  g_autoptr (CsStats) st = load ("resnet1202_cifar");
  g_assert_cmpuint (cs_graph_n_nodes (st->graph), >, 4000);
  g_assert_cmpuint (cs_graph_n_nodes (st->graph), <, 4400);
  g_assert_cmpuint (cs_graph_output (st->graph)->shape.c, ==, 10);
}

/* Stochastic depth: survival decays linearly from 1 to 0.5 over the 54 residual blocks. */
static void
test_stochastic_depth (void)
{
  g_autoptr (CsStats) st = load ("stochastic_depth_resnet110");
  GArray *p = g_array_new (FALSE, FALSE, sizeof (double));
  for (guint i = 0; i < cs_graph_n_nodes (st->graph); i++)
    if (cs_graph_node (st->graph, i)->op == CS_OP_DROPPATH)
      g_array_append_val (p, cs_graph_node (st->graph, i)->p.p);
  g_assert_cmpuint (p->len, ==, 54);
  for (guint l = 0; l < 54; l++)
    g_assert_cmpfloat (fabs (g_array_index (p, double, l) - (1.0 - (l + 1) / 54.0 * 0.5)), <,
                       1e-12);
  g_array_free (p, TRUE);
}

/* FractalNet: each block's last join averages all four columns at once. */
static void
test_fractalnet (void)
{
  g_autoptr (CsStats) st = load ("fractalnet_cifar");
  guint joins4 = 0, convs = 0;
  for (guint i = 0; i < cs_graph_n_nodes (st->graph); i++)
    {
      const CsNode *n = cs_graph_node (st->graph, i);
      if (n->op == CS_OP_MEAN && n->n_inputs == 4)
        joins4++;
      if (n->op == CS_OP_CONV)
        convs++;
    }
  g_assert_cmpuint (convs, ==, 5 * 15);   /* 2^C - 1 convs per block */
  g_assert_cmpuint (joins4, ==, 5);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (pinned); i++)
    {
      g_autofree char *path = g_strdup_printf ("/core/zoo/totals/%s", pinned[i].name);
      g_test_add_data_func (path, &pinned[i], test_pinned);
    }
  g_test_add_func ("/core/zoo/complete", test_complete);
  g_test_add_func ("/core/zoo/torchvision", test_torchvision);
  g_test_add_func ("/core/zoo/papers", test_papers);
  g_test_add_func ("/core/zoo/googlenet", test_googlenet);
  g_test_add_func ("/core/zoo/resnet1202", test_resnet1202);
  g_test_add_func ("/core/zoo/stochastic-depth", test_stochastic_depth);
  g_test_add_func ("/core/zoo/fractalnet", test_fractalnet);
  return g_test_run ();
}
