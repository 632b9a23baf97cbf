/* CPU benchmark: VGG16 forward at batch 1, ResNet-50 forward at batch 8 and a ResNet-18
 * training step at batch 32, as "name ms" lines (median of the runs after warm-ups). */
#include "cs-blas.h"
#include "cs-exec.h"
#include "cs-zoo.h"

#include <stdio.h>
#include <stdlib.h>

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
measure (const char *model, guint batch, gboolean train, CsExecFlags extra, int runs, int warmup)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model (model, &error);
  g_autoptr (CsNet) net = g ? cs_net_new (g, &error) : NULL;
  if (net == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      exit (1);
    }
  cs_net_init (net, 1, FALSE);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  g_autoptr (CsExec) x = cs_exec_new (net, be, batch,
                                      (train ? CS_EXEC_TRAINING : CS_EXEC_INFERENCE) | extra, 1,
                                      &error);
  if (x == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      exit (1);
    }
  const CsShape *in = &cs_graph_node (g, 0)->shape;
  gsize n = (gsize) batch * in->c * in->h * in->w;
  g_autofree float *images = g_new (float, n);
  g_autofree guint *labels = g_new (guint, batch);
  for (gsize i = 0; i < n; i++)
    images[i] = cs_uniform (1, i) - 0.5f;
  for (guint i = 0; i < batch; i++)
    labels[i] = i % 1000;
  double t[64];
  for (int r = 0; r < warmup + runs; r++)
    {
      gint64 t0 = g_get_monotonic_time ();
      gboolean ok = train ? cs_exec_train_step (x, images, labels, batch, 0.01f, 0.9f, 5e-4f,
                                                NULL, &error)
                          : cs_exec_forward (x, images, batch, &error);
      if (!ok)
        {
          fprintf (stderr, "%s\n", error->message);
          exit (1);
        }
      if (r >= warmup)
        t[r - warmup] = (g_get_monotonic_time () - t0) / 1000.0;
    }
  qsort (t, runs, sizeof t[0], compare_doubles);
  return t[runs / 2];
}

int
main (int argc, char **argv)
{
  cs_blas_init (argv);
  int runs = argc > 1 ? CLAMP (atoi (argv[1]), 1, 64) : 5;
  printf ("# cnnscope, %s\n", cs_blas_describe ());
  printf ("vgg16-forward-b1 %.1f\n", measure ("vgg16", 1, FALSE, 0, runs, 2));
  fflush (stdout);
  double folded = measure ("resnet50", 8, FALSE, 0, runs, 2);
  printf ("resnet50-forward-b8 %.1f\n", folded);
  fflush (stdout);
  /* The same with every batch norm run as written, not folded into its convolution. */
  double unfused = measure ("resnet50", 8, FALSE, CS_EXEC_UNFUSED, runs, 2);
  printf ("resnet50-forward-b8-unfused %.1f (folding: %.2fx)\n", unfused, unfused / folded);
  fflush (stdout);
  printf ("resnet18-train-b32 %.1f\n", measure ("resnet18", 32, TRUE, 0, runs, 1));
  return 0;
}
