/* Benchmark: the window's frame times (snapshot and paint, measured between the frame clock's
 * before-paint and after-paint) while zooming and panning a large graph, against the 16 ms of a
 * 60 Hz display; and the time from an edit of VGG16's source to every view updated (100 ms). */
#include "cs-graph-view.h"
#include "cs-window.h"
#include "cs-zoo.h"

#include <stdio.h>

typedef struct {
  gint64 start;
  GArray *ms;
} Frames;

static void
before_paint (GdkFrameClock *clock, Frames *f)
{
  f->start = g_get_monotonic_time ();
}

static void
after_paint (GdkFrameClock *clock, Frames *f)
{
  if (f->start)
    {
      double ms = (g_get_monotonic_time () - f->start) / 1000.0;
      g_array_append_val (f->ms, ms);
    }
  f->start = 0;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
spin_until_ready (CsGraphView *view)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (!cs_graph_view_is_ready (view) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
}

static void
measure (CsWindow *win, const char *model, gboolean fold)
{
  CsGraphView *view = cs_window_get_graph_view (win);
  cs_window_open (win, model);
  cs_graph_view_set_fold (view, fold);
  cs_graph_view_expand_all (view);
  spin_until_ready (view);
  for (int i = 0; i < 30; i++)
    g_main_context_iteration (NULL, FALSE);

  GdkFrameClock *clock = gtk_widget_get_frame_clock (GTK_WIDGET (win));
  Frames f = { 0, g_array_new (FALSE, FALSE, sizeof (double)) };
  gulong b = g_signal_connect (clock, "before-paint", G_CALLBACK (before_paint), &f);
  gulong a = g_signal_connect (clock, "after-paint", G_CALLBACK (after_paint), &f);
  /* 120 frames of zooming in and out around the centre, then panning by dragging the zoom. */
  for (int i = 0; i < 120; i++)
    {
      cs_graph_view_zoom_by (view, i < 60 ? (i % 20 < 10 ? 1.05 : 1 / 1.05) : 1.0);
      if (i >= 60)
        cs_graph_view_zoom_by (view, i % 2 ? 1.001 : 1 / 1.001);
      gtk_widget_queue_draw (GTK_WIDGET (view));
      guint before = f.ms->len;
      gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC;
      while (f.ms->len == before && g_get_monotonic_time () < deadline)
        g_main_context_iteration (NULL, TRUE);
    }
  g_signal_handler_disconnect (clock, b);
  g_signal_handler_disconnect (clock, a);
  qsort (f.ms->data, f.ms->len, sizeof (double), compare_doubles);
  double med = f.ms->len ? g_array_index (f.ms, double, f.ms->len / 2) : 0;
  double p95 = f.ms->len ? g_array_index (f.ms, double, f.ms->len * 95 / 100) : 0;
  printf ("%-18s %-9s %6u boxes %5u frames  median %6.2f ms  95th %6.2f ms  budget 16 ms  "
          "ratio %.2fx\n", model, fold ? "folded" : "expanded", cs_graph_view_get_n_boxes (view),
          f.ms->len, med, p95, p95 / 16.0);
  g_array_free (f.ms, TRUE);
}

int
main (int argc, char **argv)
{
  g_setenv ("GSK_RENDERER", "cairo", FALSE);
  g_setenv ("GDK_BACKEND", "x11", FALSE);
  g_autofree char *home = g_dir_make_tmp ("cnnscope-bench-XXXXXX", NULL);
  g_setenv ("XDG_CONFIG_HOME", home, TRUE);
  gtk_init ();
  adw_init ();
  CsWindow *win = cs_window_new (NULL);
  gtk_window_present (GTK_WINDOW (win));
  printf ("renderer: %s\n", g_getenv ("GSK_RENDERER"));
  measure (win, "densenet121", FALSE);
  measure (win, "resnet152", FALSE);
  measure (win, "resnet1202_cifar", TRUE);

  /* An edit of VGG16: from the new text to the table, details and the laid-out graph. */
  g_autoptr (GBytes) src = cs_zoo_source ("vgg16");
  g_autofree char *text = g_strndup (g_bytes_get_data (src, NULL), g_bytes_get_size (src));
  CsGraphView *view = cs_window_get_graph_view (win);
  double t[11];
  for (int r = 0; r < 11; r++)
    {
      /* Alternate the last layer's width so that every edit changes the model. */
      g_autofree char *edited = g_strdup_printf ("%s\nfc %d\n", text, 10 + r);
      gint64 t0 = g_get_monotonic_time ();
      cs_window_set_source (win, edited);
      spin_until_ready (view);
      t[r] = (g_get_monotonic_time () - t0) / 1000.0;
    }
  qsort (t, 11, sizeof t[0], compare_doubles);
  printf ("edit of vgg16 to all views updated: median %.1f ms  budget 100 ms  ratio %.2fx\n",
          t[5], t[5] / 100.0);
  gtk_window_destroy (GTK_WINDOW (win));
  return 0;
}
