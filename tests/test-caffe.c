/* The Caffe importer: the reference deploy files load with their check values and agree with the
 * bundled .cnn models; V1 and V2 files agree; every kind of bad input is a positioned CS_ERROR. */
#include "cs-caffe.h"
#include "cs-error.h"
#include "cs-parser.h"
#include "cs-stats.h"
#include "cs-zoo.h"
#include "test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static char *
read_data (const char *name, gsize *len)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "caffe", name, NULL);
  char *text = NULL;
  GError *error = NULL;
  if (!g_file_get_contents (path, &text, len, &error))
    g_error ("%s", error->message);
  return text;
}

/* Line LINE (from 1) of TEXT (LEN bytes) without its end of line, NUL bytes as spaces, as the
 * messages show it; NULL when there is none. */
static char *
source_line (const char *text, gsize len, guint line)
{
  const char *p = text, *end = text + len;
  for (guint l = 1; l < line; l++)
    {
      p = memchr (p, '\n', end - p);
      if (p == NULL)
        return NULL;
      p++;
    }
  const char *eol = memchr (p, '\n', end - p);
  gsize n = (eol ? eol : end) - p;
  if (n > 0 && p[n - 1] == '\r')
    n--;
  char *s = g_strndup (p, n);
  for (gsize i = 0; i < n; i++)
    if (s[i] == '\0')
      s[i] = ' ';
  return s;
}

/* The position of P in TEXT as a line and a column of characters, both from 1. */
static void
line_col (const char *text, const char *p, guint *line, guint *col)
{
  *line = 1, *col = 1;
  for (const char *q = text; q < p; q++)
    if (*q == '\n')
      *line += 1, *col = 1;
    else if (((guchar) *q & 0xC0) != 0x80)
      *col += 1;
}

/* Checks ERROR: its code, "t.prototxt:LINE:COL: " (or "t.prototxt: " for LINE 0), the WORDS, and
 * the source line with a caret under the column. */
static void
check_error (int where, const char *text, gsize len, const GError *error, gint code, guint line,
             guint col, const char *const *words)
{
  if (error == NULL)
    {
      fail ("line %d: expected CS_ERROR_%s at %u:%u, but there is no error", where,
            code_name (code), line, col);
      return;
    }
  const char *msg = error->message;
  if (error->domain != CS_ERROR || error->code != code)
    fail ("line %d: %s CS_ERROR_%s, expected CS_ERROR_%s: %s", where,
          g_quark_to_string (error->domain), code_name (error->code), code_name (code), msg);
  g_autofree char *prefix = line ? g_strdup_printf ("t.prototxt:%u:%u: ", line, col)
                                 : g_strdup ("t.prototxt: ");
  if (!g_str_has_prefix (msg, prefix))
    fail ("line %d: the message does not start with \"%s\": %s", where, prefix, msg);
  for (guint i = 0; words && words[i]; i++)
    if (strstr (msg, words[i]) == NULL)
      fail ("line %d: the message lacks \"%s\": %s", where, words[i], msg);
  g_auto (GStrv) lines = g_strsplit (msg, "\n", -1);
  g_autofree char *raw = line ? source_line (text, len, line) : NULL;
  /* Messages show invalid bytes as U+FFFD. */
  g_autofree char *src = raw ? g_utf8_make_valid (raw, -1) : NULL;
  if (src)
    {
      g_autofree char *want_src = g_strconcat ("  ", src, NULL);
      GString *caret = g_string_new ("  ");
      guint c = 1;
      for (const char *p = src; *p && c < col; p = g_utf8_next_char (p), c++)
        g_string_append_c (caret, *p == '\t' ? '\t' : ' ');
      g_string_append_c (caret, '^');
      g_autofree char *want_caret = g_string_free (caret, FALSE);
      if (g_strv_length (lines) < 3 || strcmp (lines[1], want_src) != 0
          || strcmp (lines[2], want_caret) != 0)
        fail ("line %d: the message lacks the source line and caret\n%s\n%s\nin: %s", where,
              want_src, want_caret, msg);
    }
  else if (lines[1])
    fail ("line %d: a source snippet for a position that has none: %s", where, msg);
}

static void
expect_error_len (int where, const char *text, gsize len, gint code, guint line, guint col,
                  const char *const *words)
{
  GError *error = NULL;
  CsGraph *g = cs_caffe_load ("t.prototxt", text, len, &error);
  if (g)
    {
      fail ("line %d: expected CS_ERROR_%s at %u:%u, but the file loaded", where,
            code_name (code), line, col);
      cs_graph_unref (g);
      return;
    }
  check_error (where, text, len, error, code, line, col, words);
  g_clear_error (&error);
}

#define WORDS(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define EXPECT(text, code, line, col, ...) \
  expect_error_len (__LINE__, (text), strlen (text), (code), (line), (col), WORDS (__VA_ARGS__))

static CsGraph *
load_ok (int where, const char *text)
{
  GError *error = NULL;
  CsGraph *g = cs_caffe_load ("t.prototxt", text, strlen (text), &error);
  if (g == NULL)
    {
      fail ("line %d: the file should load: %s", where, error->message);
      g_clear_error (&error);
    }
  return g;
}

#define LOAD_OK(text) load_ok (__LINE__, (text))

static CsNode *
node (CsGraph *g, const char *name)
{
  CsNode *n = cs_graph_lookup (g, name);
  if (n == NULL)
    fail ("no node '%s'", name);
  return n;
}

static char *
shape_of (CsGraph *g, const char *name)
{
  CsNode *n = node (g, name);
  return n ? cs_shape_to_string (&n->shape) : g_strdup ("?");
}

#define ASSERT_SHAPE(g, name, want) \
  G_STMT_START { \
    g_autofree char *got_ = shape_of ((g), (name)); \
    if (strcmp (got_, (want)) != 0) \
      fail ("line %d: '%s' is %s, expected %s", __LINE__, (name), got_, (want)); \
  } G_STMT_END

/* A header that declares an 8x8x3 input called "data", for the small files below. */
#define HEAD "input: \"data\"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n"

/* ---------------------------------------------------------------------------------------- */
/* The reference files                                                                       */

typedef struct {
  const char *file;
  guint64 params;
  guint64 macs_m;               /* multiply-adds per image in millions, as given */
  const char *input;            /* H x W x C */
  const char *ceil_pools[3];    /* pools where Caffe's ceil rounding differs from floor ... */
  const char *ceil_shapes[3];   /* ... and their outputs */
} Reference;

/* The check values of tests/data/caffe/README.md. */
static const Reference references[] = {
  { "bvlc_alexnet", 60965224, 724, "227x227x3", { NULL }, { NULL } },
  { "bvlc_reference_caffenet", 60965224, 724, "227x227x3", { NULL }, { NULL } },
  { "resnet101", 44549160, 7570, "224x224x3", { "pool1" }, { "56x56x64" } },
  { "squeezenet_v1.0", 1248424, 861, "227x227x3", { NULL }, { NULL } },
  { "squeezenet_v1.1", 1235496, 388, "227x227x3", { "pool3", "pool5" },
    { "28x28x128", "14x14x256" } },
};

static CsGraph *
load_reference (const char *name)
{
  g_autofree char *file = g_strconcat (name, ".prototxt", NULL);
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "caffe", file, NULL);
  GError *error = NULL;
  CsGraph *g = cs_caffe_load_file (path, &error);
  g_assert_no_error (error);
  return g;
}

static void
test_reference (gconstpointer data)
{
  const Reference *r = data;
  g_autoptr (CsGraph) g = load_reference (r->file);
  GError *error = NULL;
  g_autoptr (CsStats) st = cs_stats_compute (g, 1, &error);
  g_assert_no_error (error);
  const CsTotals *t = &st->folded_totals;
  g_autofree char *params = cs_format_count (t->params);
  g_autofree char *macs = cs_format_count (t->macs);
  g_test_message ("%s: %u layers, %s parameters, %s multiply-adds per image", r->file,
                  cs_graph_n_nodes (g), params, macs);
  if (t->params != r->params)
    fail ("%s: %" G_GUINT64_FORMAT " parameters, expected %" G_GUINT64_FORMAT, r->file,
          t->params, r->params);
  /* Rounded to the digits the check value gives. */
  if ((guint64) llround (t->macs / 1e6) != r->macs_m)
    fail ("%s: %" G_GUINT64_FORMAT " multiply-adds, expected %" G_GUINT64_FORMAT "M", r->file,
          t->macs, r->macs_m);
  const CsNode *in = cs_graph_node (g, 0);
  g_autofree char *in_shape = cs_shape_to_string (&in->shape);
  g_assert_cmpint (in->op, ==, CS_OP_INPUT);
  g_assert_cmpstr (in_shape, ==, r->input);
  for (guint i = 0; i < G_N_ELEMENTS (r->ceil_pools) && r->ceil_pools[i]; i++)
    {
      ASSERT_SHAPE (g, r->ceil_pools[i], r->ceil_shapes[i]);
      g_assert_true (node (g, r->ceil_pools[i])->p.ceil);
    }
  g_assert_true (g->note && strstr (g->note, "batch"));
  g_assert_cmpstr (g->title, ==, g->name);
}

static void
test_reference_names (void)
{
  g_autoptr (CsGraph) alex = load_reference ("bvlc_alexnet");
  g_assert_cmpstr (alex->name, ==, "AlexNet");
  g_assert_nonnull (strstr (alex->note, "batch of 10"));
  CsNode *conv2 = node (alex, "conv2");
  g_assert_cmpuint (conv2->p.groups, ==, 2);
  g_assert_cmpuint (conv2->p.ph, ==, 2);
  CsNode *norm1 = node (alex, "norm1");
  g_assert_cmpuint (norm1->p.size, ==, 5);
  g_assert_cmpfloat (norm1->p.alpha, ==, 0.0001);
  g_assert_cmpfloat (norm1->p.k, ==, 1);              /* Caffe's default, not cnnscope's 2 */
  g_assert_cmpint (node (alex, "drop6")->op, ==, CS_OP_DROPOUT);
  g_assert_cmpint (node (alex, "prob")->op, ==, CS_OP_SOFTMAX);
  /* relu1 works in place on conv1's blob: norm1 reads relu1. */
  g_assert_cmpuint (norm1->inputs[0], ==, node (alex, "relu1")->id);

  /* SqueezeNet v1.0 has no name: the file's. Its slashes make modules. */
  g_autoptr (CsGraph) sq = load_reference ("squeezenet_v1.0");
  g_assert_cmpstr (sq->name, ==, "squeezenet_v1.0");
  g_assert_cmpstr (node (sq, "fire2/expand3x3")->module, ==, "fire2");
  g_assert_cmpstr (node (sq, "fire9/concat")->module, ==, "fire9");
  g_assert_cmpstr (node (sq, "conv1")->module, ==, "");
  g_assert_true (node (sq, "pool10")->p.global);
  g_assert_cmpint (node (sq, "pool10")->op, ==, CS_OP_AVGPOOL);

  /* ResNet-101: BatchNorm + Scale pairs are one batch norm with its scale and shift; no
   * modules. */
  g_autoptr (CsGraph) res = load_reference ("resnet101");
  g_assert_cmpstr (res->name, ==, "ResNet-101");
  CsNode *bn = node (res, "bn_conv1");
  g_assert_cmpint (bn->op, ==, CS_OP_BN);
  g_assert_false (bn->p.noaffine);
  g_assert_null (cs_graph_lookup (res, "scale_conv1"));
  g_assert_true (node (res, "conv1")->p.nobias);
  g_assert_cmpstr (node (res, "res2a_branch1")->module, ==, "");
  CsNode *add = node (res, "res2a");
  g_assert_cmpint (add->op, ==, CS_OP_ADD);
  g_assert_cmpuint (add->n_inputs, ==, 2);
  /* Its inputs are the scaled outputs of both branches. */
  g_assert_cmpuint (add->inputs[0], ==, node (res, "bn2a_branch1")->id);
  g_assert_cmpuint (add->inputs[1], ==, node (res, "bn2a_branch2c")->id);
  g_assert_cmpint (node (res, "pool5")->op, ==, CS_OP_AVGPOOL);
  ASSERT_SHAPE (res, "pool5", "1x1x2048");
}

/* "conv 55x55x96": the output of every conv, fc and pool, in order. */
static GPtrArray *
window_outputs (CsGraph *g)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      if (n->op != CS_OP_CONV && n->op != CS_OP_FC && n->op != CS_OP_MAXPOOL
          && n->op != CS_OP_AVGPOOL)
        continue;
      g_autofree char *s = cs_shape_to_string (&n->shape);
      g_ptr_array_add (out, g_strdup_printf ("%s %s", cs_layer_class (n->op)->name, s));
    }
  return out;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

typedef struct {
  const char *caffe, *cnn;
  gboolean input_227;           /* the bundled file uses 224; Caffe's uses 227 */
  gboolean any_order;           /* Caffe writes a projection shortcut before its branch */
  const char *caffe_only;       /* an output only the Caffe file has ... */
  const char *cnn_only;         /* ... in place of this one */
  guint64 extra_macs;           /* and the multiply-adds it adds */
} Twin;

static const Twin twins[] = {
  { "bvlc_alexnet", "alexnet_2gpu", FALSE, FALSE, NULL, NULL, 0 },
  /* Caffe's SqueezeNet v1.0 pads its 1x1 conv10 by 1 (13x13 -> 15x15, then the global pool);
   * torchvision's, which the bundled file follows, does not: 512*1000*(15*15-13*13) more. */
  { "squeezenet_v1.0", "squeezenet1_0", TRUE, FALSE, "conv 15x15x1000", "conv 13x13x1000",
    512 * 1000 * (15 * 15 - 13 * 13) },
  { "squeezenet_v1.1", "squeezenet1_1", TRUE, FALSE, NULL, NULL, 0 },
  { "resnet101", "resnet101", FALSE, TRUE, NULL, NULL, 0 },
};

static void
test_twin (gconstpointer data)
{
  const Twin *t = data;
  g_autoptr (CsGraph) caffe = load_reference (t->caffe);
  g_autoptr (GBytes) src = cs_zoo_source (t->cnn);
  g_assert_nonnull (src);
  gsize len;
  const char *text = g_bytes_get_data (src, &len);
  g_autofree char *cnn_text = g_strndup (text, len);
  if (t->input_227)
    {
      char *at = strstr (cnn_text, "\ninput 224x224x3\n");
      g_assert_nonnull (at);
      g_assert_null (strstr (at + 1, "\ninput 224x224x3\n"));
      memcpy (at + 7, "227x227", 7);
    }
  GError *error = NULL;
  g_autoptr (CsGraph) cnn = cs_parse_model (t->cnn, cnn_text, strlen (cnn_text), &error);
  g_assert_no_error (error);

  g_autoptr (GPtrArray) a = window_outputs (caffe);
  g_autoptr (GPtrArray) b = window_outputs (cnn);
  if (t->any_order)
    {
      g_ptr_array_sort (a, compare_strings);
      g_ptr_array_sort (b, compare_strings);
    }
  g_assert_cmpuint (a->len, ==, b->len);
  guint differences = 0;
  for (guint i = 0; i < a->len; i++)
    {
      const char *x = a->pdata[i], *y = b->pdata[i];
      if (strcmp (x, y) == 0)
        continue;
      if (t->caffe_only && strcmp (x, t->caffe_only) == 0 && strcmp (y, t->cnn_only) == 0)
        {
          differences++;
          continue;
        }
      fail ("%s vs %s: output %u is %s in Caffe's file, %s in the bundled one", t->caffe,
            t->cnn, i + 1, x, y);
    }
  g_assert_cmpuint (differences, ==, t->caffe_only ? 1 : 0);

  g_autoptr (CsStats) sa = cs_stats_compute (caffe, 1, &error);
  g_assert_no_error (error);
  g_autoptr (CsStats) sb = cs_stats_compute (cnn, 1, &error);
  g_assert_no_error (error);
  g_test_message ("%s: %" G_GUINT64_FORMAT " params, %" G_GUINT64_FORMAT " MACs; %s: %"
                  G_GUINT64_FORMAT " params, %" G_GUINT64_FORMAT " MACs", t->caffe,
                  sa->folded_totals.params, sa->folded_totals.macs, t->cnn,
                  sb->folded_totals.params, sb->folded_totals.macs);
  g_assert_cmpuint (sa->folded_totals.params, ==, sb->folded_totals.params);
  g_assert_cmpuint (sa->folded_totals.macs, ==, sb->folded_totals.macs + t->extra_macs);
}

/* Every prefix of a file either loads or fails with a CS_ERROR naming the file; so do files
 * with bytes changed at random. Under the sanitizers this is a small fuzz run. */
static void
test_prefixes_and_mutations (void)
{
  gsize len;
  g_autofree char *text = read_data ("bvlc_alexnet.prototxt", &len);
  guint loaded = 0;
  for (gsize n = 0; n <= len; n++)
    {
      GError *error = NULL;
      CsGraph *g = cs_caffe_load ("t.prototxt", text, n, &error);
      if (g)
        {
          loaded++;
          cs_graph_unref (g);
          continue;
        }
      g_assert_error (error, CS_ERROR, error->code);
      g_assert_true (g_str_has_prefix (error->message, "t.prototxt:"));
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      g_clear_error (&error);
    }
  /* Only the prefixes that end right after one of the 24 layers load (with or without the
   * newline after its brace): the whole file is the last of them. */
  g_assert_cmpuint (loaded, ==, 2 * 24);
  g_test_message ("%u of %" G_GSIZE_FORMAT " prefixes load", loaded, len + 1);

  g_autofree char *sq = read_data ("squeezenet_v1.1.prototxt", &len);
  g_autoptr (GRand) rand = g_rand_new_with_seed (20160224);
  static const char bytes[] = "{}<>[]:;,\"'#\\-.0123456789 \n\txyzAVE\0\xff\xc3";
  for (guint i = 0; i < 3000; i++)
    {
      g_autofree char *copy = g_memdup2 (sq, len);
      for (guint j = 0, n = g_rand_int_range (rand, 1, 4); j < n; j++)
        copy[g_rand_int_range (rand, 0, len)] =
          bytes[g_rand_int_range (rand, 0, sizeof bytes - 1)];
      GError *error = NULL;
      CsGraph *g = cs_caffe_load ("t.prototxt", copy, len, &error);
      if (g)
        {
          GError *e2 = NULL;
          CsStats *st = cs_stats_compute (g, 1, &e2);
          g_clear_error (&e2);
          if (st)
            cs_stats_free (st);
          cs_graph_unref (g);
          continue;
        }
      g_assert_true (error->domain == CS_ERROR);
      g_assert_true (g_str_has_prefix (error->message, "t.prototxt"));
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      g_clear_error (&error);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* V1 and V2                                                                                 */

static const char tiny_v2[] =
  "name: \"tiny\"\n"
  "layer { name: \"data\" type: \"Input\" top: \"data\"\n"
  "        input_param { shape { dim: 2 dim: 3 dim: 32 dim: 32 } } }\n"
  "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
  "        param { lr_mult: 1 } param { lr_mult: 2 }\n"
  "        convolution_param { num_output: 16 kernel_size: 5 pad: 2\n"
  "                            weight_filler { type: \"gaussian\" std: 0.01 } } }\n"
  "layer { name: \"relu1\" type: \"ReLU\" bottom: \"conv1\" top: \"conv1\" }\n"
  "layer { name: \"pool1\" type: \"Pooling\" bottom: \"conv1\" top: \"pool1\"\n"
  "        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
  "layer { name: \"norm1\" type: \"LRN\" bottom: \"pool1\" top: \"norm1\"\n"
  "        lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 } }\n"
  "layer { name: \"b1/conv\" type: \"Convolution\" bottom: \"norm1\" top: \"b1\"\n"
  "        convolution_param { num_output: 8 kernel_size: 1 } }\n"
  "layer { name: \"b2/conv\" type: \"Convolution\" bottom: \"norm1\" top: \"b2\"\n"
  "        convolution_param { num_output: 8 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 } }\n"
  "layer { name: \"cat\" type: \"Concat\" bottom: \"b1\" bottom: \"b2\" top: \"cat\" }\n"
  "layer { name: \"proj\" type: \"Convolution\" bottom: \"norm1\" top: \"proj\"\n"
  "        convolution_param { num_output: 16 kernel_size: 1 bias_term: false } }\n"
  "layer { name: \"sum\" type: \"Eltwise\" bottom: \"cat\" bottom: \"proj\" top: \"sum\"\n"
  "        eltwise_param { operation: SUM } }\n"
  "layer { name: \"pool2\" type: \"Pooling\" bottom: \"sum\" top: \"pool2\"\n"
  "        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }\n"
  "layer { name: \"sig\" type: \"Sigmoid\" bottom: \"pool2\" top: \"pool2\" }\n"
  "layer { name: \"flat\" type: \"Flatten\" bottom: \"pool2\" top: \"flat\" }\n"
  "layer { name: \"fc1\" type: \"InnerProduct\" bottom: \"flat\" top: \"fc1\"\n"
  "        inner_product_param { num_output: 64 } }\n"
  "layer { name: \"tanh1\" type: \"TanH\" bottom: \"fc1\" top: \"fc1\" }\n"
  "layer { name: \"drop1\" type: \"Dropout\" bottom: \"fc1\" top: \"fc1\"\n"
  "        dropout_param { dropout_ratio: 0.3 } }\n"
  "layer { name: \"fc2\" type: \"InnerProduct\" bottom: \"fc1\" top: \"fc2\"\n"
  "        inner_product_param { num_output: 10 } }\n"
  "layer { name: \"prob\" type: \"Softmax\" bottom: \"fc2\" top: \"prob\" }\n"
  "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"fc2\" bottom: \"label\"\n"
  "        top: \"loss\" include { phase: TRAIN } }\n";

static const char tiny_v1[] =
  "name: \"tiny\"\n"
  "input: \"data\"\n"
  "input_dim: 2\ninput_dim: 3\ninput_dim: 32\ninput_dim: 32\n"
  "layers {\n"
  "  name: \"conv1\" type: CONVOLUTION bottom: \"data\" top: \"conv1\"\n"
  "  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0\n"
  "  convolution_param { num_output: 16 kernel_size: 5 pad: 2\n"
  "                      weight_filler { type: \"gaussian\" std: 0.01 } }\n"
  "}\n"
  "layers { name: \"relu1\" type: RELU bottom: \"conv1\" top: \"conv1\" }\n"
  "layers { name: \"pool1\" type: POOLING bottom: \"conv1\" top: \"pool1\"\n"
  "         pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
  "layers { name: \"norm1\" type: LRN bottom: \"pool1\" top: \"norm1\"\n"
  "         lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 } }\n"
  "layers { name: \"b1/conv\" type: CONVOLUTION bottom: \"norm1\" top: \"b1\"\n"
  "         blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 8 kernel_size: 1 } }\n"
  "layers { name: \"b2/conv\" type: CONVOLUTION bottom: \"norm1\" top: \"b2\"\n"
  "         convolution_param { num_output: 8 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 } }\n"
  "layers { name: \"cat\" type: CONCAT bottom: \"b1\" bottom: \"b2\" top: \"cat\"\n"
  "         concat_param { concat_dim: 1 } }\n"
  "layers { name: \"proj\" type: CONVOLUTION bottom: \"norm1\" top: \"proj\"\n"
  "         convolution_param { num_output: 16 kernel_size: 1 bias_term: false } }\n"
  "layers { name: \"sum\" type: ELTWISE bottom: \"cat\" bottom: \"proj\" top: \"sum\"\n"
  "         eltwise_param { operation: SUM } }\n"
  "layers { name: \"pool2\" type: POOLING bottom: \"sum\" top: \"pool2\"\n"
  "         pooling_param { pool: AVE kernel_size: 3 stride: 2 } }\n"
  "layers { name: \"sig\" type: SIGMOID bottom: \"pool2\" top: \"pool2\" }\n"
  "layers { name: \"flat\" type: FLATTEN bottom: \"pool2\" top: \"flat\" }\n"
  "layers { name: \"fc1\" type: INNER_PRODUCT bottom: \"flat\" top: \"fc1\"\n"
  "         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0\n"
  "         inner_product_param { num_output: 64 } }\n"
  "layers { name: \"tanh1\" type: TANH bottom: \"fc1\" top: \"fc1\" }\n"
  "layers { name: \"drop1\" type: DROPOUT bottom: \"fc1\" top: \"fc1\"\n"
  "         dropout_param { dropout_ratio: 0.3 } }\n"
  "layers { name: \"fc2\" type: INNER_PRODUCT bottom: \"fc1\" top: \"fc2\"\n"
  "         inner_product_param { num_output: 10 } }\n"
  "layers { name: \"prob\" type: SOFTMAX bottom: \"fc2\" top: \"prob\" }\n"
  "layers { name: \"loss\" type: SOFTMAX_LOSS bottom: \"fc2\" bottom: \"label\" top: \"loss\"\n"
  "         include { phase: TRAIN } }\n";

static void
test_v1_twin (void)
{
  /* The V1 file goes through a real file, as a user's would. */
  g_autofree char *dir = g_dir_make_tmp ("test-caffe-XXXXXX", NULL);
  g_assert_nonnull (dir);
  g_autofree char *path = g_build_filename (dir, "tiny_v1.prototxt", NULL);
  g_assert_true (g_file_set_contents (path, tiny_v1, -1, NULL));
  GError *error = NULL;
  g_autoptr (CsGraph) v1 = cs_caffe_load_file (path, &error);
  g_assert_no_error (error);
  g_unlink (path);
  g_rmdir (dir);
  g_autoptr (CsGraph) v2 = LOAD_OK (tiny_v2);
  g_assert_nonnull (v2);

  g_assert_cmpuint (cs_graph_n_nodes (v1), ==, cs_graph_n_nodes (v2));
  for (guint i = 0; i < cs_graph_n_nodes (v2); i++)
    {
      const CsNode *a = cs_graph_node (v1, i), *b = cs_graph_node (v2, i);
      g_assert_cmpstr (a->name, ==, b->name);
      g_assert_cmpstr (a->module, ==, b->module);
      g_assert_cmpint (a->op, ==, b->op);
      g_assert_cmpuint (a->n_inputs, ==, b->n_inputs);
      for (guint j = 0; j < a->n_inputs; j++)
        g_assert_cmpuint (a->inputs[j], ==, b->inputs[j]);
      g_assert_true (memcmp (&a->shape, &b->shape, sizeof a->shape) == 0);
      /* Every parameter, not only the shapes they give. */
      g_assert_true (memcmp (&a->p, &b->p, sizeof a->p) == 0);
    }
  g_assert_nonnull (strstr (v1->note, "V1"));
  g_assert_nonnull (strstr (v2->note, "V2"));
  g_assert_nonnull (strstr (v2->note, "batch of 2"));
  /* The "data" node of the V1 file is its top-level input. */
  g_assert_cmpstr (cs_graph_node (v1, 0)->name, ==, "data");
  g_assert_null (cs_graph_lookup (v2, "loss"));

  ASSERT_SHAPE (v2, "conv1", "32x32x16");
  ASSERT_SHAPE (v2, "pool1", "16x16x16");          /* ceil: (32-3)/2 = 14.5 -> 16 */
  ASSERT_SHAPE (v2, "b2/conv", "16x16x8");
  ASSERT_SHAPE (v2, "cat", "16x16x16");
  ASSERT_SHAPE (v2, "pool2", "8x8x16");
  ASSERT_SHAPE (v2, "flat", "1x1x1024");
  ASSERT_SHAPE (v2, "prob", "1x1x10");
  g_assert_cmpstr (node (v2, "b1/conv")->module, ==, "b1");
  CsNode *b2 = node (v2, "b2/conv");
  g_assert_cmpuint (b2->p.kh, ==, 3);
  g_assert_cmpuint (b2->p.kw, ==, 1);
  g_assert_cmpuint (b2->p.ph, ==, 1);
  g_assert_cmpuint (b2->p.pw, ==, 0);
  g_assert_true (node (v2, "proj")->p.nobias);
  g_assert_cmpfloat (node (v2, "drop1")->p.p, ==, 0.3);
  g_assert_cmpint (node (v2, "sum")->op, ==, CS_OP_ADD);
  g_assert_cmpint (node (v2, "pool2")->op, ==, CS_OP_AVGPOOL);
  /* fc2 reads fc1's blob after two in-place layers: the last of them. */
  g_assert_cmpuint (node (v2, "fc2")->inputs[0], ==, node (v2, "drop1")->id);
}

/* ---------------------------------------------------------------------------------------- */
/* The text format                                                                           */

static void
test_syntax_forms (void)
{
  /* name: { } and name { }, < >, lists, separators, comments, quotes and escapes, numbers. */
  g_autoptr (CsGraph) g = LOAD_OK (
    "# a comment\n"
    "name: 'it\\'s' \" \\x41\\102\\t\\u00e9\"  # concatenated\n"
    "layer: { name: \"in\" type: \"Input\" top: \"d\"\n"
    "  input_param: < shape: { dim: [1, 0x3, 16, 16] } > };\n"
    "layer { name: 'c/\\\"q\\\"'; type: \"Convolution\", bottom: 'd' top: \"c\"\n"
    "  convolution_param { num_output: 010 kernel_size: [3] stride: 1 pad: 1 dilation: 2 } }\n"
    "layer { name: \"n\" type: \"LRN\" bottom: \"c\" top: \"n\"\n"
    "  lrn_param { local_size: 3 alpha: 1e-4 beta: .75 k: 2.0f } }\n"
    "layer { name: \"r\" type: \"ReLU\" bottom: \"n\" top: \"n\"\n"
    "  relu_param { negative_slope: 0.1 engine: CUDNN } }\n"
    "layer { name: \"f\" type: \"InnerProduct\" bottom: \"n\" top: \"f\"\n"
    "  inner_product_param { num_output: 4 bias_term: False } }\n");
  g_assert_nonnull (g);
  g_assert_cmpstr (g->name, ==, "it's AB\t\xc3\xa9");
  CsNode *c = node (g, "c/\"q\"");
  g_assert_cmpstr (c->module, ==, "c");
  g_assert_cmpuint (c->p.out, ==, 8);                   /* 010 is octal */
  g_assert_cmpuint (c->p.dh, ==, 2);
  ASSERT_SHAPE (g, "c/\"q\"", "14x14x8");               /* 16 + 2 - 2*2 */
  CsNode *n = node (g, "n");
  g_assert_cmpfloat (n->p.beta, ==, 0.75);
  g_assert_cmpfloat (n->p.k, ==, 2);
  CsNode *r = node (g, "r");
  g_assert_cmpint (r->op, ==, CS_OP_LEAKYRELU);
  g_assert_cmpfloat (r->p.p, ==, 0.1);
  g_assert_true (node (g, "f")->p.nobias);
  g_assert_cmpuint (node (g, "f")->inputs[0], ==, r->id);

  /* An empty file and a file of comments declare no input. */
  EXPECT ("", CS_ERROR_PARSE, 0, 0, "declares no input");
  EXPECT ("# nothing\n", CS_ERROR_PARSE, 0, 0, "declares no input");
  /* A byte order mark is skipped, and the columns after it stay right. */
  EXPECT ("\xEF\xBB\xBFname: @\n", CS_ERROR_PARSE, 1, 8, "unexpected character '@'");
}

static void
test_syntax_errors (void)
{
  EXPECT (HEAD "layer { name: \"a\" }\n}\n", CS_ERROR_PARSE, 4, 1, "unexpected '}'");
  EXPECT (HEAD "layer { name: \"a\"\nlayer { name: \"b\" }\n", CS_ERROR_PARSE, 3, 7,
          "'{' of 'layer' is never closed", "ends at line 5");
  EXPECT (HEAD "layer { pooling_param < kernel_size: 2 } }\n", CS_ERROR_PARSE, 3, 40,
          "expected '>' to close 'pooling_param'");
  EXPECT (HEAD "layer { name \"a\" }\n", CS_ERROR_PARSE, 3, 14, "expected ':' or '{' after 'name'");
  EXPECT (HEAD "layer { name: }\n", CS_ERROR_PARSE, 3, 15, "expected a value for 'name'");
  EXPECT (HEAD "layer { : 1 }\n", CS_ERROR_PARSE, 3, 9, "expected a field name");
  EXPECT (HEAD "layer { name: \"a\n\" }\n", CS_ERROR_PARSE, 3, 15, "unterminated string");
  EXPECT (HEAD "layer { name: \"a\\q\" }\n", CS_ERROR_PARSE, 3, 17, "unknown escape");
  EXPECT (HEAD "layer { name: \"a\\0\" }\n", CS_ERROR_PARSE, 3, 17, "NUL");
  EXPECT (HEAD "layer { name: \"\xff\" }\n", CS_ERROR_PARSE, 3, 15, "not valid UTF-8");
  EXPECT (HEAD "layer { name: \xc3\xa9 }\n", CS_ERROR_PARSE, 3, 15, "unexpected character 'é'");
  EXPECT (HEAD "layer { x: 12ab }\n", CS_ERROR_PARSE, 3, 12, "malformed number '12a'");
  EXPECT (HEAD "layer { x: 09 }\n", CS_ERROR_PARSE, 3, 12, "octal");
  EXPECT (HEAD "layer { x: 99999999999999999999 }\n", CS_ERROR_PARSE, 3, 12, "64 bits");
  EXPECT (HEAD "layer { x: - y }\n", CS_ERROR_PARSE, 3, 14, "expected a number after '-'");
  EXPECT (HEAD "layer { x: [1, 2 }\n", CS_ERROR_PARSE, 3, 18, "expected ',' or ']'");
  EXPECT (HEAD "layer { [ext.field]: 1 }\n", CS_ERROR_UNSUPPORTED, 3, 9, "extension");
  static const char nul[] = HEAD "layer { x: 1 }\0 more";
  expect_error_len (__LINE__, nul, sizeof nul - 1, CS_ERROR_PARSE, 3, 15,
                    WORDS ("unexpected byte 0x00"));

  /* The limits: nesting, and the file size. */
  GString *deep = g_string_new (HEAD);
  for (guint i = 0; i < 65; i++)
    g_string_append (deep, "a {\n");
  EXPECT (deep->str, CS_ERROR_LIMIT, 3 + 64, 3, "nested more than 64");
  g_string_free (deep, TRUE);
  gsize big = CS_CAFFE_MAX_BYTES + 1;
  g_autofree char *spaces = g_malloc (big);
  memset (spaces, ' ', big);
  expect_error_len (__LINE__, spaces, big, CS_ERROR_LIMIT, 0, 0, WORDS ("limited to 8388608"));
  /* A field given twice where protobuf allows it once. */
  EXPECT (HEAD "layer { name: \"a\" name: \"b\" type: \"ReLU\" }\n", CS_ERROR_PARSE, 3, 19,
          "'name' is given twice");
}

/* ---------------------------------------------------------------------------------------- */
/* The reference files' failures                                                             */

static void
test_truncated (void)
{
  gsize len;
  g_autofree char *text = read_data ("bvlc_alexnet.prototxt", &len);
  /* Cut inside conv2's convolution_param: its brace is the innermost one left open. */
  const char *cut = strstr (text, "    group: 2");
  g_assert_nonnull (cut);
  const char *brace = g_strrstr_len (text, cut - text, "convolution_param {");
  guint line, col;
  line_col (text, brace + strlen ("convolution_param "), &line, &col);
  expect_error_len (__LINE__, text, cut - text, CS_ERROR_PARSE, line, col,
                    WORDS ("'{' of 'convolution_param' is never closed"));
  /* Cut after a layer's closing brace: a valid prefix, which loads. */
  const char *after = strstr (text, "layer {\n  name: \"conv2\"");
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_caffe_load ("t.prototxt", text, after - text, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cs_graph_output (g)->name, ==, "pool1");
}

/* ---------------------------------------------------------------------------------------- */
/* Inputs                                                                                    */

static void
test_inputs (void)
{
  /* The three declarations give the same input. */
  const char *forms[] = {
    "layer { name: \"data\" type: \"Input\" top: \"data\"\n"
    "  input_param { shape { dim: 4 dim: 3 dim: 10 dim: 12 } } }\n",
    "input: \"data\"\ninput_shape { dim: 4 dim: 3 dim: 10 dim: 12 }\n",
    "input: \"data\"\ninput_dim: 4\ninput_dim: 3\ninput_dim: 10\ninput_dim: 12\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (forms); i++)
    {
      g_autofree char *text = g_strconcat (forms[i],
                                           "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" "
                                           "top: \"r\" }\n", NULL);
      g_autoptr (CsGraph) g = LOAD_OK (text);
      g_assert_nonnull (g);
      ASSERT_SHAPE (g, "data", "10x12x3");
      ASSERT_SHAPE (g, "r", "10x12x3");
      g_assert_nonnull (strstr (g->note, "batch of 4"));
      g_assert_cmpstr (g->name, ==, "t");       /* no name: the file's base name */
    }
  /* N, C: a vector. */
  g_autoptr (CsGraph) v = LOAD_OK ("input: \"x\" input_shape { dim: 1 dim: 20 }\n"
                                   "layer { name: \"fc\" type: \"InnerProduct\" bottom: \"x\" "
                                   "top: \"fc\" inner_product_param { num_output: 5 } }\n");
  g_assert_nonnull (v);
  ASSERT_SHAPE (v, "x", "1x1x20");

  /* A missing declaration. */
  EXPECT ("layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n",
          CS_ERROR_PARSE, 0, 0, "declares no input", "Input layer", "input_shape");
  EXPECT ("input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n", CS_ERROR_PARSE, 1, 1,
          "'input_shape' without an input name");
  EXPECT ("input: \"data\"\n", CS_ERROR_PARSE, 1, 1, "the input 'data' has no shape");
  EXPECT ("input: \"data\"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\n", CS_ERROR_PARSE, 2, 1,
          "four input_dim values");
  EXPECT ("input: \"data\"\ninput_dim: 1\ninput_shape { dim: 1 }\n", CS_ERROR_PARSE, 2, 1,
          "input_shape or input_dim, not both");
  EXPECT ("input: \"data\"\ninput_shape { dim: 1 dim: 3 dim: 8 }\n", CS_ERROR_UNSUPPORTED, 2, 13,
          "an input of 3 dimensions");
  EXPECT ("input: \"data\"\ninput_shape { dim: 1 dim: 0 dim: 8 dim: 8 }\n", CS_ERROR_PARSE, 2,
          27, "'dim' must be a whole number from 1 to 16777216");
  EXPECT ("input: \"data\"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: -8 }\n", CS_ERROR_PARSE, 2,
          41, "'dim' must be a whole number");
  EXPECT (HEAD "input: \"im_info\"\n", CS_ERROR_UNSUPPORTED, 3, 1, "declares 2 inputs");
  EXPECT (HEAD "layer { name: \"in2\" type: \"Input\" top: \"x\"\n"
          "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n",
          CS_ERROR_UNSUPPORTED, 3, 9, "declares 2 inputs");
  EXPECT ("layer { name: \"in\" type: \"Input\" top: \"x\" }\n", CS_ERROR_PARSE, 1, 1,
          "needs one input_param");
}

/* ---------------------------------------------------------------------------------------- */
/* Layers                                                                                    */

static void
test_pooling (void)
{
  /* 9x9, kernel 2, stride 2: ceil gives 5, floor 4. */
  const char *head = "input: \"data\"\ninput_shape { dim: 1 dim: 3 dim: 9 dim: 9 }\n";
  const char *variants[][2] = {
    { "", "5x5x3" },
    { "round_mode: CEIL", "5x5x3" },
    { "round_mode: FLOOR", "4x4x3" },
    { "ceil_mode: false", "4x4x3" },
    { "ceil_mode: true", "5x5x3" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree char *text = g_strdup_printf (
        "%slayer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
        "  pooling_param { pool: MAX kernel_size: 2 stride: 2 %s } }\n", head, variants[i][0]);
      g_autoptr (CsGraph) g = LOAD_OK (text);
      g_assert_nonnull (g);
      ASSERT_SHAPE (g, "p", variants[i][1]);
    }
  /* Caffe's stride defaults to 1, not to the kernel; padding clips the last window. */
  g_autofree char *s1 = g_strconcat (head, "layer { name: \"p\" type: \"Pooling\" bottom: "
                                     "\"data\" top: \"p\" pooling_param { pool: AVE "
                                     "kernel_size: 3 } }\n"
                                     "layer { name: \"q\" type: \"Pooling\" bottom: \"data\" "
                                     "top: \"q\" pooling_param { kernel_h: 3 kernel_w: 2 "
                                     "stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 } }\n"
                                     "layer { name: \"g\" type: \"Pooling\" bottom: \"data\" "
                                     "top: \"g\" pooling_param { pool: AVE global_pooling: "
                                     "true } }\n", NULL);
  g_autoptr (CsGraph) g = LOAD_OK (s1);
  g_assert_nonnull (g);
  ASSERT_SHAPE (g, "p", "7x7x3");
  ASSERT_SHAPE (g, "q", "5x4x3");   /* h: ceil((9+2-3)/2)+1 = 5; w: ceil((9+2-2)/3)+1 = 4 */
  ASSERT_SHAPE (g, "g", "1x1x3");
  g_assert_cmpint (node (g, "p")->op, ==, CS_OP_AVGPOOL);
  g_assert_cmpint (node (g, "q")->op, ==, CS_OP_MAXPOOL);

  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { pool: STOCHASTIC kernel_size: 2 } }\n",
          CS_ERROR_UNSUPPORTED, 4, 25, "stochastic");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { pool: MIN kernel_size: 2 } }\n",
          CS_ERROR_PARSE, 4, 25, "unknown pool 'MIN': use MAX, AVE or STOCHASTIC");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { kernel_size: 2 kernel_size: 3 } }\n",
          CS_ERROR_PARSE, 4, 34, "'kernel_size' is given twice");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { pool: MAX } }\n", CS_ERROR_PARSE, 4, 17, "needs kernel_size");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\" }\n",
          CS_ERROR_PARSE, 3, 9, "needs pooling_param");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { kernel_size: 2 global_pooling: true } }\n", CS_ERROR_PARSE, 4, 17,
          "global_pooling takes no kernel_size");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { kernel_size: 2 round_mode: FLOOR ceil_mode: false } }\n",
          CS_ERROR_PARSE, 4, 52, "round_mode or ceil_mode");
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { kernel_h: 2 } }\n", CS_ERROR_PARSE, 4, 17,
          "'kernel_h' and 'kernel_w' come as a pair");
  /* Shape errors come from the graph, at the layer's name. */
  EXPECT (HEAD "layer { name: \"p\" type: \"Pooling\" bottom: \"data\" top: \"p\"\n"
          "  pooling_param { kernel_size: 9 } }\n", CS_ERROR_SHAPE, 3, 9, "layer 'p'",
          "larger than its padded input");
}

static void
test_convolution (void)
{
  g_autoptr (CsGraph) g = LOAD_OK (
    HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
    "  convolution_param { num_output: 6 kernel_size: 3 kernel_size: 1 stride: 2 stride: 1\n"
    "                      pad: 1 pad: 0 group: 3 } }\n");
  g_assert_nonnull (g);
  CsNode *c = node (g, "c");
  g_assert_cmpuint (c->p.kh, ==, 3);
  g_assert_cmpuint (c->p.kw, ==, 1);
  g_assert_cmpuint (c->p.groups, ==, 3);
  ASSERT_SHAPE (g, "c", "4x8x6");
  g_assert_false (c->p.nobias);

  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { kernel_size: 3 } }\n", CS_ERROR_PARSE, 4, 21,
          "needs num_output");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 0 kernel_size: 3 } }\n", CS_ERROR_PARSE, 4, 35,
          "'num_output' must be a whole number from 1");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3.5 } }\n", CS_ERROR_PARSE, 4, 50,
          "'kernel_size' must be a whole number");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3 } }\n",
          CS_ERROR_UNSUPPORTED, 4, 67, "two-dimensional");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3 } }\n",
          CS_ERROR_PARSE, 4, 37, "not both");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 axis: 2 } }\n",
          CS_ERROR_UNSUPPORTED, 4, 58, "axis");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" bottom: \"data\" "
          "top: \"c\"\n  convolution_param { num_output: 4 kernel_size: 3 } }\n",
          CS_ERROR_UNSUPPORTED, 3, 62, "2 bottoms");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 } }\n",
          CS_ERROR_PARSE, 3, 9, "needs 1 bottom, not 0");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 } }\n",
          CS_ERROR_PARSE, 3, 9, "has no top");
  EXPECT (HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
          "  convolution_param { num_output: 4 kernel_size: 3 group: 2 } }\n",
          CS_ERROR_SHAPE, 3, 9, "layer 'c'", "3 input channels cannot be split into 2 groups");
}

static void
test_layer_types (void)
{
  /* Unknown types name the type and the line, and load nothing. */
  EXPECT (HEAD "layer { name: \"p\" type: \"PReLU\" bottom: \"data\" top: \"p\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 25, "layer 'p'", "unsupported layer type 'PReLU'",
          "Convolution");
  EXPECT (HEAD "layer { name: \"p\" type: \"Relu\" bottom: \"data\" top: \"p\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 25, "unknown layer type 'Relu': Caffe writes 'ReLU'");
  EXPECT (HEAD "layers { name: \"p\" type: PRELU bottom: \"data\" top: \"p\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 26, "unsupported layer type 'PRELU'");
  EXPECT (HEAD "layers { name: \"p\" type: 39 bottom: \"data\" top: \"p\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 26, "unsupported layer type 'DECONVOLUTION'");
  EXPECT (HEAD "layer { name: \"d\" type: \"Data\" top: \"data2\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 25, "'Data'", "deploy files");
  EXPECT (HEAD "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"data\" top: \"l\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 25, "'SoftmaxWithLoss'", "training files");
  EXPECT (HEAD "layer { name: \"x\" bottom: \"data\" top: \"x\" }\n", CS_ERROR_PARSE, 3, 1,
          "has no type");
  EXPECT (HEAD "layer { name: \"x\" type { } }\n", CS_ERROR_PARSE, 3, 24, "'type' takes");
  EXPECT (HEAD "layers { name: \"x\" type: RELU bottom: \"data\" top: \"x\" }\n"
          "layer { name: \"y\" type: \"ReLU\" bottom: \"x\" top: \"y\" }\n",
          CS_ERROR_PARSE, 4, 1, "mixes 'layer' (V2) and 'layers' (V1)");
  EXPECT (HEAD "layers { layer { name: \"x\" type: \"relu\" } bottom: \"data\" top: \"x\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 10, "V0 format");

  /* Eltwise: SUM only, with coefficients of 1. */
  const char *two = HEAD
    "layer { name: \"a\" type: \"ReLU\" bottom: \"data\" top: \"a\" }\n"
    "layer { name: \"b\" type: \"Sigmoid\" bottom: \"data\" top: \"b\" }\n";
  g_autofree char *prod = g_strconcat (two, "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" "
                                       "bottom: \"b\" top: \"e\"\n  eltwise_param { operation: "
                                       "PROD } }\n", NULL);
  EXPECT (prod, CS_ERROR_UNSUPPORTED, 6, 30, "layer 'e'", "Eltwise operation PROD",
          "no such layer kind");
  g_autofree char *max = g_strconcat (two, "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" "
                                      "bottom: \"b\" top: \"e\"\n  eltwise_param { operation: "
                                      "2 } }\n", NULL);
  EXPECT (max, CS_ERROR_UNSUPPORTED, 6, 30, "Eltwise operation MAX");
  g_autofree char *coeff = g_strconcat (two, "layer { name: \"e\" type: \"Eltwise\" bottom: "
                                        "\"a\" bottom: \"b\" top: \"e\"\n  eltwise_param { "
                                        "coeff: 1 coeff: -1 } }\n", NULL);
  EXPECT (coeff, CS_ERROR_UNSUPPORTED, 6, 35, "coeff -1");
  g_autofree char *one = g_strconcat (two, "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" "
                                      "top: \"e\" }\n", NULL);
  EXPECT (one, CS_ERROR_PARSE, 5, 9, "needs at least 2 bottoms, not 1");
  g_autofree char *sum = g_strconcat (two, "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" "
                                      "bottom: \"b\" bottom: \"data\" top: \"e\"\n"
                                      "  eltwise_param { operation: SUM coeff: [1, 1, 1.0] } }\n"
                                      "layer { name: \"one\" type: \"Concat\" bottom: \"e\" "
                                      "top: \"one\" }\n"
                                      "layer { name: \"cat\" type: \"Concat\" bottom: \"e\" "
                                      "bottom: \"one\" top: \"cat\" concat_param { axis: 1 } }\n",
                                      NULL);
  g_autoptr (CsGraph) g = LOAD_OK (sum);
  g_assert_nonnull (g);
  g_assert_cmpuint (node (g, "e")->n_inputs, ==, 3);
  g_assert_cmpint (node (g, "one")->op, ==, CS_OP_IDENTITY);
  ASSERT_SHAPE (g, "cat", "8x8x6");
  g_autofree char *axis = g_strconcat (two, "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" "
                                       "bottom: \"b\" top: \"cat\" concat_param { axis: 2 } }\n",
                                       NULL);
  EXPECT (axis, CS_ERROR_UNSUPPORTED, 5, 92, "Concat axis: 2");

  /* LRN, ReLU, Dropout, Softmax, Flatten, InnerProduct parameters. */
  EXPECT (HEAD "layer { name: \"n\" type: \"LRN\" bottom: \"data\" top: \"n\"\n"
          "  lrn_param { norm_region: WITHIN_CHANNEL } }\n", CS_ERROR_UNSUPPORTED, 4, 28,
          "WITHIN_CHANNEL");
  EXPECT (HEAD "layer { name: \"n\" type: \"LRN\" bottom: \"data\" top: \"n\"\n"
          "  lrn_param { local_size: 4 } }\n", CS_ERROR_SHAPE, 3, 9, "must be odd");
  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\"\n"
          "  relu_param { negative_slope: 2 } }\n", CS_ERROR_UNSUPPORTED, 4, 32,
          "negative_slope of 2");
  EXPECT (HEAD "layer { name: \"d\" type: \"Dropout\" bottom: \"data\" top: \"d\"\n"
          "  dropout_param { dropout_ratio: 1 } }\n", CS_ERROR_PARSE, 4, 34,
          "'dropout_ratio' must be a number from 0 to");
  EXPECT (HEAD "layer { name: \"s\" type: \"Softmax\" bottom: \"data\" top: \"s\"\n"
          "  softmax_param { axis: 2 } }\n", CS_ERROR_UNSUPPORTED, 4, 25, "Softmax axis: 2");
  EXPECT (HEAD "layer { name: \"f\" type: \"Flatten\" bottom: \"data\" top: \"f\"\n"
          "  flatten_param { end_axis: 2 } }\n", CS_ERROR_UNSUPPORTED, 4, 29, "end_axis");
  EXPECT (HEAD "layer { name: \"f\" type: \"InnerProduct\" bottom: \"data\" top: \"f\" }\n",
          CS_ERROR_PARSE, 3, 9, "needs inner_product_param with num_output");
  EXPECT (HEAD "layer { name: \"f\" type: \"InnerProduct\" bottom: \"data\" top: \"f\"\n"
          "  inner_product_param { num_output: 3 bias_term: maybe } }\n", CS_ERROR_PARSE, 4, 50,
          "'bias_term' must be true or false");
  EXPECT (HEAD "layer { name: \"f\" type: \"ReLU\" bottom: \"data\" top: \"f\" top: \"g\" }\n",
          CS_ERROR_UNSUPPORTED, 3, 61, "2 tops");
}

static void
test_batch_norm (void)
{
  const char *conv = HEAD
    "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
    "  convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }\n";
  /* BatchNorm alone: no learned scale and shift. */
  g_autofree char *alone = g_strconcat (conv, "layer { name: \"bn\" type: \"BatchNorm\" "
                                        "bottom: \"c\" top: \"c\"\n  batch_norm_param { eps: "
                                        "0.001 moving_average_fraction: 0.9 } }\n", NULL);
  g_autoptr (CsGraph) a = LOAD_OK (alone);
  g_assert_nonnull (a);
  CsNode *bn = node (a, "bn");
  g_assert_true (bn->p.noaffine);
  g_assert_cmpfloat (bn->p.eps, ==, 0.001);
  g_assert_cmpfloat_with_epsilon (bn->p.momentum, 0.1, 1e-12);
  GError *error = NULL;
  g_autoptr (CsStats) sa = cs_stats_compute (a, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sa->folded_totals.params, ==, 3 * 4);

  /* Followed by Scale with a bias, out of place: one batch norm with 2 * 4 parameters more. */
  g_autofree char *pair = g_strconcat (conv, "layer { name: \"bn\" type: \"BatchNorm\" bottom: "
                                       "\"c\" top: \"b\" }\n"
                                       "layer { name: \"sc\" type: \"Scale\" bottom: \"b\" top: "
                                       "\"s\" scale_param { bias_term: true } }\n"
                                       "layer { name: \"r\" type: \"ReLU\" bottom: \"s\" top: "
                                       "\"s\" }\n", NULL);
  g_autoptr (CsGraph) p = LOAD_OK (pair);
  g_assert_nonnull (p);
  g_assert_false (node (p, "bn")->p.noaffine);
  g_assert_null (cs_graph_lookup (p, "sc"));
  g_assert_cmpuint (node (p, "r")->inputs[0], ==, node (p, "bn")->id);
  g_autoptr (CsStats) sp = cs_stats_compute (p, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sp->folded_totals.params, ==, 3 * 4 + 2 * 4);

  /* ... after which the unscaled output is gone. */
  g_autofree char *stale = g_strconcat (pair, "layer { name: \"x\" type: \"ReLU\" bottom: \"b\" "
                                        "top: \"x\" }\n", NULL);
  EXPECT (stale, CS_ERROR_UNSUPPORTED, 8, 40, "the blob 'b' is the output of a BatchNorm "
          "before Scale 'sc'");
  /* Scale alone, or without its bias, or after a BatchNorm something else read. */
  g_autofree char *scale = g_strconcat (conv, "layer { name: \"sc\" type: \"Scale\" bottom: "
                                        "\"c\" top: \"c\" scale_param { bias_term: true } }\n",
                                        NULL);
  EXPECT (scale, CS_ERROR_UNSUPPORTED, 5, 42, "layer 'sc'", "only right after a BatchNorm");
  g_autofree char *nobias = g_strconcat (conv, "layer { name: \"bn\" type: \"BatchNorm\" bottom: "
                                         "\"c\" top: \"c\" }\n"
                                         "layer { name: \"sc\" type: \"Scale\" bottom: \"c\" "
                                         "top: \"c\" }\n", NULL);
  EXPECT (nobias, CS_ERROR_UNSUPPORTED, 6, 9, "needs bias_term: true");
  g_autofree char *shared = g_strconcat (conv, "layer { name: \"bn\" type: \"BatchNorm\" bottom: "
                                         "\"c\" top: \"b\" }\n"
                                         "layer { name: \"r\" type: \"ReLU\" bottom: \"b\" top: "
                                         "\"r\" }\n"
                                         "layer { name: \"sc\" type: \"Scale\" bottom: \"b\" "
                                         "top: \"s\" scale_param { bias_term: true } }\n", NULL);
  EXPECT (shared, CS_ERROR_UNSUPPORTED, 7, 42, "only right after a BatchNorm");
}

static void
test_blobs (void)
{
  /* In place: a blob names its latest producer, for every later reader. */
  g_autoptr (CsGraph) g = LOAD_OK (
    HEAD "layer { name: \"c\" type: \"Convolution\" bottom: \"data\" top: \"c\"\n"
    "  convolution_param { num_output: 4 kernel_size: 1 } }\n"
    "layer { name: \"r\" type: \"ReLU\" bottom: \"c\" top: \"c\" }\n"
    "layer { name: \"a\" type: \"Sigmoid\" bottom: \"c\" top: \"a\" }\n"
    "layer { name: \"b\" type: \"TanH\" bottom: \"c\" top: \"b\" }\n"
    "layer { type: \"Split\" bottom: \"b\" top: \"b1\" top: \"b2\" }\n"
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"a\" bottom: \"b1\" bottom: \"b2\" "
    "top: \"sum\" }\n"
    "layer { type: \"ReLU\" bottom: \"sum\" top: \"sum\" }\n"
    "layer { type: \"ReLU\" bottom: \"sum\" top: \"sum\" }\n"
    "layer { name: \"x/y/z\" type: \"ReLU\" bottom: \"sum\" top: \"out\" }\n");
  g_assert_nonnull (g);
  guint r = node (g, "r")->id;
  g_assert_cmpuint (node (g, "a")->inputs[0], ==, r);
  g_assert_cmpuint (node (g, "b")->inputs[0], ==, r);
  CsNode *sum = node (g, "sum");
  g_assert_cmpuint (sum->inputs[1], ==, node (g, "b")->id);
  g_assert_cmpuint (sum->inputs[2], ==, node (g, "b")->id);
  /* Unnamed layers are named after their top, made unique. */
  g_assert_cmpuint (node (g, "sum_2")->inputs[0], ==, sum->id);
  g_assert_cmpuint (node (g, "sum_3")->inputs[0], ==, node (g, "sum_2")->id);
  g_assert_cmpstr (node (g, "x/y/z")->module, ==, "x/y");
  g_assert_cmpuint (cs_graph_n_nodes (g), ==, 9);       /* Split makes no node */

  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: \"nope\" top: \"r\" }\n",
          CS_ERROR_NAME, 3, 40, "unknown blob 'nope'");
  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n"
          "layer { name: \"s\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n",
          CS_ERROR_NAME, 4, 52, "the blob 'r' already comes from layer 'r' (line 3)");
  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n"
          "layer { name: \"r\" type: \"ReLU\" bottom: \"r\" top: \"r\" }\n",
          CS_ERROR_NAME, 4, 9, "the name 'r' is already used");
  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: \"\" top: \"r\" }\n",
          CS_ERROR_PARSE, 3, 40, "'bottom' must not be empty");
  EXPECT (HEAD "layer { name: \"r\" type: \"ReLU\" bottom: data top: \"r\" }\n",
          CS_ERROR_PARSE, 3, 40, "'bottom' takes a quoted string");
}

static void
test_phases (void)
{
  g_autoptr (CsGraph) g = LOAD_OK (
    HEAD "state { stage: \"deploy\" }\n"
    "layer { name: \"d\" type: \"Data\" top: \"x\" include { phase: TRAIN } }\n"
    "layer { name: \"a\" type: \"ReLU\" bottom: \"data\" top: \"a\" include { phase: TEST } }\n"
    "layer { name: \"b\" type: \"ReLU\" bottom: \"a\" top: \"b\" exclude { phase: TEST } }\n"
    "layer { name: \"c\" type: \"ReLU\" bottom: \"a\" top: \"c\" include { stage: \"deploy\" } }\n"
    "layer { name: \"e\" type: \"ReLU\" bottom: \"a\" top: \"e\" include { stage: \"train\" } }\n"
    "layer { name: \"f\" type: \"ReLU\" bottom: \"a\" top: \"f\" exclude { not_stage: \"x\" } }\n"
    "layer { name: \"h\" type: \"ReLU\" bottom: \"a\" top: \"h\" include { min_level: 1 } }\n"
    "layer { name: \"i\" type: \"ReLU\" bottom: \"a\" top: \"i\"\n"
    "  include { phase: TRAIN } include { phase: 1 } }\n"
    "layer { name: \"acc\" type: \"Accuracy\" bottom: \"i\" top: \"acc\" include: { phase: "
    "TRAIN } }\n");
  g_assert_nonnull (g);
  g_assert_nonnull (cs_graph_lookup (g, "a"));
  g_assert_nonnull (cs_graph_lookup (g, "c"));
  g_assert_nonnull (cs_graph_lookup (g, "i"));
  g_assert_null (cs_graph_lookup (g, "d"));
  g_assert_null (cs_graph_lookup (g, "b"));
  g_assert_null (cs_graph_lookup (g, "e"));
  g_assert_null (cs_graph_lookup (g, "f"));
  g_assert_null (cs_graph_lookup (g, "h"));
  g_assert_null (cs_graph_lookup (g, "acc"));

  EXPECT (HEAD "layer { name: \"a\" type: \"ReLU\" bottom: \"data\" top: \"a\"\n"
          "  include { phase: TEST } exclude { phase: TRAIN } }\n", CS_ERROR_PARSE, 4, 27,
          "include rules or exclude rules");
  EXPECT (HEAD "layer { name: \"a\" type: \"ReLU\" bottom: \"data\" top: \"a\"\n"
          "  include { phase: DEPLOY } }\n", CS_ERROR_PARSE, 4, 20,
          "unknown phase 'DEPLOY': use TRAIN or TEST");
}

static void
test_files (void)
{
  GError *error = NULL;
  g_assert_null (cs_caffe_load_file ("/nonexistent/x.prototxt", &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "data", "caffe", NULL);
  g_assert_null (cs_caffe_load_file (dir, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (references); i++)
    {
      g_autofree char *path = g_strdup_printf ("/core/caffe/reference/%s", references[i].file);
      g_test_add_data_func (path, &references[i], test_reference);
    }
  g_test_add_func ("/core/caffe/reference-details", test_reference_names);
  for (guint i = 0; i < G_N_ELEMENTS (twins); i++)
    {
      g_autofree char *path = g_strdup_printf ("/core/caffe/same-as-cnn/%s", twins[i].cnn);
      g_test_add_data_func (path, &twins[i], test_twin);
    }
  g_test_add_func ("/core/caffe/prefixes-and-mutations", test_prefixes_and_mutations);
  g_test_add_func ("/core/caffe/v1-twin", test_v1_twin);
  g_test_add_func ("/core/caffe/syntax", test_syntax_forms);
  g_test_add_func ("/core/caffe/syntax-errors", test_syntax_errors);
  g_test_add_func ("/core/caffe/truncated", test_truncated);
  g_test_add_func ("/core/caffe/inputs", test_inputs);
  g_test_add_func ("/core/caffe/pooling", test_pooling);
  g_test_add_func ("/core/caffe/convolution", test_convolution);
  g_test_add_func ("/core/caffe/layer-types", test_layer_types);
  g_test_add_func ("/core/caffe/batch-norm", test_batch_norm);
  g_test_add_func ("/core/caffe/blobs", test_blobs);
  g_test_add_func ("/core/caffe/phases", test_phases);
  g_test_add_func ("/core/caffe/files", test_files);
  return g_test_run ();
}
