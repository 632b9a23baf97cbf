/* Tests of ONNX import and export: torch-made models against torch's outputs, round trips, bad files. */
#include "cs-onnx.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-backend.h"
#include "cs-weights.h"
#include "cs-zoo.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <string.h>
#include <glib/gstdio.h>

/* Runs NET on N images of INPUT and returns the outputs (N x the output volume). */
static float *
run_net (CsNet *net, const float *input, guint n, gsize *len)
{
  GError *error = NULL;
  CsBackend *be = cs_cpu_backend_new ();
  CsExec *x = cs_exec_new (net, be, n, CS_EXEC_INFERENCE, 0, &error);
  g_assert_no_error (error);
  g_assert_true (cs_exec_forward (x, input, n, &error));
  g_assert_no_error (error);
  guint64 per;
  g_assert_true (cs_shape_numel (&cs_graph_output (net->graph)->shape, &per));
  *len = per * n;
  float *out = g_new (float, *len);
  g_assert_true (cs_exec_get_output (x, out, &error));
  g_assert_no_error (error);
  cs_exec_free (x);
  cs_backend_free (be);
  return out;
}

static double
rel_error (const float *a, const float *b, gsize n)
{
  double diff = 0, scale = 0;
  for (gsize i = 0; i < n; i++)
    {
      diff = MAX (diff, fabs ((double) a[i] - b[i]));
      scale = MAX (scale, fabs ((double) b[i]));
    }
  return scale > 0 ? diff / scale : diff;
}

/* Imports DIR/NAME.onnx and compares its output on NAME-input.npy with NAME-output.npy. */
static void
check_model (const char *dir, const char *name)
{
  GError *error = NULL;
  g_autofree char *file = g_strdup_printf ("%s.onnx", name);
  g_autofree char *in_file = g_strdup_printf ("%s-input.npy", name);
  g_autofree char *out_file = g_strdup_printf ("%s-output.npy", name);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autofree char *in_path = g_build_filename (dir, in_file, NULL);
  g_autofree char *out_path = g_build_filename (dir, out_file, NULL);
  CsNet *net = NULL;
  g_autoptr (CsGraph) g = cs_onnx_load (path, &net, &error);
  g_assert_no_error (error);
  g_assert_nonnull (g);
  g_assert_nonnull (net);
  guint rank;
  guint64 shape[CS_TENSOR_MAX_RANK];
  g_autofree float *input = cs_npy_read (in_path, &rank, shape, &error);
  g_assert_no_error (error);
  g_autofree float *want = cs_npy_read (out_path, &rank, shape, &error);
  g_assert_no_error (error);
  gsize want_len = 1;
  for (guint i = 0; i < rank; i++)
    want_len *= shape[i];
  gsize len;
  g_autofree float *got = run_net (net, input, shape[0], &len);
  g_assert_cmpuint (len, ==, want_len);
  double err = rel_error (got, want, len);
  g_test_message ("%s: %u nodes, max|a-b|/max|b| = %.3g", name, cs_graph_n_nodes (g), err);
  g_assert_cmpfloat (err, <=, 1e-4);
  cs_net_free (net);
}

static void
test_shipped (gconstpointer data)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "data", "onnx", NULL);
  check_model (dir, data);
}

/* Whether /usr/bin/python3 can import MODULES; the reason in *WHY when not. */
static gboolean
python_has (const char *modules, char **why)
{
  g_autofree char *code = g_strdup_printf ("import %s", modules);
  const char *argv[] = { "/usr/bin/python3", "-c", code, NULL };
  int status = 0;
  g_autofree char *err = NULL;
  if (!g_file_test (argv[0], G_FILE_TEST_IS_EXECUTABLE)
      || !g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                        &err, &status, NULL)
      || !g_spawn_check_wait_status (status, NULL))
    {
      *why = g_strdup_printf ("/usr/bin/python3 cannot import %s", modules);
      return FALSE;
    }
  return TRUE;
}

static void
test_torch (gconstpointer data)
{
  g_autofree char *why = NULL;
  if (!python_has ("torch, torchvision, onnx", &why))
    {
      g_test_skip (why);
      return;
    }
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("cs-onnx-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *tool = g_test_build_filename (G_TEST_DIST, "tools", "make-onnx.py", NULL);
  const char *argv[] = { "/usr/bin/python3", tool, data, dir, NULL };
  int status;
  g_autofree char *err = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                               NULL, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("make-onnx.py %s failed:\n%s", (const char *) data, err);
  check_model (dir, data);
  const char *exts[] = { ".onnx", "-input.npy", "-output.npy" };
  for (guint i = 0; i < G_N_ELEMENTS (exts); i++)
    {
      g_autofree char *f = g_strdup_printf ("%s/%s%s", dir, (const char *) data, exts[i]);
      g_unlink (f);
    }
  g_rmdir (dir);
}

/* Round trip: a zoo model with random weights, saved and read back. */
static void
test_round_trip (gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model (data, &error);
  g_assert_no_error (error);
  CsNet *net = cs_net_new (g, &error);
  g_assert_no_error (error);
  cs_net_init (net, 7, FALSE);
  /* Non-trivial running statistics, so that batch norm is checked too. */
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    {
      CsTensor *m = cs_net_tensor (net, net->run_mean[i]), *v = cs_net_tensor (net, net->run_var[i]);
      for (gsize j = 0; m && j < m->numel; j++)
        m->data[j] = cs_uniform (3, j) - 0.5f, v->data[j] = 0.5f + cs_uniform (4, j);
    }
  g_autofree char *dir = g_dir_make_tmp ("cs-onnx-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_strdup_printf ("%s/%s.onnx", dir, (const char *) data);
  g_assert_true (cs_onnx_save (net, path, &error));
  g_assert_no_error (error);

  CsNet *back = NULL;
  g_autoptr (CsGraph) g2 = cs_onnx_load (path, &back, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cs_graph_n_nodes (g2), ==, cs_graph_n_nodes (g));
  for (guint i = 0; i < cs_graph_n_nodes (g); i++)
    {
      const CsNode *a = cs_graph_node (g, i), *b = cs_graph_lookup (g2, a->name);
      g_assert_nonnull (b);
      g_assert_cmpint (a->op, ==, b->op);
      g_assert_cmpuint (a->n_inputs, ==, b->n_inputs);
      g_assert_true (a->shape.c == b->shape.c && a->shape.h == b->shape.h
                     && a->shape.w == b->shape.w);
      g_assert_cmpuint (a->p.out, ==, b->p.out);
      g_assert_cmpuint (a->p.groups, ==, b->p.groups);
      g_assert_cmpint (a->p.nobias, ==, b->p.nobias);
      g_assert_cmpint (a->p.global, ==, b->p.global);
      g_assert_cmpint (a->p.ceil, ==, b->p.ceil);
      g_assert_cmpfloat_with_epsilon (a->p.eps, b->p.eps, 1e-9);
      g_assert_cmpfloat_with_epsilon (a->p.p, b->p.p, 1e-7);
      if (a->n_inputs)
        {
          guint64 k[2], s[2], p[2], d[2], k2[2], s2[2], p2[2], d2[2];
          cs_layer_window (a, &cs_graph_node (g, a->inputs[0])->shape, k, s, p, d);
          cs_layer_window (b, &cs_graph_node (g2, b->inputs[0])->shape, k2, s2, p2, d2);
          g_assert_true (memcmp (k, k2, sizeof k) == 0 && memcmp (s, s2, sizeof s) == 0
                         && memcmp (p, p2, sizeof p) == 0 && memcmp (d, d2, sizeof d) == 0);
          for (guint j = 0; j < a->n_inputs; j++)
            g_assert_cmpstr (cs_graph_node (g, a->inputs[j])->name, ==,
                             cs_graph_node (g2, b->inputs[j])->name);
        }
    }
  g_assert_cmpuint (net->tensors->len, ==, back->tensors->len);
  for (guint i = 0; i < net->tensors->len; i++)
    {
      CsTensor *a = net->tensors->pdata[i], *b = back->tensors->pdata[i];
      g_assert_cmpstr (a->name, ==, b->name);
      g_assert_cmpuint (a->numel, ==, b->numel);
      g_assert_true (memcmp (a->data, b->data, a->numel * sizeof (float)) == 0);
    }

  const CsShape *in = &cs_graph_node (g, 0)->shape;
  gsize in_len = 2 * in->c * in->h * in->w;
  g_autofree float *input = g_new (float, in_len);
  for (gsize i = 0; i < in_len; i++)
    input[i] = cs_uniform (11, i) * 2 - 1;
  gsize n1, n2;
  g_autofree float *o1 = run_net (net, input, 2, &n1);
  g_autofree float *o2 = run_net (back, input, 2, &n2);
  g_assert_cmpuint (n1, ==, n2);
  double err = rel_error (o2, o1, n1);
  g_test_message ("%s round trip: max|a-b|/max|b| = %.3g", (const char *) data, err);
  g_assert_cmpfloat (err, <=, 1e-6);

  g_autofree char *why = NULL;
  if (python_has ("onnx", &why))
    {
      g_autofree char *code = g_strdup_printf ("import onnx; onnx.checker.check_model(onnx.load"
                                               "('%s'), full_check=True)", path);
      const char *argv[] = { "/usr/bin/python3", "-c", code, NULL };
      int status;
      g_autofree char *err_text = NULL;
      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                                   NULL, NULL, &err_text, &status, &error));
      if (!g_spawn_check_wait_status (status, NULL))
        g_error ("onnx.checker rejects %s:\n%s", path, err_text);
    }
  else
    g_test_message ("not checked with onnx.checker: %s", why);
  cs_net_free (net);
  cs_net_free (back);
  g_unlink (path);
  g_rmdir (dir);
}

/* Hand-made models for the error cases. */

typedef struct {
  Onnx__ModelProto m;
  Onnx__GraphProto g;
  Onnx__OperatorSetIdProto opset, *opsets[1];
  Onnx__NodeProto node, *nodes[1];
  char *node_in[2], *node_out[1];
  Onnx__AttributeProto attrs[4], *attr_ptrs[4];
  int64_t ints[4][4];
  Onnx__TensorProto w, *inits[1];
  int64_t w_dims[4];
  float w_data[2 * 1 * 3 * 3];
  Onnx__StringStringEntryProto ext[1], *ext_ptrs[1];
  Onnx__ValueInfoProto in, out, *ins[1], *outs[1];
  Onnx__TypeProto in_t, out_t;
  Onnx__TypeProto__Tensor in_tt, out_tt;
  Onnx__TensorShapeProto in_s;
  Onnx__TensorShapeProto__Dimension dims[4], *dim_ptrs[4];
} Tiny;

/* One node OP (a 3x3 conv of 1 to 2 channels when OP is "Conv") from 'x' [N,1,8,8] to 'y'. */
static void
tiny_init (Tiny *t, const char *op)
{
  memset (t, 0, sizeof *t);
  onnx__model_proto__init (&t->m);
  onnx__graph_proto__init (&t->g);
  onnx__operator_set_id_proto__init (&t->opset);
  t->opset.has_version = TRUE, t->opset.version = 13, t->opset.domain = (char *) "";
  t->opsets[0] = &t->opset;
  t->m.has_ir_version = TRUE, t->m.ir_version = 7;
  t->m.n_opset_import = 1, t->m.opset_import = t->opsets;
  t->m.graph = &t->g;
  onnx__node_proto__init (&t->node);
  t->node.op_type = (char *) op;
  t->node.name = (char *) "weird";
  t->node_in[0] = (char *) "x", t->node_in[1] = (char *) "w";
  t->node_out[0] = (char *) "y";
  t->node.n_input = g_str_equal (op, "Conv") ? 2 : 1;
  t->node.input = t->node_in;
  t->node.n_output = 1, t->node.output = t->node_out;
  t->node.attribute = t->attr_ptrs;
  t->nodes[0] = &t->node;
  t->g.n_node = 1, t->g.node = t->nodes;
  if (g_str_equal (op, "Conv"))
    {
      onnx__tensor_proto__init (&t->w);
      t->w.name = (char *) "w";
      t->w.has_data_type = TRUE, t->w.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
      int64_t d[4] = { 2, 1, 3, 3 };
      memcpy (t->w_dims, d, sizeof d);
      t->w.n_dims = 4, t->w.dims = t->w_dims;
      t->w.n_float_data = G_N_ELEMENTS (t->w_data), t->w.float_data = t->w_data;
      t->inits[0] = &t->w;
      t->g.n_initializer = 1, t->g.initializer = t->inits;
    }
  onnx__value_info_proto__init (&t->in);
  onnx__value_info_proto__init (&t->out);
  onnx__type_proto__init (&t->in_t);
  onnx__type_proto__init (&t->out_t);
  onnx__type_proto__tensor__init (&t->in_tt);
  onnx__type_proto__tensor__init (&t->out_tt);
  onnx__tensor_shape_proto__init (&t->in_s);
  t->in.name = (char *) "x", t->out.name = (char *) "y";
  t->in.type = &t->in_t, t->out.type = &t->out_t;
  t->in_t.value_case = t->out_t.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  t->in_t.tensor_type = &t->in_tt, t->out_t.tensor_type = &t->out_tt;
  t->in_tt.has_elem_type = t->out_tt.has_elem_type = TRUE;
  t->in_tt.elem_type = t->out_tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  t->in_tt.shape = &t->in_s;
  int64_t sizes[4] = { 1, 1, 8, 8 };
  for (int i = 0; i < 4; i++)
    {
      onnx__tensor_shape_proto__dimension__init (&t->dims[i]);
      t->dims[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      t->dims[i].dim_value = sizes[i];
      t->dim_ptrs[i] = &t->dims[i];
    }
  t->in_s.n_dim = 4, t->in_s.dim = t->dim_ptrs;
  t->ins[0] = &t->in, t->outs[0] = &t->out;
  t->g.n_input = 1, t->g.input = t->ins;
  t->g.n_output = 1, t->g.output = t->outs;
}

static void
tiny_ints (Tiny *t, const char *name, guint n, const int64_t *v)
{
  guint i = t->node.n_attribute++;
  Onnx__AttributeProto *a = &t->attrs[i];
  onnx__attribute_proto__init (a);
  a->name = (char *) name;
  a->has_type = TRUE, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  memcpy (t->ints[i], v, n * sizeof *v);
  a->n_ints = n, a->ints = t->ints[i];
  t->attr_ptrs[i] = a;
}

static GBytes *
tiny_pack (Tiny *t)
{
  gsize len = onnx__model_proto__get_packed_size (&t->m);
  guint8 *buf = g_malloc (len);
  onnx__model_proto__pack (&t->m, buf);
  return g_bytes_new_take (buf, len);
}

static CsGraph *
load_bytes (GBytes *b, CsNet **net, GError **error)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (b, &len);
  return cs_onnx_load_data (d, len, "tiny.onnx", net, error);
}

static void
test_tiny_ok (void)
{
  Tiny t;
  tiny_init (&t, "Conv");
  int64_t pads[4] = { 1, 1, 1, 1 };
  tiny_ints (&t, "pads", 4, pads);
  g_autoptr (GBytes) b = tiny_pack (&t);
  GError *error = NULL;
  CsNet *net = NULL;
  g_autoptr (CsGraph) g = load_bytes (b, &net, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cs_graph_output (g)->shape.c, ==, 2);
  g_assert_cmpuint (cs_graph_output (g)->shape.h, ==, 8);
  cs_net_free (net);
}

static void
test_errors (void)
{
  GError *error = NULL;
  CsNet *net = NULL;

  /* Truncated: the first half of a shipped model. */
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "onnx", "smallconv.onnx",
                                                 NULL);
  g_autofree char *text = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &text, &len, &error));
  g_assert_null (cs_onnx_load_data ((guint8 *) text, len / 2, "half.onnx", &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_assert_null (net);
  g_test_message ("truncated: %s", error->message);
  g_clear_error (&error);

  /* Garbage. */
  guint8 junk[4096];
  for (guint i = 0; i < sizeof junk; i++)
    junk[i] = cs_mix64 (i) & 0xff;
  g_assert_null (cs_onnx_load_data (junk, sizeof junk, "junk.onnx", &net, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == CS_ERROR);
  g_test_message ("garbage: %s", error->message);
  g_clear_error (&error);
  g_assert_null (cs_onnx_load_data (junk, 0, "empty.onnx", &net, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  /* An operator cnnscope has no kind for: the message names it and the node. */
  Tiny t;
  tiny_init (&t, "HardSwish");
  g_autoptr (GBytes) b1 = tiny_pack (&t);
  g_assert_null (load_bytes (b1, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "HardSwish"));
  g_assert_nonnull (strstr (error->message, "weird"));
  g_test_message ("unsupported: %s", error->message);
  g_clear_error (&error);

  /* Asymmetric padding. */
  tiny_init (&t, "Conv");
  int64_t pads[4] = { 1, 1, 0, 0 };
  tiny_ints (&t, "pads", 4, pads);
  g_autoptr (GBytes) b2 = tiny_pack (&t);
  g_assert_null (load_bytes (b2, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "asymmetric"));
  g_test_message ("pads: %s", error->message);
  g_clear_error (&error);

  /* External data that climbs out of the model's folder, from memory and from a file. */
  tiny_init (&t, "Conv");
  t.w.n_float_data = 0, t.w.float_data = NULL;
  t.w.has_data_location = TRUE;
  t.w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  onnx__string_string_entry_proto__init (&t.ext[0]);
  t.ext[0].key = (char *) "location", t.ext[0].value = (char *) "../secret.bin";
  t.ext_ptrs[0] = &t.ext[0];
  t.w.n_external_data = 1, t.w.external_data = t.ext_ptrs;
  g_autoptr (GBytes) b3 = tiny_pack (&t);
  g_assert_null (load_bytes (b3, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "outside"));
  g_test_message ("external: %s", error->message);
  g_clear_error (&error);
  g_autofree char *dir = g_dir_make_tmp ("cs-onnx-XXXXXX", &error);
  g_autofree char *ext_path = g_build_filename (dir, "ext.onnx", NULL);
  gsize blen;
  const char *bdata = g_bytes_get_data (b3, &blen);
  g_assert_true (g_file_set_contents (ext_path, bdata, blen, &error));
  g_assert_null (cs_onnx_load (ext_path, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);

  /* Inside the folder, from a file: read; from memory: refused. */
  t.ext[0].value = (char *) "w.bin";
  g_autoptr (GBytes) b4 = tiny_pack (&t);
  bdata = g_bytes_get_data (b4, &blen);
  g_assert_true (g_file_set_contents (ext_path, bdata, blen, &error));
  g_autofree char *bin_path = g_build_filename (dir, "w.bin", NULL);
  float w[18];
  for (int i = 0; i < 18; i++)
    w[i] = i;
  g_assert_true (g_file_set_contents (bin_path, (char *) w, sizeof w, &error));
  CsGraph *g = cs_onnx_load (ext_path, &net, &error);
  g_assert_no_error (error);
  CsTensor *loaded = cs_net_tensor (net, net->weight[1]);
  if (loaded == NULL)
    g_error ("the external weights were not loaded");
  g_assert_cmpfloat (loaded->data[17], ==, 17);
  cs_graph_unref (g);
  cs_net_free (net);
  net = NULL;
  g_assert_null (load_bytes (b4, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
  g_unlink (ext_path);
  g_unlink (bin_path);
  g_rmdir (dir);

  /* Data whose size does not match the dims. */
  tiny_init (&t, "Conv");
  t.w.n_float_data = 5;
  g_autoptr (GBytes) b5 = tiny_pack (&t);
  g_assert_null (load_bytes (b5, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);

  /* Dims whose product overflows. */
  tiny_init (&t, "Conv");
  int64_t huge[4] = { G_MAXINT64 / 2, 4, 3, 3 };
  memcpy (t.w_dims, huge, sizeof huge);
  g_autoptr (GBytes) b6 = tiny_pack (&t);
  g_assert_null (load_bytes (b6, &net, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_OVERFLOW);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/core/onnx/shipped/smallconv", "smallconv", test_shipped);
  g_test_add_data_func ("/core/onnx/shipped/residual", "residual", test_shipped);
  g_test_add_func ("/core/onnx/tiny", test_tiny_ok);
  g_test_add_func ("/core/onnx/errors", test_errors);
  g_test_add_data_func ("/core/onnx/round-trip/lenet5", "lenet5", test_round_trip);
  g_test_add_data_func ("/core/onnx/round-trip/resnet18", "resnet18", test_round_trip);
  g_test_add_data_func ("/core/onnx/torch/smallconv", "smallconv", test_torch);
  g_test_add_data_func ("/core/onnx/torch/residual", "residual", test_torch);
  g_test_add_data_func ("/core/onnx/torch/resnet18", "resnet18", test_torch);
  g_test_add_data_func ("/core/onnx/torch/squeezenet1_0", "squeezenet1_0", test_torch);
  return g_test_run ();
}
