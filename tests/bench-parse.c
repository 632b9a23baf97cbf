/* Benchmark: parsing and summarising the largest bundled models, against the 50 ms / 50 MB budget,
 * and time per layer across model sizes (graph work must stay linear). */
#include "cs-stats.h"
#include "cs-zoo.h"

#include <stdio.h>

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static long
peak_rss_kib (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  const char *p = strstr (status, "VmHWM:");
  return p ? strtol (p + 6, NULL, 10) : -1;
}

int
main (int argc, char **argv)
{
  const char *models[] = { "resnet18", "resnet152", "resnet110_cifar", "resnet1202_cifar",
                           "densenet121", "googlenet" };
  const int runs = 21;
  printf ("%-20s %7s %12s %12s %14s %10s\n", "model", "layers", "median ms", "budget ms",
          "ratio", "us/layer");
  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    {
      double t[runs];
      guint nodes = 0;
      for (int r = 0; r < runs; r++)
        {
          gint64 t0 = g_get_monotonic_time ();
          GError *error = NULL;
          CsGraph *g = cs_load_model (models[m], &error);
          CsStats *st = g ? cs_stats_compute (g, 1, &error) : NULL;
          if (st == NULL)
            {
              fprintf (stderr, "%s\n", error->message);
              return 1;
            }
          nodes = cs_graph_n_nodes (g);
          cs_stats_free (st);
          cs_graph_unref (g);
          t[r] = (g_get_monotonic_time () - t0) / 1000.0;
        }
      qsort (t, runs, sizeof t[0], compare_doubles);
      double med = t[runs / 2];
      printf ("%-20s %7u %12.2f %12.0f %13.3fx %10.2f\n", models[m], nodes, med, 50.0,
              med / 50.0, med * 1000.0 / nodes);
    }
  long rss = peak_rss_kib ();
  printf ("\npeak resident memory of this process: %.1f MB (budget 50 MB, ratio %.2fx)\n",
          rss / 1024.0, rss / 1024.0 / 50.0);
  return 0;
}
