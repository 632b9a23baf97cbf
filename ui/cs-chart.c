/* CsChart: the layer, complexity and training charts, drawn with cairo on screen and for export. */
#include "cs-chart.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <string.h>

#include "cs-zoo.h"

/* ---- Data kept by the chart ---------------------------------------------------------------- */

/* One row of the lecture view, copied so that the chart does not depend on the stats' lifetime. */
typedef struct {
  char *label;              /* the lecture's short form: "conv3-64", "pool2", "fc-4096" */
  char *name;               /* the head node's full name */
  char *group;              /* its top-level module, or NULL */
  guint64 memory;           /* output values per image */
  guint64 params;           /* weights and biases */
} LayerBar;

/* A bundled model's totals for the complexity chart. */
typedef struct {
  char *name;               /* as cs_zoo_list gives it */
  char *graph_name;         /* as the model file names itself */
  char *title, *family;
  guint year;
  double top1;
  guint64 macs, params;
  gboolean on_chart;        /* an ImageNet model with a published top-1 */
} ZooEntry;

typedef struct {
  double x, y;
} Point;

/* A region of the last on-screen drawing and what its tooltip says. */
typedef struct {
  gboolean circle;          /* circle: centre x, y and radius w */
  double x, y, w, h;
  char *markup;
} Hit;

struct _CsChart {
  GtkWidget parent_instance;
  CsChartKind kind;

  /* CS_CHART_LAYERS */
  char *model_title;
  GArray *bars;             /* LayerBar */
  guint64 total_memory, total_params;

  /* CS_CHART_COMPLEXITY */
  char *current;

  /* CS_CHART_TRAINING */
  GArray *series[CS_N_SERIES];  /* Point; accuracies as fractions */
  double epochs;

  /* The last drawing, kept until the data, the size, the colour or the font changes. */
  GskRenderNode *node;
  int node_width, node_height;
  GdkRGBA node_fg;
  PangoFontDescription *node_font;
  double node_dpi;
  GArray *hits;             /* Hit, in widget coordinates */
};

G_DEFINE_FINAL_TYPE (CsChart, cs_chart, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_KIND,
  PROP_CURRENT_MODEL,
  PROP_EPOCHS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

GType
cs_chart_kind_get_type (void)
{
  static gsize type_id = 0;
  static const GEnumValue values[] = {
    { CS_CHART_LAYERS, "CS_CHART_LAYERS", "layers" },
    { CS_CHART_COMPLEXITY, "CS_CHART_COMPLEXITY", "complexity" },
    { CS_CHART_TRAINING, "CS_CHART_TRAINING", "training" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type_id))
    g_once_init_leave (&type_id, g_enum_register_static (g_intern_static_string ("CsChartKind"),
                                                         values));
  return type_id;
}

static void
layer_bar_clear (gpointer data)
{
  LayerBar *b = data;
  g_free (b->label);
  g_free (b->name);
  g_free (b->group);
}

static void
hit_clear (gpointer data)
{
  g_free (((Hit *) data)->markup);
}

/* ---- The bundled models, loaded once per process ------------------------------------------- */

static gboolean
is_imagenet_accuracy (const CsGraph *g)
{
  if (g->top1 <= 0 || g->accuracy_source == NULL)
    return FALSE;
  g_autofree char *src = g_ascii_strdown (g->accuracy_source, -1);
  /* The figure compares ImageNet models; CIFAR and MNIST accuracies are on another scale. */
  if (strstr (src, "cifar") || strstr (src, "mnist"))
    return FALSE;
  return strstr (src, "imagenet") != NULL || strstr (src, "ilsvrc") != NULL;
}

static GArray *
zoo_entries (void)
{
  static gsize loaded = 0;
  static GArray *entries;

  if (g_once_init_enter (&loaded))
    {
      GArray *a = g_array_new (FALSE, TRUE, sizeof (ZooEntry));
      g_auto (GStrv) names = cs_zoo_list ();
      for (guint i = 0; names && names[i]; i++)
        {
          g_autoptr (GError) error = NULL;
          g_autoptr (CsGraph) g = cs_load_model (names[i], &error);
          if (g == NULL)
            {
              g_warning ("Complexity chart: %s", error->message);
              continue;
            }
          g_autoptr (CsStats) st = cs_stats_compute (g, 1, &error);
          if (st == NULL)
            {
              g_warning ("Complexity chart: %s", error->message);
              continue;
            }
          ZooEntry e = {
            .name = g_strdup (names[i]),
            .graph_name = g_strdup (g->name ? g->name : names[i]),
            .title = g_strdup (g->title ? g->title : names[i]),
            .family = g_strdup (g->family && *g->family ? g->family : "Other"),
            .year = g->year,
            .top1 = g->top1,
            .macs = st->folded_totals.macs,
            .params = st->folded_totals.params,
            .on_chart = is_imagenet_accuracy (g) && st->folded_totals.macs > 0,
          };
          g_array_append_val (a, e);
        }
      entries = a;
      g_once_init_leave (&loaded, 1);
    }
  return entries;
}

char **
cs_chart_list_complexity_models (void)
{
  GArray *entries = zoo_entries ();
  GPtrArray *names = g_ptr_array_new ();
  for (guint i = 0; i < entries->len; i++)
    if (g_array_index (entries, ZooEntry, i).on_chart)
      g_ptr_array_add (names, g_strdup (g_array_index (entries, ZooEntry, i).name));
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

/* ---- Drawing helpers ------------------------------------------------------------------------ */

typedef struct {
  GdkRGBA fg, bg;
  gboolean paint_bg;        /* exports get a background; the screen has the window's */
  gboolean dark;            /* light text: the accents are lightened */
} Palette;

typedef struct {
  CsChart *self;
  cairo_t *cr;
  double w, h;
  Palette pal;
  PangoContext *pango;
  PangoFontDescription *font;
  int font_size;            /* pango units, of FONT */
  gboolean font_absolute;
  double fs;                /* the base font's size in user units: every margin scales with it */
  GArray *hits;             /* NULL when the drawing is not for the screen */
} Ctx;

typedef struct {
  double x, y, w, h;
} Box;

enum { C_BLUE, C_ORANGE, C_GREEN, C_PURPLE, C_RED, C_BROWN, C_YELLOW, C_TEAL, N_ACCENTS };

/* The GNOME palette: the darker shade on light backgrounds, the lighter one on dark. */
static const char *accents[N_ACCENTS][2] = {
  [C_BLUE]   = { "#1c71d8", "#62a0ea" },
  [C_ORANGE] = { "#e66100", "#ffa348" },
  [C_GREEN]  = { "#26a269", "#57e389" },
  [C_PURPLE] = { "#813d9c", "#c061cb" },
  [C_RED]    = { "#c01c28", "#f66151" },
  [C_BROWN]  = { "#865e3c", "#cdab8f" },
  [C_YELLOW] = { "#c88800", "#f8e45c" },
  [C_TEAL]   = { "#0e7c86", "#5bc8af" },
};

static GdkRGBA
accent (const Ctx *c, guint i)
{
  GdkRGBA rgba;
  gdk_rgba_parse (&rgba, accents[i % N_ACCENTS][c->pal.dark ? 1 : 0]);
  return rgba;
}

static void
set_colour (cairo_t *cr, const GdkRGBA *rgba, double alpha)
{
  cairo_set_source_rgba (cr, rgba->red, rgba->green, rgba->blue, rgba->alpha * alpha);
}

static void
set_fg (const Ctx *c, double alpha)
{
  set_colour (c->cr, &c->pal.fg, alpha);
}

static PangoLayout *
text_layout (Ctx *c, const char *text, double rel, gboolean bold)
{
  PangoLayout *l = pango_layout_new (c->pango);
  PangoFontDescription *fd = pango_font_description_copy (c->font);
  int size = (int) lround (c->font_size * rel);
  if (c->font_absolute)
    pango_font_description_set_absolute_size (fd, size);
  else
    pango_font_description_set_size (fd, size);
  if (bold)
    pango_font_description_set_weight (fd, PANGO_WEIGHT_BOLD);
  pango_layout_set_font_description (l, fd);
  pango_font_description_free (fd);
  pango_layout_set_text (l, text, -1);
  return l;
}

static void
layout_size (PangoLayout *l, double *w, double *h)
{
  int lw, lh;
  pango_layout_get_size (l, &lw, &lh);
  if (w)
    *w = (double) lw / PANGO_SCALE;
  if (h)
    *h = (double) lh / PANGO_SCALE;
}

static void
measure_text (Ctx *c, const char *text, double rel, gboolean bold, double *w, double *h)
{
  g_autoptr (PangoLayout) l = text_layout (c, text, rel, bold);
  layout_size (l, w, h);
}

/* Draws L so that the point (AX, AY) of its box (fractions of its size) lands on (X, Y), turned
 * by ANGLE about that point. */
static void
show_layout (Ctx *c, PangoLayout *l, double x, double y, double ax, double ay, double angle,
             const GdkRGBA *colour, double alpha)
{
  double w, h;
  layout_size (l, &w, &h);
  cairo_save (c->cr);
  cairo_translate (c->cr, x, y);
  if (angle != 0)
    cairo_rotate (c->cr, angle);
  cairo_move_to (c->cr, -ax * w, -ay * h);
  set_colour (c->cr, colour, alpha);
  pango_cairo_show_layout (c->cr, l);
  cairo_new_path (c->cr);   /* the move leaves a current point that the next arc would join */
  cairo_restore (c->cr);
}

static void
draw_text (Ctx *c, const char *text, double rel, gboolean bold, double x, double y,
           double ax, double ay, double angle, double alpha)
{
  g_autoptr (PangoLayout) l = text_layout (c, text, rel, bold);
  show_layout (c, l, x, y, ax, ay, angle, &c->pal.fg, alpha);
}

/* Lines one user unit wide sit on pixel centres, so that they stay sharp at scale 1. */
static double
crisp (double v)
{
  return floor (v) + 0.5;
}

static void
add_hit (Ctx *c, gboolean circle, double x, double y, double w, double h, char *markup)
{
  if (c->hits == NULL)
    {
      g_free (markup);
      return;
    }
  Hit hit = { circle, x, y, w, h, markup };
  g_array_append_val (c->hits, hit);
}

/* The smallest 1, 2, 2.5 or 5 times a power of ten that is at least V. */
static double
nice_ceil (double v)
{
  if (!(v > 0) || !isfinite (v))
    return 1;
  double mag = pow (10, floor (log10 (v)));
  double f = v / mag;
  static const double steps[] = { 1, 2, 2.5, 5 };
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    if (f <= steps[i] + 1e-9)
      return steps[i] * mag;
  return 10 * mag;
}

/* A round tick step that divides RANGE into at most MAX_TICKS parts. */
static double
nice_step (double range, int max_ticks)
{
  return nice_ceil (range / MAX (max_ticks, 1));
}

static int
decimals_for (double step)
{
  int d = 0;
  while (d < 6 && fabs (step * pow (10, d) - round (step * pow (10, d))) > 1e-6 * pow (10, d))
    d++;
  return d;
}

static char *
format_number (double v, double step)
{
  if (fabs (v) < step * 1e-6)
    v = 0;                  /* no "-0.0" at the origin */
  return g_strdup_printf ("%.*f", decimals_for (step), v);
}

/* cs_format_si keeps three significant digits ("2.50M"); a tick at a round value reads better
 * without the trailing zeros. */
static char *
format_count (double v)
{
  char *s = cs_format_si ((guint64) llround (MAX (v, 0)));
  char *dot = strchr (s, '.');
  if (dot)
    {
      char *end = dot + 1;
      while (g_ascii_isdigit (*end))
        end++;
      char *z = end;
      while (z > dot + 1 && z[-1] == '0')
        z--;
      if (z == dot + 1)
        z = dot;
      memmove (z, end, strlen (end) + 1);
    }
  return s;
}

/* The title and a muted subtitle at the top left; returns the y below them. */
static double
draw_heading (Ctx *c, const char *title, const char *subtitle)
{
  double m = c->fs, y = m * 0.75, h;
  double width = MAX (c->w - 2 * m, 1);

  g_autoptr (PangoLayout) t = text_layout (c, title, 1.25, TRUE);
  pango_layout_set_width (t, (int) (width * PANGO_SCALE));
  pango_layout_set_ellipsize (t, PANGO_ELLIPSIZE_END);
  show_layout (c, t, m, y, 0, 0, 0, &c->pal.fg, 1);
  layout_size (t, NULL, &h);
  y += h;
  if (subtitle && *subtitle)
    {
      g_autoptr (PangoLayout) s = text_layout (c, subtitle, 0.9, FALSE);
      pango_layout_set_width (s, (int) (width * PANGO_SCALE));
      pango_layout_set_ellipsize (s, PANGO_ELLIPSIZE_END);
      show_layout (c, s, m, y, 0, 0, 0, &c->pal.fg, 0.7);
      layout_size (s, NULL, &h);
      y += h;
    }
  return y + m * 0.5;
}

typedef enum {
  SWATCH_BOX,
  SWATCH_LINE,
  SWATCH_DASHED,            /* dashed, with a marker: a series measured once per epoch */
  SWATCH_BUBBLE,
} SwatchKind;

typedef struct {
  SwatchKind kind;
  GdkRGBA colour;
  const char *text;
} LegendItem;

static void
draw_swatch (Ctx *c, SwatchKind kind, const GdkRGBA *colour, double x, double cy, double sw)
{
  cairo_t *cr = c->cr;
  double fs = c->fs;
  cairo_save (cr);
  switch (kind)
    {
    case SWATCH_BOX:
      cairo_rectangle (cr, x, cy - fs * 0.4, sw, fs * 0.8);
      set_colour (cr, colour, 1);
      cairo_fill (cr);
      break;
    case SWATCH_LINE:
    case SWATCH_DASHED:
      cairo_set_line_width (cr, fs * 0.15);
      if (kind == SWATCH_DASHED)
        {
          double dash[] = { fs * 0.35, fs * 0.2 };
          cairo_set_dash (cr, dash, 2, 0);
        }
      cairo_move_to (cr, x, cy);
      cairo_line_to (cr, x + sw, cy);
      set_colour (cr, colour, 1);
      cairo_stroke (cr);
      if (kind == SWATCH_DASHED)
        {
          cairo_arc (cr, x + sw / 2, cy, fs * 0.22, 0, 2 * G_PI);
          cairo_fill (cr);
        }
      break;
    case SWATCH_BUBBLE:
      cairo_arc (cr, x + sw / 2, cy, fs * 0.4, 0, 2 * G_PI);
      set_colour (cr, colour, c->pal.dark ? 0.5 : 0.4);
      cairo_fill_preserve (cr);
      cairo_set_line_width (cr, 1.5);
      set_colour (cr, colour, 1);
      cairo_stroke (cr);
      break;
    default:
      break;
    }
  cairo_restore (cr);
}

/* Legend entries in a row from (X0, Y), wrapping before MAX_X; returns the y below them. */
static double
draw_legend_row (Ctx *c, const LegendItem *items, guint n, double x0, double y, double max_x)
{
  double fs = c->fs, gap = fs * 0.4, spacing = fs * 1.3;
  double x = x0, line_h = 0;
  for (guint i = 0; i < n; i++)
    {
      gboolean wide = items[i].kind == SWATCH_LINE || items[i].kind == SWATCH_DASHED;
      double sw = wide ? fs * 1.8 : fs * 0.8;
      g_autoptr (PangoLayout) l = text_layout (c, items[i].text, 0.9, FALSE);
      double tw, th;
      layout_size (l, &tw, &th);
      double iw = sw + gap + tw;
      if (x > x0 && x + iw > max_x)
        {
          x = x0;
          y += line_h + fs * 0.3;
          line_h = 0;
        }
      line_h = MAX (line_h, th);
      draw_swatch (c, items[i].kind, &items[i].colour, x, y + th / 2, sw);
      show_layout (c, l, x + sw + gap, y, 0, 0, 0, &c->pal.fg, 0.85);
      x += iw + spacing;
    }
  return y + line_h;
}

static void
draw_message (Ctx *c, Box b, const char *text)
{
  g_autoptr (PangoLayout) l = text_layout (c, text, 1.0, FALSE);
  pango_layout_set_width (l, (int) (MAX (b.w - 2 * c->fs, 1) * PANGO_SCALE));
  pango_layout_set_alignment (l, PANGO_ALIGN_CENTER);
  pango_layout_set_wrap (l, PANGO_WRAP_WORD);
  /* The layout's width is set: its alignment centres the lines, not the anchor. */
  show_layout (c, l, b.x + c->fs, b.y + b.h / 2, 0, 0.5, 0, &c->pal.fg, 0.6);
}

static void
stroke_line (Ctx *c, double x0, double y0, double x1, double y1, double width, double alpha)
{
  cairo_move_to (c->cr, x0, y0);
  cairo_line_to (c->cr, x1, y1);
  cairo_set_line_width (c->cr, width);
  set_fg (c, alpha);
  cairo_stroke (c->cr);
}

typedef char *(*TickFormat) (double v, double step);

static char *
tick_count (double v, G_GNUC_UNUSED double step)
{
  return format_count (v);
}

/* Grid lines across P at every STEP from LO to HI, labelled on the left (or the right). */
static void
draw_y_ticks (Ctx *c, Box p, double lo, double hi, double step, TickFormat format,
              gboolean right, gboolean grid)
{
  double fs = c->fs;
  int n = (int) floor ((hi - lo) / step + 1e-6);
  for (int k = 0; k <= n; k++)
    {
      double v = lo + k * step;
      double y = p.y + p.h - (v - lo) / (hi - lo) * p.h;
      if (grid && k > 0)
        stroke_line (c, p.x, crisp (y), p.x + p.w, crisp (y), 1, 0.1);
      g_autofree char *label = format (v, step);
      draw_text (c, label, 0.85, FALSE, right ? p.x + p.w + fs * 0.4 : p.x - fs * 0.4, y,
                 right ? 0 : 1, 0.5, 0, 0.75);
    }
}

/* The widest tick label from LO to HI, for the room left of an axis. */
static double
y_ticks_width (Ctx *c, double lo, double hi, double step, TickFormat format)
{
  double wmax = 0;
  int n = (int) floor ((hi - lo) / step + 1e-6);
  for (int k = 0; k <= n; k++)
    {
      g_autofree char *label = format (lo + k * step, step);
      double w;
      measure_text (c, label, 0.85, FALSE, &w, NULL);
      wmax = MAX (wmax, w);
    }
  return wmax;
}

/* ---- CS_CHART_LAYERS ------------------------------------------------------------------------ */

/* The room a value axis needs: the step and top for MAX in HEIGHT. */
static void
count_axis (Ctx *c, guint64 max, double height, double *step, double *top)
{
  int ticks = CLAMP ((int) (height / (c->fs * 2.0)), 1, 6);
  *step = max > 0 ? nice_step ((double) max, ticks) : 1;
  *top = max > 0 ? ceil ((double) max / *step - 1e-9) * *step : 1;
  /* Room above the largest bar for its label. */
  if (max > 0 && (*top - max) / *top < 0.12)
    *top += *step;
}

static void
draw_bar_panel (Ctx *c, Box p, const char *axis_title, const char *short_title, gboolean memory,
                const GdkRGBA *colour, double title_x)
{
  CsChart *self = c->self;
  cairo_t *cr = c->cr;
  guint n = self->bars->len;
  guint64 max = 0;
  guint imax = 0;
  for (guint i = 0; i < n; i++)
    {
      const LayerBar *b = &g_array_index (self->bars, LayerBar, i);
      guint64 v = memory ? b->memory : b->params;
      if (v > max)
        max = v, imax = i;
    }
  double step, top;
  count_axis (c, max, p.h, &step, &top);
  draw_y_ticks (c, p, 0, top, step, tick_count, FALSE, TRUE);
  double title_w;
  measure_text (c, axis_title, 0.9, FALSE, &title_w, NULL);
  draw_text (c, title_w <= p.h ? axis_title : short_title, 0.9, FALSE, title_x, p.y + p.h / 2,
             0.5, 0, -G_PI / 2, 0.85);

  double pitch = p.w / n;
  /* Thin bars get no gap: a gap under a pixel wide only blurs them. */
  double bw = pitch >= 4 ? pitch * 0.72 : pitch;
  set_colour (cr, colour, 1);
  for (guint i = 0; i < n; i++)
    {
      const LayerBar *b = &g_array_index (self->bars, LayerBar, i);
      double v = memory ? b->memory : b->params;
      double bh = v / top * p.h;
      if (v > 0 && bh < 1)
        bh = 1;             /* a layer with a little is not a layer with none */
      cairo_rectangle (cr, p.x + i * pitch + (pitch - bw) / 2, p.y + p.h - bh, bw, bh);
    }
  cairo_fill (cr);
  stroke_line (c, p.x, crisp (p.y + p.h), p.x + p.w, crisp (p.y + p.h), 1, 0.5);

  if (max > 0)
    {
      /* Name the largest bar: the lecture's point is where the memory and the parameters are. */
      const LayerBar *b = &g_array_index (self->bars, LayerBar, imax);
      g_autofree char *v = format_count ((double) max);
      g_autofree char *text = g_strdup_printf ("%s  %s", v, b->label);
      double tw;
      measure_text (c, text, 0.8, TRUE, &tw, NULL);
      double bx = p.x + imax * pitch + pitch / 2, by = p.y + p.h - max / top * p.h;
      /* Above the bar (the axis leaves room), kept inside the plot at the ends. */
      double x = CLAMP (bx - tw / 2, p.x, MAX (p.x, p.x + p.w - tw));
      draw_text (c, text, 0.8, TRUE, x, by - c->fs * 0.15, 0, 1, 0, 0.9);
    }
}

static void
render_layers (Ctx *c)
{
  CsChart *self = c->self;
  double fs = c->fs, m = fs;
  g_autofree char *subtitle = self->model_title
    ? g_strdup_printf ("%s — per image, in the lecture view (in-place layers folded in)",
                       self->model_title)
    : NULL;
  double y = draw_heading (c, "Activation memory and parameters per layer", subtitle);

  if (self->bars == NULL || self->bars->len == 0)
    {
      draw_message (c, (Box) { 0, y, c->w, c->h - y }, "No model to show");
      return;
    }

  guint n = self->bars->len;
  g_autofree char *mem_total = format_count ((double) self->total_memory);
  g_autofree char *mem_bytes = g_format_size (self->total_memory * 4);
  g_autofree char *par_total = format_count ((double) self->total_params);
  g_autofree char *mem_text =
    g_strdup_printf ("Activation memory (values; total %s, %s at 4 bytes)", mem_total, mem_bytes);
  g_autofree char *par_text = g_strdup_printf ("Parameters (weights and biases; total %s)",
                                               par_total);
  GdkRGBA mem_colour = accent (c, C_BLUE), par_colour = accent (c, C_ORANGE);
  LegendItem legend[] = {
    { SWATCH_BOX, mem_colour, mem_text },
    { SWATCH_BOX, par_colour, par_text },
  };
  y = draw_legend_row (c, legend, G_N_ELEMENTS (legend), m, y, c->w - m) + fs * 0.8;

  /* Left: the rotated axis titles, then the tick labels. Both panels share the widest. */
  double th;
  measure_text (c, "Memory", 0.9, FALSE, NULL, &th);
  guint64 max_mem = 0, max_par = 0;
  for (guint i = 0; i < n; i++)
    {
      const LayerBar *b = &g_array_index (self->bars, LayerBar, i);
      max_mem = MAX (max_mem, b->memory);
      max_par = MAX (max_par, b->params);
    }
  double est_h = MAX ((c->h - y) * 0.35, fs * 4);
  double step, top, tick_w = 0;
  count_axis (c, max_mem, est_h, &step, &top);
  tick_w = MAX (tick_w, y_ticks_width (c, 0, top, step, tick_count));
  count_axis (c, max_par, est_h, &step, &top);
  tick_w = MAX (tick_w, y_ticks_width (c, 0, top, step, tick_count));
  double title_x = m + th / 2;
  double left = m + th + fs * 0.6 + tick_w + fs * 0.5;
  double right = c->w - m;
  double pw = MAX (right - left, 1), pitch = pw / n;

  /* Bottom: labels at 45 degrees, thinned to one in EVERY when the layers are crowded. */
  double lh;
  measure_text (c, "Mg", 0.8, FALSE, NULL, &lh);
  guint every = MAX (1u, (guint) ceil (lh * 1.45 / pitch));
  double max_label = fs * 9, label_w = 0;
  for (guint i = 0; i < n; i += every)
    {
      double w;
      measure_text (c, g_array_index (self->bars, LayerBar, i).label, 0.8, FALSE, &w, NULL);
      label_w = MAX (label_w, MIN (w, max_label));
    }
  double labels_h = (label_w + lh / 2) * G_SQRT2 / 2 + fs * 0.4;
  gboolean groups = FALSE;
  for (guint i = 0; i < n && !groups; i++)
    groups = g_array_index (self->bars, LayerBar, i).group != NULL;
  double group_h = groups ? lh + fs * 0.6 : 0;

  double plot_top = y, plot_bottom = c->h - m - group_h - labels_h;
  double gap = fs * 1.8;
  double ph = MAX ((plot_bottom - plot_top - gap) / 2, fs);
  Box top_panel = { left, plot_top, pw, ph };
  Box bottom_panel = { left, plot_top + ph + gap, pw, ph };
  double axis_y = bottom_panel.y + bottom_panel.h;

  draw_bar_panel (c, top_panel, "Memory (values)", "Memory", TRUE, &mem_colour, title_x);
  draw_bar_panel (c, bottom_panel, "Parameters", "Params", FALSE, &par_colour, title_x);

  for (guint i = 0; i < n; i++)
    {
      const LayerBar *b = &g_array_index (self->bars, LayerBar, i);
      double x = left + (i + 0.5) * pitch;
      if (i % every == 0)
        {
          g_autoptr (PangoLayout) l = text_layout (c, b->label, 0.8, FALSE);
          pango_layout_set_width (l, (int) (max_label * PANGO_SCALE));
          pango_layout_set_ellipsize (l, PANGO_ELLIPSIZE_MIDDLE);
          show_layout (c, l, x + lh * 0.3, axis_y + fs * 0.3, 1, 0, -G_PI / 4, &c->pal.fg, 0.8);
          stroke_line (c, crisp (x), axis_y, crisp (x), axis_y + fs * 0.25, 1, 0.5);
        }
      g_autofree char *mem = cs_format_count (b->memory);
      g_autofree char *bytes = g_format_size (b->memory * 4);
      g_autofree char *par = cs_format_count (b->params);
      add_hit (c, FALSE, left + i * pitch, plot_top, pitch, axis_y - plot_top,
               g_markup_printf_escaped ("<b>%s</b>  %s\nMemory: %s values (%s)\nParameters: %s",
                                        b->name, b->label, mem, bytes, par));
    }

  /* Brackets under the labels name the top-level blocks: "block1", "layer3". */
  if (groups)
    {
      double gy = axis_y + labels_h + fs * 0.2;
      guint start = 0;
      for (guint i = 1; i <= n; i++)
        {
          const char *g0 = g_array_index (self->bars, LayerBar, start).group;
          const char *gi = i < n ? g_array_index (self->bars, LayerBar, i).group : NULL;
          if (i < n && g_strcmp0 (g0, gi) == 0)
            continue;
          if (g0)
            {
              double x0 = left + start * pitch + 1, x1 = left + i * pitch - 1;
              double gw;
              measure_text (c, g0, 0.8, FALSE, &gw, NULL);
              cairo_move_to (c->cr, x0, gy);
              cairo_line_to (c->cr, x0, crisp (gy + fs * 0.25));
              cairo_line_to (c->cr, x1, crisp (gy + fs * 0.25));
              cairo_line_to (c->cr, x1, gy);
              cairo_set_line_width (c->cr, 1);
              set_fg (c, 0.4);
              cairo_stroke (c->cr);
              if (gw <= x1 - x0 + fs * 0.5)
                draw_text (c, g0, 0.8, FALSE, (x0 + x1) / 2, gy + fs * 0.3, 0.5, 0, 0, 0.75);
            }
          start = i;
        }
    }
}

/* ---- CS_CHART_COMPLEXITY -------------------------------------------------------------------- */

typedef struct {
  const ZooEntry *e;
  double x, y, r;
  guint colour;
  gboolean current;
} Bubble;

static gboolean
is_current (CsChart *self, const ZooEntry *e)
{
  return self->current
    && (g_strcmp0 (self->current, e->name) == 0 || g_strcmp0 (self->current, e->graph_name) == 0);
}

static int
compare_bubbles (gconstpointer a, gconstpointer b)
{
  const Bubble *x = a, *y = b;
  /* The biggest first, so that small bubbles stay visible on top; the current one last. */
  if (x->current != y->current)
    return x->current ? 1 : -1;
  return x->r > y->r ? -1 : x->r < y->r ? 1 : 0;
}

static double
overlap_area (const Box *a, const Box *b)
{
  double w = MIN (a->x + a->w, b->x + b->w) - MAX (a->x, b->x);
  double h = MIN (a->y + a->h, b->y + b->h) - MAX (a->y, b->y);
  return w > 0 && h > 0 ? w * h : 0;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

/* How far the box B is from the circle's edge (0 when they touch or overlap). */
static double
box_circle_gap (const Box *b, double cx, double cy, double r)
{
  double dx = MAX (MAX (b->x - cx, cx - (b->x + b->w)), 0);
  double dy = MAX (MAX (b->y - cy, cy - (b->y + b->h)), 0);
  return MAX (hypot (dx, dy) - r, 0);
}

static char *
tick_percent (double v, G_GNUC_UNUSED double step)
{
  return g_strdup_printf ("%.0f%%", v);
}

static char *
tick_gmacs (double v, G_GNUC_UNUSED double step)
{
  return g_strdup_printf ("%gG", v);
}

static void
render_complexity (Ctx *c)
{
  CsChart *self = c->self;
  cairo_t *cr = c->cr;
  double fs = c->fs, m = fs;
  GArray *entries = zoo_entries ();

  /* Families in name order get fixed colours, whatever the current model. */
  g_autoptr (GPtrArray) families = g_ptr_array_new ();
  double lo_x = G_MAXDOUBLE, hi_x = 0, lo_y = 100, hi_y = 0;
  guint64 max_params = 1;
  const ZooEntry *current_off = NULL;
  guint n_on = 0;
  for (guint i = 0; i < entries->len; i++)
    {
      const ZooEntry *e = &g_array_index (entries, ZooEntry, i);
      if (!e->on_chart)
        {
          if (is_current (self, e))
            current_off = e;
          continue;
        }
      n_on++;
      guint k;
      if (!g_ptr_array_find_with_equal_func (families, e->family, g_str_equal, &k))
        g_ptr_array_add (families, e->family);
      double gm = e->macs / 1e9;
      lo_x = MIN (lo_x, gm), hi_x = MAX (hi_x, gm);
      lo_y = MIN (lo_y, e->top1), hi_y = MAX (hi_y, e->top1);
      max_params = MAX (max_params, e->params);
    }
  g_ptr_array_sort (families, compare_names);

  g_autofree char *subtitle = NULL;
  if (current_off)
    subtitle = g_strdup_printf ("Top-1 against multiply-adds, bubble area by parameters (after "
                                "Canziani et al. 2017); %s is not shown: no ImageNet top-1",
                                current_off->title);
  else
    subtitle = g_strdup ("ImageNet top-1 against multiply-adds per image; bubble area by "
                         "parameters (after Canziani et al. 2017)");
  double y = draw_heading (c, "Comparing complexity", subtitle);
  if (n_on == 0)
    {
      draw_message (c, (Box) { 0, y, c->w, c->h - y },
                    "No bundled model has a published ImageNet top-1");
      return;
    }

  /* Axes: tick label sizes set the plot's margins. */
  double label_h, title_h, th;
  measure_text (c, "0.5G", 0.85, FALSE, NULL, &label_h);
  measure_text (c, "Multiply-adds", 0.9, FALSE, NULL, &title_h);
  measure_text (c, "Family", 0.9, TRUE, NULL, &th);
  double y_lo = MAX (0, floor ((lo_y - 3) / 5) * 5), y_hi = MIN (100, ceil ((hi_y + 3) / 5) * 5);
  double plot_y = y + fs * 0.5;
  double plot_h = MAX (c->h - m - title_h - fs * 0.4 - label_h - fs * 0.4 - plot_y, 1);
  double y_step = plot_h / ((y_hi - y_lo) / 5) >= fs * 1.8 ? 5 : 10;
  double tick_w = y_ticks_width (c, y_lo, y_hi, y_step, tick_percent);
  double rmax = CLAMP (MIN (plot_h, c->w * 0.5) * 0.085, fs * 0.6, fs * 3.5);

  /* Three round sizes up to the largest model, for the legend. */
  double sizes[3];
  sizes[0] = nice_ceil (max_params / 1.6);
  if (sizes[0] > max_params)
    sizes[0] = nice_step (max_params, 2);
  sizes[1] = nice_ceil (sizes[0] / 5);
  sizes[2] = nice_ceil (sizes[0] / 25);
  double r0 = rmax * sqrt (sizes[0] / max_params);

  /* The legend column: families, then the bubble sizes. */
  double swatch = fs * 0.8, legend_w = 0, w;
  for (guint i = 0; i < families->len; i++)
    {
      measure_text (c, families->pdata[i], 0.9, FALSE, &w, NULL);
      legend_w = MAX (legend_w, swatch + fs * 0.4 + w);
    }
  measure_text (c, "Parameters", 0.9, TRUE, &w, NULL);
  legend_w = MAX (legend_w, w);
  g_autofree char *size_label = format_count (sizes[0]);
  measure_text (c, size_label, 0.8, FALSE, &w, NULL);
  legend_w = MAX (legend_w, 2 * r0 + fs * 0.4 + w);

  double left = m + title_h + fs * 0.5 + tick_w + fs * 0.5;
  double legend_x = c->w - m - legend_w;
  Box p = { left, plot_y, MAX (legend_x - fs * 1.5 - left, 1), plot_h };

  /* A log scale: the models span two orders of magnitude of work, and small ones crowd a
   * linear axis. The margins leave room for the biggest bubble. */
  double lx0 = log10 (lo_x) - 0.12, lx1 = log10 (hi_x) + 0.12;
  double pad_x = rmax / p.w * (lx1 - lx0);
  lx0 -= pad_x, lx1 += pad_x;
  if (lx1 - lx0 < 0.5)
    lx0 -= 0.25, lx1 += 0.25;
#define X_OF(g) (p.x + (log10 (g) - lx0) / (lx1 - lx0) * p.w)
#define Y_OF(a) (p.y + p.h - ((a) - y_lo) / (y_hi - y_lo) * p.h)

  /* Grid and ticks: 1-2-5 within each decade, or decades alone when they are crowded. */
  draw_y_ticks (c, p, y_lo, y_hi, y_step, tick_percent, FALSE, TRUE);
  double decade_w = p.w / (lx1 - lx0);
  static const double mult_all[] = { 1, 2, 5 }, mult_one[] = { 1 };
  const double *mult = decade_w >= fs * 7 ? mult_all : mult_one;
  guint n_mult = decade_w >= fs * 7 ? 3 : 1;
  for (int d = (int) floor (lx0); d <= (int) ceil (lx1); d++)
    for (guint k = 0; k < n_mult; k++)
      {
        double v = mult[k] * pow (10, d);
        if (log10 (v) < lx0 || log10 (v) > lx1)
          continue;
        double x = X_OF (v);
        stroke_line (c, crisp (x), p.y, crisp (x), p.y + p.h, 1, 0.1);
        stroke_line (c, crisp (x), p.y + p.h, crisp (x), p.y + p.h + fs * 0.25, 1, 0.5);
        g_autofree char *label = tick_gmacs (v, 0);
        draw_text (c, label, 0.85, FALSE, x, p.y + p.h + fs * 0.3, 0.5, 0, 0, 0.75);
      }
  stroke_line (c, p.x, crisp (p.y + p.h), p.x + p.w, crisp (p.y + p.h), 1, 0.5);
  stroke_line (c, crisp (p.x), p.y, crisp (p.x), p.y + p.h, 1, 0.5);
  draw_text (c, "Multiply-adds per image (log scale)", 0.9, FALSE, p.x + p.w / 2, c->h - m,
             0.5, 1, 0, 0.85);
  draw_text (c, "ImageNet top-1 accuracy", 0.9, FALSE, m, p.y + p.h / 2, 0.5, 0, -G_PI / 2, 0.85);

  g_autoptr (GArray) bubbles = g_array_new (FALSE, FALSE, sizeof (Bubble));
  for (guint i = 0; i < entries->len; i++)
    {
      const ZooEntry *e = &g_array_index (entries, ZooEntry, i);
      if (!e->on_chart)
        continue;
      guint k = 0;
      g_ptr_array_find_with_equal_func (families, e->family, g_str_equal, &k);
      Bubble b = {
        .e = e,
        .x = X_OF (e->macs / 1e9),
        .y = Y_OF (e->top1),
        .r = MAX (rmax * sqrt ((double) e->params / max_params), 2.5),
        .colour = k,
        .current = is_current (self, e),
      };
      g_array_append_val (bubbles, b);
    }
  g_array_sort (bubbles, compare_bubbles);

  cairo_save (cr);
  cairo_rectangle (cr, p.x, p.y, p.w, p.h);
  cairo_clip (cr);
  for (guint i = 0; i < bubbles->len; i++)
    {
      const Bubble *b = &g_array_index (bubbles, Bubble, i);
      GdkRGBA col = accent (c, b->colour);
      cairo_arc (cr, b->x, b->y, b->r, 0, 2 * G_PI);
      set_colour (cr, &col, c->pal.dark ? 0.5 : 0.4);
      cairo_fill_preserve (cr);
      set_colour (cr, &col, 1);
      cairo_set_line_width (cr, 1.5);
      cairo_stroke (cr);
      cairo_arc (cr, b->x, b->y, MIN (b->r, 2), 0, 2 * G_PI);
      cairo_fill (cr);
      if (b->current)
        {
          cairo_arc (cr, b->x, b->y, b->r + fs * 0.25, 0, 2 * G_PI);
          cairo_set_line_width (cr, fs * 0.2);
          set_fg (c, 1);
          cairo_stroke (cr);
        }
    }
  cairo_restore (cr);

  /* Labels: the current model first, then the rest from the right of their bubble round to
   * below it, taking the first place that is free. */
  g_autoptr (GArray) placed = g_array_new (FALSE, FALSE, sizeof (Box));
  for (int pass = 0; pass < 2; pass++)
    for (guint i = bubbles->len; i-- > 0;)
      {
        const Bubble *b = &g_array_index (bubbles, Bubble, i);
        if (b->current != (pass == 0))
          continue;
        g_autoptr (PangoLayout) l = text_layout (c, b->e->title, 0.8, b->current);
        double tw, tht;
        layout_size (l, &tw, &tht);
        /* Two rings of places round the bubble; the outer one gets a leader line. */
        Box cand[16];
        for (guint ring = 0; ring < 2; ring++)
          {
            double off = b->r + fs * (ring ? 1.6 : 0.2);
            double d = off * G_SQRT2 / 2;
            Box *k = cand + ring * 8;
            k[0] = (Box) { b->x + off, b->y - tht / 2, tw, tht };
            k[1] = (Box) { b->x - off - tw, b->y - tht / 2, tw, tht };
            k[2] = (Box) { b->x - tw / 2, b->y - off - tht, tw, tht };
            k[3] = (Box) { b->x - tw / 2, b->y + off, tw, tht };
            k[4] = (Box) { b->x + d, b->y - d - tht, tw, tht };
            k[5] = (Box) { b->x - d - tw, b->y - d - tht, tw, tht };
            k[6] = (Box) { b->x + d, b->y + d, tw, tht };
            k[7] = (Box) { b->x - d - tw, b->y + d, tw, tht };
          }
        guint best = 0;
        double best_cost = G_MAXDOUBLE;
        for (guint k = 0; k < G_N_ELEMENTS (cand); k++)
          {
            Box *bx = &cand[k];
            double cost = k < 8 ? 0 : tht * tht * 2;
            if (bx->x < p.x || bx->x + bx->w > p.x + p.w
                || bx->y < p.y || bx->y + bx->h > p.y + p.h)
              cost += 1e6;
            for (guint j = 0; j < placed->len; j++)
              cost += overlap_area (bx, &g_array_index (placed, Box, j)) * 20;
            /* Text over another bubble, or nearer to it than to its own, reads as that bubble's
             * label. */
            double own = box_circle_gap (bx, b->x, b->y, b->r);
            for (guint j = 0; j < bubbles->len; j++)
              {
                const Bubble *o = &g_array_index (bubbles, Bubble, j);
                if (o == b)
                  continue;
                double hr = o->r * 0.8;
                Box core = { o->x - hr, o->y - hr, 2 * hr, 2 * hr };
                double covered = overlap_area (bx, &core);
                if (covered > 0)
                  cost += covered * 2 + tht * tht * 4;
                else if (box_circle_gap (bx, o->x, o->y, o->r) < own + fs * 0.3)
                  cost += tht * tht * 3;
              }
            cost += k % 8;  /* ties go to the more natural place */
            if (cost < best_cost)
              best_cost = cost, best = k;
          }
        Box *bx = &cand[best];
        gboolean collides = FALSE;
        for (guint j = 0; j < placed->len; j++)
          collides |= overlap_area (bx, &g_array_index (placed, Box, j)) > 0;
        /* Where the chart is too small for every name, the tooltips still give them. */
        if (collides && !b->current)
          continue;
        bx->x = CLAMP (bx->x, p.x, MAX (p.x, p.x + p.w - bx->w));
        bx->y = CLAMP (bx->y, p.y, MAX (p.y, p.y + p.h - bx->h));
        if (best >= 8)
          {
            /* From the bubble's edge to the nearest point of the label. */
            double lx = CLAMP (b->x, bx->x, bx->x + bx->w), ly = CLAMP (b->y, bx->y, bx->y + bx->h);
            double dx = lx - b->x, dy = ly - b->y, len = hypot (dx, dy);
            if (len > b->r + 2)
              stroke_line (c, b->x + dx / len * b->r, b->y + dy / len * b->r, lx, ly, 1, 0.5);
          }
        g_array_append_val (placed, *bx);
        show_layout (c, l, bx->x, bx->y, 0, 0, 0, &c->pal.fg, b->current ? 1 : 0.85);
      }

  for (guint i = bubbles->len; i-- > 0;)
    {
      const Bubble *b = &g_array_index (bubbles, Bubble, i);
      g_autofree char *macs = cs_format_si (b->e->macs);
      g_autofree char *params = cs_format_si (b->e->params);
      add_hit (c, TRUE, b->x, b->y, MAX (b->r, fs * 0.4), 0,
               g_markup_printf_escaped ("<b>%s</b> (%s, %u)\nImageNet top-1: %.1f%%\n"
                                        "Multiply-adds: %s per image\nParameters: %s",
                                        b->e->title, b->e->family, b->e->year, b->e->top1,
                                        macs, params));
    }

  /* The legend column. */
  double ly = p.y;
  draw_text (c, "Family", 0.9, TRUE, legend_x, ly, 0, 0, 0, 0.9);
  ly += th + fs * 0.3;
  for (guint i = 0; i < families->len; i++)
    {
      GdkRGBA col = accent (c, i);
      double h;
      measure_text (c, families->pdata[i], 0.9, FALSE, NULL, &h);
      draw_swatch (c, SWATCH_BUBBLE, &col, legend_x, ly + h / 2, swatch);
      draw_text (c, families->pdata[i], 0.9, FALSE, legend_x + swatch + fs * 0.4, ly,
                 0, 0, 0, 0.85);
      ly += h + fs * 0.2;
    }
  ly += fs * 0.8;
  if (ly + th + 2 * rmax < p.y + p.h)
    {
      draw_text (c, "Parameters", 0.9, TRUE, legend_x, ly, 0, 0, 0, 0.9);
      ly += th + fs * 0.4;
      /* Nested circles on one baseline, as maps draw them. */
      double cx = legend_x + r0, base = ly + 2 * r0, label_y = -G_MAXDOUBLE, lh;
      measure_text (c, "5M", 0.8, FALSE, NULL, &lh);
      for (guint k = 0; k < 3; k++)
        {
          double r = rmax * sqrt (sizes[k] / max_params);
          cairo_arc (cr, cx, base - r, r, 0, 2 * G_PI);
          cairo_set_line_width (cr, 1);
          set_fg (c, 0.6);
          cairo_stroke (cr);
          /* Small circles' labels would touch: each goes at least a line below the last. */
          label_y = MAX (base - 2 * r, label_y + lh);
          g_autofree char *label = format_count (sizes[k]);
          cairo_move_to (cr, cx, base - 2 * r);
          cairo_line_to (cr, cx + r0 + fs * 0.1, base - 2 * r);
          cairo_line_to (cr, cx + r0 + fs * 0.3, label_y);
          set_fg (c, 0.3);
          cairo_stroke (cr);
          draw_text (c, label, 0.8, FALSE, cx + r0 + fs * 0.4, label_y, 0, 0.5, 0, 0.8);
        }
    }
#undef X_OF
#undef Y_OF
}

/* ---- CS_CHART_TRAINING ---------------------------------------------------------------------- */

static const char *series_names[CS_N_SERIES] = {
  [CS_SERIES_TRAIN_LOSS] = "Training loss",
  [CS_SERIES_VAL_LOSS] = "Validation loss",
  [CS_SERIES_TRAIN_ACCURACY] = "Training top-1",
  [CS_SERIES_VAL_ACCURACY] = "Validation top-1",
};

static gboolean
is_accuracy (CsSeries s)
{
  return s == CS_SERIES_TRAIN_ACCURACY || s == CS_SERIES_VAL_ACCURACY;
}

static gboolean
is_validation (CsSeries s)
{
  return s == CS_SERIES_VAL_LOSS || s == CS_SERIES_VAL_ACCURACY;
}

static char *
tick_number (double v, double step)
{
  return step >= 1000 ? format_count (v) : format_number (v, step);
}

/* One series as a polyline. Points that share a pixel column are reduced to that column's first,
 * lowest, highest and last, so that a long run costs as much as the plot is wide. */
static void
draw_series (Ctx *c, GArray *pts, Box p, double x_max, double y_max, double scale,
             const GdkRGBA *colour, gboolean dashed, gboolean markers)
{
  cairo_t *cr = c->cr;
  double fs = c->fs;
  gboolean pen_down = FALSE;
  long column = G_MINLONG;
  double first = 0, lowest = 0, highest = 0, last = 0, cx = 0;

#define FLUSH()                                                        \
  G_STMT_START {                                                       \
    if (column != G_MINLONG)                                           \
      {                                                                \
        if (!pen_down)                                                 \
          cairo_move_to (cr, cx, first), pen_down = TRUE;              \
        else                                                           \
          cairo_line_to (cr, cx, first);                               \
        cairo_line_to (cr, cx, lowest);                                \
        cairo_line_to (cr, cx, highest);                               \
        cairo_line_to (cr, cx, last);                                  \
      }                                                                \
    column = G_MINLONG;                                                \
  } G_STMT_END

  cairo_new_path (cr);
  for (guint i = 0; i < pts->len; i++)
    {
      const Point *pt = &g_array_index (pts, Point, i);
      double v = pt->y * scale;
      if (!isfinite (pt->x) || !isfinite (v))
        {
          FLUSH ();
          pen_down = FALSE; /* a gap, not a line through a diverged step */
          continue;
        }
      double x = p.x + pt->x / x_max * p.w;
      double y = p.y + p.h - CLAMP (v / y_max, -0.05, 1.05) * p.h;
      long col = lround (floor (x));
      if (col != column)
        {
          FLUSH ();
          column = col, cx = x, first = lowest = highest = last = y;
        }
      else
        {
          lowest = MAX (lowest, y), highest = MIN (highest, y), last = y;
        }
    }
  FLUSH ();
#undef FLUSH

  cairo_save (cr);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);   /* a lone point between gaps stays visible */
  cairo_set_line_width (cr, fs * 0.14);
  if (dashed)
    {
      double dash[] = { fs * 0.45, fs * 0.25 };
      cairo_set_dash (cr, dash, 2, 0);
    }
  set_colour (cr, colour, 1);
  cairo_stroke (cr);
  cairo_restore (cr);

  if (markers)
    {
      set_colour (cr, colour, 1);
      for (guint i = 0; i < pts->len; i++)
        {
          const Point *pt = &g_array_index (pts, Point, i);
          double v = pt->y * scale;
          if (!isfinite (pt->x) || !isfinite (v))
            continue;
          cairo_arc (cr, p.x + pt->x / x_max * p.w,
                     p.y + p.h - CLAMP (v / y_max, -0.05, 1.05) * p.h, fs * 0.22, 0, 2 * G_PI);
          cairo_fill (cr);
        }
    }
}

static void
render_training (Ctx *c)
{
  CsChart *self = c->self;
  double fs = c->fs, m = fs;
  double x_max = 0, loss_max = 0;
  guint n_points = 0;
  for (guint s = 0; s < CS_N_SERIES; s++)
    for (guint i = 0; i < self->series[s]->len; i++)
      {
        const Point *pt = &g_array_index (self->series[s], Point, i);
        if (!isfinite (pt->x) || !isfinite (pt->y))
          continue;
        n_points++;
        x_max = MAX (x_max, pt->x);
        if (!is_accuracy (s))
          loss_max = MAX (loss_max, pt->y);
      }

  /* The subtitle gives the latest numbers, which the curves only suggest. */
  g_autoptr (GString) sub = g_string_new (NULL);
  for (guint s = 0; s < CS_N_SERIES; s++)
    {
      GArray *a = self->series[s];
      const Point *pt = NULL;
      for (guint i = a->len; i-- > 0 && pt == NULL;)
        if (isfinite (g_array_index (a, Point, i).y))
          pt = &g_array_index (a, Point, i);
      if (pt == NULL)
        continue;
      if (sub->len)
        g_string_append (sub, " · ");
      if (is_accuracy (s))
        g_string_append_printf (sub, "%s %.1f%%", series_names[s], pt->y * 100);
      else
        g_string_append_printf (sub, "%s %.3g", series_names[s], pt->y);
    }
  double y = draw_heading (c, "Loss and accuracy", sub->len ? sub->str : "Per epoch");

  GdkRGBA loss_colour = accent (c, C_BLUE), acc_colour = accent (c, C_ORANGE);
  LegendItem legend[CS_N_SERIES];
  for (guint s = 0; s < CS_N_SERIES; s++)
    legend[s] = (LegendItem) {
      is_validation (s) ? SWATCH_DASHED : SWATCH_LINE,
      is_accuracy (s) ? acc_colour : loss_colour,
      series_names[s],
    };
  y = draw_legend_row (c, legend, CS_N_SERIES, m, y, c->w - m) + fs * 0.8;

  /* Both value axes have the same number of divisions, so that one grid serves them. */
  double th, label_h;
  measure_text (c, "Loss", 0.9, FALSE, NULL, &th);
  measure_text (c, "0", 0.85, FALSE, NULL, &label_h);
  double est_h = c->h - y - m - th - label_h - fs;
  int div = est_h >= fs * 3 ? 2 : 1;
  double loss_step = nice_ceil ((loss_max > 0 ? loss_max : 1) / div);
  if (est_h >= fs * 8)
    {
      /* Four or five divisions, whichever wastes less of the height. */
      double step4 = nice_ceil ((loss_max > 0 ? loss_max : 1) / 4);
      double step5 = nice_ceil ((loss_max > 0 ? loss_max : 1) / 5);
      div = step5 * 5 < step4 * 4 - 1e-9 ? 5 : 4;
      loss_step = div == 5 ? step5 : step4;
    }
  double loss_top = loss_step * div, acc_step = 100.0 / div;
  double left_w = y_ticks_width (c, 0, loss_top, loss_step, tick_number);
  double right_w = y_ticks_width (c, 0, 100, acc_step, tick_percent);
  Box p;
  p.x = m + th + fs * 0.5 + left_w + fs * 0.5;
  p.y = y;
  p.w = MAX (c->w - m - th - fs * 0.5 - right_w - fs * 0.5 - p.x, 1);
  p.h = MAX (c->h - m - th - fs * 0.4 - label_h - fs * 0.4 - p.y, 1);

  /* The x axis runs to the planned epochs when they are known, or past the data. */
  double span = MAX (MAX (x_max, self->epochs), 1e-9);
  int x_ticks = CLAMP ((int) (p.w / (fs * 4)), 1, 12);
  double x_step = nice_step (MAX (span, 1), x_ticks);
  if (span >= 2)
    {
      /* Whole epochs once there are a few, and no 2.5 steps among them. */
      x_step = MAX (x_step, 1);
      double mag = pow (10, floor (log10 (x_step) + 1e-9));
      if (fabs (x_step / mag - 2.5) < 1e-6)
        x_step = 5 * mag;
    }
  double x_top = self->epochs >= x_max && self->epochs > 0 ? self->epochs
               : ceil (MAX (span, 1) / x_step - 1e-9) * x_step;

  draw_y_ticks (c, p, 0, loss_top, loss_step, tick_number, FALSE, TRUE);
  draw_y_ticks (c, p, 0, 100, acc_step, tick_percent, TRUE, FALSE);
  for (int k = 0; k * x_step <= x_top + 1e-9; k++)
    {
      double x = p.x + k * x_step / x_top * p.w;
      g_autofree char *label = format_number (k * x_step, x_step);
      stroke_line (c, crisp (x), p.y + p.h, crisp (x), p.y + p.h + fs * 0.25, 1, 0.5);
      if (k > 0)
        stroke_line (c, crisp (x), p.y, crisp (x), p.y + p.h, 1, 0.06);
      draw_text (c, label, 0.85, FALSE, x, p.y + p.h + fs * 0.3, 0.5, 0, 0, 0.75);
    }
  stroke_line (c, p.x, crisp (p.y + p.h), p.x + p.w, crisp (p.y + p.h), 1, 0.5);
  stroke_line (c, crisp (p.x), p.y, crisp (p.x), p.y + p.h, 1, 0.5);
  stroke_line (c, crisp (p.x + p.w), p.y, crisp (p.x + p.w), p.y + p.h, 1, 0.5);
  draw_text (c, "Epoch", 0.9, FALSE, p.x + p.w / 2, c->h - m, 0.5, 1, 0, 0.85);
  draw_text (c, "Loss", 0.9, FALSE, m, p.y + p.h / 2, 0.5, 0, -G_PI / 2, 0.85);
  draw_text (c, "Top-1 accuracy", 0.9, FALSE, c->w - m, p.y + p.h / 2, 0.5, 0, G_PI / 2, 0.85);

  if (n_points == 0)
    {
      draw_message (c, p, "The curves appear here as the model trains");
      return;
    }

  cairo_save (c->cr);
  cairo_rectangle (c->cr, p.x - fs * 0.3, p.y - fs * 0.3, p.w + fs * 0.6, p.h + fs * 0.6);
  cairo_clip (c->cr);
  /* Accuracy under loss: the loss is what training lowers, and what one watches. */
  static const CsSeries order[] = {
    CS_SERIES_TRAIN_ACCURACY, CS_SERIES_VAL_ACCURACY, CS_SERIES_TRAIN_LOSS, CS_SERIES_VAL_LOSS,
  };
  for (guint k = 0; k < G_N_ELEMENTS (order); k++)
    {
      CsSeries s = order[k];
      GArray *a = self->series[s];
      if (a->len == 0)
        continue;
      gboolean acc = is_accuracy (s);
      draw_series (c, a, p, x_top, acc ? 100 : loss_top, acc ? 100 : 1,
                   acc ? &acc_colour : &loss_colour, is_validation (s),
                   a->len <= p.w / (fs * 0.8));
    }
  cairo_restore (c->cr);
}

/* ---- Rendering ------------------------------------------------------------------------------ */

/* The one drawing code path. HITS is given for the screen only: it collects the tooltip regions,
 * and the text then follows the window's font options. */
static void
render (CsChart *self, cairo_t *cr, double width, double height, const Palette *pal,
        double dpi, GArray *hits)
{
  Ctx c = {
    .self = self,
    .cr = cr,
    .w = width,
    .h = height,
    .pal = *pal,
    .hits = hits,
  };

  cairo_save (cr);
  if (pal->paint_bg)
    {
      cairo_rectangle (cr, 0, 0, width, height);
      set_colour (cr, &pal->bg, 1);
      cairo_fill (cr);
    }

  c.pango = pango_cairo_create_context (cr);
  pango_cairo_context_set_resolution (c.pango, dpi);
  PangoContext *wpc = gtk_widget_get_pango_context (GTK_WIDGET (self));
  const cairo_font_options_t *screen = pango_cairo_context_get_font_options (wpc);
  if (hits != NULL && screen != NULL)
    pango_cairo_context_set_font_options (c.pango, screen);  /* as the rest of the window */
  else if (hits == NULL)
    {
      /* Unhinted: exported text keeps its size relative to the chart at every scale. */
      cairo_font_options_t *options = cairo_font_options_create ();
      cairo_font_options_set_hint_metrics (options, CAIRO_HINT_METRICS_OFF);
      cairo_font_options_set_hint_style (options, CAIRO_HINT_STYLE_NONE);
      pango_cairo_context_set_font_options (c.pango, options);
      cairo_font_options_destroy (options);
    }

  const PangoFontDescription *wfd = pango_context_get_font_description (wpc);
  c.font = wfd ? pango_font_description_copy (wfd) : pango_font_description_from_string ("Sans 10");
  c.font_size = pango_font_description_get_size (c.font);
  c.font_absolute = pango_font_description_get_size_is_absolute (c.font);
  if (c.font_size <= 0)
    {
      c.font_size = 10 * PANGO_SCALE;
      c.font_absolute = FALSE;
    }
  c.fs = (double) c.font_size / PANGO_SCALE * (c.font_absolute ? 1 : dpi / 72);

  switch (self->kind)
    {
    case CS_CHART_LAYERS:
      render_layers (&c);
      break;
    case CS_CHART_COMPLEXITY:
      render_complexity (&c);
      break;
    case CS_CHART_TRAINING:
      render_training (&c);
      break;
    default:
      break;
    }

  pango_font_description_free (c.font);
  g_object_unref (c.pango);
  cairo_restore (cr);
}

static void
invalidate (CsChart *self)
{
  g_clear_pointer (&self->node, gsk_render_node_unref);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
palette_for_widget (CsChart *self, Palette *pal)
{
  memset (pal, 0, sizeof *pal);
#if GTK_CHECK_VERSION (4, 10, 0)
  gtk_widget_get_color (GTK_WIDGET (self), &pal->fg);
#else
  gtk_style_context_get_color (gtk_widget_get_style_context (GTK_WIDGET (self)), &pal->fg);
#endif
  double luma = 0.2126 * pal->fg.red + 0.7152 * pal->fg.green + 0.0722 * pal->fg.blue;
  pal->dark = luma > 0.5;
}

static void
cs_chart_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  CsChart *self = CS_CHART (widget);
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);
  if (width <= 0 || height <= 0)
    return;

  /* Comparing what the drawing used, rather than redrawing on every CSS change, keeps hover and
   * focus changes of the widget's state free. */
  Palette pal;
  palette_for_widget (self, &pal);
  PangoContext *pc = gtk_widget_get_pango_context (widget);
  const PangoFontDescription *font = pango_context_get_font_description (pc);
  double dpi = pango_cairo_context_get_resolution (pc);
  dpi = dpi > 0 ? dpi : 96;
  if (self->node == NULL || self->node_width != width || self->node_height != height
      || !gdk_rgba_equal (&self->node_fg, &pal.fg) || self->node_dpi != dpi
      || (font != NULL) != (self->node_font != NULL)
      || (font && !pango_font_description_equal (font, self->node_font)))
    {
      g_clear_pointer (&self->node, gsk_render_node_unref);
      g_array_set_size (self->hits, 0);

      GtkSnapshot *s = gtk_snapshot_new ();
      cairo_t *cr = gtk_snapshot_append_cairo (s, &GRAPHENE_RECT_INIT (0, 0, width, height));
      render (self, cr, width, height, &pal, dpi, self->hits);
      cairo_destroy (cr);
      self->node = gtk_snapshot_free_to_node (s);
      self->node_width = width;
      self->node_height = height;
      self->node_fg = pal.fg;
      self->node_dpi = dpi;
      g_clear_pointer (&self->node_font, pango_font_description_free);
      self->node_font = font ? pango_font_description_copy (font) : NULL;
    }
  if (self->node)
    gtk_snapshot_append_node (snapshot, self->node);
}

static void
cs_chart_system_setting_changed (GtkWidget *widget, GtkSystemSetting setting)
{
  GTK_WIDGET_CLASS (cs_chart_parent_class)->system_setting_changed (widget, setting);
  invalidate (CS_CHART (widget));
}

static void
cs_chart_measure (G_GNUC_UNUSED GtkWidget *widget, GtkOrientation orientation,
                  G_GNUC_UNUSED int for_size, int *minimum, int *natural,
                  G_GNUC_UNUSED int *minimum_baseline, G_GNUC_UNUSED int *natural_baseline)
{
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    *minimum = 320, *natural = 720;
  else
    *minimum = 240, *natural = 440;
}

static gboolean
cs_chart_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip)
{
  CsChart *self = CS_CHART (widget);
  if (keyboard)
    return FALSE;
  /* The last region drawn is on top. */
  for (guint i = self->hits->len; i-- > 0;)
    {
      const Hit *h = &g_array_index (self->hits, Hit, i);
      gboolean inside = h->circle
        ? (x - h->x) * (x - h->x) + (y - h->y) * (y - h->y) <= h->w * h->w
        : x >= h->x && x < h->x + h->w && y >= h->y && y < h->y + h->h;
      if (!inside)
        continue;
      gtk_tooltip_set_markup (tooltip, h->markup);
      GdkRectangle area = h->circle
        ? (GdkRectangle) { (int) (h->x - h->w), (int) (h->y - h->w), (int) (2 * h->w) + 1,
                           (int) (2 * h->w) + 1 }
        : (GdkRectangle) { (int) h->x, (int) h->y, (int) ceil (h->w), (int) ceil (h->h) };
      gtk_tooltip_set_tip_area (tooltip, &area);
      return TRUE;
    }
  return FALSE;
}

/* ---- GObject -------------------------------------------------------------------------------- */

static void
update_accessible_label (CsChart *self)
{
  const char *label = self->kind == CS_CHART_LAYERS ? "Activation memory and parameters per layer"
                    : self->kind == CS_CHART_COMPLEXITY ? "Comparing complexity"
                    : "Loss and accuracy";
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
}

static void
cs_chart_dispose (GObject *object)
{
  CsChart *self = CS_CHART (object);
  g_clear_pointer (&self->node, gsk_render_node_unref);
  g_clear_pointer (&self->node_font, pango_font_description_free);
  G_OBJECT_CLASS (cs_chart_parent_class)->dispose (object);
}

static void
cs_chart_finalize (GObject *object)
{
  CsChart *self = CS_CHART (object);
  g_free (self->model_title);
  g_clear_pointer (&self->bars, g_array_unref);
  g_free (self->current);
  for (guint s = 0; s < CS_N_SERIES; s++)
    g_array_unref (self->series[s]);
  g_array_unref (self->hits);
  G_OBJECT_CLASS (cs_chart_parent_class)->finalize (object);
}

static void
cs_chart_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  CsChart *self = CS_CHART (object);
  switch (prop_id)
    {
    case PROP_KIND:
      g_value_set_enum (value, self->kind);
      break;
    case PROP_CURRENT_MODEL:
      g_value_set_string (value, self->current);
      break;
    case PROP_EPOCHS:
      g_value_set_double (value, self->epochs);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
cs_chart_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  CsChart *self = CS_CHART (object);
  switch (prop_id)
    {
    case PROP_KIND:
      self->kind = g_value_get_enum (value);
      gtk_widget_set_has_tooltip (GTK_WIDGET (self), self->kind != CS_CHART_TRAINING);
      update_accessible_label (self);
      break;
    case PROP_CURRENT_MODEL:
      cs_chart_set_current_model (self, g_value_get_string (value));
      break;
    case PROP_EPOCHS:
      cs_chart_set_epochs (self, g_value_get_double (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
cs_chart_class_init (CsChartClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = cs_chart_dispose;
  object_class->finalize = cs_chart_finalize;
  object_class->get_property = cs_chart_get_property;
  object_class->set_property = cs_chart_set_property;

  widget_class->snapshot = cs_chart_snapshot;
  widget_class->measure = cs_chart_measure;
  widget_class->system_setting_changed = cs_chart_system_setting_changed;
  widget_class->query_tooltip = cs_chart_query_tooltip;

  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL, CS_TYPE_CHART_KIND, CS_CHART_LAYERS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_EXPLICIT_NOTIFY
                       | G_PARAM_STATIC_STRINGS);
  properties[PROP_CURRENT_MODEL] =
    g_param_spec_string ("current-model", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_EPOCHS] =
    g_param_spec_double ("epochs", NULL, NULL, 0, G_MAXDOUBLE, 0,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_css_name (widget_class, "chart");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
cs_chart_init (CsChart *self)
{
  for (guint s = 0; s < CS_N_SERIES; s++)
    self->series[s] = g_array_new (FALSE, FALSE, sizeof (Point));
  self->hits = g_array_new (FALSE, FALSE, sizeof (Hit));
  g_array_set_clear_func (self->hits, hit_clear);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  update_accessible_label (self);
}

/* ---- Public API ----------------------------------------------------------------------------- */

GtkWidget *
cs_chart_new (CsChartKind kind)
{
  return g_object_new (CS_TYPE_CHART, "kind", kind, NULL);
}

CsChartKind
cs_chart_get_kind (CsChart *self)
{
  g_return_val_if_fail (CS_IS_CHART (self), CS_CHART_LAYERS);
  return self->kind;
}

/* The lecture's names for a layer: "conv3-64", "pool2", "fc-4096". */
static char *
layer_label (const CsNode *n)
{
  const CsLayerParams *p = &n->p;
  switch (n->op)
    {
    case CS_OP_INPUT:
      return g_strdup ("input");
    case CS_OP_CONV:
      if (p->kh == p->kw)
        return g_strdup_printf ("conv%u-%" G_GUINT64_FORMAT, p->kh, p->out);
      return g_strdup_printf ("conv%ux%u-%" G_GUINT64_FORMAT, p->kh, p->kw, p->out);
    case CS_OP_MAXPOOL:
    case CS_OP_AVGPOOL:
      if (p->global)
        return g_strdup (n->op == CS_OP_MAXPOOL ? "global maxpool" : "global avgpool");
      return g_strdup_printf ("%s%u", n->op == CS_OP_MAXPOOL ? "pool" : "avgpool", p->kh);
    case CS_OP_FC:
      return g_strdup_printf ("fc-%" G_GUINT64_FORMAT, p->out);
    default:
      return g_strdup (cs_layer_class (n->op)->name);
    }
}

void
cs_chart_set_stats (CsChart *self, CsStats *st)
{
  g_return_if_fail (CS_IS_CHART (self));

  g_clear_pointer (&self->bars, g_array_unref);
  g_clear_pointer (&self->model_title, g_free);
  self->total_memory = self->total_params = 0;
  if (st != NULL)
    {
      CsGraph *g = st->graph;
      self->model_title = g_strdup (g->title && *g->title ? g->title : g->name);
      self->bars = g_array_sized_new (FALSE, TRUE, sizeof (LayerBar), st->folded->len);
      g_array_set_clear_func (self->bars, layer_bar_clear);
      for (guint i = 0; i < st->folded->len; i++)
        {
          const CsRow *r = &g_array_index (st->folded, CsRow, i);
          const CsNode *n = cs_graph_node (g, r->head);
          const char *slash = n->module ? strchr (n->module, '/') : NULL;
          LayerBar b = {
            .label = layer_label (n),
            .name = g_strdup (n->name),
            .group = n->module && *n->module
              ? g_strndup (n->module, slash ? (gsize) (slash - n->module) : strlen (n->module))
              : NULL,
            .memory = r->st.activations,
            .params = r->st.weights + r->st.biases,
          };
          self->total_memory += b.memory;
          self->total_params += b.params;
          g_array_append_val (self->bars, b);
        }
    }
  invalidate (self);
}

void
cs_chart_set_current_model (CsChart *self, const char *name)
{
  g_return_if_fail (CS_IS_CHART (self));
  if (g_strcmp0 (self->current, name) == 0)
    return;
  g_free (self->current);
  self->current = g_strdup (name);
  invalidate (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CURRENT_MODEL]);
}

const char *
cs_chart_get_current_model (CsChart *self)
{
  g_return_val_if_fail (CS_IS_CHART (self), NULL);
  return self->current;
}

void
cs_chart_set_epochs (CsChart *self, double epochs)
{
  g_return_if_fail (CS_IS_CHART (self));
  if (!(epochs >= 0) || !isfinite (epochs))
    epochs = 0;
  if (self->epochs == epochs)
    return;
  self->epochs = epochs;
  invalidate (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EPOCHS]);
}

double
cs_chart_get_epochs (CsChart *self)
{
  g_return_val_if_fail (CS_IS_CHART (self), 0);
  return self->epochs;
}

void
cs_chart_add_point (CsChart *self, CsSeries series, double x, double y)
{
  g_return_if_fail (CS_IS_CHART (self));
  g_return_if_fail ((guint) series < CS_N_SERIES);
  Point pt = { x, y };
  g_array_append_val (self->series[series], pt);
  invalidate (self);
}

guint
cs_chart_get_n_points (CsChart *self, CsSeries series)
{
  g_return_val_if_fail (CS_IS_CHART (self), 0);
  g_return_val_if_fail ((guint) series < CS_N_SERIES, 0);
  return self->series[series]->len;
}

void
cs_chart_clear (CsChart *self)
{
  g_return_if_fail (CS_IS_CHART (self));
  for (guint s = 0; s < CS_N_SERIES; s++)
    g_array_set_size (self->series[s], 0);
  invalidate (self);
}

void
cs_chart_render (CsChart *self, cairo_t *cr, double width, double height)
{
  g_return_if_fail (CS_IS_CHART (self));
  g_return_if_fail (cr != NULL);
  if (!(width > 0 && height > 0))
    return;
  /* Exports go into documents: dark text on white, whatever the application's style. */
  Palette pal = { .paint_bg = TRUE, .dark = FALSE };
  gdk_rgba_parse (&pal.fg, "#241f31");
  gdk_rgba_parse (&pal.bg, "#ffffff");
  render (self, cr, width, height, &pal, 96, NULL);
}

/* ---- Export --------------------------------------------------------------------------------- */

static cairo_status_t
append_bytes (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append (closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

gboolean
cs_export_drawing (const char *path, double width, double height, double scale,
                   CsDrawFunc draw, gpointer user_data, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (draw != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *base = g_path_get_basename (path);
  const char *dot = strrchr (base, '.');
  g_autofree char *ext = dot ? g_ascii_strdown (dot + 1, -1) : g_strdup ("");
  enum { PNG, SVG, PDF } format;
  if (strcmp (ext, "png") == 0)
    format = PNG;
  else if (strcmp (ext, "svg") == 0)
    format = SVG;
  else if (strcmp (ext, "pdf") == 0)
    format = PDF;
  else
    {
      if (*ext)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "Cannot export “%s”: unknown extension “.%s” (use .png, .svg or .pdf)",
                     display, ext);
      else
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "Cannot export “%s”: no extension (use .png, .svg or .pdf)", display);
      return FALSE;
    }

  if (!(width > 0 && height > 0 && isfinite (width) && isfinite (height))
      || (format == PNG && !(scale > 0 && isfinite (scale))))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Cannot export “%s” at %g x %g, scale %g", display, width, height, scale);
      return FALSE;
    }

  /* The drawing goes to memory first and then replaces the file in one go: a failed export
   * leaves no half-written file, and GIO reports the file's errors with their real cause. */
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  cairo_surface_t *surface;
  if (format == PNG)
    {
      double pw = ceil (width * scale), ph = ceil (height * scale);
      /* cairo's image surfaces stop at 32767 pixels a side. */
      if (pw > 32767 || ph > 32767)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Cannot export “%s”: %.0f x %.0f pixels, and PNG export stops at "
                       "32767 a side", display, pw, ph);
          return FALSE;
        }
      surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, (int) pw, (int) ph);
    }
  else if (format == SVG)
    {
      surface = cairo_svg_surface_create_for_stream (append_bytes, bytes, width, height);
      /* Pixels, so that an SVG opens at the size the chart had on screen. */
      cairo_svg_surface_set_document_unit (surface, CAIRO_SVG_UNIT_PX);
    }
  else
    surface = cairo_pdf_surface_create_for_stream (append_bytes, bytes, width, height);

  cairo_status_t status = cairo_surface_status (surface);
  if (status == CAIRO_STATUS_SUCCESS)
    {
      cairo_t *cr = cairo_create (surface);
      if (format == PNG)
        cairo_scale (cr, scale, scale);
      draw (cr, width, height, user_data);
      status = cairo_status (cr);
      cairo_destroy (cr);
    }
  if (status == CAIRO_STATUS_SUCCESS)
    {
      if (format == PNG)
        {
          cairo_surface_flush (surface);
          status = cairo_surface_write_to_png_stream (surface, append_bytes, bytes);
        }
      else
        {
          cairo_surface_finish (surface);
          status = cairo_surface_status (surface);
        }
    }
  cairo_surface_destroy (surface);
  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, G_IO_ERROR,
                   status == CAIRO_STATUS_NO_MEMORY ? G_IO_ERROR_NO_SPACE : G_IO_ERROR_FAILED,
                   "Could not export “%s”: %s", display, cairo_status_to_string (status));
      return FALSE;
    }

  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GError) local = NULL;
  if (!g_file_replace_contents (file, (const char *) bytes->data, bytes->len, NULL, FALSE,
                                G_FILE_CREATE_NONE, NULL, NULL, &local))
    {
      /* GIO names the file when it cannot open it, but not when a write or the rename fails. */
      if (strstr (local->message, display) == NULL)
        g_prefix_error (&local, "Could not write “%s”: ", display);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}
