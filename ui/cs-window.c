/* CsWindow: the library, the graph, the table, charts, source editing, training and profiling
 * of one model, kept in sync. */
#include "cs-window.h"

#include "cs-caffe.h"
#include "cs-chart.h"
#include "cs-details.h"
#include "cs-device.h"
#include "cs-error.h"
#include "cs-exec.h"
#include "cs-parser.h"
#include "cs-profile.h"
#include "cs-report.h"
#include "cs-train.h"
#include "cs-zoo.h"
#include "cs-ui-resources.h"

#include <glib/gstdio.h>

struct _CsWindow {
  AdwApplicationWindow parent_instance;

  AdwWindowTitle *window_title;
  GtkToggleButton *sidebar_button;
  GtkWidget *sidebar, *model_list, *graph_box, *layers_page, *charts_page, *train_page;
  GtkWidget *profile_page, *error_banner, *search_entry, *details;
  GtkDropDown *overlay_dropdown;
  GtkCheckButton *fold_check, *flops_check, *bias_check, *profile_train_check;
  GtkEditable *data_entry;
  GtkDropDown *device_dropdown, *math_dropdown;
  GtkNotebook *notebook;
  GtkSpinButton *batch_spin, *epochs_spin, *profile_batch_spin;
  GtkTextView *source_view;
  GtkLabel *train_status, *profile_status, *profile_report;
  GtkSpinner *profile_spinner;

  CsGraphView *graph;
  CsLayerTable *table;
  CsChart *layers_chart, *complexity_chart, *training_chart;

  CsStats *stats;               /* the last good model */
  char *path;                   /* its file, or NULL for a bundled model */
  char *name;                   /* what was opened */
  char *error;                  /* the current source's error, or NULL */
  guint reparse_id;
  gboolean loading_source;
  CsProfile *profile;           /* the last profile of the model on screen, or NULL */

  GCancellable *work;           /* training or profiling in flight */
  double images_per_s;          /* the last training speed measured */
  gint stop;                    /* set to stop training */
};

G_DEFINE_FINAL_TYPE (CsWindow, cs_window, ADW_TYPE_APPLICATION_WINDOW)

static void refresh (CsWindow *self);
static void remember_recent (CsWindow *self, const char *file);

/* ---- state: the last model and the window's size, kept between runs ---------------------- */

static char *
state_path (void)
{
  return g_build_filename (g_get_user_config_dir (), "cnnscope", "state.ini", NULL);
}

static void
save_state (CsWindow *self)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *file = state_path ();
  g_key_file_load_from_file (kf, file, G_KEY_FILE_KEEP_COMMENTS, NULL);
  int w, h;
  gtk_window_get_default_size (GTK_WINDOW (self), &w, &h);
  g_key_file_set_integer (kf, "window", "width", w);
  g_key_file_set_integer (kf, "window", "height", h);
  g_key_file_set_boolean (kf, "window", "maximized", gtk_window_is_maximized (GTK_WINDOW (self)));
  if (self->name)
    g_key_file_set_string (kf, "model", "last", self->name);
  g_autofree char *path = state_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  g_mkdir_with_parents (dir, 0700);
  g_key_file_save_to_file (kf, path, NULL);
}

/* The model files opened last (most recent first), kept in the state file. */
static char **
load_recent (void)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = state_path ();
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, NULL))
    return NULL;
  return g_key_file_get_string_list (kf, "model", "recent", NULL, NULL);
}

static void
remember_recent (CsWindow *self, const char *file)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = state_path ();
  g_key_file_load_from_file (kf, path, G_KEY_FILE_KEEP_COMMENTS, NULL);
  g_auto (GStrv) old = g_key_file_get_string_list (kf, "model", "recent", NULL, NULL);
  g_autofree char *abs = g_canonicalize_filename (file, NULL);
  GPtrArray *list = g_ptr_array_new ();
  g_ptr_array_add (list, abs);
  for (char **r = old; r && *r && list->len < 8; r++)
    if (!g_str_equal (*r, abs))
      g_ptr_array_add (list, *r);
  g_key_file_set_string_list (kf, "model", "recent", (const char *const *) list->pdata,
                              list->len);
  g_ptr_array_free (list, TRUE);
  g_autofree char *dir = g_path_get_dirname (path);
  g_mkdir_with_parents (dir, 0700);
  g_key_file_save_to_file (kf, path, NULL);
}

char *cs_window_last_model (void);

/* The model opened last time, or NULL. */
char *
cs_window_last_model (void)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = state_path ();
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, NULL))
    return NULL;
  return g_key_file_get_string (kf, "model", "last", NULL);
}

static void
restore_size (CsWindow *self)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = state_path ();
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, NULL))
    return;
  int w = g_key_file_get_integer (kf, "window", "width", NULL);
  int h = g_key_file_get_integer (kf, "window", "height", NULL);
  if (w >= 800 && h >= 560)
    gtk_window_set_default_size (GTK_WINDOW (self), w, h);
  if (g_key_file_get_boolean (kf, "window", "maximized", NULL))
    gtk_window_maximize (GTK_WINDOW (self));
}

/* ---- showing a model ---------------------------------------------------------------------- */

static void
show_error (CsWindow *self, const char *message)
{
  g_free (self->error);
  self->error = g_strdup (message);
  gtk_label_set_text (GTK_LABEL (self->error_banner), message ? message : "");
  gtk_widget_set_visible (self->error_banner, message != NULL);
}

/* Underlines the error's position in the source, read from "FILE:LINE:COL: ...". */
static void
mark_error (CsWindow *self, const char *message)
{
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->source_view);
  GtkTextIter start, end;
  gtk_text_buffer_get_bounds (buf, &start, &end);
  gtk_text_buffer_remove_tag_by_name (buf, "error", &start, &end);
  if (message == NULL)
    return;
  /* The position follows the file name; a file name may itself hold colons. */
  const char *p = message;
  guint line = 0, col = 0;
  for (const char *q = strchr (p, ':'); q; q = strchr (q + 1, ':'))
    if (sscanf (q, ":%u:%u:", &line, &col) == 2)
      break;
  if (line == 0)
    return;
  if (!gtk_text_buffer_get_iter_at_line (buf, &start, line - 1))
    return;
  end = start;
  if (!gtk_text_iter_ends_line (&end))
    gtk_text_iter_forward_to_line_end (&end);
  if (col > 1)
    gtk_text_iter_forward_chars (&start, MIN ((gint) col - 1, gtk_text_iter_get_chars_in_line (&start)));
  if (gtk_text_iter_equal (&start, &end))
    gtk_text_iter_backward_char (&start);
  gtk_text_buffer_apply_tag_by_name (buf, "error", &start, &end);
}

static guint64
batch (CsWindow *self)
{
  return (guint64) gtk_spin_button_get_value_as_int (self->batch_spin);
}

/* Takes G: computes its stats and shows it everywhere. */
static gboolean
show_graph (CsWindow *self, CsGraph *g, GError **error)
{
  CsStats *st = cs_stats_compute (g, batch (self), error);
  if (st == NULL)
    return FALSE;
  g_clear_pointer (&self->stats, cs_stats_free);
  self->stats = st;
  g_clear_pointer (&self->profile, cs_profile_free);
  refresh (self);
  return TRUE;
}

static void
refresh (CsWindow *self)
{
  CsStats *st = self->stats;
  gboolean unfold = !gtk_check_button_get_active (self->fold_check);
  if (st)
    {
      g_autofree char *sub = st->graph->year
        ? g_strdup_printf ("%s · %u", st->graph->family ? st->graph->family : st->graph->name,
                           st->graph->year)
        : g_strdup (st->graph->name);
      adw_window_title_set_title (self->window_title, st->graph->title);
      adw_window_title_set_subtitle (self->window_title, sub);
    }
  cs_graph_view_set_fold (self->graph, !unfold);
  cs_graph_view_set_stats (self->graph, st);
  cs_layer_table_set_stats (self->table, st, unfold);
  cs_layer_table_set_counting (self->table, gtk_check_button_get_active (self->flops_check),
                               gtk_check_button_get_active (self->bias_check));
  cs_details_show (CS_DETAILS (self->details), st, -1, NULL);
  cs_chart_set_stats (self->layers_chart, st);
  cs_chart_set_current_model (self->complexity_chart, st ? st->graph->name : NULL);
}

static void
load_source_text (CsWindow *self, const char *text, gsize len)
{
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->source_view);
  self->loading_source = TRUE;
  gtk_text_buffer_set_text (buf, text, (int) len);
  self->loading_source = FALSE;
}

void
cs_window_open (CsWindow *self, const char *name_or_path)
{
  g_return_if_fail (CS_IS_WINDOW (self));
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model (name_or_path, &error);
  g_free (self->name);
  self->name = g_strdup (name_or_path);
  g_clear_pointer (&self->path, g_free);

  /* The source pane shows the text, good or bad, so that a mistake can be fixed in place. */
  g_autoptr (GBytes) zoo = cs_zoo_source (name_or_path);
  g_autofree char *text = NULL;
  gsize len = 0;
  if (zoo)
    text = g_strndup (g_bytes_get_data (zoo, &len), g_bytes_get_size (zoo));
  else if (g_file_get_contents (name_or_path, &text, &len, NULL))
    self->path = g_strdup (name_or_path);
  /* Text formats can be edited in place; an ONNX file is binary and has no source to show. */
  gboolean editable = text && g_utf8_validate (text, len, NULL) && len <= CS_PARSER_MAX_BYTES;
  load_source_text (self, editable ? text : "", editable ? len : 0);
  gtk_text_view_set_editable (self->source_view, editable);

  if (g == NULL || !show_graph (self, g, &error))
    {
      show_error (self, error->message);
      mark_error (self, error->message);
      g_error_free (error);
      /* The editor, on the mistake. */
      gtk_notebook_set_current_page (self->notebook, 2);
      return;
    }
  show_error (self, NULL);
  mark_error (self, NULL);
  if (self->path)
    remember_recent (self, self->path);
  save_state (self);
}

static gboolean
reparse (gpointer data)
{
  CsWindow *self = data;
  self->reparse_id = 0;
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->source_view);
  GtkTextIter s, e;
  gtk_text_buffer_get_bounds (buf, &s, &e);
  g_autofree char *text = gtk_text_buffer_get_text (buf, &s, &e, FALSE);
  g_autofree char *file = self->path ? g_path_get_basename (self->path)
                                     : g_strconcat (self->name ? self->name : "model", ".cnn",
                                                    NULL);
  GError *error = NULL;
  /* The source is read in the language of the file it came from. */
  g_autoptr (CsGraph) g = g_str_has_suffix (file, ".prototxt")
    ? cs_caffe_load (file, text, strlen (text), &error)
    : cs_parse_model (file, text, strlen (text), &error);
  /* On an error the last good graph stays on screen. */
  if (g == NULL || !show_graph (self, g, &error))
    {
      show_error (self, error->message);
      mark_error (self, error->message);
      g_error_free (error);
      return G_SOURCE_REMOVE;
    }
  show_error (self, NULL);
  mark_error (self, NULL);
  return G_SOURCE_REMOVE;
}

static void
on_source_changed (GtkTextBuffer *buf, CsWindow *self)
{
  if (self->loading_source)
    return;
  g_clear_handle_id (&self->reparse_id, g_source_remove);
  self->reparse_id = g_timeout_add (250, reparse, self);
}

void
cs_window_set_source (CsWindow *self, const char *text)
{
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->source_view), text, -1);
  g_clear_handle_id (&self->reparse_id, g_source_remove);
  reparse (self);
}

/* ---- selection and view options ----------------------------------------------------------- */

static void
on_graph_selected (CsGraphView *view, gint node, CsWindow *self)
{
  cs_layer_table_select (self->table, node);
  cs_details_show (CS_DETAILS (self->details), self->stats, node, self->profile);
}

static void
on_table_selected (CsLayerTable *table, gint node, CsWindow *self)
{
  cs_graph_view_select (self->graph, node);
  cs_details_show (CS_DETAILS (self->details), self->stats, node, self->profile);
}

static void
on_overlay (GObject *dropdown, GParamSpec *pspec, CsWindow *self)
{
  cs_graph_view_set_overlay (self->graph, gtk_drop_down_get_selected (self->overlay_dropdown));
}

static void
on_view_option (GtkWidget *w, CsWindow *self)
{
  if (self->stats == NULL)
    return;
  g_autoptr (CsGraph) g = cs_graph_ref (self->stats->graph);
  GError *error = NULL;
  if (!show_graph (self, g, &error))
    {
      show_error (self, error->message);
      g_error_free (error);
    }
}

static void
on_search (GtkSearchEntry *entry, CsWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (entry));
  if (*text && !cs_graph_view_find (self->graph, text))
    gtk_widget_error_bell (GTK_WIDGET (entry));
}

static void
on_model_row (GtkListBox *box, GtkListBoxRow *row, CsWindow *self)
{
  const char *name = g_object_get_data (G_OBJECT (row), "model");
  if (name)
    cs_window_open (self, name);
}

typedef struct {
  char *name;
  CsGraph *graph;
} LibraryEntry;

static int
by_family_year (gconstpointer a, gconstpointer b)
{
  const LibraryEntry *x = a, *y = b;
  int c = g_strcmp0 (x->graph->family, y->graph->family);
  if (c)
    return c;
  if (x->graph->year != y->graph->year)
    return (int) x->graph->year - (int) y->graph->year;
  return g_strcmp0 (x->name, y->name);
}

static GtkWidget *
library_row (const char *title, const char *subtitle, const char *tooltip, const char *model,
             const char *section)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  gtk_widget_add_css_class (box, "model-row");
  GtkWidget *t = gtk_label_new (title);
  gtk_widget_add_css_class (t, "title");
  gtk_label_set_xalign (GTK_LABEL (t), 0);
  gtk_label_set_ellipsize (GTK_LABEL (t), PANGO_ELLIPSIZE_END);
  GtkWidget *st = gtk_label_new (subtitle);
  gtk_widget_add_css_class (st, "subtitle");
  gtk_label_set_xalign (GTK_LABEL (st), 0);
  gtk_label_set_ellipsize (GTK_LABEL (st), PANGO_ELLIPSIZE_MIDDLE);
  gtk_box_append (GTK_BOX (box), t);
  gtk_box_append (GTK_BOX (box), st);
  GtkWidget *row = gtk_list_box_row_new ();
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  if (tooltip)
    gtk_widget_set_tooltip_text (row, tooltip);
  g_object_set_data_full (G_OBJECT (row), "model", g_strdup (model), g_free);
  g_object_set_data_full (G_OBJECT (row), "section", g_strdup (section), g_free);
  return row;
}

/* A heading above the first row of each section (recent files, then each family). */
static void
library_header (GtkListBoxRow *row, GtkListBoxRow *before, gpointer data)
{
  const char *section = g_object_get_data (G_OBJECT (row), "section");
  const char *prev = before ? g_object_get_data (G_OBJECT (before), "section") : NULL;
  if (g_strcmp0 (section, prev) == 0)
    {
      gtk_list_box_row_set_header (row, NULL);
      return;
    }
  GtkWidget *label = gtk_label_new (section);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_add_css_class (label, "heading");
  gtk_widget_add_css_class (label, "dim-label");
  gtk_widget_set_margin_start (label, 10);
  gtk_widget_set_margin_top (label, 10);
  gtk_widget_set_margin_bottom (label, 2);
  gtk_list_box_row_set_header (row, label);
}

static void
fill_library (CsWindow *self)
{
  g_auto (GStrv) recent = load_recent ();
  for (char **r = recent; r && *r; r++)
    if (g_file_test (*r, G_FILE_TEST_IS_REGULAR))
      {
        g_autofree char *base = g_path_get_basename (*r);
        g_autofree char *dir = g_path_get_dirname (*r);
        gtk_list_box_append (GTK_LIST_BOX (self->model_list),
                             library_row (base, dir, *r, *r, "Recent files"));
      }
  g_auto (GStrv) names = cs_zoo_list ();
  GArray *entries = g_array_new (FALSE, FALSE, sizeof (LibraryEntry));
  for (char **n = names; *n; n++)
    {
      CsGraph *g = cs_load_model (*n, NULL);
      if (g)
        g_array_append_val (entries, ((LibraryEntry) { *n, g }));
    }
  g_array_sort (entries, by_family_year);
  for (guint i = 0; i < entries->len; i++)
    {
      LibraryEntry *e = &g_array_index (entries, LibraryEntry, i);
      g_autofree char *sub = g_strdup_printf ("%u · %s", e->graph->year, e->name);
      gtk_list_box_append (GTK_LIST_BOX (self->model_list),
                           library_row (e->graph->title, sub, e->graph->paper, e->name,
                                        e->graph->family ? e->graph->family : "Other"));
      cs_graph_unref (e->graph);
    }
  g_array_free (entries, TRUE);
  gtk_list_box_set_header_func (GTK_LIST_BOX (self->model_list), library_header, NULL, NULL);
}

/* ---- files: open, drop, save, export ------------------------------------------------------- */

/* What a file dialog does with the chosen path: open it, save to it, export to it. */
typedef void (*FileFunc) (CsWindow *self, const char *path);

static void
on_file_chosen (GtkNativeDialog *dialog, int response, CsWindow *self)
{
  FileFunc func = g_object_get_data (G_OBJECT (dialog), "func");
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);
      if (path)
        func (self, path);
    }
  g_object_unref (dialog);
}

static void
action_open (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  GtkFileChooserNative *d = gtk_file_chooser_native_new ("Open a Model", GTK_WINDOW (self),
                                                         GTK_FILE_CHOOSER_ACTION_OPEN, NULL,
                                                         NULL);
  GtkFileFilter *f = gtk_file_filter_new ();
  gtk_file_filter_set_name (f, "Models (*.cnn, Caffe *.prototxt, *.onnx)");
  gtk_file_filter_add_pattern (f, "*.cnn");
  gtk_file_filter_add_pattern (f, "*.prototxt");
  gtk_file_filter_add_pattern (f, "*.onnx");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (d), f);
  g_object_unref (f);
  g_object_set_data (G_OBJECT (d), "func", cs_window_open);
  g_signal_connect (d, "response", G_CALLBACK (on_file_chosen), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (d));
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, CsWindow *self)
{
  if (!G_VALUE_HOLDS (value, G_TYPE_FILE))
    return FALSE;
  g_autofree char *path = g_file_get_path (g_value_get_object (value));
  if (path == NULL)
    return FALSE;
  cs_window_open (self, path);
  return TRUE;
}

static void
ask_save (CsWindow *self, const char *title, const char *suggestion, FileFunc func)
{
  GtkFileChooserNative *d = gtk_file_chooser_native_new (title, GTK_WINDOW (self),
                                                         GTK_FILE_CHOOSER_ACTION_SAVE, NULL,
                                                         NULL);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (d), suggestion);
  g_object_set_data (G_OBJECT (d), "func", func);
  g_signal_connect (d, "response", G_CALLBACK (on_file_chosen), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (d));
}

static void
save_source_to (CsWindow *self, const char *path)
{
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->source_view);
  GtkTextIter s, e;
  gtk_text_buffer_get_bounds (buf, &s, &e);
  g_autofree char *text = gtk_text_buffer_get_text (buf, &s, &e, FALSE);
  GError *error = NULL;
  /* Written to a temporary file and renamed: a failed save keeps the old file. */
  if (!g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, &error))
    {
      show_error (self, error->message);
      g_error_free (error);
      return;
    }
  g_free (self->path);
  self->path = g_strdup (path);
}

static void
action_save (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  if (self->path)
    save_source_to (self, self->path);
  else
    {
      g_autofree char *name = g_strconcat (self->name ? self->name : "model", ".cnn", NULL);
      ask_save (self, "Save the Model Source", name, save_source_to);
    }
}

static void
draw_graph (cairo_t *cr, double w, double h, gpointer data)
{
  double gw, gh;
  cs_graph_view_render (CS_GRAPH_VIEW (data), cr, &gw, &gh);
}

static void
export_graph_to (CsWindow *self, const char *path)
{
  double w = 0, h = 0;
  cs_graph_view_render (self->graph, NULL, &w, &h);
  GError *error = NULL;
  if (!cs_export_drawing (path, MAX (w, 1), MAX (h, 1), 2.0, draw_graph, self->graph, &error))
    {
      show_error (self, error->message);
      g_error_free (error);
    }
}

static void
draw_chart (cairo_t *cr, double w, double h, gpointer data)
{
  cs_chart_render (CS_CHART (data), cr, w, h);
}

static void
export_chart_to (CsWindow *self, const char *path)
{
  GError *error = NULL;
  if (!cs_export_drawing (path, 1200, 700, 2.0, draw_chart, self->layers_chart, &error))
    {
      show_error (self, error->message);
      g_error_free (error);
    }
}

static void
export_table_to (CsWindow *self, const char *path)
{
  if (self->stats == NULL)
    return;
  CsReportFormat fmt = g_str_has_suffix (path, ".md") ? CS_REPORT_MARKDOWN : CS_REPORT_CSV;
  g_autofree char *text = cs_report (self->stats, fmt,
                                     !gtk_check_button_get_active (self->fold_check));
  GError *error = NULL;
  if (!g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, &error))
    {
      show_error (self, error->message);
      g_error_free (error);
    }
}

static void
action_export (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  const char *base = self->stats ? self->stats->graph->name : "model";
  if (g_str_equal (action, "win.export-graph"))
    {
      g_autofree char *n = g_strconcat (base, ".png", NULL);
      ask_save (self, "Export the Graph (PNG, SVG or PDF)", n, export_graph_to);
    }
  else if (g_str_equal (action, "win.export-chart"))
    {
      g_autofree char *n = g_strconcat (base, "-layers.png", NULL);
      ask_save (self, "Export the Chart (PNG, SVG or PDF)", n, export_chart_to);
    }
  else
    {
      g_autofree char *n = g_strconcat (base, ".csv", NULL);
      ask_save (self, "Export the Table (CSV or Markdown .md)", n, export_table_to);
    }
}

/* ---- view actions ------------------------------------------------------------------------- */

static void
action_view (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  if (g_str_equal (action, "win.zoom-in"))
    cs_graph_view_zoom_by (self->graph, 1.25);
  else if (g_str_equal (action, "win.zoom-out"))
    cs_graph_view_zoom_by (self->graph, 0.8);
  else if (g_str_equal (action, "win.zoom-fit"))
    cs_graph_view_zoom_fit (self->graph);
  else if (g_str_equal (action, "win.collapse-all"))
    cs_graph_view_collapse_all (self->graph);
  else if (g_str_equal (action, "win.expand-all"))
    cs_graph_view_expand_all (self->graph);
  else if (g_str_equal (action, "win.find"))
    gtk_widget_grab_focus (self->search_entry);
}

/* ---- training on the shapes dataset, on a worker thread ------------------------------------ */

typedef struct {
  CsWindow *self;
  CsEpochResult epoch;
  gboolean has_epoch;
  CsTrainProgress progress;
} TrainUpdate;

static gboolean
apply_update (gpointer data)
{
  TrainUpdate *u = data;
  CsWindow *self = u->self;
  double x = u->progress.epoch - 1 + (double) u->progress.step / MAX (u->progress.steps, 1);
  if (u->has_epoch)
    {
      cs_chart_add_point (self->training_chart, CS_SERIES_VAL_LOSS, u->epoch.epoch,
                          u->epoch.val_loss);
      cs_chart_add_point (self->training_chart, CS_SERIES_VAL_ACCURACY, u->epoch.epoch,
                          u->epoch.val_top1);
    }
  else
    {
      cs_chart_add_point (self->training_chart, CS_SERIES_TRAIN_LOSS, x, u->progress.loss);
      cs_chart_add_point (self->training_chart, CS_SERIES_TRAIN_ACCURACY, x, u->progress.top1);
    }
  if (u->progress.images_per_s > 0)
    self->images_per_s = u->progress.images_per_s;
  g_autofree char *s = u->has_epoch
    ? g_strdup_printf ("epoch %u/%u · %.0f images/s · training loss %.4f, accuracy %.1f %% · "
                       "validation loss %.4f, accuracy %.1f %%", u->epoch.epoch,
                       u->progress.epochs, self->images_per_s, u->epoch.train_loss,
                       100 * u->epoch.train_top1, u->epoch.val_loss, 100 * u->epoch.val_top1)
    : g_strdup_printf ("epoch %u/%u, step %u/%u · %.0f images/s · loss %.4f · accuracy %.1f %%",
                       u->progress.epoch, u->progress.epochs, u->progress.step,
                       u->progress.steps, self->images_per_s, u->progress.loss,
                       100 * u->progress.top1);
  gtk_label_set_text (self->train_status, s);
  g_object_unref (self);
  g_free (u);
  return G_SOURCE_REMOVE;
}

typedef struct {
  CsWindow *self;
  CsGraph *graph;
  char *data;
  guint epochs;
  gint64 last_update;
} TrainJob;

static gboolean
train_progress (const CsTrainProgress *p, const CsEpochResult *e, gpointer data)
{
  TrainJob *job = data;
  gint64 now = g_get_monotonic_time ();
  /* At most 20 updates a second reach the main loop. */
  if (e || now - job->last_update > 50000)
    {
      job->last_update = now;
      TrainUpdate *u = g_new0 (TrainUpdate, 1);
      u->self = g_object_ref (job->self);
      u->progress = *p;
      if (e)
        u->epoch = *e, u->has_epoch = TRUE;
      g_idle_add (apply_update, u);
    }
  return !g_atomic_int_get (&job->self->stop);
}

static void
train_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  TrainJob *job = data;
  GError *error = NULL;
  const CsShape *in = &cs_graph_node (job->graph, 0)->shape;
  g_autoptr (CsNet) net = cs_net_new (job->graph, &error);
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  if (net == NULL || !cs_data_open (job->data, in->h, in->w, 1, &train, &val, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  cs_net_init (net, 1, job->graph->train.xavier);
  g_autoptr (CsBackend) be = cs_cpu_backend_new ();
  CsTrainOptions o;
  cs_train_options_from_preset (&o, &job->graph->train);
  o.epochs = job->epochs;
  o.batch = MIN (o.batch, 32u);
  o.lr = MIN (o.lr, 0.02);
  o.schedule = CS_SCHEDULE_CONSTANT;
  o.augment = FALSE;
  if (!cs_train (net, be, train, val, &o, train_progress, job, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
train_done (GObject *source, GAsyncResult *res, gpointer data)
{
  CsWindow *self = CS_WINDOW (source);
  GError *error = NULL;
  if (!g_task_propagate_boolean (G_TASK (res), &error))
    {
      g_autofree char *m = g_strdup_printf ("Training stopped: %s", error->message);
      gtk_label_set_text (self->train_status, m);
      g_error_free (error);
    }
  g_clear_object (&self->work);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.train", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.profile", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop", FALSE);
}

static void
train_job_free (gpointer data)
{
  TrainJob *job = data;
  cs_graph_unref (job->graph);
  g_object_unref (job->self);
  g_free (job->data);
  g_free (job);
}

static void
action_train (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  if (self->stats == NULL || self->work)
    return;
  if (g_str_equal (action, "win.stop"))
    return;
  TrainJob *job = g_new0 (TrainJob, 1);
  job->self = g_object_ref (self);
  job->graph = cs_graph_ref (self->stats->graph);
  job->epochs = gtk_spin_button_get_value_as_int (self->epochs_spin);
  job->data = g_strdup (gtk_editable_get_text (self->data_entry));
  g_atomic_int_set (&self->stop, 0);
  cs_chart_clear (self->training_chart);
  cs_chart_set_epochs (self->training_chart, job->epochs);
  gtk_label_set_text (self->train_status, "Reading the dataset…");
  self->work = g_cancellable_new ();
  gtk_widget_action_set_enabled (widget, "win.train", FALSE);
  gtk_widget_action_set_enabled (widget, "win.profile", FALSE);
  gtk_widget_action_set_enabled (widget, "win.stop", TRUE);
  GTask *task = g_task_new (self, self->work, train_done, NULL);
  g_task_set_task_data (task, job, train_job_free);
  g_task_run_in_thread (task, train_thread);
  g_object_unref (task);
}

static void
action_stop (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  g_atomic_int_set (&self->stop, 1);
  gtk_label_set_text (self->train_status, "Stopping after this step…");
}

/* ---- profiling on the CPU, on a worker thread ----------------------------------------------- */

typedef struct {
  CsGraph *graph;
  guint batch;
  gboolean train;
  const char *device;
  CsMath math;
  char *note, *backend;
  CsProfile *profile;
  double step_ms;
} ProfileJob;

static void
profile_job_free (gpointer data)
{
  ProfileJob *job = data;
  cs_graph_unref (job->graph);
  g_free (job->note);
  g_free (job->backend);
  cs_profile_free (job->profile);
  g_free (job);
}

static void
profile_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  ProfileJob *job = data;
  GError *error = NULL;
  g_autoptr (CsNet) net = cs_net_new (job->graph, &error);
  if (net == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  cs_net_init (net, 1, FALSE);
  /* The GPU when one is there; the CPU, which has fp32 only, otherwise. */
  CsBackend *opened = cs_backend_open (job->device, job->math, &job->note, &error);
  if (opened == NULL && error->code == CS_ERROR_UNSUPPORTED && !g_str_equal (job->device, "cuda"))
    {
      g_clear_error (&error);
      opened = cs_backend_open ("cpu", CS_MATH_FP32, NULL, &error);
    }
  g_autoptr (CsBackend) be = opened;
  if (be == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  job->backend = g_strdup (be->description);
  CsExecFlags flags = job->train ? CS_EXEC_TRAINING : CS_EXEC_INFERENCE;
  g_autoptr (CsProfile) p = cs_profile_run (net, be, job->batch, flags, 1, 1, cancellable, &error);
  if (p == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  job->step_ms = p->step_ms;
  job->profile = g_steal_pointer (&p);
  g_task_return_boolean (task, TRUE);
}

static void
profile_done (GObject *source, GAsyncResult *res, gpointer data)
{
  CsWindow *self = CS_WINDOW (source);
  ProfileJob *job = g_task_get_task_data (G_TASK (res));
  GError *error = NULL;
  gtk_spinner_stop (self->profile_spinner);
  g_clear_object (&self->work);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-profile", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.train", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.profile", TRUE);
  if (!g_task_propagate_boolean (G_TASK (res), &error))
    {
      gtk_label_set_text (self->profile_status, error->message);
      g_error_free (error);
      return;
    }
  if (self->stats == NULL || self->stats->graph != job->graph)
    return;  /* another model is on screen now */
  g_clear_pointer (&self->profile, cs_profile_free);
  self->profile = g_steal_pointer (&job->profile);
  const double *bwd = job->train ? self->profile->backward_ms : NULL;
  /* The whole profile as the CLI prints it: per layer, then the step, the tracer's cost and
   * the memory. */
  g_autofree char *report = cs_profile_report (self->profile, job->graph, CS_REPORT_TABLE);
  gtk_label_set_text (self->profile_report, report);
  cs_graph_view_set_times (self->graph, self->profile->forward_ms, bwd);
  cs_layer_table_set_times (self->table, self->profile->forward_ms, bwd);
  gtk_drop_down_set_selected (self->overlay_dropdown, CS_OVERLAY_FORWARD_TIME);
  g_autofree char *s = g_strdup_printf ("%s at batch %u: %.1f ms on %s%s%s", job->train
                                        ? "Training step" : "Forward pass", job->batch,
                                        job->step_ms, job->backend, job->note ? " · " : "",
                                        job->note ? job->note : "");
  gtk_label_set_text (self->profile_status, s);
}

static void
action_cancel_profile (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  if (self->work)
    g_cancellable_cancel (self->work);
}

static void
action_profile (GtkWidget *widget, const char *action, GVariant *param)
{
  CsWindow *self = CS_WINDOW (widget);
  if (self->stats == NULL || self->work)
    return;
  ProfileJob *job = g_new0 (ProfileJob, 1);
  job->graph = cs_graph_ref (self->stats->graph);
  job->batch = gtk_spin_button_get_value_as_int (self->profile_batch_spin);
  static const char *devices[] = { "auto", "cpu", "cuda" };
  job->device = devices[MIN (gtk_drop_down_get_selected (self->device_dropdown), 2u)];
  /* fp32 and tf32, in CsMath's order; bf16 is not offered until the GPU computes it. */
  job->math = gtk_drop_down_get_selected (self->math_dropdown) == 0 ? CS_MATH_FP32 : CS_MATH_TF32;
  job->train = gtk_check_button_get_active (self->profile_train_check);
  self->work = g_cancellable_new ();
  gtk_spinner_start (self->profile_spinner);
  gtk_label_set_text (self->profile_status, "Running…");
  gtk_widget_action_set_enabled (widget, "win.train", FALSE);
  gtk_widget_action_set_enabled (widget, "win.profile", FALSE);
  gtk_widget_action_set_enabled (widget, "win.cancel-profile", TRUE);
  GTask *task = g_task_new (self, self->work, profile_done, NULL);
  g_task_set_task_data (task, job, profile_job_free);
  g_task_run_in_thread (task, profile_thread);
  g_object_unref (task);
}

/* ---- screenshot ------------------------------------------------------------------------------ */

typedef struct {
  CsWindow *self;
  char *path;
  GCallback done;
  gpointer user_data;
  guint frames;
} Shot;

static gboolean
take_shot (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  Shot *shot = data;
  CsWindow *self = shot->self;
  /* Wait for the layout, then two more frames so that everything is drawn. */
  if (!cs_graph_view_is_ready (self->graph) || shot->frames++ < 2)
    return G_SOURCE_CONTINUE;
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  GdkPaintable *paintable = gtk_widget_paintable_new (widget);
  GtkSnapshot *snap = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snap, w, h);
  GskRenderNode *node = gtk_snapshot_free_to_node (snap);
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (widget));
  if (node)
    {
      GdkTexture *tex = gsk_renderer_render_texture (renderer, node,
                                                     &GRAPHENE_RECT_INIT (0, 0, w, h));
      if (!gdk_texture_save_to_png (tex, shot->path))
        g_printerr ("cnnscope: cannot write %s\n", shot->path);
      g_object_unref (tex);
      gsk_render_node_unref (node);
    }
  g_object_unref (paintable);
  ((void (*) (gpointer)) shot->done) (shot->user_data);
  g_free (shot->path);
  g_free (shot);
  return G_SOURCE_REMOVE;
}

void
cs_window_screenshot (CsWindow *self, const char *path, GCallback done, gpointer user_data)
{
  Shot *shot = g_new0 (Shot, 1);
  shot->self = self;
  shot->path = g_strdup (path);
  shot->done = done;
  shot->user_data = user_data;
  gtk_widget_add_tick_callback (GTK_WIDGET (self), take_shot, shot, NULL);
}

/* ---- the window ------------------------------------------------------------------------------ */

static void
cs_window_dispose (GObject *object)
{
  CsWindow *self = CS_WINDOW (object);
  if (self->work)
    {
      g_cancellable_cancel (self->work);
      g_atomic_int_set (&self->stop, 1);
    }
  g_clear_handle_id (&self->reparse_id, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), CS_TYPE_WINDOW);
  G_OBJECT_CLASS (cs_window_parent_class)->dispose (object);
}

static void
cs_window_finalize (GObject *object)
{
  CsWindow *self = CS_WINDOW (object);
  g_clear_pointer (&self->stats, cs_stats_free);
  g_free (self->path), g_free (self->name), g_free (self->error);
  cs_profile_free (self->profile);
  g_clear_object (&self->work);
  G_OBJECT_CLASS (cs_window_parent_class)->finalize (object);
}

static gboolean
on_close (GtkWindow *window, gpointer data)
{
  save_state (CS_WINDOW (window));
  return FALSE;
}

static void
cs_window_class_init (CsWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = cs_window_dispose;
  object_class->finalize = cs_window_finalize;

  /* Linked from a static library, the resource's constructor may not run: register it here. */
  if (!g_resources_get_info ("/org/cnnscope/Cnnscope/ui/cs-window.ui", 0, NULL, NULL, NULL))
    g_resources_register (cs_ui_get_resource ());
  g_type_ensure (CS_TYPE_DETAILS);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/cnnscope/Cnnscope/ui/cs-window.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, CsWindow, name)
  BIND (window_title);
  BIND (sidebar_button);
  BIND (sidebar);
  BIND (model_list);
  BIND (graph_box);
  BIND (layers_page);
  BIND (charts_page);
  BIND (train_page);
  BIND (profile_page);
  BIND (error_banner);
  BIND (search_entry);
  BIND (details);
  BIND (overlay_dropdown);
  BIND (fold_check);
  BIND (flops_check);
  BIND (bias_check);
  BIND (profile_train_check);
  BIND (batch_spin);
  BIND (epochs_spin);
  BIND (profile_batch_spin);
  BIND (source_view);
  BIND (train_status);
  BIND (profile_status);
  BIND (profile_report);
  BIND (profile_spinner);
  BIND (data_entry);
  BIND (device_dropdown);
  BIND (math_dropdown);
  BIND (notebook);
#undef BIND

  gtk_widget_class_install_action (widget_class, "win.open", NULL, action_open);
  gtk_widget_class_install_action (widget_class, "win.save", NULL, action_save);
  gtk_widget_class_install_action (widget_class, "win.export-graph", NULL, action_export);
  gtk_widget_class_install_action (widget_class, "win.export-chart", NULL, action_export);
  gtk_widget_class_install_action (widget_class, "win.export-table", NULL, action_export);
  const char *view_actions[] = { "win.zoom-in", "win.zoom-out", "win.zoom-fit",
                                 "win.collapse-all", "win.expand-all", "win.find" };
  for (guint i = 0; i < G_N_ELEMENTS (view_actions); i++)
    gtk_widget_class_install_action (widget_class, view_actions[i], NULL, action_view);
  gtk_widget_class_install_action (widget_class, "win.train", NULL, action_train);
  gtk_widget_class_install_action (widget_class, "win.stop", NULL, action_stop);
  gtk_widget_class_install_action (widget_class, "win.profile", NULL, action_profile);
  gtk_widget_class_install_action (widget_class, "win.cancel-profile", NULL,
                                   action_cancel_profile);

  struct { guint key; GdkModifierType mods; const char *action; } keys[] = {
    { GDK_KEY_o, GDK_CONTROL_MASK, "win.open" },
    { GDK_KEY_s, GDK_CONTROL_MASK, "win.save" },
    { GDK_KEY_e, GDK_CONTROL_MASK, "win.export-graph" },
    { GDK_KEY_f, GDK_CONTROL_MASK, "win.find" },
    { GDK_KEY_minus, GDK_CONTROL_MASK, "win.collapse-all" },
    { GDK_KEY_plus, GDK_CONTROL_MASK, "win.expand-all" },
    { GDK_KEY_equal, GDK_CONTROL_MASK, "win.expand-all" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    gtk_widget_class_add_binding_action (widget_class, keys[i].key, keys[i].mods,
                                         keys[i].action, NULL);
}

/* +, - and 0 zoom the graph unless a text field has the keyboard. */
static gboolean
on_key (GtkEventControllerKey *c, guint keyval, guint keycode, GdkModifierType state,
        CsWindow *self)
{
  GtkWidget *focus = gtk_root_get_focus (GTK_ROOT (self));
  if ((state & (GDK_CONTROL_MASK | GDK_ALT_MASK)) || GTK_IS_TEXT_VIEW (focus)
      || GTK_IS_EDITABLE (focus) || GTK_IS_TEXT (focus))
    return FALSE;
  switch (keyval)
    {
    case GDK_KEY_plus: case GDK_KEY_equal: case GDK_KEY_KP_Add:
      cs_graph_view_zoom_by (self->graph, 1.25);
      return TRUE;
    case GDK_KEY_minus: case GDK_KEY_KP_Subtract:
      cs_graph_view_zoom_by (self->graph, 0.8);
      return TRUE;
    case GDK_KEY_0: case GDK_KEY_KP_0:
      cs_graph_view_zoom_fit (self->graph);
      return TRUE;
    default:
      return FALSE;
    }
}

static void
cs_window_init (CsWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  restore_size (self);

  self->graph = CS_GRAPH_VIEW (cs_graph_view_new ());
  gtk_widget_set_vexpand (GTK_WIDGET (self->graph), TRUE);
  gtk_widget_set_hexpand (GTK_WIDGET (self->graph), TRUE);
  gtk_box_append (GTK_BOX (self->graph_box), GTK_WIDGET (self->graph));
  g_signal_connect (self->graph, "node-selected", G_CALLBACK (on_graph_selected), self);

  self->table = CS_LAYER_TABLE (cs_layer_table_new ());
  gtk_widget_set_vexpand (GTK_WIDGET (self->table), TRUE);
  gtk_box_append (GTK_BOX (self->layers_page), GTK_WIDGET (self->table));
  g_signal_connect (self->table, "node-selected", G_CALLBACK (on_table_selected), self);

  self->layers_chart = CS_CHART (cs_chart_new (CS_CHART_LAYERS));
  self->complexity_chart = CS_CHART (cs_chart_new (CS_CHART_COMPLEXITY));
  self->training_chart = CS_CHART (cs_chart_new (CS_CHART_TRAINING));
  gtk_box_append (GTK_BOX (self->charts_page), GTK_WIDGET (self->layers_chart));
  gtk_box_append (GTK_BOX (self->charts_page), GTK_WIDGET (self->complexity_chart));
  gtk_widget_set_vexpand (GTK_WIDGET (self->training_chart), TRUE);
  gtk_box_append (GTK_BOX (self->train_page), GTK_WIDGET (self->training_chart));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-profile", FALSE);

  g_object_bind_property (self->sidebar_button, "active", self->sidebar, "visible",
                          G_BINDING_SYNC_CREATE);
  g_signal_connect (self->model_list, "row-activated", G_CALLBACK (on_model_row), self);
  g_signal_connect (self->overlay_dropdown, "notify::selected", G_CALLBACK (on_overlay), self);
  g_signal_connect (self->fold_check, "toggled", G_CALLBACK (on_view_option), self);
  g_signal_connect (self->flops_check, "toggled", G_CALLBACK (on_view_option), self);
  g_signal_connect (self->bias_check, "toggled", G_CALLBACK (on_view_option), self);
  g_signal_connect (self->batch_spin, "value-changed", G_CALLBACK (on_view_option), self);
  g_signal_connect (self->search_entry, "activate", G_CALLBACK (on_search), self);
  g_signal_connect (self->search_entry, "search-changed", G_CALLBACK (on_search), self);

  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->source_view);
  gtk_text_buffer_create_tag (buf, "error", "underline", PANGO_UNDERLINE_ERROR, NULL);
  g_signal_connect (buf, "changed", G_CALLBACK (on_source_changed), self);

  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_FILE, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));
  GtkEventController *keys = gtk_event_controller_key_new ();
  gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
  g_signal_connect (keys, "key-pressed", G_CALLBACK (on_key), self);
  gtk_widget_add_controller (GTK_WIDGET (self), keys);
  g_signal_connect (self, "close-request", G_CALLBACK (on_close), NULL);

  g_autoptr (GtkBuilder) builder =
    gtk_builder_new_from_resource ("/org/cnnscope/Cnnscope/ui/shortcuts.ui");
  gtk_application_window_set_help_overlay (GTK_APPLICATION_WINDOW (self),
                                           GTK_SHORTCUTS_WINDOW (gtk_builder_get_object (
                                             builder, "shortcuts")));
  fill_library (self);
}

CsWindow *
cs_window_new (GtkApplication *app)
{
  return g_object_new (CS_TYPE_WINDOW, "application", app, NULL);
}

CsGraphView *
cs_window_get_graph_view (CsWindow *self)
{
  return self->graph;
}

CsLayerTable *
cs_window_get_layer_table (CsWindow *self)
{
  return self->table;
}

const char *
cs_window_get_profile_report (CsWindow *self)
{
  return gtk_label_get_text (self->profile_report);
}

char *
cs_window_get_details_text (CsWindow *self)
{
  return cs_details_get_text (CS_DETAILS (self->details));
}

CsStats *
cs_window_get_stats (CsWindow *self)
{
  return self->stats;
}

const char *
cs_window_get_error (CsWindow *self)
{
  return self->error;
}

GtkWidget *
cs_window_get_chart (CsWindow *self, int kind)
{
  switch (kind)
    {
    case CS_CHART_LAYERS: return GTK_WIDGET (self->layers_chart);
    case CS_CHART_COMPLEXITY: return GTK_WIDGET (self->complexity_chart);
    case CS_CHART_TRAINING: return GTK_WIDGET (self->training_chart);
    default: return NULL;
    }
}

gboolean
cs_window_is_busy (CsWindow *self)
{
  return self->work != NULL;
}

void
cs_window_show_page (CsWindow *self, int page)
{
  gtk_notebook_set_current_page (self->notebook, page);
}
