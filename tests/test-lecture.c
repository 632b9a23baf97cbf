/* Every row of the lecture's tables (shared/reference/LECTURE-TABLES.md), reproduced exactly. */
#include "cs-error.h"
#include "cs-parser.h"
#include "cs-stats.h"
#include "cs-zoo.h"
#include "test-util.h"

static CsStats *
load_text (const char *text)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_parse_model ("inline.cnn", text, strlen (text), &error);
  g_assert_no_error (error);
  CsStats *st = cs_stats_compute (g, 1, &error);
  g_assert_no_error (error);
  return st;
}

static const CsRow *
row (const CsStats *st, guint i)
{
  g_assert_cmpuint (i, <, st->folded->len);
  return &g_array_index (st->folded, CsRow, i);
}

static const CsNode *
head (const CsStats *st, guint i)
{
  return cs_graph_node (st->graph, row (st, i)->head);
}

static void
assert_row (const CsStats *st, guint i, CsOp op, guint64 h, guint64 w, guint64 c,
            guint64 weights)
{
  const CsNode *n = head (st, i);
  g_assert_cmpint (n->op, ==, op);
  g_assert_cmpuint (n->shape.h, ==, h);
  g_assert_cmpuint (n->shape.w, ==, w);
  g_assert_cmpuint (n->shape.c, ==, c);
  g_assert_cmpuint (row (st, i)->st.weights, ==, weights);
  g_assert_cmpuint (row (st, i)->st.activations, ==, h * w * c);
}

/* AlexNet, the lecture's single-tower table on 227x227x3. */
static void
test_alexnet (void)
{
  g_autoptr (CsStats) st = load ("alexnet");
  struct { CsOp op; guint64 h, w, c, weights; } rows[] = {
    { CS_OP_CONV, 55, 55, 96, 34848 },        /* CONV1 96 11x11 s4 p0 */
    { CS_OP_MAXPOOL, 27, 27, 96, 0 },         /* MAX POOL1 3x3 s2 */
    { CS_OP_LRN, 27, 27, 96, 0 },             /* NORM1 */
    { CS_OP_CONV, 27, 27, 256, 614400 },      /* CONV2 256 5x5 s1 p2 */
    { CS_OP_MAXPOOL, 13, 13, 256, 0 },
    { CS_OP_LRN, 13, 13, 256, 0 },
    { CS_OP_CONV, 13, 13, 384, 884736 },
    { CS_OP_CONV, 13, 13, 384, 1327104 },
    { CS_OP_CONV, 13, 13, 256, 884736 },
    { CS_OP_MAXPOOL, 6, 6, 256, 0 },
    { CS_OP_FC, 1, 1, 4096, 37748736 },
    { CS_OP_FC, 1, 1, 4096, 16777216 },
    { CS_OP_FC, 1, 1, 1000, 4096000 },
  };
  g_assert_cmpuint (st->folded->len, ==, 1 + G_N_ELEMENTS (rows));
  assert_row (st, 0, CS_OP_INPUT, 227, 227, 3, 0);
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    assert_row (st, i + 1, rows[i].op, rows[i].h, rows[i].w, rows[i].c, rows[i].weights);

  g_assert_cmpuint (st->folded_totals.weights, ==, 62367776);
  g_assert_cmpuint (st->folded_totals.biases, ==, 10568);
  g_assert_cmpuint (st->folded_totals.params, ==, 62378344);

  /* The formulas as the lecture writes them. */
  g_autofree char *out1 = cs_stats_output_formula (st, row (st, 1)->head);
  g_autofree char *par1 = cs_stats_params_formula (st, row (st, 1)->head);
  g_autofree char *out2 = cs_stats_output_formula (st, row (st, 2)->head);
  g_assert_cmpstr (out1, ==, "(227-11)/4+1 = 55");
  g_assert_cmpstr (par1, ==, "(11*11*3)*96 = 34,848");
  g_assert_cmpstr (out2, ==, "(55-3)/2+1 = 27");
  g_autofree char *lecture = cs_format_lecture (row (st, 1)->st.weights);
  g_assert_cmpstr (lecture, ==, "35K");
}

/* The original two-GPU AlexNet: CONV2, CONV4 and CONV5 in two groups. */
static void
test_alexnet_2gpu (void)
{
  g_autoptr (CsStats) st = load ("alexnet_2gpu");
  g_assert_cmpuint (st->folded_totals.weights, ==, 60954656);
  g_assert_cmpuint (st->folded_totals.biases, ==, 10568);
  g_assert_cmpuint (st->folded_totals.params, ==, 60965224);
}

static void
test_vgg16 (void)
{
  g_autoptr (CsStats) st = load ("vgg16");
  struct { CsOp op; guint64 h, c, memory, weights; } rows[] = {
    { CS_OP_INPUT, 224, 3, 150528, 0 },
    { CS_OP_CONV, 224, 64, 3211264, 1728 },
    { CS_OP_CONV, 224, 64, 3211264, 36864 },
    { CS_OP_MAXPOOL, 112, 64, 802816, 0 },
    { CS_OP_CONV, 112, 128, 1605632, 73728 },
    { CS_OP_CONV, 112, 128, 1605632, 147456 },
    { CS_OP_MAXPOOL, 56, 128, 401408, 0 },
    { CS_OP_CONV, 56, 256, 802816, 294912 },
    { CS_OP_CONV, 56, 256, 802816, 589824 },
    { CS_OP_CONV, 56, 256, 802816, 589824 },
    { CS_OP_MAXPOOL, 28, 256, 200704, 0 },
    { CS_OP_CONV, 28, 512, 401408, 1179648 },
    { CS_OP_CONV, 28, 512, 401408, 2359296 },
    { CS_OP_CONV, 28, 512, 401408, 2359296 },
    { CS_OP_MAXPOOL, 14, 512, 100352, 0 },
    { CS_OP_CONV, 14, 512, 100352, 2359296 },
    { CS_OP_CONV, 14, 512, 100352, 2359296 },
    { CS_OP_CONV, 14, 512, 100352, 2359296 },
    { CS_OP_MAXPOOL, 7, 512, 25088, 0 },
    { CS_OP_FC, 1, 4096, 4096, 102760448 },
    { CS_OP_FC, 1, 4096, 4096, 16777216 },
    { CS_OP_FC, 1, 1000, 1000, 4096000 },
  };
  g_assert_cmpuint (st->folded->len, ==, G_N_ELEMENTS (rows));
  guint64 memory = 0;
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    {
      assert_row (st, i, rows[i].op, rows[i].h, rows[i].h, rows[i].c, rows[i].weights);
      g_assert_cmpuint (row (st, i)->st.activations, ==, rows[i].memory);
      memory += rows[i].memory;
    }
  /* The rows' true sum, not the lecture's printed "24M". */
  g_assert_cmpuint (memory, ==, 15237608);
  g_assert_cmpuint (st->folded_totals.activations, ==, 15237608);
  g_assert_cmpuint (st->folded_totals.weights, ==, 138344128);
  g_assert_cmpuint (st->folded_totals.biases, ==, 13416);
  g_assert_cmpuint (st->folded_totals.params, ==, 138357544);

  g_autofree char *par = cs_stats_params_formula (st, row (st, 4)->head);
  g_autofree char *fc = cs_stats_params_formula (st, row (st, 19)->head);
  g_autofree char *mem = cs_stats_memory_formula (st, row (st, 1)->head);
  g_autofree char *r1 = cs_format_lecture (3211264);
  g_autofree char *r2 = cs_format_lecture (802816);
  g_autofree char *r3 = cs_format_lecture (150528);
  g_autofree char *r4 = cs_format_lecture (25088);
  g_assert_cmpstr (par, ==, "(3*3*64)*128 = 73,728");
  g_assert_cmpstr (fc, ==, "7*7*512*4096 = 102,760,448");
  g_assert_cmpstr (mem, ==, "224*224*64 = 3,211,264");
  g_assert_cmpstr (r1, ==, "3.2M");
  g_assert_cmpstr (r2, ==, "800K");
  g_assert_cmpstr (r3, ==, "150K");
  g_assert_cmpstr (r4, ==, "25K");

  /* The lecture's point: most memory early, most parameters in the late FC layers. */
  guint64 early = 0, fc_weights = 0;
  for (guint i = 0; i < 7; i++)   /* the input and the first two stages */
    early += row (st, i)->st.activations;
  for (guint i = 19; i < 22; i++)
    fc_weights += row (st, i)->st.weights;
  g_assert_cmpuint (early * 2, >, st->folded_totals.activations);
  g_assert_cmpuint (fc_weights * 10, >, st->folded_totals.weights * 8);
}

static void
test_vgg19 (void)
{
  g_autoptr (CsStats) st = load ("vgg19");
  g_assert_cmpuint (st->folded_totals.params, ==, 143667240);
}

/* Three stacked 3x3 convs see as far as one 7x7, with 27C^2 weights against 49C^2. */
static void
test_small_filters (void)
{
  g_autoptr (CsStats) stack = load_text ("input 56x56x64\n"
                                         "repeat 3 { conv 64 3x3 pad 1 nobias; relu }\n");
  g_autoptr (CsStats) big = load_text ("input 56x56x64\nconv 64 7x7 pad 3 nobias; relu\n");
  const CsRow *last = row (stack, stack->folded->len - 1);
  g_assert_cmpuint (last->st.rf_h.size, ==, 7);
  g_assert_cmpuint (last->st.rf_w.size, ==, 7);
  g_assert_cmpuint (row (big, 1)->st.rf_h.size, ==, 7);
  g_assert_cmpuint (stack->folded_totals.weights, ==, 27 * 64 * 64);
  g_assert_cmpuint (big->folded_totals.weights, ==, 49 * 64 * 64);
  /* Each layer of the stack grows the field by 2. */
  for (guint i = 1; i <= 3; i++)
    g_assert_cmpuint (row (stack, i)->st.rf_h.size, ==, 1 + 2 * i);
}

static guint64
conv_macs (const CsStats *st, guint64 out_c, guint32 k)
{
  for (guint i = 0; i < cs_graph_n_nodes (st->graph); i++)
    {
      const CsNode *n = cs_graph_node (st->graph, i);
      if (n->op == CS_OP_CONV && n->p.out == out_c && n->p.kh == k)
        return st->nodes[i].macs;
    }
  g_assert_not_reached ();
}

static void
test_inception_naive (void)
{
  g_autoptr (CsStats) st = load ("inception_naive");
  const CsNode *out = cs_graph_output (st->graph);
  g_assert_cmpint (out->op, ==, CS_OP_CONCAT);
  g_assert_cmpuint (out->shape.h, ==, 28);
  g_assert_cmpuint (out->shape.c, ==, 128 + 192 + 96 + 256);
  g_assert_cmpuint (conv_macs (st, 128, 1), ==, 25690112);
  g_assert_cmpuint (conv_macs (st, 192, 3), ==, 346816512);
  g_assert_cmpuint (conv_macs (st, 96, 5), ==, 481689600);
  g_assert_cmpuint (st->folded_totals.macs, ==, 854196224);
}

static void
test_inception_reduced (void)
{
  g_autoptr (CsStats) st = load ("inception_reduced");
  const CsNode *out = cs_graph_output (st->graph);
  g_assert_cmpuint (out->shape.c, ==, 128 + 192 + 96 + 64);
  guint n64 = 0;
  for (guint i = 0; i < cs_graph_n_nodes (st->graph); i++)
    {
      const CsNode *n = cs_graph_node (st->graph, i);
      if (n->op == CS_OP_CONV && n->p.out == 64)
        {
          g_assert_cmpuint (st->nodes[i].macs, ==, 12845056);
          n64++;
        }
    }
  g_assert_cmpuint (n64, ==, 3);
  g_assert_cmpuint (conv_macs (st, 128, 1), ==, 25690112);
  g_assert_cmpuint (conv_macs (st, 192, 3), ==, 86704128);
  g_assert_cmpuint (conv_macs (st, 96, 5), ==, 120422400);
  /* The six terms' true sum; the lecture prints "358M". */
  g_assert_cmpuint (st->folded_totals.macs, ==, 271351808);
}

/* A batch scales activations and MACs, not parameters. */
static void
test_batch (void)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model ("vgg16", &error);
  g_assert_no_error (error);
  g_autoptr (CsStats) st = cs_stats_compute (g, 64, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (st->folded_totals.batch_activations, ==, 15237608ull * 64);
  g_assert_cmpuint (st->folded_totals.activation_bytes, ==, 15237608ull * 64 * 4);
  g_assert_cmpuint (st->folded_totals.batch_macs, ==, 15470264320ull * 64);
  g_assert_cmpuint (st->folded_totals.batch_flops, ==, 15470264320ull * 128);
  g_assert_cmpuint (st->folded_totals.params, ==, 138357544);
  g_assert_cmpuint (st->folded_totals.training_bytes, ==,
                    4 * (2 * 15237608ull * 64 + 3 * 138357544ull));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/core/lecture/alexnet", test_alexnet);
  g_test_add_func ("/core/lecture/alexnet-2gpu", test_alexnet_2gpu);
  g_test_add_func ("/core/lecture/vgg16", test_vgg16);
  g_test_add_func ("/core/lecture/vgg19", test_vgg19);
  g_test_add_func ("/core/lecture/small-filters", test_small_filters);
  g_test_add_func ("/core/lecture/inception-naive", test_inception_naive);
  g_test_add_func ("/core/lecture/inception-reduced", test_inception_reduced);
  g_test_add_func ("/core/lecture/batch", test_batch);
  return g_test_run ();
}
