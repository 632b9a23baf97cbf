/* cnnscope-cli: the headless front end: the zoo, per-layer statistics, inference and training. */
#include "cs-blas.h"
#include "cs-device.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-onnx.h"
#include "cs-profile.h"
#include "cs-report.h"
#include "cs-stats.h"
#include "cs-train.h"
#include "cs-weights.h"
#include "cs-zoo.h"

#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

static int
usage_error (GOptionContext *ctx, const char *msg)
{
  g_printerr ("cnnscope-cli: %s\n", msg);
  if (ctx)
    {
      g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
      g_printerr ("\n%s", help);
    }
  return EXIT_USAGE;
}

static int
cmd_list (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the bundled models");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      int r = usage_error (ctx, error->message);
      g_error_free (error);
      return r;
    }
  if (argc > 1)
    return usage_error (ctx, "list takes no arguments");

  g_auto (GStrv) names = cs_zoo_list ();
  for (char **n = names; *n; n++)
    {
      g_autoptr (CsGraph) g = cs_load_model (*n, &error);
      if (g == NULL)
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          continue;
        }
      g_autoptr (CsStats) st = cs_stats_compute (g, 1, &error);
      if (st == NULL)
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          continue;
        }
      g_autofree char *params = cs_format_si (st->folded_totals.params);
      g_autofree char *macs = cs_format_si (st->folded_totals.macs);
      g_autofree char *year = g->year ? g_strdup_printf ("%u", g->year) : g_strdup ("");
      g_print ("%-28s %-28s %-12s %4s  %6s params %6s MACs\n", g->name, g->title,
               g->family ? g->family : "", year, params, macs);
    }
  return EXIT_SUCCESS;
}

static int
cmd_summary (int argc, char **argv)
{
  gint64 batch = 1;
  gboolean unfold = FALSE;
  g_autofree char *format_name = NULL;
  GOptionEntry entries[] = {
    { "batch", 'b', 0, G_OPTION_ARG_INT64, &batch, "Batch size (default 1)", "N" },
    { "unfold", 'u', 0, G_OPTION_ARG_NONE, &unfold,
      "List every layer instead of folding in-place layers into the one before", NULL },
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format_name,
      "table (default), markdown, csv or json", "FORMAT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("MODEL - per-layer statistics of a bundled model or a .cnn file");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      int r = usage_error (ctx, error->message);
      g_error_free (error);
      return r;
    }
  if (argc != 2)
    return usage_error (ctx, "summary takes one MODEL: a bundled name (see 'list') or a file");
  CsReportFormat format = CS_REPORT_TABLE;
  if (format_name && !cs_report_format_from_string (format_name, &format))
    return usage_error (ctx, "--format takes table, markdown, csv or json");
  if (batch < 1 || batch > 1048576)
    return usage_error (ctx, "--batch takes a number from 1 to 1048576");

  g_autoptr (CsGraph) g = cs_load_model (argv[1], &error);
  g_autoptr (CsStats) st = g ? cs_stats_compute (g, batch, &error) : NULL;
  if (st == NULL)
    {
      g_printerr ("%s\n", error->message);
      g_error_free (error);
      return EXIT_MODEL;
    }
  g_autofree char *text = cs_report (st, format, unfold);
  fputs (text, stdout);
  return fflush (stdout) == 0 ? EXIT_SUCCESS : EXIT_MODEL;
}


static int
model_error (GError *error)
{
  g_printerr ("%s\n", error->message);
  g_error_free (error);
  return EXIT_MODEL;
}

/* A usage error (with the command's help) or a model/run error (exit 1), by the error's code. */
static int
run_error (GOptionContext *ctx, GError *error)
{
  if (error->code != CS_ERROR_USAGE)
    return model_error (error);
  int status = usage_error (ctx, error->message);
  g_error_free (error);
  return status;
}

static gboolean
parse_options (GOptionContext *ctx, int *argc, char ***argv, int *status)
{
  GError *error = NULL;
  if (g_option_context_parse (ctx, argc, argv, &error))
    return TRUE;
  *status = usage_error (ctx, error->message);
  g_error_free (error);
  return FALSE;
}

/* The backend for --device and --math; "auto" says so when it falls back to the CPU. */
static CsBackend *
open_backend (const char *device, const char *math_name, GError **error)
{
  CsMath math = CS_MATH_FP32;
  gboolean cpu = device && g_str_equal (device, "cpu");
  if (math_name && !cs_math_from_string (math_name, &math))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "--math takes fp32, tf32 or bf16, not '%s'",
                   math_name);
      return NULL;
    }
  /* The GPU's default is tf32, as PyTorch's for convolutions; the CPU has fp32 only. */
  if (math_name == NULL && !cpu)
    math = CS_MATH_TF32;
  g_autofree char *note = NULL;
  CsBackend *be = cs_backend_open (device, math, &note, error);
  if (be == NULL && error && *error && (*error)->code == CS_ERROR_UNSUPPORTED && math_name == NULL)
    {
      /* "auto" fell back to the CPU, where tf32 does not exist: fp32 it is. */
      g_clear_error (error);
      be = cs_backend_open ("cpu", CS_MATH_FP32, NULL, error);
    }
  if (note)
    g_printerr ("cnnscope-cli: %s\n", note);
  return be;
}

/* A model with its parameters: from FILE when given, else initialised from the seed. */
static CsNet *
open_net (const char *model, const char *weights, guint64 seed, CsGraph **graph,
          GHashTable **metadata, GError **error)
{
  g_autoptr (CsNet) net = NULL;
  g_autoptr (CsGraph) g = NULL;
  if (g_str_has_suffix (model, ".onnx") && weights == NULL)
    {
      /* An ONNX file brings its own weights. */
      g = cs_onnx_load (model, &net, error);
      if (g == NULL)
        return NULL;
      *graph = g_steal_pointer (&g);
      return g_steal_pointer (&net);
    }
  g = cs_load_model (model, error);
  if (g == NULL)
    return NULL;
  net = cs_net_new (g, error);
  if (net == NULL)
    return NULL;
  cs_net_init (net, seed, g->train.xavier);
  if (weights && !cs_safetensors_load_full (weights, (CsTensor *const *) net->tensors->pdata,
                                            net->tensors->len, metadata, error))
    return NULL;
  *graph = g_steal_pointer (&g);
  return g_steal_pointer (&net);
}

/* Reads "a,b,c" from METADATA's KEY into N floats; TRUE, leaving OUT alone, when absent. */
static gboolean
parse_floats (GHashTable *metadata, const char *key, float *out, guint64 n)
{
  const char *text = metadata ? g_hash_table_lookup (metadata, key) : NULL;
  if (text == NULL)
    return TRUE;
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  if (g_strv_length (parts) != n || n > 4)
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      char *end;
      out[i] = (float) g_ascii_strtod (parts[i], &end);
      if (*end != '\0' || end == parts[i])
        return FALSE;
    }
  return TRUE;
}

static int
cmd_infer (int argc, char **argv)
{
  g_autofree char *weights = NULL, *input = NULL, *save = NULL, *device = NULL, *math = NULL;
  gint batch = 1;
  gint64 seed = 1;
  GOptionEntry entries[] = {
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Parameters (safetensors)", "FILE" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Images per forward pass (default 1)", "N" },
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input,
      "An image (PNG, JPEG) or a float32 NCHW .npy batch (default: random images)",
      "IMAGE|FILE.npy" },
    { "save-output", 'o', 0, G_OPTION_ARG_FILENAME, &save,
      "Write the raw outputs (batch x classes, float32) as .npy", "FILE.npy" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (default)", "DEVICE" },
    { "math", 0, 0, G_OPTION_ARG_STRING, &math, "fp32, tf32 (the GPU's default) or bf16", "MODE" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, "Seed for initial weights and random input",
      "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("MODEL - run a forward pass and print the top-5 classes");
  g_option_context_add_main_entries (ctx, entries, NULL);
  int status;
  if (!parse_options (ctx, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return usage_error (ctx, "infer takes one MODEL");
  if (batch < 1 || batch > 65536)
    return usage_error (ctx, "--batch takes a number from 1 to 65536");

  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (GHashTable) meta = NULL;
  g_autoptr (CsNet) net = open_net (argv[1], weights, seed, &g, &meta, &error);
  if (net == NULL)
    return model_error (error);
  g_autoptr (CsBackend) be = open_backend (device, math, &error);
  if (be == NULL)
    return run_error (ctx, error);

  const CsShape *in = &cs_graph_node (g, 0)->shape;
  gsize vol = (gsize) in->c * in->h * in->w;
  g_auto (GStrv) class_names = meta && g_hash_table_lookup (meta, "cnnscope.classes")
    ? g_strsplit (g_hash_table_lookup (meta, "cnnscope.classes"), "\n", -1) : NULL;
  g_autofree float *images = NULL;
  guint64 n = batch;
  if (input && !g_str_has_suffix (input, ".npy"))
    {
      /* An image: resized to the input and normalised as the training did, or with the
       * ImageNet statistics torchvision uses when the weights do not say. */
      char *paths[] = { input };
      g_autoptr (CsDataset) ds = cs_dataset_from_images (paths, 1, in->h, in->w, &error);
      if (ds == NULL)
        return model_error (error);
      CsAugment norm = { { 0.485f, 0.456f, 0.406f, 0 }, { 0.229f, 0.224f, 0.225f, 1 } };
      if (!parse_floats (meta, "cnnscope.mean", norm.mean, in->c)
          || !parse_floats (meta, "cnnscope.std", norm.std, in->c))
        {
          g_printerr ("%s: the normalisation stored in the weights is not for %" G_GUINT64_FORMAT
                      " channels\n", weights, in->c);
          return EXIT_MODEL;
        }
      if (in->c == 1 && !(meta && g_hash_table_contains (meta, "cnnscope.mean")))
        norm.mean[0] = 0.449f, norm.std[0] = 0.226f;
      guint label;
      images = g_new (float, vol);
      cs_dataset_batch (ds, (guint[]) { 0 }, 1, in->c, in->h, in->w, &norm, NULL, images,
                        &label);
      n = 1;
    }
  else if (input)
    {
      guint rank;
      guint64 shape[4];
      images = cs_npy_read (input, &rank, shape, &error);
      if (images == NULL)
        return model_error (error);
      if (rank != 4 || shape[1] != in->c || shape[2] != in->h || shape[3] != in->w)
        {
          g_autofree char *got = cs_tensor_shape_string (rank, shape);
          g_printerr ("%s: the array is %s, but %s takes N x %" G_GUINT64_FORMAT " x %"
                      G_GUINT64_FORMAT " x %" G_GUINT64_FORMAT " (NCHW)\n", input, got,
                      g->name, in->c, in->h, in->w);
          return EXIT_MODEL;
        }
      n = shape[0];
    }
  else
    {
      images = g_try_malloc ((gsize) n * vol * sizeof (float));
      if (images == NULL)
        {
          g_autofree char *size = g_format_size ((guint64) n * vol * sizeof (float));
          g_printerr ("cnnscope-cli: out of memory: %s for a batch of %" G_GUINT64_FORMAT
                      " input images; try a smaller --batch\n", size, n);
          return EXIT_MODEL;
        }
      for (gsize i = 0; i < n * vol; i++)
        images[i] = 2.0f * cs_uniform ((guint64) seed, i) - 1.0f;
    }

  g_autoptr (CsExec) x = cs_exec_new (net, be, MIN ((guint64) batch, n), CS_EXEC_INFERENCE, seed, &error);
  if (x == NULL)
    return model_error (error);
  const CsNode *out = cs_graph_output (g);
  gsize classes = (gsize) out->shape.c * out->shape.h * out->shape.w;
  g_autofree float *scores = g_try_malloc (n * classes * sizeof (float));
  if (scores == NULL)
    {
      g_printerr ("cnnscope-cli: out of memory for the outputs; try a smaller --batch\n");
      return EXIT_MODEL;
    }
  gint64 t0 = g_get_monotonic_time ();
  for (guint64 start = 0; start < n; start += batch)
    {
      guint m = MIN ((guint64) batch, n - start);
      if (!cs_exec_forward (x, images + start * vol, m, &error)
          || !cs_exec_get_output (x, scores + start * classes, &error))
        return model_error (error);
    }
  double ms = (g_get_monotonic_time () - t0) / 1000.0;

  gboolean probs = out->op == CS_OP_SOFTMAX;
  for (guint64 i = 0; i < MIN (n, (guint64) 8); i++)
    {
      const float *s = scores + i * classes;
      g_print ("image %" G_GUINT64_FORMAT ":", i);
      gboolean used[5] = { 0 };
      guint top[5];
      guint k_max = MIN (5, classes);
      for (guint k = 0; k < k_max; k++)
        {
          gint best = -1;
          for (guint c = 0; c < classes; c++)
            {
              gboolean taken = FALSE;
              for (guint j = 0; j < k; j++)
                taken |= top[j] == c;
              if (!taken && (best < 0 || s[c] > s[best]))
                best = c;
            }
          top[k] = best;
          used[k] = TRUE;
          if (class_names && top[k] < g_strv_length (class_names))
            g_print ("  %s (%s%.4f)", class_names[top[k]], probs ? "p=" : "score ", s[top[k]]);
          else
            g_print ("  %u (%s%.4f)", top[k], probs ? "p=" : "score ", s[top[k]]);
        }
      (void) used;
      g_print ("\n");
    }
  if (n > 8)
    g_print ("... %" G_GUINT64_FORMAT " images in all\n", n);
  g_print ("forward: %.2f ms for %" G_GUINT64_FORMAT " image%s (%.2f ms per image) on %s\n", ms,
           n, n == 1 ? "" : "s", ms / n, be->description);
  if (save)
    {
      guint64 shape[2] = { n, classes };
      if (!cs_npy_write (save, scores, 2, shape, &error))
        return model_error (error);
    }
  return EXIT_SUCCESS;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  interrupted = 1;
}

typedef struct {
  gboolean tty;
  FILE *log;
  const char *save;
  CsNet *net;
  const CsTrainOptions *options;
  const CsDataset *data;
  GError *save_error;
} TrainRun;

static char *
join_floats (const float *v, guint n)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append_printf (s, "%s%s", i ? "," : "", g_ascii_dtostr (buf, sizeof buf, v[i]));
    }
  return g_string_free (s, FALSE);
}

/* The parameters, with what inference needs to prepare an image like the training did. */
static gboolean
save_checkpoint (TrainRun *run)
{
  if (run->save == NULL)
    return TRUE;
  g_clear_error (&run->save_error);
  g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_hash_table_insert (meta, "cnnscope.model", g_strdup (run->net->graph->name));
  guint channels = cs_graph_node (run->net->graph, 0)->shape.c;
  g_hash_table_insert (meta, "cnnscope.mean", join_floats (run->options->norm.mean,
                                                           MIN (channels, 4u)));
  g_hash_table_insert (meta, "cnnscope.std", join_floats (run->options->norm.std,
                                                          MIN (channels, 4u)));
  g_hash_table_insert (meta, "cnnscope.classes",
                       g_strjoinv ("\n", run->data->class_names));
  return cs_safetensors_save_full (run->save, (CsTensor *const *) run->net->tensors->pdata,
                                   run->net->tensors->len, meta, &run->save_error);
}

static gboolean
on_progress (const CsTrainProgress *p, const CsEpochResult *e, gpointer user_data)
{
  TrainRun *run = user_data;
  if (e == NULL)
    {
      if (run->tty)
        {
          int width = 24, done = (int) ((double) p->step / p->steps * width);
          char bar[32];
          for (int i = 0; i < width; i++)
            bar[i] = i < done ? '#' : '.';
          bar[width] = '\0';
          guint eta = (guint) p->eta_s;
          g_print ("\repoch %u/%u [%s] %u/%u  %.0f img/s  loss %.4f  acc %.1f%%  ETA %02u:%02u ",
                   p->epoch, p->epochs, bar, p->step, p->steps, p->images_per_s, p->loss,
                   100 * p->top1, eta / 60, eta % 60);
        }
      return !interrupted;
    }
  if (run->tty)
    g_print ("\r\033[K");
  g_print ("epoch %u/%u  lr %g  train loss %.4f  train acc %.2f%%  val loss %.4f  val acc "
           "%.2f%% (top-5 %.2f%%)  %.1f s\n", e->epoch, p->epochs, e->lr, e->train_loss,
           100 * e->train_top1, e->val_loss, 100 * e->val_top1, 100 * e->val_top5, e->seconds);
  if (run->log)
    {
      fprintf (run->log, "%u,%g,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f\n", e->epoch, e->lr,
               e->train_loss, e->train_top1, e->val_loss, e->val_top1, e->val_top5, e->seconds);
      fflush (run->log);
    }
  if (!save_checkpoint (run))
    return FALSE;
  return !interrupted;
}

static int
cmd_train (int argc, char **argv)
{
  g_autofree char *data = NULL, *device = NULL, *save = NULL, *log = NULL, *weights = NULL;
  g_autofree char *math = NULL;
  gint epochs = 0, batch = 0, max_steps = 0;
  gdouble lr = 0;
  gint64 seed = 1;
  gboolean no_augment = FALSE;
  g_autofree char *init = NULL;
  GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_STRING, &data,
      "shapes[:N], cifar10:DIR, mnist:DIR or folder:DIR", "SPEC" },
    { "epochs", 'e', 0, G_OPTION_ARG_INT, &epochs, "Epochs (default: the model's preset)", "E" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Batch size (default: the preset)", "N" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "Learning rate (default: the preset)", "X" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (default)", "DEVICE" },
    { "math", 0, 0, G_OPTION_ARG_STRING, &math, "fp32, tf32 (the GPU's default) or bf16", "MODE" },
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Start from these parameters",
      "FILE" },
    { "save", 0, 0, G_OPTION_ARG_FILENAME, &save,
      "Save the parameters (safetensors) after every epoch and on Ctrl-C", "FILE" },
    { "log", 0, 0, G_OPTION_ARG_FILENAME, &log, "Write per-epoch figures as CSV", "FILE.csv" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, "Seed for weights, data and order", "N" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &max_steps, "Stop after this many steps", "N" },
    { "no-augment", 0, 0, G_OPTION_ARG_NONE, &no_augment, "No random crops and flips", NULL },
    { "init", 0, 0, G_OPTION_ARG_STRING, &init,
      "he or xavier initialisation (default: the model's preset, else he)", "INIT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("MODEL - train on a dataset");
  g_option_context_add_main_entries (ctx, entries, NULL);
  int status;
  if (!parse_options (ctx, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return usage_error (ctx, "train takes one MODEL");
  if (data == NULL)
    return usage_error (ctx, "train needs --data (shapes for the built-in dataset)");
  if (epochs < 0 || batch < 0 || max_steps < 0 || lr < 0 || !isfinite (lr))
    return usage_error (ctx, "--epochs, --batch, --steps and --lr take positive numbers");
  if (init && !g_str_equal (init, "he") && !g_str_equal (init, "xavier"))
    return usage_error (ctx, "--init takes he or xavier");

  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = open_net (argv[1], weights, seed, &g, NULL, &error);
  if (net == NULL)
    return model_error (error);
  if (init && weights == NULL)
    cs_net_init (net, seed, g_str_equal (init, "xavier"));
  g_autoptr (CsBackend) be = open_backend (device, math, &error);
  if (be == NULL)
    return run_error (ctx, error);
  const CsShape *in = &cs_graph_node (g, 0)->shape;
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  if (!cs_data_open (data, in->h, in->w, seed, &train, &val, &error))
    return run_error (ctx, error);

  CsTrainOptions o;
  cs_train_options_from_preset (&o, &g->train);
  if (epochs)
    o.epochs = epochs;
  if (batch)
    o.batch = batch;
  if (lr > 0)
    o.lr = lr;
  o.seed = seed;
  o.max_steps = max_steps;
  o.augment = !no_augment;

  TrainRun run = { isatty (STDOUT_FILENO), NULL, save, net, &o, train, NULL };
  if (log)
    {
      run.log = fopen (log, "w");
      if (run.log == NULL)
        {
          g_printerr ("%s: %s\n", log, g_strerror (errno));
          return EXIT_MODEL;
        }
      fputs ("epoch,lr,train_loss,train_top1,val_loss,val_top1,val_top5,seconds\n", run.log);
    }
  g_print ("training %s on %s: %u training and %u validation images of %u classes, batch %u, "
           "lr %g, momentum %g, weight decay %g, %u epochs, on %s\n", g->name, train->name,
           train->n, val ? val->n : 0, train->n_classes, o.batch, o.lr, o.momentum, o.decay,
           o.epochs, be->description);
  struct sigaction sa = { .sa_handler = on_sigint };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  gboolean ok = cs_train (net, be, train, val, &o, on_progress, &run, &error);
  if (run.log)
    fclose (run.log);
  if (!ok)
    return model_error (error);
  if (run.save_error)
    return model_error (run.save_error);
  if (interrupted)
    {
      if (!save_checkpoint (&run))
        return model_error (run.save_error);
      g_print ("\nstopped by Ctrl-C%s\n", save ? "; the parameters are saved" : "");
      return 130;
    }
  if (save)
    g_print ("parameters saved to %s\n", save);
  return EXIT_SUCCESS;
}

static int
cmd_profile (int argc, char **argv)
{
  g_autofree char *device = NULL, *math = NULL, *mode = NULL, *format_name = NULL;
  gint batch = 1, iters = 10, warmup = 3;
  gboolean as_written = FALSE;
  GOptionEntry entries[] = {
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (default)", "DEVICE" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Batch size (default 1)", "N" },
    { "mode", 'm', 0, G_OPTION_ARG_STRING, &mode, "infer (default) or train", "MODE" },
    { "math", 0, 0, G_OPTION_ARG_STRING, &math, "fp32, tf32 (the GPU's default) or bf16", "MODE" },
    { "iters", 'n', 0, G_OPTION_ARG_INT, &iters, "Timed iterations (default 10)", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "Untimed iterations first (default 3)", "N" },
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format_name, "table (default) or json", "FORMAT" },
    { "as-written", 0, 0, G_OPTION_ARG_NONE, &as_written,
      "Run every layer as written: no batch norm or ReLU folded into a convolution", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("MODEL - per-layer times of a forward pass or a training step");
  g_option_context_add_main_entries (ctx, entries, NULL);
  int status;
  if (!parse_options (ctx, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return usage_error (ctx, "profile takes one MODEL");
  if (mode && !g_str_equal (mode, "infer") && !g_str_equal (mode, "train"))
    return usage_error (ctx, "--mode takes infer or train");
  CsReportFormat format = CS_REPORT_TABLE;
  if (format_name && (!cs_report_format_from_string (format_name, &format)
                      || (format != CS_REPORT_TABLE && format != CS_REPORT_JSON)))
    return usage_error (ctx, "--format takes table or json");
  if (batch < 1 || batch > 65536 || iters < 1 || iters > 10000 || warmup < 0 || warmup > 10000)
    return usage_error (ctx, "--batch takes 1 to 65536, --iters 1 to 10000 and --warmup 0 to "
                        "10000");

  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = open_net (argv[1], NULL, 1, &g, NULL, &error);
  if (net == NULL)
    return model_error (error);
  g_autoptr (CsBackend) be = open_backend (device, math, &error);
  if (be == NULL)
    return run_error (ctx, error);
  CsExecFlags flags = (mode && g_str_equal (mode, "train") ? CS_EXEC_TRAINING : 0)
                      | (as_written ? CS_EXEC_UNFUSED : 0);
  g_autoptr (CsProfile) p = cs_profile_run (net, be, batch, flags, iters, warmup, NULL, &error);
  if (p == NULL)
    return model_error (error);
  g_autofree char *text = cs_profile_report (p, g, format);
  fputs (text, stdout);
  return EXIT_SUCCESS;
}

static int
cmd_export (int argc, char **argv)
{
  g_autofree char *weights = NULL, *output = NULL;
  gint64 seed = 1;
  GOptionEntry entries[] = {
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights,
      "Parameters (safetensors; default: initialised from the seed)", "FILE" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "The ONNX file to write", "FILE.onnx" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, "Seed for initial weights", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("MODEL - write a model and its weights as ONNX (opset 13)");
  g_option_context_add_main_entries (ctx, entries, NULL);
  int status;
  if (!parse_options (ctx, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return usage_error (ctx, "export takes one MODEL");
  if (output == NULL)
    return usage_error (ctx, "export needs -o FILE.onnx");
  GError *error = NULL;
  g_autoptr (CsGraph) g = NULL;
  g_autoptr (CsNet) net = open_net (argv[1], weights, seed, &g, NULL, &error);
  if (net == NULL || !cs_onnx_save (net, output, &error))
    return model_error (error);
  g_print ("%s: %s with %u parameter tensors\n", output, g->name, net->tensors->len);
  return EXIT_SUCCESS;
}

static const struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *help;
} commands[] = {
  { "list", cmd_list, "list the bundled models" },
  { "summary", cmd_summary, "print a model's per-layer table and totals" },
  { "infer", cmd_infer, "run a forward pass and print the top-5 classes" },
  { "train", cmd_train, "train a model on a dataset" },
  { "profile", cmd_profile, "time every layer of a forward pass or a training step" },
  { "export", cmd_export, "write a model and its weights as an ONNX file" },
};

static int
main_usage (FILE *f)
{
  fprintf (f, "Usage: cnnscope-cli COMMAND [OPTIONS...]\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf (f, "\n'cnnscope-cli COMMAND --help' describes a command's options.\n");
  return f == stdout ? EXIT_SUCCESS : EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  cs_blas_init (argv);
  setlocale (LC_ALL, "");
  if (argc < 2)
    return main_usage (stderr);
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h")
      || g_str_equal (argv[1], "help"))
    return main_usage (stdout);
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      {
        g_autofree char *prog = g_strdup_printf ("cnnscope-cli %s", argv[1]);
        g_set_prgname (prog);
        return commands[i].run (argc - 1, argv + 1);
      }
  g_printerr ("cnnscope-cli: unknown command '%s'\n\n", argv[1]);
  return main_usage (stderr);
}
