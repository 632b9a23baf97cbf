/* CsChart: the pictures beside the numbers: per-layer memory against parameters, all models'
 * complexity against accuracy, and live training curves. */
#pragma once

#include <gtk/gtk.h>

#include "cs-stats.h"

G_BEGIN_DECLS

typedef enum {
  CS_CHART_LAYERS,          /* per layer: activation memory and parameters (lecture's VGG16) */
  CS_CHART_COMPLEXITY,      /* every bundled model: MACs against top-1, bubble by parameters */
  CS_CHART_TRAINING,        /* loss and accuracy per epoch or step */
} CsChartKind;

typedef enum {
  CS_SERIES_TRAIN_LOSS,
  CS_SERIES_VAL_LOSS,
  CS_SERIES_TRAIN_ACCURACY,
  CS_SERIES_VAL_ACCURACY,
  CS_N_SERIES,
} CsSeries;

#define CS_TYPE_CHART_KIND (cs_chart_kind_get_type ())
GType cs_chart_kind_get_type (void) G_GNUC_CONST;

#define CS_TYPE_CHART (cs_chart_get_type ())
G_DECLARE_FINAL_TYPE (CsChart, cs_chart, CS, CHART, GtkWidget)

GtkWidget  *cs_chart_new        (CsChartKind kind);
CsChartKind cs_chart_get_kind   (CsChart *self);
/* CS_CHART_LAYERS: the model to draw (lecture view rows). The rows are copied: ST may be freed
 * afterwards. NULL clears the chart. */
void        cs_chart_set_stats  (CsChart *self, CsStats *st);
/* CS_CHART_COMPLEXITY: loads every bundled model (once) and marks CURRENT (may be NULL): a zoo
 * name ("vgg16") or the name the model file gives itself. Property "current-model". */
void        cs_chart_set_current_model (CsChart *self, const char *name);
const char *cs_chart_get_current_model (CsChart *self);
/* CS_CHART_TRAINING: a point at X (epochs, fractional within an epoch) of SERIES. Losses as they
 * are; accuracies as fractions in [0, 1] (as CsTrainProgress and CsEpochResult give them), drawn
 * in percent. A non-finite Y leaves a gap in the curve. */
void        cs_chart_add_point  (CsChart *self, CsSeries series, double x, double y);
guint       cs_chart_get_n_points (CsChart *self, CsSeries series);
/* CS_CHART_TRAINING: the planned number of epochs, so that the x axis spans the whole run from
 * the start; 0 (the default) scales it to the data. Property "epochs". */
void        cs_chart_set_epochs (CsChart *self, double epochs);
double      cs_chart_get_epochs (CsChart *self);
/* Removes the training points (the epochs stay). */
void        cs_chart_clear      (CsChart *self);
/* Draws the chart on CR at WIDTH x HEIGHT (for export): the on-screen drawing, but dark on a
 * white background whatever the style, since exports end up in documents. */
void        cs_chart_render     (CsChart *self, cairo_t *cr, double width, double height);

/* The bundled models the complexity chart plots (ImageNet accuracies only), in cs_zoo_list's
 * order; free with g_strfreev. Loads the zoo on first use. */
char      **cs_chart_list_complexity_models (void);

/* Writes a drawing to PATH as PNG, SVG or PDF (by its extension, in any case) at WIDTH x HEIGHT
 * units (SVG in pixels, PDF in points); SCALE multiplies the pixels of a PNG. The file is replaced
 * in one go. Errors are in G_IO_ERROR: INVALID_ARGUMENT for another extension or a bad size,
 * otherwise GIO's code for the file, with the path in the message. */
typedef void (*CsDrawFunc) (cairo_t *cr, double width, double height, gpointer user_data);
gboolean    cs_export_drawing   (const char *path, double width, double height, double scale,
                                 CsDrawFunc draw, gpointer user_data, GError **error);

G_END_DECLS
