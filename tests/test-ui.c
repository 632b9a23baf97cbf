/* The application window under Xvfb: opening models, the graph and the table in sync, blocks
 * collapsing, overlays, live editing, and the --screenshot render. */
#include "cs-chart.h"
#include "cs-graph-view.h"
#include "cs-layer-table.h"
#include "cs-window.h"

#include <glib/gstdio.h>
#include <math.h>
#include <sys/wait.h>

static gboolean
wait_for_ready (CsGraphView *view)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (!cs_graph_view_is_ready (view) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  /* A few more frames so that what is drawn matches. */
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  return cs_graph_view_is_ready (view);
}

typedef struct {
  char *path;
  gboolean done;
} Capture;

static gboolean
capture_frame (GtkWidget *w, GdkFrameClock *clock, gpointer data)
{
  Capture *c = data;
  int width = gtk_widget_get_width (w), height = gtk_widget_get_height (w);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (w);
  GtkSnapshot *snap = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snap, width, height);
  GskRenderNode *node = gtk_snapshot_free_to_node (snap);
  if (node == NULL)
    return G_SOURCE_CONTINUE;   /* not drawn yet: the next frame */
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (w));
  g_autoptr (GdkTexture) tex =
    gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, width, height));
  if (!gdk_texture_save_to_png (tex, c->path))
    g_test_message ("cannot write %s", c->path);
  gsk_render_node_unref (node);
  c->done = TRUE;
  return G_SOURCE_REMOVE;
}

/* With CNNSCOPE_KEEP_SCREENSHOTS=DIR, a PNG of the window as it is now, for people to look at. */
static void
keep_screenshot (CsWindow *win, const char *name)
{
  const char *dir = g_getenv ("CNNSCOPE_KEEP_SCREENSHOTS");
  if (dir == NULL)
    return;
  Capture c = { g_strdup_printf ("%s/%s.png", dir, name), FALSE };
  gtk_widget_queue_draw (GTK_WIDGET (win));
  guint id = gtk_widget_add_tick_callback (GTK_WIDGET (win), capture_frame, &c, NULL);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!c.done && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  if (!c.done)
    gtk_widget_remove_tick_callback (GTK_WIDGET (win), id);
  g_free (c.path);
}

static void
wait_idle (CsWindow *win)
{
  gint64 deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  while (cs_window_is_busy (win) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (cs_window_is_busy (win));
  for (int i = 0; i < 50; i++)
    g_main_context_iteration (NULL, FALSE);
}

static CsWindow *
open_window (const char *model)
{
  CsWindow *win = cs_window_new (NULL);
  cs_window_open (win, model);
  gtk_window_present (GTK_WINDOW (win));
  g_assert_true (wait_for_ready (cs_window_get_graph_view (win)));
  return win;
}

static gint
find_node (CsStats *st, const char *name)
{
  for (guint i = 0; i < cs_graph_n_nodes (st->graph); i++)
    if (g_str_equal (cs_graph_node (st->graph, i)->name, name))
      return i;
  return -1;
}

static void
test_vgg16 (void)
{
  CsWindow *win = open_window ("vgg16");
  CsGraphView *view = cs_window_get_graph_view (win);
  CsLayerTable *table = cs_window_get_layer_table (win);
  CsStats *st = cs_window_get_stats (win);
  g_assert_nonnull (st);
  g_assert_cmpstr (st->graph->name, ==, "vgg16");
  /* The lecture view: the 22 rows of the lecture's table, as boxes and as rows. */
  g_assert_cmpuint (cs_graph_view_get_n_boxes (view), ==, 22);
  g_assert_cmpuint (cs_layer_table_get_n_rows (table), ==, 22);
  g_assert_nonnull (strstr (cs_layer_table_get_totals (table),
                            "138,357,544 parameters = 138,344,128 weights + 13,416 biases"));
  g_assert_nonnull (strstr (cs_layer_table_get_totals (table), "15,237,608 values"));

  /* The table follows the graph's selection, and the graph the table's. */
  gint conv = find_node (st, "block3/conv1");
  g_assert_cmpint (conv, >=, 0);
  g_signal_emit_by_name (view, "node-selected", conv);
  g_assert_cmpint (cs_layer_table_get_selected (table), ==, conv);
  gint fc = find_node (st, "fc6");
  g_signal_emit_by_name (table, "node-selected", fc);
  g_assert_cmpint (cs_graph_view_get_selected (view), ==, fc);

  keep_screenshot (win, "vgg16-selected");

  /* Counting options: FLOPs with the bias additions of every conv and fc output value
   * (15,237,608 values less the input's 150,528 and the pools' 1,530,368). */
  cs_layer_table_set_counting (table, TRUE, TRUE);
  g_assert_nonnull (strstr (cs_layer_table_get_totals (table),
                            "30,967,642,064 FLOPs with bias additions"));
  cs_layer_table_set_counting (table, FALSE, FALSE);
  g_assert_nonnull (strstr (cs_layer_table_get_totals (table), "15,470,264,320 MACs"));
  cs_graph_view_set_overlay (view, CS_OVERLAY_MEMORY);
  g_assert_cmpint (cs_graph_view_get_overlay (view), ==, CS_OVERLAY_MEMORY);
  cs_graph_view_zoom_fit (view);
  keep_screenshot (win, "vgg16-overlay-memory");
  cs_graph_view_set_overlay (view, CS_OVERLAY_PARAMS);
  keep_screenshot (win, "vgg16-overlay-params");
  cs_window_show_page (win, 1);
  keep_screenshot (win, "vgg16-charts");
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
draw_graph (cairo_t *cr, double w, double h, gpointer view)
{
  double gw, gh;
  cs_graph_view_render (view, cr, &gw, &gh);
}

/* The graph exported as PNG, SVG and PDF at its own size. */
static void
test_export (void)
{
  CsWindow *win = open_window ("googlenet");
  CsGraphView *view = cs_window_get_graph_view (win);
  double w = 0, h = 0;
  cs_graph_view_render (view, NULL, &w, &h);
  g_assert_cmpfloat (w, >, 100);
  g_assert_cmpfloat (h, >, 1000);   /* 92 rows of boxes, top to bottom */
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-ui-XXXXXX", NULL);
  const char *exts[] = { "png", "svg", "pdf" };
  const char *magic[] = { "\x89PNG", "<?xml", "%PDF" };
  for (guint i = 0; i < G_N_ELEMENTS (exts); i++)
    {
      g_autofree char *path = g_strdup_printf ("%s/graph.%s", dir, exts[i]);
      GError *error = NULL;
      g_assert_true (cs_export_drawing (path, w, h, 1.0, draw_graph, view, &error));
      g_assert_no_error (error);
      g_autofree char *data = NULL;
      gsize len;
      g_assert_true (g_file_get_contents (path, &data, &len, NULL));
      g_assert_cmpuint (len, >, 1000);
      g_assert_true (g_str_has_prefix (data, magic[i]));
      if (i == 0)
        {
          g_autoptr (GdkTexture) tex = gdk_texture_new_from_filename (path, &error);
          g_assert_no_error (error);
          g_assert_cmpint (gdk_texture_get_width (tex), ==, (int) ceil (w));
          g_assert_cmpint (gdk_texture_get_height (tex), ==, (int) ceil (h));
        }
      g_unlink (path);
    }
  GError *error = NULL;
  g_autofree char *bad = g_strdup_printf ("%s/graph.bmp", dir);
  g_assert_false (cs_export_drawing (bad, w, h, 1.0, draw_graph, view, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_rmdir (dir);
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_collapse (void)
{
  CsWindow *win = open_window ("googlenet");
  CsGraphView *view = cs_window_get_graph_view (win);
  guint expanded = cs_graph_view_get_n_boxes (view);
  cs_graph_view_collapse_all (view);
  g_assert_true (wait_for_ready (view));
  guint collapsed = cs_graph_view_get_n_boxes (view);
  g_test_message ("googlenet: %u boxes expanded, %u collapsed", expanded, collapsed);
  g_assert_cmpuint (collapsed, <, expanded / 2);
  keep_screenshot (win, "googlenet-collapsed");
  g_assert_true (cs_graph_view_get_collapsed (view, "inception_4a"));
  cs_graph_view_set_collapsed (view, "inception_4a", FALSE);
  g_assert_true (wait_for_ready (view));
  g_assert_cmpuint (cs_graph_view_get_n_boxes (view), >, collapsed);
  cs_graph_view_expand_all (view);
  g_assert_true (wait_for_ready (view));
  g_assert_cmpuint (cs_graph_view_get_n_boxes (view), ==, expanded);
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_edit (void)
{
  CsWindow *win = open_window ("vgg16");
  CsGraphView *view = cs_window_get_graph_view (win);
  cs_window_set_source (win, "input 32x32x3\nconv 8 3x3 pad 1\nrelu\nfc 10\n");
  g_assert_null (cs_window_get_error (win));
  g_assert_true (wait_for_ready (view));
  g_assert_cmpuint (cs_graph_view_get_n_boxes (view), ==, 3);
  /* A mistake: the error is shown with its position and the last good graph stays. */
  cs_window_set_source (win, "input 32x32x3\nconv 8 3x3 pad 1\nrelu\nfc 10 stride 2\n");
  g_assert_nonnull (cs_window_get_error (win));
  g_assert_nonnull (strstr (cs_window_get_error (win), ":4:7:"));
  g_assert_cmpuint (cs_graph_view_get_n_boxes (view), ==, 3);
  g_assert_cmpuint (cs_graph_node (cs_window_get_stats (win)->graph, 1)->p.out, ==, 8);
  cs_window_show_page (win, 2);
  keep_screenshot (win, "edit-error");
  gtk_window_destroy (GTK_WINDOW (win));
}

/* Training a small network on the shapes from the window: the curves fill as it runs. */
static void
test_train (void)
{
  CsWindow *win = open_window ("vgg16");
  cs_window_set_source (win, "network tiny \"A small CNN\"\ninput 32x32x3\n"
                             "conv 16 3x3 pad 1; relu; maxpool 2x2\n"
                             "conv 32 3x3 pad 1; relu; maxpool 2x2\nfc 64; relu; fc 8; softmax\n");
  g_assert_null (cs_window_get_error (win));
  cs_window_show_page (win, 3);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (win), "win.train", NULL));
  g_assert_true (cs_window_is_busy (win));
  wait_idle (win);
  CsChart *chart = CS_CHART (cs_window_get_chart (win, CS_CHART_TRAINING));
  /* One validation point per epoch (5 by default), and training points in between. */
  g_assert_cmpuint (cs_chart_get_n_points (chart, CS_SERIES_VAL_ACCURACY), ==, 5);
  g_assert_cmpuint (cs_chart_get_n_points (chart, CS_SERIES_TRAIN_LOSS), >=, 5);
  keep_screenshot (win, "train-curves");
  gtk_window_destroy (GTK_WINDOW (win));
}

/* Profiling on the CPU fills the time overlay and the table's time columns. */
static void
test_profile (void)
{
  CsWindow *win = open_window ("resnet18");
  cs_window_show_page (win, 4);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (win), "win.profile", NULL));
  wait_idle (win);
  CsGraphView *view = cs_window_get_graph_view (win);
  g_assert_cmpint (cs_graph_view_get_overlay (view), ==, CS_OVERLAY_FORWARD_TIME);
  /* A selected layer's details give its measured time and rate. */
  gint conv = find_node (cs_window_get_stats (win), "conv1");
  g_assert_cmpint (conv, >=, 0);
  g_signal_emit_by_name (view, "node-selected", conv);
  g_autofree char *details = cs_window_get_details_text (win);
  g_assert_nonnull (strstr (details, "ms forward"));
  g_assert_nonnull (strstr (details, "TFLOP/s"));
  /* The profile page shows the whole report, every piece of work attributed. */
  const char *report = cs_window_get_profile_report (win);
  g_assert_nonnull (strstr (report, "conv1 "));
  g_assert_nonnull (strstr (report, "not attributed to a layer 0.000 ms"));
  cs_graph_view_zoom_fit (view);
  keep_screenshot (win, "resnet18-profile");
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_bad_file (void)
{
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-ui-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "bad.cnn", NULL);
  g_assert_true (g_file_set_contents (path, "input 8x8x3\nconv 4 9x9\n", -1, NULL));
  CsWindow *win = cs_window_new (NULL);
  cs_window_open (win, path);
  g_assert_nonnull (cs_window_get_error (win));
  g_assert_nonnull (strstr (cs_window_get_error (win), "bad.cnn:2:1:"));
  g_assert_null (cs_window_get_stats (win));
  gtk_window_destroy (GTK_WINDOW (win));
  g_unlink (path);
  g_rmdir (dir);
}

/* cnnscope --screenshot: a PNG of the window's size that is not blank. */
static void
test_screenshot (gconstpointer data)
{
  const char *model = data;
  const char *app = g_getenv ("CNNSCOPE_APP");
  g_assert_nonnull (app);
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-ui-XXXXXX", NULL);
  g_autofree char *png = g_build_filename (dir, "shot.png", NULL);
  const char *argv[] = { app, "--screenshot", png, model, NULL };
  int status;
  GError *error = NULL;
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status,
                &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_autoptr (GdkTexture) tex = gdk_texture_new_from_filename (png, &error);
  g_assert_no_error (error);
  int w = gdk_texture_get_width (tex), h = gdk_texture_get_height (tex);
  g_assert_cmpint (w, >=, 800);
  g_assert_cmpint (h, >=, 560);
  g_autofree guchar *px = g_malloc ((gsize) w * h * 4);
  gdk_texture_download (tex, px, w * 4);
  /* Not blank: many distinct colours. */
  g_autoptr (GHashTable) colours = g_hash_table_new (g_direct_hash, g_direct_equal);
  for (gsize i = 0; i < (gsize) w * h; i += 7)
    {
      guint32 c;
      memcpy (&c, px + i * 4, 4);
      g_hash_table_add (colours, GUINT_TO_POINTER (c));
    }
  g_test_message ("%s: %dx%d, %u colours", model, w, h, g_hash_table_size (colours));
  g_assert_cmpuint (g_hash_table_size (colours), >, 50);
  if (g_getenv ("CNNSCOPE_KEEP_SCREENSHOTS"))
    {
      g_autofree char *keep = g_strdup_printf ("%s/%s.png", g_getenv ("CNNSCOPE_KEEP_SCREENSHOTS"),
                                               model);
      g_rename (png, keep);
    }
  g_unlink (png);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_setenv ("GSK_RENDERER", "cairo", FALSE);
  g_setenv ("GDK_BACKEND", "x11", FALSE);
  /* The window remembers state in the user's config folder: keep tests out of the real one. */
  g_autofree char *home = g_dir_make_tmp ("cnnscope-home-XXXXXX", NULL);
  g_setenv ("XDG_CONFIG_HOME", home, TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  g_test_add_func ("/ui/window/vgg16", test_vgg16);
  g_test_add_func ("/ui/window/collapse", test_collapse);
  g_test_add_func ("/ui/window/export", test_export);
  g_test_add_func ("/ui/window/edit", test_edit);
  g_test_add_func ("/ui/window/bad-file", test_bad_file);
  g_test_add_func ("/ui/window/train", test_train);
  g_test_add_func ("/ui/window/profile", test_profile);
  g_test_add_data_func ("/ui/screenshot/vgg16", "vgg16", test_screenshot);
  g_test_add_data_func ("/ui/screenshot/googlenet", "googlenet", test_screenshot);
  g_test_add_data_func ("/ui/screenshot/resnet50", "resnet50", test_screenshot);
  return g_test_run ();
}
