/* cnnscope-cli as a user runs it: output formats, exit codes and messages. */
#include "cs-data.h"
#include "cs-exec.h"
#include "cs-weights.h"
#include "cs-zoo.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <sys/wait.h>

typedef struct {
  int status;
  char *out, *err;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static void
run_cli (Run *r, ...)
{
  const char *cli = g_getenv ("CNNSCOPE_CLI");
  g_assert_nonnull (cli);
  GPtrArray *argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) cli);
  va_list ap;
  va_start (ap, r);
  for (const char *a; (a = va_arg (ap, const char *)) != NULL;)
    g_ptr_array_add (argv, (char *) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  GError *error = NULL;
  int wait_status;
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &r->out, &r->err,
                &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  r->status = WEXITSTATUS (wait_status);
  g_ptr_array_free (argv, TRUE);
}

static void
test_list (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "list", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.err, ==, "");
  g_auto (GStrv) lines = g_strsplit (r.out, "\n", -1);
  /* One line per bundled model, and the last line is empty. */
  g_assert_cmpuint (g_strv_length (lines), ==, 26 + 1);
  g_assert_true (g_str_has_prefix (r.out, "alexnet "));
  g_assert_nonnull (strstr (r.out, "\nvgg16 "));
  g_assert_nonnull (strstr (r.out, "\nresnet1202_cifar "));
}

static JsonObject *
parse_json (const char *text, JsonParser **parser)
{
  GError *error = NULL;
  *parser = json_parser_new ();
  json_parser_load_from_data (*parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_get_object (json_parser_get_root (*parser));
}

static void
test_json (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", "vgg16", "--format", "json", "--batch", "2", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (r.out, &parser);
  g_assert_cmpstr (json_object_get_string_member (o, "model"), ==, "vgg16");
  g_assert_cmpint (json_object_get_int_member (o, "batch"), ==, 2);
  JsonArray *input = json_object_get_array_member (o, "input");
  g_assert_cmpint (json_array_get_int_element (input, 0), ==, 3);
  g_assert_cmpint (json_array_get_int_element (input, 1), ==, 224);
  JsonArray *layers = json_object_get_array_member (o, "layers");
  g_assert_cmpuint (json_array_get_length (layers), ==, 22);
  JsonObject *conv = json_array_get_object_element (layers, 1);
  g_assert_cmpstr (json_object_get_string_member (conv, "kind"), ==, "conv");
  g_assert_cmpint (json_object_get_int_member (conv, "weights"), ==, 1728);
  g_assert_cmpint (json_object_get_int_member (conv, "biases"), ==, 64);
  g_assert_cmpint (json_object_get_int_member (conv, "activations"), ==, 2 * 3211264);
  JsonArray *rf = json_object_get_array_member (conv, "rf");
  g_assert_cmpint (json_array_get_int_element (rf, 0), ==, 3);
  g_assert_cmpint (json_array_get_int_element (rf, 1), ==, 1);
  JsonObject *f = json_object_get_object_member (conv, "formulas");
  g_assert_cmpstr (json_object_get_string_member (f, "output"), ==, "(224-3+2*1)/1+1 = 224");
  g_assert_cmpstr (json_object_get_string_member (f, "params"), ==, "(3*3*3)*64 = 1,728");
  g_assert_cmpstr (json_object_get_string_member (f, "memory"), ==, "224*224*64 = 3,211,264");
  g_assert_cmpfloat (json_object_get_double_member (conv, "rf_start"), ==, 0.0);
  JsonArray *out = json_object_get_array_member (conv, "output");
  g_assert_cmpint (json_array_get_int_element (out, 0), ==, 64);
  JsonObject *t = json_object_get_object_member (o, "totals");
  g_assert_cmpint (json_object_get_int_member (t, "params"), ==, 138357544);
  g_assert_cmpint (json_object_get_int_member (t, "weights"), ==, 138344128);
  g_assert_cmpint (json_object_get_int_member (t, "biases"), ==, 13416);
  g_assert_cmpint (json_object_get_int_member (t, "buffers"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (t, "activations"), ==, 2 * 15237608);
  g_assert_cmpint (json_object_get_int_member (t, "macs"), ==, 2 * 15470264320);
  g_assert_cmpint (json_object_get_int_member (t, "flops"), ==, 4 * 15470264320);
}

static void
test_unfold (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", "vgg16", "--format", "json", "--unfold", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (r.out, &parser);
  /* 22 rows plus 15 ReLUs, 2 dropouts and the softmax. */
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "layers")), ==, 40);
  g_assert_cmpstr (json_object_get_string_member (o, "view"), ==, "unfolded");
}

static void
test_table_and_csv (void)
{
  g_auto (Run) t = { 0 };
  run_cli (&t, "summary", "alexnet", NULL);
  g_assert_cmpint (t.status, ==, 0);
  g_assert_nonnull (strstr (t.out, "(11*11*3)*96 = 34,848"));
  g_assert_nonnull (strstr (t.out, "62,378,344 = 62,367,776 weights + 10,568 biases"));
  g_auto (GStrv) lines = g_strsplit (t.out, "\n", -1);
  /* Readable in a 100-column terminal, notes and heading included. */
  for (char **l = lines; *l; l++)
    g_assert_cmpint (g_utf8_strlen (*l, -1), <=, 100);

  g_auto (Run) c = { 0 };
  run_cli (&c, "summary", "alexnet", "--format", "csv", NULL);
  g_assert_cmpint (c.status, ==, 0);
  g_auto (GStrv) rows = g_strsplit (c.out, "\n", -1);
  g_assert_cmpuint (g_strv_length (rows), ==, 1 + 14 + 1);
  g_assert_true (g_str_has_prefix (rows[2], "conv1,conv,,55,55,96,290400,34848,96,"));

  g_auto (Run) m = { 0 };
  run_cli (&m, "summary", "alexnet", "--format", "markdown", NULL);
  g_assert_cmpint (m.status, ==, 0);
  g_assert_nonnull (strstr (m.out, "| conv1 | conv | 55x55x96 | 290,400 |"));
}

/* Every bundled model's table fits a 100-column terminal, in both views. */
static void
test_table_widths (void)
{
  g_auto (GStrv) names = cs_zoo_list ();
  for (char **n = names; *n; n++)
    for (guint unfold = 0; unfold < 2; unfold++)
      {
        g_auto (Run) r = { 0 };
        run_cli (&r, "summary", *n, unfold ? "--unfold" : NULL, NULL);
        g_assert_cmpint (r.status, ==, 0);
        g_auto (GStrv) lines = g_strsplit (r.out, "\n", -1);
        for (char **l = lines; *l; l++)
          if (g_utf8_strlen (*l, -1) > 100)
            g_error ("%s%s: a line of %ld characters: %s", *n, unfold ? " --unfold" : "",
                     g_utf8_strlen (*l, -1), *l);
      }
}

static void
test_exit_codes (void)
{
  struct { const char *args[4]; int status; const char *err; } cases[] = {
    { { "summary", "no-such-model" }, 1, "no such file, and no bundled model" },
    { { "summary", "/nonexistent/x.cnn" }, 1, "/nonexistent/x.cnn" },
    { { "summary" }, 2, "summary takes one MODEL" },
    { { "summary", "vgg16", "--format", "yaml" }, 2, "--format takes" },
    { { "summary", "vgg16", "--batch", "0" }, 2, "--batch takes" },
    { { "summary", "vgg16", "--bogus" }, 2, "Unknown option" },
    { { "frobnicate" }, 2, "unknown command 'frobnicate'" },
    { { NULL }, 2, "Usage: cnnscope-cli" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto (Run) r = { 0 };
      const char **a = cases[i].args;
      run_cli (&r, a[0], a[1], a[2], a[3], NULL);
      g_assert_cmpint (r.status, ==, cases[i].status);
      g_assert_cmpstr (r.out, ==, "");
      g_assert_nonnull (strstr (r.err, cases[i].err));
    }
}

static void
test_bad_file (void)
{
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "bad.cnn", NULL);
  g_assert_true (g_file_set_contents (path, "input 32x32x3\nconv 16 3x3\nadd { { conv 8 1 } { } }\n",
                                      -1, NULL));
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", path, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_cmpstr (r.out, ==, "");
  g_autofree char *where = g_strdup_printf ("%s:3:1: layer 'add1': input 2 is 30x30x16 but "
                                            "input 1 is 30x30x8", path);
  g_assert_nonnull (strstr (r.err, where));
  g_unlink (path);
  g_rmdir (dir);
}

/* Train a few steps with a checkpoint and a log, then infer from the checkpoint. */
static void
test_train_and_infer (void)
{
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-XXXXXX", NULL);
  g_autofree char *weights = g_build_filename (dir, "w.safetensors", NULL);
  g_autofree char *log = g_build_filename (dir, "log.csv", NULL);
  g_autofree char *in = g_build_filename (dir, "in.npy", NULL);
  g_autofree char *out = g_build_filename (dir, "out.npy", NULL);
  g_autofree char *png = g_build_filename (dir, "shape.png", NULL);

  g_auto (Run) t = { 0 };
  run_cli (&t, "train", "lenet5", "--data", "shapes:200", "--epochs", "2", "--batch", "20",
           "--lr", "0.02", "--save", weights, "--log", log, NULL);
  g_assert_cmpint (t.status, ==, 0);
  /* Not a terminal: plain lines, one per epoch. */
  g_assert_null (strchr (t.out, '\r'));
  g_assert_nonnull (strstr (t.out, "epoch 1/2  lr 0.02  train loss "));
  g_assert_nonnull (strstr (t.out, "epoch 2/2  lr 0.02  train loss "));
  g_autofree char *csv = NULL;
  g_assert_true (g_file_get_contents (log, &csv, NULL, NULL));
  g_auto (GStrv) rows = g_strsplit (csv, "\n", -1);
  g_assert_cmpuint (g_strv_length (rows), ==, 4);
  g_assert_cmpstr (rows[0], ==, "epoch,lr,train_loss,train_top1,val_loss,val_top1,val_top5,"
                                "seconds");
  g_assert_true (g_str_has_prefix (rows[2], "2,0.02,"));

  /* The checkpoint loads into the model, with the training set's classes and statistics. */
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model ("lenet5", &error);
  g_autoptr (CsNet) net = cs_net_new (g, &error);
  g_autoptr (GHashTable) meta = NULL;
  g_assert_true (cs_safetensors_load_full (weights, (CsTensor *const *) net->tensors->pdata,
                                           net->tensors->len, &meta, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (meta, "cnnscope.model"), ==, "lenet5");
  g_assert_true (g_str_has_prefix (g_hash_table_lookup (meta, "cnnscope.classes"), "circle\n"));

  /* infer on a .npy batch writes the same outputs as the library computes. */
  float input[2 * 32 * 32];
  for (guint i = 0; i < G_N_ELEMENTS (input); i++)
    input[i] = sinf (0.01f * i);
  guint64 shape[4] = { 2, 1, 32, 32 };
  g_assert_true (cs_npy_write (in, input, 4, shape, &error));
  g_auto (Run) r = { 0 };
  run_cli (&r, "infer", "lenet5", "--weights", weights, "--input", in, "--batch", "2",
           "--save-output", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "image 0:"));
  g_assert_nonnull (strstr (r.out, "image 1:"));
  g_assert_nonnull (strstr (r.out, "forward: "));
  guint rank;
  guint64 oshape[4];
  g_autofree float *scores = cs_npy_read (out, &rank, oshape, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rank, ==, 2);
  g_assert_cmpuint (oshape[0], ==, 2);
  g_assert_cmpuint (oshape[1], ==, 10);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  g_autoptr (CsExec) x = cs_exec_new (net, be, 2, CS_EXEC_INFERENCE, 0, &error);
  float expect[20];
  g_assert_true (cs_exec_forward (x, input, 2, &error) && cs_exec_get_output (x, expect, &error));
  /* The CLI may run other OpenBLAS kernels than this test (cs_blas_init): equal to rounding. */
  for (guint i = 0; i < 20; i++)
    g_assert_cmpfloat (fabs (scores[i] - expect[i]), <=, 1e-5 + 1e-4 * fabs (expect[i]));

  /* infer on an image names the classes the checkpoint was trained on. */
  g_autoptr (CsDataset) one = cs_dataset_shapes (1, 32, 9);
  g_autoptr (GdkPixbuf) pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 32, 32);
  guint8 *px = gdk_pixbuf_get_pixels (pb);
  int stride = gdk_pixbuf_get_rowstride (pb);
  for (guint y = 0; y < 32; y++)
    for (guint xx = 0; xx < 32; xx++)
      for (guint c = 0; c < 3; c++)
        px[y * stride + xx * 3 + c] = one->pixels[c * 1024 + y * 32 + xx];
  g_assert_true (gdk_pixbuf_save (pb, png, "png", &error, NULL));
  g_auto (Run) im = { 0 };
  run_cli (&im, "infer", "lenet5", "--weights", weights, "--input", png, NULL);
  g_assert_cmpint (im.status, ==, 0);
  guint named = 0;
  for (guint c = 0; c < one->n_classes; c++)
    {
      g_autofree char *label = g_strdup_printf ("  %s (p=", one->class_names[c]);
      named += strstr (im.out, label) != NULL;
    }
  g_assert_cmpuint (named, ==, 5);

  const char *files[] = { weights, log, in, out, png };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    g_unlink (files[i]);
  g_rmdir (dir);
}

/* profile: per-layer times in JSON, every layer that ran, forward and backward in training. */
static void
test_profile (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "profile", "lenet5", "--device", "cpu", "--mode", "train", "--batch", "4",
           "--iters", "3", "--warmup", "1", "--format", "json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (r.out, &parser);
  g_assert_cmpstr (json_object_get_string_member (o, "model"), ==, "lenet5");
  g_assert_cmpstr (json_object_get_string_member (o, "mode"), ==, "train");
  g_assert_cmpint (json_object_get_int_member (o, "batch"), ==, 4);
  JsonArray *layers = json_object_get_array_member (o, "layers");
  /* The input's upload and the 14 layers. */
  g_assert_cmpuint (json_array_get_length (layers), ==, 15);
  double sum = 0;
  for (guint i = 0; i < json_array_get_length (layers); i++)
    {
      JsonObject *l = json_array_get_object_element (layers, i);
      double f = json_object_get_double_member (l, "forward_ms");
      double b = json_object_get_double_member (l, "backward_ms");
      g_assert_cmpfloat (f, >=, 0);
      if (g_str_equal (json_object_get_string_member (l, "kind"), "conv"))
        {
          g_assert_cmpfloat (f, >, 0);
          g_assert_cmpfloat (b, >, 0);
        }
      sum += f + b;
    }
  JsonObject *t = json_object_get_object_member (o, "totals");
  /* The traced work: the layers, the loss and the update, nothing unattributed. */
  double loss = json_object_get_double_member (t, "loss_ms");
  double update = json_object_get_double_member (t, "update_ms");
  g_assert_cmpfloat (loss, >, 0);
  g_assert_cmpfloat (update, >, 0);
  g_assert_cmpfloat (json_object_get_double_member (t, "unattributed_ms"), ==, 0);
  g_assert_cmpfloat (fabs (json_object_get_double_member (t, "layers_ms") - (sum + loss + update)),
                     <, 1e-6);
  /* The CPU traces host-clock intervals: the input and 14 layers forward, 14 backward (the
   * softmax head's included), the loss and the update, in each of the 3 steps. */
  g_assert_cmpint (json_object_get_int_member (t, "records"), ==, 3 * (15 + 14 + 2));
  g_assert_cmpint (json_object_get_int_member (t, "dropped"), ==, 0);
  /* The layers' times fit in the traced step, which the profile measured around them. */
  g_assert_cmpfloat (sum, <=, json_object_get_double_member (t, "timed_step_ms") * 1.01 + 0.01);
  g_assert_cmpfloat (json_object_get_double_member (t, "step_ms"), >, 0);
  g_assert_cmpfloat (json_object_get_double_member (t, "step_median_ms"), >, 0);

  /* Inference folds ResNet-18's 20 batch norms into their convolutions and its 17 ReLUs into
   * the layers before them (9 convolutions, 8 residual sums); --as-written runs and lists
   * them. */
  for (int written = 0; written < 2; written++)
    {
      g_auto (Run) rn = { 0 };
      run_cli (&rn, "profile", "resnet18", "--device", "cpu", "--iters", "1", "--warmup", "0",
               "--format", "json", written ? "--as-written" : NULL, NULL);
      g_assert_cmpint (rn.status, ==, 0);
      g_autoptr (JsonParser) rp = NULL;
      JsonObject *ro = parse_json (rn.out, &rp);
      JsonObject *rt = json_object_get_object_member (ro, "totals");
      g_assert_cmpint (json_object_get_int_member (rt, "folded_batch_norms"), ==, written ? 0 : 20);
      g_assert_cmpint (json_object_get_int_member (rt, "fused_relus"), ==, written ? 0 : 17);
      JsonArray *rl = json_object_get_array_member (ro, "layers");
      guint bns = 0;
      for (guint i = 0; i < json_array_get_length (rl); i++)
        bns += g_str_equal (json_object_get_string_member (json_array_get_object_element (rl, i),
                                                           "kind"), "bn");
      g_assert_cmpuint (bns, ==, written ? 20 : 0);
    }

  g_auto (Run) tab = { 0 };
  run_cli (&tab, "profile", "lenet5", "--device", "cpu", "--iters", "2", NULL);
  g_assert_cmpint (tab.status, ==, 0);
  g_assert_nonnull (strstr (tab.out, "lenet5, forward pass, batch 1, 2 traced steps"));
  g_assert_nonnull (strstr (tab.out, "the tracer's cost"));
  g_assert_nonnull (strstr (tab.out, "not attributed to a layer 0.000 ms"));
}

/* export writes ONNX that opens again with the same numbers; a .prototxt opens like a .cnn. */
static void
test_other_formats (void)
{
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-XXXXXX", NULL);
  g_autofree char *onnx = g_build_filename (dir, "lenet5.onnx", NULL);
  g_auto (Run) e = { 0 };
  run_cli (&e, "export", "lenet5", "-o", onnx, NULL);
  g_assert_cmpint (e.status, ==, 0);
  g_auto (Run) a = { 0 }, b = { 0 };
  run_cli (&a, "summary", "lenet5", "--format", "csv", "--unfold", NULL);
  run_cli (&b, "summary", onnx, "--format", "csv", "--unfold", NULL);
  g_assert_cmpint (b.status, ==, 0);
  /* The same columns of numbers, layer by layer (names differ: ONNX has its own). */
  g_auto (GStrv) ra = g_strsplit (a.out, "\n", -1), rb = g_strsplit (b.out, "\n", -1);
  g_assert_cmpuint (g_strv_length (ra), ==, g_strv_length (rb));
  for (guint i = 1; ra[i] && *ra[i]; i++)
    {
      const char *na = strchr (strchr (strchr (ra[i], ',') + 1, ',') + 1, ',');
      const char *nb = strchr (strchr (strchr (rb[i], ',') + 1, ',') + 1, ',');
      g_assert_cmpstr (na, ==, nb);
    }
  g_auto (Run) i = { 0 };
  run_cli (&i, "infer", onnx, NULL);
  g_assert_cmpint (i.status, ==, 0);
  g_unlink (onnx);
  g_rmdir (dir);

  g_autofree char *caffe = g_test_build_filename (G_TEST_DIST, "data", "caffe",
                                                  "bvlc_alexnet.prototxt", NULL);
  g_auto (Run) c = { 0 };
  run_cli (&c, "summary", caffe, "--format", "json", NULL);
  g_assert_cmpint (c.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (c.out, &parser);
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (o, "totals"),
                                               "params"), ==, 60965224);
}

static void
test_run_errors (void)
{
  struct { const char *args[7]; int status; const char *err; } cases[] = {
    { { "train", "lenet5" }, 2, "train needs --data" },
    { { "train", "lenet5", "--data", "cifar10:/nonexistent" }, 1, "/nonexistent" },
    { { "train", "lenet5", "--data", "imagenet:/x" }, 2, "imagenet" },
    { { "infer", "lenet5", "--device", "cuda" }, 1, "no CUDA backend" },
    { { "infer", "lenet5", "--device", "tpu" }, 2, "the device is cpu, cuda or auto" },
    { { "infer", "lenet5", "--input", "/nonexistent.npy" }, 1, "/nonexistent.npy" },
    { { "infer", "lenet5", "--weights", "/nonexistent.safetensors" }, 1, "nonexistent" },
    { { "infer", "lenet5", "--batch", "0" }, 2, "--batch takes" },
    { { "infer", "lenet5", "--device", "cpu", "--math", "tf32" }, 1, "fp32 only" },
    { { "profile", "lenet5", "--math", "fp64" }, 2, "--math takes fp32, tf32 or bf16" },
    { { "profile", "lenet5", "--mode", "backward" }, 2, "--mode takes infer or train" },
    { { "profile", "lenet5", "--device", "cuda" }, 1, "no CUDA backend" },
    { { "profile", "lenet5", "--batch", "70000" }, 2, "--batch takes 1 to 65536" },
    /* Half a terabyte of activations: refused by the plan, before anything is touched. */
    { { "profile", "resnet18", "--device", "cpu", "--batch", "65536" }, 1,
      "a smaller batch needs less" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto (Run) r = { 0 };
      const char **a = cases[i].args;
      run_cli (&r, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL);
      g_test_message ("%s %s %s %s: %d %s", a[0], a[1], a[2] ? a[2] : "", a[3] ? a[3] : "",
                      r.status, r.err);
      g_assert_cmpint (r.status, ==, cases[i].status);
      g_assert_nonnull (strstr (r.err, cases[i].err));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/list", test_list);
  g_test_add_func ("/cli/summary/json", test_json);
  g_test_add_func ("/cli/summary/unfold", test_unfold);
  g_test_add_func ("/cli/summary/table-csv-markdown", test_table_and_csv);
  g_test_add_func ("/cli/exit-codes", test_exit_codes);
  g_test_add_func ("/cli/summary/widths", test_table_widths);
  g_test_add_func ("/cli/bad-file", test_bad_file);
  g_test_add_func ("/cli/train-and-infer", test_train_and_infer);
  g_test_add_func ("/cli/run-errors", test_run_errors);
  g_test_add_func ("/cli/profile", test_profile);
  g_test_add_func ("/cli/other-formats", test_other_formats);
  return g_test_run ();
}
