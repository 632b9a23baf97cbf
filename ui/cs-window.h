/* CsWindow: the application window on one model. */
#pragma once

#include <adwaita.h>

#include "cs-graph-view.h"
#include "cs-layer-table.h"

G_BEGIN_DECLS

#define CS_TYPE_WINDOW (cs_window_get_type ())
G_DECLARE_FINAL_TYPE (CsWindow, cs_window, CS, WINDOW, AdwApplicationWindow)

CsWindow     *cs_window_new          (GtkApplication *app);
/* Opens a bundled model by name or a .cnn file; a file with an error opens with the error shown
 * and its text in the source pane. */
void          cs_window_open         (CsWindow *self, const char *name_or_path);
/* Saves a PNG of the window once the graph is laid out, then calls DONE. */
void          cs_window_screenshot   (CsWindow *self, const char *path, GCallback done,
                                      gpointer user_data);
CsGraphView  *cs_window_get_graph_view  (CsWindow *self);
CsLayerTable *cs_window_get_layer_table (CsWindow *self);
CsStats      *cs_window_get_stats       (CsWindow *self);
/* The last profile's report as shown on the profile page, "" before one (tests). */
const char   *cs_window_get_profile_report (CsWindow *self);
/* The details pane's text (tests). */
char         *cs_window_get_details_text (CsWindow *self);
/* The error shown for the current source, or NULL. */
const char   *cs_window_get_error       (CsWindow *self);
/* The window's charts: CS_CHART_LAYERS, CS_CHART_COMPLEXITY or CS_CHART_TRAINING (tests). */
GtkWidget    *cs_window_get_chart       (CsWindow *self, int kind);
/* Whether training or profiling is running. */
gboolean      cs_window_is_busy         (CsWindow *self);
/* Shows a page of the bottom notebook: 0 layers, 1 charts, 2 source, 3 train, 4 profile. */
void          cs_window_show_page       (CsWindow *self, int page);
/* Replaces the source text as if typed, and re-parses at once (tests). */
void          cs_window_set_source      (CsWindow *self, const char *text);

G_END_DECLS
