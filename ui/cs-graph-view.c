/* CsGraphView: draws a network's layout (core/cs-layout) as boxes and curves, with overlays,
 * zoom, pan, selection and collapsible blocks; the layout is computed on a worker thread. */
#include "cs-graph-view.h"

#include "cs-layout.h"

#include <math.h>
#include <string.h>

/* Geometry at zoom 1, in pixels. Boxes are a little larger than the layout's defaults so that
 * two lines of text and an overlay bar fit; the frame padding leaves room for a module's name
 * in the band above its first box. */
#define BOX_W        184.0
#define BOX_H        44.0
#define H_GAP        28.0
#define V_GAP        26.0
#define MODULE_PAD   16.0
#define BOX_RADIUS   7.0
#define FRAME_RADIUS 10.0
#define STRIPE_W     4.0
#define ARROW_LEN    7.0
#define ARROW_HALF   3.6

#define VIEW_MARGIN  32.0     /* how far the drawing may be pushed off an edge of the view */
#define EXPORT_MARGIN 24.0
#define ZOOM_MAX     4.0
#define ZOOM_FLOOR   0.002    /* the smallest zoom for any graph; a graph's own is its fit */
#define TEXT_ZOOM    0.42     /* below this the text is under ~5 px high: drawn without it */
#define BAND         512.0    /* rows of the scene grouped per container, so renderers can
                               * skip whole off-screen bands instead of every box */
#define EDGE_BAND    256.0
#define BUSY_DELAY_US 150000  /* a layout shorter than this shows no "Laying out…" */
#define PAN_ANIM_US  220000

typedef enum {
  KIND_INPUT,
  KIND_CONV,
  KIND_POOL,
  KIND_NORM,
  KIND_ACT,
  KIND_FC,
  KIND_JOIN,
  KIND_OTHER,
  KIND_BLOCK,
  N_KINDS
} Kind;

/* Hues from the GNOME palette: distinct in both styles; fills are tints of them. */
static const struct {
  const char *name;
  guint32 rgb;
} kinds[N_KINDS] = {
  [KIND_INPUT] = { "input", 0x77767b },
  [KIND_CONV]  = { "conv", 0x3584e4 },
  [KIND_POOL]  = { "pool", 0xe66100 },
  [KIND_NORM]  = { "norm", 0x9141ac },
  [KIND_ACT]   = { "activation", 0x26a269 },
  [KIND_FC]    = { "fc", 0xe01b24 },
  [KIND_JOIN]  = { "join", 0xc88800 },
  [KIND_OTHER] = { "other", 0x5e5c64 },
  [KIND_BLOCK] = { "block", 0x1a8f8f },
};

/* The measures an overlay can show, indexed by CsOverlay - 1. */
enum {
  M_PARAMS,
  M_MEMORY,
  M_MACS,
  M_RF,
  M_FORWARD,
  M_BACKWARD,
  N_MEASURES
};

/* What a layout was computed from: the graph and a copy of its per-node numbers. A copy,
 * because the caller owns its CsStats and may free it while a new layout is on its way and
 * the old one is still on screen. */
typedef struct {
  CsGraph *graph;
  CsLayerStats *nodes;
  guint8 *head;             /* per node: it heads a row of the lecture view */
  guint n;
} Model;

typedef struct {
  double v[N_MEASURES];
  Kind kind;
  gboolean train_only;
  guint64 rf_h, rf_w;
} BoxInfo;

typedef struct {
  Model *model;
  GHashTable *collapsed;
  gboolean fold;
  CsLayoutMetrics metrics;
  guint serial;
} LayoutJob;

/* What to keep still on screen across a relayout. */
typedef struct {
  gboolean active;
  char *module;             /* this module's box or frame, when set */
  gint node;                /* else the box of this node */
  gboolean centre;          /* move it to the middle of the view instead of keeping it */
  double sx, sy;            /* where its top centre was on screen */
} Anchor;

typedef struct {
  GdkRGBA fg, bg, accent;
  gboolean dark;
} Palette;

struct _CsGraphView {
  GtkWidget parent_instance;

  CsStats *stats;           /* the caller's, for get_stats */
  Model *want;              /* the latest stats' model: what selection and find refer to */
  Model *model;             /* the model of the layout on screen */
  CsLayout *layout;
  BoxInfo *info;            /* per box of the layout */
  double vmax[N_MEASURES], vsum[N_MEASURES];
  gint vmax_box[N_MEASURES];
  GHashTable *collapsed;    /* module path -> itself */
  gboolean fold;
  CsOverlay overlay;
  double *forward_ms, *backward_ms;
  guint n_times;
  gint selected;
  char *error;

  /* The view: screen = graph * zoom + (ox, oy). */
  double zoom, ox, oy;
  gboolean view_valid;      /* the first view of the current model has been chosen */
  gboolean fit_pending;     /* zoom_fit was asked for before the widget had a size */
  Anchor anchor;

  /* The worker. */
  GCancellable *cancellable;
  guint serial;
  gboolean busy;
  gint64 busy_since;
  guint busy_tick;

  /* Cached drawing, in graph coordinates; rebuilt only when what it shows changes. */
  /* Each a list of nodes, one per band of rows, bottom to top: a frame appends only the bands
   * it sees, so its cost follows what is on screen, not the size of the network. */
  GPtrArray *edges;
  GPtrArray *scene[2];      /* [0] without text, for far zoom; [1] detailed */
  GskRenderNode *selection_node;
  GskRenderNode *legend_node;
  double legend_w, legend_h;
  PangoContext *pango;
  Palette pal;
  gboolean pal_valid;

  /* Input. */
  double pointer_x, pointer_y;
  gboolean pointer_inside;
  gint hover_box, hover_frame;
  double drag_ox, drag_oy;
  gboolean dragging;
  gboolean drag_moved;      /* since the press: the release then ends a pan, not a click */
  double pinch_zoom;
  guint anim_tick;
  gint64 anim_start;
  double anim_from[2], anim_to[2];
};

G_DEFINE_TYPE (CsGraphView, cs_graph_view, GTK_TYPE_WIDGET)
G_DEFINE_ENUM_TYPE (CsOverlay, cs_overlay,
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_NONE, "none"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_PARAMS, "params"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_MEMORY, "memory"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_MACS, "macs"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_RF, "rf"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_FORWARD_TIME, "forward-time"),
  G_DEFINE_ENUM_VALUE (CS_OVERLAY_BACKWARD_TIME, "backward-time"))

enum {
  PROP_0,
  PROP_STATS,
  PROP_OVERLAY,
  PROP_FOLD,
  PROP_SELECTED,
  PROP_ZOOM,
  PROP_READY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  NODE_SELECTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void request_layout (CsGraphView *self);

/* ---- Model ------------------------------------------------------------------------------ */

static void
model_clear (gpointer data)
{
  Model *m = data;
  g_clear_pointer (&m->graph, cs_graph_unref);
  g_free (m->nodes);
  g_free (m->head);
}

static Model *
model_new (CsStats *st)
{
  Model *m = g_atomic_rc_box_new0 (Model);
  m->graph = cs_graph_ref (st->graph);
  m->n = cs_graph_n_nodes (st->graph);
  m->nodes = g_memdup2 (st->nodes, sizeof (CsLayerStats) * MAX (m->n, 1));
  m->head = g_new0 (guint8, MAX (m->n, 1));
  for (guint r = 0; st->folded && r < st->folded->len; r++)
    {
      guint h = g_array_index (st->folded, CsRow, r).head;
      if (h < m->n)
        m->head[h] = 1;
    }
  return m;
}

static Model *
model_ref (Model *m)
{
  return g_atomic_rc_box_acquire (m);
}

static void
model_unref (Model *m)
{
  g_atomic_rc_box_release_full (m, model_clear);
}

/* ---- Colours ---------------------------------------------------------------------------- */

static GdkRGBA
rgb (guint32 v, float alpha)
{
  return (GdkRGBA) { ((v >> 16) & 0xff) / 255.f, ((v >> 8) & 0xff) / 255.f, (v & 0xff) / 255.f,
                     alpha };
}

static GdkRGBA
mix (GdkRGBA a, GdkRGBA b, float t)
{
  return (GdkRGBA) { a.red + (b.red - a.red) * t, a.green + (b.green - a.green) * t,
                     a.blue + (b.blue - a.blue) * t, a.alpha + (b.alpha - a.alpha) * t };
}

static GdkRGBA
with_alpha (GdkRGBA c, float alpha)
{
  c.alpha = alpha;
  return c;
}

static double
luminance (const GdkRGBA *c)
{
  return 0.2126 * c->red + 0.7152 * c->green + 0.0722 * c->blue;
}

/* Inferno (matplotlib), a perceptually uniform ramp that reads in grey and for the common
 * colour-vision deficiencies. */
static GdkRGBA
inferno (double t)
{
  static const guint32 stops[] = { 0x000004, 0x160b39, 0x420a68, 0x6a176e, 0x932667, 0xbc3754,
                                   0xdd513a, 0xf37819, 0xfca50a, 0xf6d746, 0xfcffa4 };
  const guint last = G_N_ELEMENTS (stops) - 1;
  t = CLAMP (t, 0.0, 1.0) * last;
  guint i = MIN ((guint) t, last - 1);
  return mix (rgb (stops[i], 1), rgb (stops[i + 1], 1), (float) (t - i));
}

/* The colour of a value at T in [0, 1] of the scale: more stands out more against the
 * background, so the ramp runs pale to dark in the light style and dark to bright in the dark
 * one. */
static GdkRGBA
ramp (const Palette *p, double t)
{
  t = CLAMP (t, 0.0, 1.0);
  GdkRGBA c = p->dark ? inferno (0.16 + 0.82 * t) : inferno (0.98 - 0.84 * t);
  /* The bottom of the scale fades into the background: a layer with almost none of the
   * total should look almost empty, not yellow. */
  double fade = pow (1 - t, 3) * (p->dark ? 0.55 : 0.75);
  return mix (c, p->bg, (float) fade);
}

static void
palette_read (CsGraphView *self, Palette *p)
{
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  GtkStyleContext *ctx = gtk_widget_get_style_context (GTK_WIDGET (self));
  gtk_style_context_get_color (ctx, &p->fg);
  p->dark = luminance (&p->fg) > 0.5;
  if (!gtk_style_context_lookup_color (ctx, "accent_bg_color", &p->accent))
    p->accent = rgb (0x3584e4, 1);
  if (!gtk_style_context_lookup_color (ctx, "view_bg_color", &p->bg))
    p->bg = p->dark ? rgb (0x1e1e1e, 1) : rgb (0xffffff, 1);
  G_GNUC_END_IGNORE_DEPRECATIONS
  p->bg.alpha = 1;
}

static const Palette *
palette (CsGraphView *self)
{
  if (!self->pal_valid)
    {
      palette_read (self, &self->pal);
      self->pal_valid = TRUE;
    }
  return &self->pal;
}

/* ---- Caches ----------------------------------------------------------------------------- */

static void
drop_scene (CsGraphView *self)
{
  g_clear_pointer (&self->scene[0], g_ptr_array_unref);
  g_clear_pointer (&self->scene[1], g_ptr_array_unref);
  g_clear_pointer (&self->legend_node, gsk_render_node_unref);
  g_clear_pointer (&self->selection_node, gsk_render_node_unref);
}

static void
drop_all_caches (CsGraphView *self)
{
  drop_scene (self);
  g_clear_pointer (&self->edges, g_ptr_array_unref);
}

/* A context of our own: text in the scene is scaled with the zoom, so glyph positions and
 * metrics must not be snapped to whole pixels at zoom 1. */
static PangoContext *
scene_pango (CsGraphView *self)
{
  if (self->pango == NULL)
    {
      self->pango = gtk_widget_create_pango_context (GTK_WIDGET (self));
      cairo_font_options_t *fo = cairo_font_options_create ();
      cairo_font_options_set_hint_metrics (fo, CAIRO_HINT_METRICS_OFF);
      cairo_font_options_set_hint_style (fo, CAIRO_HINT_STYLE_NONE);
      cairo_font_options_set_antialias (fo, CAIRO_ANTIALIAS_GRAY);
      pango_cairo_context_set_font_options (self->pango, fo);
      cairo_font_options_destroy (fo);
      pango_context_set_round_glyph_positions (self->pango, FALSE);
    }
  return self->pango;
}

static PangoLayout *
make_layout (CsGraphView *self, double px, PangoWeight weight, gboolean tabular)
{
  PangoLayout *l = pango_layout_new (scene_pango (self));
  PangoFontDescription *fd = pango_font_description_copy (
      pango_context_get_font_description (scene_pango (self)));
  pango_font_description_set_absolute_size (fd, px * PANGO_SCALE);
  pango_font_description_set_weight (fd, weight);
  pango_layout_set_font_description (l, fd);
  pango_font_description_free (fd);
  if (tabular)
    {
      PangoAttrList *attrs = pango_attr_list_new ();
      pango_attr_list_insert (attrs, pango_attr_font_features_new ("tnum=1"));
      pango_layout_set_attributes (l, attrs);
      pango_attr_list_unref (attrs);
    }
  pango_layout_set_single_paragraph_mode (l, TRUE);
  return l;
}

typedef struct {
  PangoLayout *title, *note, *detail, *value, *frame;
} Fonts;

static void
fonts_init (CsGraphView *self, Fonts *f)
{
  f->title = make_layout (self, 12.5, PANGO_WEIGHT_BOLD, TRUE);
  f->note = make_layout (self, 10.5, PANGO_WEIGHT_NORMAL, FALSE);
  f->detail = make_layout (self, 11.0, PANGO_WEIGHT_NORMAL, TRUE);
  f->value = make_layout (self, 11.0, PANGO_WEIGHT_BOLD, TRUE);
  f->frame = make_layout (self, 10.5, PANGO_WEIGHT_SEMIBOLD, FALSE);
}

static void
fonts_clear (Fonts *f)
{
  g_clear_object (&f->title);
  g_clear_object (&f->note);
  g_clear_object (&f->detail);
  g_clear_object (&f->value);
  g_clear_object (&f->frame);
}

/* ---- What a box says -------------------------------------------------------------------- */

static Kind
kind_of (CsOp op)
{
  switch (op)
    {
    case CS_OP_INPUT: return KIND_INPUT;
    case CS_OP_CONV: return KIND_CONV;
    case CS_OP_MAXPOOL:
    case CS_OP_AVGPOOL: return KIND_POOL;
    case CS_OP_LRN:
    case CS_OP_BN: return KIND_NORM;
    case CS_OP_RELU:
    case CS_OP_LEAKYRELU:
    case CS_OP_SIGMOID:
    case CS_OP_TANH: return KIND_ACT;
    case CS_OP_FC: return KIND_FC;
    case CS_OP_CONCAT:
    case CS_OP_ADD:
    case CS_OP_MEAN: return KIND_JOIN;
    case CS_OP_DROPOUT:
    case CS_OP_FLATTEN:
    case CS_OP_SOFTMAX:
    case CS_OP_DROPPATH:
    case CS_OP_IDENTITY:
    case CS_OP_COUNT:
    default: return KIND_OTHER;
    }
}

static const char *
last_component (const char *path)
{
  const char *slash = strrchr (path, '/');
  return slash ? slash + 1 : path;
}

static void
append_size (GString *s, guint64 h, guint64 w)
{
  if (h == w)
    g_string_append_printf (s, "%" G_GUINT64_FORMAT, h);
  else
    g_string_append_printf (s, "%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT, h, w);
}

/* The lecture's notation: CONV3-64, POOL2, FC-4096; a stride the notation leaves implicit
 * (a conv's 1, a pool's kernel) is not written, any other is, as "/2". */
static char *
node_label (const CsGraph *g, const CsNode *n)
{
  GString *s = g_string_new (NULL);
  guint64 k[2] = { 1, 1 }, st[2] = { 1, 1 }, pad[2], d[2];
  if (n->n_inputs > 0)
    cs_layer_window (n, &cs_graph_node (g, n->inputs[0])->shape, k, st, pad, d);
  switch (n->op)
    {
    case CS_OP_INPUT: g_string_append (s, "INPUT"); break;
    case CS_OP_CONV:
      g_string_append (s, "CONV");
      append_size (s, k[0], k[1]);
      g_string_append_printf (s, "-%" G_GUINT64_FORMAT, n->p.out);
      if (st[0] != 1 || st[1] != 1)
        g_string_append_c (s, '/'), append_size (s, st[0], st[1]);
      if (n->p.groups > 1)
        g_string_append_printf (s, " g%u", n->p.groups);
      break;
    case CS_OP_MAXPOOL:
    case CS_OP_AVGPOOL:
      g_string_append (s, n->op == CS_OP_MAXPOOL ? "POOL" : "AVGPOOL");
      append_size (s, k[0], k[1]);
      if (!n->p.global && (st[0] != k[0] || st[1] != k[1]))
        g_string_append_c (s, '/'), append_size (s, st[0], st[1]);
      break;
    case CS_OP_LRN: g_string_append (s, "NORM"); break;
    case CS_OP_BN: g_string_append (s, "BN"); break;
    case CS_OP_RELU: g_string_append (s, "RELU"); break;
    case CS_OP_LEAKYRELU: g_string_append (s, "LRELU"); break;
    case CS_OP_SIGMOID: g_string_append (s, "SIGMOID"); break;
    case CS_OP_TANH: g_string_append (s, "TANH"); break;
    case CS_OP_DROPOUT: g_string_append (s, "DROPOUT"); break;
    case CS_OP_FC: g_string_append_printf (s, "FC-%" G_GUINT64_FORMAT, n->p.out); break;
    case CS_OP_FLATTEN: g_string_append (s, "FLATTEN"); break;
    case CS_OP_SOFTMAX: g_string_append (s, "SOFTMAX"); break;
    case CS_OP_CONCAT: g_string_append (s, "CONCAT"); break;
    case CS_OP_ADD: g_string_append (s, "ADD"); break;
    case CS_OP_MEAN: g_string_append (s, "MEAN"); break;
    case CS_OP_DROPPATH: g_string_append (s, "DROPPATH"); break;
    case CS_OP_IDENTITY: g_string_append (s, "IDENTITY"); break;
    case CS_OP_COUNT:
    default: g_string_append (s, cs_layer_class (n->op)->name); break;
    }
  return g_string_free (s, FALSE);
}

/* "224×224×64", a vector as "4096". */
static char *
volume_text (const CsShape *s)
{
  if (s->h == 1 && s->w == 1)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, s->c);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT,
                          s->h, s->w, s->c);
}

/* Three significant digits, in µs below a millisecond: most layers on a GPU take a few µs. */
static char *
ms_text (double ms)
{
  if (ms >= 100)
    return g_strdup_printf ("%.0f ms", ms);
  if (ms >= 10)
    return g_strdup_printf ("%.1f ms", ms);
  if (ms >= 1)
    return g_strdup_printf ("%.2f ms", ms);
  double us = ms * 1000;
  if (us >= 100)
    return g_strdup_printf ("%.0f µs", us);
  if (us >= 10)
    return g_strdup_printf ("%.1f µs", us);
  return g_strdup_printf ("%.2f µs", us);
}

static char *
measure_text (guint m, double v, const BoxInfo *bi)
{
  switch (m)
    {
    case M_PARAMS:
    case M_MEMORY:
    case M_MACS:
      return cs_format_si ((guint64) llround (v));
    case M_RF:
      if (bi && bi->rf_h != bi->rf_w)
        return g_strdup_printf ("%" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT " px", bi->rf_h,
                                bi->rf_w);
      return g_strdup_printf ("%.0f px", v);
    default:
      return ms_text (v);
    }
}

static const char *const measure_titles[N_MEASURES] = {
  "Parameters", "Memory", "Multiply-adds", "Receptive field", "Forward time", "Backward time",
};

static const char *const measure_subtitles[N_MEASURES] = {
  "weights + biases", "activations per image", "per image", "input pixels each output sees",
  "per layer, measured", "per layer, measured",
};

static gboolean
has_times (CsGraphView *self, guint m)
{
  const double *t = m == M_FORWARD ? self->forward_ms : self->backward_ms;
  return t != NULL && self->model && self->n_times == self->model->n;
}

/* Per box: the sum over the nodes it shows (memory counts each output once: a folded layer
 * overwrites its producer's), and the receptive field of the node it is keyed by. */
static void
compute_info (CsGraphView *self)
{
  g_clear_pointer (&self->info, g_free);
  memset (self->vmax, 0, sizeof self->vmax);
  memset (self->vsum, 0, sizeof self->vsum);
  for (guint m = 0; m < N_MEASURES; m++)
    self->vmax_box[m] = -1;
  if (self->layout == NULL || self->model == NULL)
    return;
  const CsLayout *l = self->layout;
  const Model *md = self->model;
  self->info = g_new0 (BoxInfo, MAX (l->n_boxes, 1));
  gboolean fwd = has_times (self, M_FORWARD), bwd = has_times (self, M_BACKWARD);
  for (guint i = 0; i < md->n; i++)
    {
      guint b = l->box_of_node[i];
      if (b >= l->n_boxes)
        continue;
      BoxInfo *bi = &self->info[b];
      const CsLayerStats *s = &md->nodes[i];
      bi->v[M_PARAMS] += (double) (s->weights + s->biases);
      bi->v[M_MACS] += (double) s->macs;
      if (!self->fold || md->head[i])
        bi->v[M_MEMORY] += (double) s->activations;
      if (fwd)
        bi->v[M_FORWARD] += MAX (self->forward_ms[i], 0);
      if (bwd)
        bi->v[M_BACKWARD] += MAX (self->backward_ms[i], 0);
    }
  for (guint b = 0; b < l->n_boxes; b++)
    {
      BoxInfo *bi = &self->info[b];
      const CsLayoutBox *box = &l->boxes[b];
      const CsNode *n = cs_graph_node (md->graph, box->node);
      bi->kind = box->module ? KIND_BLOCK : kind_of (n->op);
      bi->train_only = (n->flags & CS_NODE_TRAIN_ONLY) != 0;
      bi->rf_h = md->nodes[box->node].rf_h.size;
      bi->rf_w = md->nodes[box->node].rf_w.size;
      bi->v[M_RF] = (double) MAX (bi->rf_h, bi->rf_w);
      for (guint m = 0; m < N_MEASURES; m++)
        {
          self->vsum[m] += bi->v[m];
          if (bi->v[m] > self->vmax[m])
            self->vmax[m] = bi->v[m], self->vmax_box[m] = (gint) b;
        }
    }
}

/* ---- Drawing: pieces -------------------------------------------------------------------- */

static void
fill_rounded (GtkSnapshot *s, const graphene_rect_t *r, float radius, const GdkRGBA *c)
{
  GskRoundedRect rr;
  gsk_rounded_rect_init_from_rect (&rr, r, radius);
  gtk_snapshot_push_rounded_clip (s, &rr);
  gtk_snapshot_append_color (s, c, r);
  gtk_snapshot_pop (s);
}

static void
stroke_rounded (GtkSnapshot *s, const graphene_rect_t *r, float radius, float width,
                const GdkRGBA *c)
{
  GskRoundedRect rr;
  gsk_rounded_rect_init_from_rect (&rr, r, radius);
  const float w[4] = { width, width, width, width };
  const GdkRGBA cs[4] = { *c, *c, *c, *c };
  gtk_snapshot_append_border (s, &rr, w, cs);
}

static void
put_text (GtkSnapshot *s, PangoLayout *l, double x, double y, const GdkRGBA *c)
{
  gtk_snapshot_save (s);
  gtk_snapshot_translate (s, &GRAPHENE_POINT_INIT ((float) x, (float) y));
  gtk_snapshot_append_layout (s, l, c);
  gtk_snapshot_restore (s);
}

static double
text_width (PangoLayout *l, const char *text, double max_width)
{
  pango_layout_set_text (l, text, -1);
  if (max_width > 0)
    {
      pango_layout_set_width (l, (int) (max_width * PANGO_SCALE));
      pango_layout_set_ellipsize (l, PANGO_ELLIPSIZE_END);
    }
  else
    {
      pango_layout_set_width (l, -1);
      pango_layout_set_ellipsize (l, PANGO_ELLIPSIZE_NONE);
    }
  PangoRectangle ink, logical;
  pango_layout_get_extents (l, &ink, &logical);
  return logical.width / (double) PANGO_SCALE;
}

/* The curve of an edge, ending short of its target when it gets an arrow head there. */
static void
edge_path (cairo_t *cr, const CsLayoutEdge *e, gboolean arrow, double *dx, double *dy)
{
  const double *p = e->points;
  guint n = e->n_points;
  double ex = p[2 * (n - 1)], ey = p[2 * (n - 1) + 1];
  *dx = 0, *dy = 1;
  for (gint k = (gint) n - 2; k >= 0; k--)
    {
      double tx = ex - p[2 * k], ty = ey - p[2 * k + 1], len = hypot (tx, ty);
      if (len > 0.5)
        {
          *dx = tx / len, *dy = ty / len;
          break;
        }
    }
  double cut = arrow ? ARROW_LEN * 0.7 : 0;
  cairo_move_to (cr, p[0], p[1]);
  guint k = 1;
  for (; k + 2 < n; k += 3)
    {
      double x3 = p[2 * (k + 2)], y3 = p[2 * (k + 2) + 1];
      if (k + 2 == n - 1)
        x3 -= *dx * cut, y3 -= *dy * cut;
      cairo_curve_to (cr, p[2 * k], p[2 * k + 1], p[2 * (k + 1)], p[2 * (k + 1) + 1], x3, y3);
    }
  for (; k < n; k++)   /* not 1 + 3k points: the rest as lines */
    cairo_line_to (cr, p[2 * k], p[2 * k + 1]);
}

static void
edge_bounds (const CsLayoutEdge *e, double width, graphene_rect_t *out)
{
  double x0 = G_MAXDOUBLE, y0 = G_MAXDOUBLE, x1 = -G_MAXDOUBLE, y1 = -G_MAXDOUBLE;
  for (guint i = 0; i < e->n_points; i++)
    {
      x0 = MIN (x0, e->points[2 * i]), x1 = MAX (x1, e->points[2 * i]);
      y0 = MIN (y0, e->points[2 * i + 1]), y1 = MAX (y1, e->points[2 * i + 1]);
    }
  const double m = ARROW_LEN + width;
  *out = GRAPHENE_RECT_INIT ((float) (x0 - m), (float) (y0 - m), (float) (x1 - x0 + 2 * m),
                             (float) (y1 - y0 + 2 * m));
}

static void
stroke_edge (cairo_t *cr, const CsLayoutEdge *e, const GdkRGBA *c, double width,
             gboolean dashed)
{
  double dx, dy;
  edge_path (cr, e, TRUE, &dx, &dy);
  gdk_cairo_set_source_rgba (cr, c);
  cairo_set_line_width (cr, width);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  if (dashed)
    {
      const double dash[2] = { 4, 3 };
      cairo_set_dash (cr, dash, 2, 0);
    }
  cairo_stroke (cr);
  cairo_set_dash (cr, NULL, 0, 0);
  double ex = e->points[2 * (e->n_points - 1)], ey = e->points[2 * (e->n_points - 1) + 1];
  double bx = ex - dx * ARROW_LEN, by = ey - dy * ARROW_LEN;
  double half = ARROW_HALF + (width - 1.4) * 0.7;
  cairo_move_to (cr, ex, ey);
  cairo_line_to (cr, bx - dy * half, by + dx * half);
  cairo_line_to (cr, bx + dy * half, by - dx * half);
  cairo_close_path (cr);
  cairo_fill (cr);
}

static void
draw_edge (GtkSnapshot *s, const CsLayoutEdge *e, const GdkRGBA *c, double width,
           gboolean dashed)
{
  if (e->n_points < 2)
    return;
  graphene_rect_t bounds;
  edge_bounds (e, width, &bounds);
  cairo_t *cr = gtk_snapshot_append_cairo (s, &bounds);
  stroke_edge (cr, e, c, width, dashed);
  cairo_destroy (cr);
}

/* Snapshots per band of rows: containers whose bounds let a renderer skip what is off screen. */
typedef struct {
  GtkSnapshot **s;
  guint n;
} Bands;

static void
bands_init (Bands *b, double height)
{
  b->n = (guint) MAX (1.0, ceil ((height + 1) / BAND));
  b->s = g_new0 (GtkSnapshot *, b->n);
}

static GtkSnapshot *
bands_at (Bands *b, double y)
{
  guint i = (guint) CLAMP (y / BAND, 0.0, (double) (b->n - 1));
  if (b->s[i] == NULL)
    b->s[i] = gtk_snapshot_new ();
  return b->s[i];
}

/* Appends the bands' nodes to OUT and frees them. */
static void
bands_finish (Bands *b, GPtrArray *out)
{
  for (guint i = 0; i < b->n; i++)
    if (b->s[i])
      {
        GskRenderNode *node = gtk_snapshot_free_to_node (b->s[i]);
        if (node)
          g_ptr_array_add (out, node);
      }
  g_free (b->s);
}

/* The edges as one cairo node per band of EDGE_BAND rows: GSK 4.8 has no path node, and a
 * renderer rasterises each cairo node again when the zoom changes, so few nodes (one upload
 * each) but small ones (little off screen). */
static GPtrArray *
build_edges (CsGraphView *self)
{
  const CsLayout *l = self->layout;
  const Palette *p = palette (self);
  GdkRGBA c = with_alpha (p->fg, p->dark ? 0.42f : 0.38f);
  guint nb = (guint) MAX (1.0, ceil ((l->height + 1) / EDGE_BAND));
  g_autofree graphene_rect_t *bounds = g_new0 (graphene_rect_t, nb);
  g_autofree gboolean *used = g_new0 (gboolean, nb);
  g_autofree guint *band_of = g_new (guint, MAX (l->n_edges, 1));
  for (guint i = 0; i < l->n_edges; i++)
    {
      const CsLayoutEdge *e = &l->edges[i];
      band_of[i] = G_MAXUINT;
      if (e->n_points < 2 || e->from >= l->n_boxes || e->to >= l->n_boxes)
        continue;
      graphene_rect_t r;
      edge_bounds (e, 1.4, &r);
      guint b = (guint) CLAMP (e->points[1] / EDGE_BAND, 0.0, (double) (nb - 1));
      band_of[i] = b;
      if (used[b])
        graphene_rect_union (&bounds[b], &r, &bounds[b]);
      else
        bounds[b] = r, used[b] = TRUE;
    }
  GPtrArray *nodes = g_ptr_array_new_with_free_func ((GDestroyNotify) gsk_render_node_unref);
  for (guint b = 0; b < nb; b++)
    {
      if (!used[b])
        continue;
      GskRenderNode *node = gsk_cairo_node_new (&bounds[b]);
      cairo_t *cr = gsk_cairo_node_get_draw_context (node);
      for (guint i = 0; i < l->n_edges; i++)
        if (band_of[i] == b)
          {
            const CsLayoutEdge *e = &l->edges[i];
            gboolean dashed = self->info[e->to].train_only || self->info[e->from].train_only;
            stroke_edge (cr, e, &c, 1.4, dashed);
          }
      cairo_destroy (cr);
      g_ptr_array_add (nodes, node);
    }
  return nodes;
}

static int
compare_frame_depth (const void *a, const void *b)
{
  guint x = (*(const CsLayoutFrame *const *) a)->depth;
  guint y = (*(const CsLayoutFrame *const *) b)->depth;
  return (x > y) - (x < y);
}

static void
draw_frames (CsGraphView *self, Bands *bands, const Fonts *f)
{
  const CsLayout *l = self->layout;
  const Palette *p = palette (self);
  g_autofree const CsLayoutFrame **order = g_new (const CsLayoutFrame *, MAX (l->n_frames, 1));
  for (guint i = 0; i < l->n_frames; i++)
    order[i] = &l->frames[i];
  /* Outer frames first: an inner one's tint then adds to its parent's. */
  qsort (order, l->n_frames, sizeof *order, compare_frame_depth);
  GdkRGBA fill = with_alpha (p->fg, p->dark ? 0.035f : 0.028f);
  GdkRGBA border = with_alpha (p->fg, p->dark ? 0.16f : 0.13f);
  GdkRGBA label = with_alpha (p->fg, 0.6f);
  for (guint i = 0; i < l->n_frames; i++)
    {
      const CsLayoutFrame *fr = order[i];
      GtkSnapshot *s = bands_at (bands, fr->y);
      graphene_rect_t r = GRAPHENE_RECT_INIT ((float) fr->x, (float) fr->y, (float) fr->w,
                                              (float) fr->h);
      fill_rounded (s, &r, FRAME_RADIUS, &fill);
      stroke_rounded (s, &r, FRAME_RADIUS, 1, &border);
      if (f)
        {
          g_autofree char *text = g_strdup_printf ("▾ %s", last_component (fr->module));
          text_width (f->frame, text, fr->w - 16);
          put_text (s, f->frame, fr->x + 8, fr->y + 1.5, &label);
        }
    }
}

typedef struct {
  GdkRGBA fill, border, stripe, text, dim;
} BoxColours;

static void
box_colours (CsGraphView *self, const BoxInfo *bi, gboolean detailed, BoxColours *c)
{
  const Palette *p = palette (self);
  GdkRGBA hue = rgb (kinds[bi->kind].rgb, 1);
  GdkRGBA white = rgb (0xffffff, 1), black = rgb (0x000000, 1);
  c->stripe = p->dark ? mix (hue, white, 0.12f) : hue;
  c->text = with_alpha (p->fg, p->dark ? 0.95f : 0.88f);
  c->dim = with_alpha (p->fg, 0.58f);
  guint m = self->overlay - 1;
  if (self->overlay == CS_OVERLAY_NONE)
    {
      /* Without text (far out) the fill alone tells the kinds apart: stronger tints. */
      c->fill = p->dark ? mix (p->bg, hue, detailed ? 0.30f : 0.5f)
                        : mix (white, hue, detailed ? 0.16f : 0.42f);
      c->border = p->dark ? with_alpha (mix (hue, white, 0.2f), 0.55f)
                          : with_alpha (mix (hue, black, 0.15f), 0.45f);
    }
  else if (bi->v[m] <= 0 || self->vmax[m] <= 0)
    {
      /* Nothing to show (a pool has no weights): neutral, so that the scale's colours keep
       * meaning "some". */
      c->fill = mix (p->bg, p->fg, p->dark ? 0.07f : 0.045f);
      c->border = with_alpha (p->fg, 0.14f);
    }
  else
    {
      c->fill = ramp (p, sqrt (bi->v[m] / self->vmax[m]));
      gboolean light = luminance (&c->fill) > 0.42;
      c->text = light ? rgb (0x000000, 0.87f) : rgb (0xffffff, 0.96f);
      c->dim = light ? rgb (0x000000, 0.6f) : rgb (0xffffff, 0.72f);
      c->border = light ? rgb (0x000000, 0.16f) : rgb (0xffffff, 0.14f);
    }
  if (bi->train_only)
    {
      /* An auxiliary branch (not run at inference): present, but quieter. */
      c->fill = mix (c->fill, p->bg, 0.5f);
      c->text.alpha *= 0.7f;
      c->dim.alpha *= 0.7f;
      c->stripe.alpha = 0.5f;
    }
}

static void
draw_box (CsGraphView *self, GtkSnapshot *s, guint b, const Fonts *f)
{
  const CsLayoutBox *box = &self->layout->boxes[b];
  const BoxInfo *bi = &self->info[b];
  const Palette *p = palette (self);
  const CsGraph *g = self->model->graph;
  const CsNode *n = cs_graph_node (g, box->node);
  BoxColours c;
  box_colours (self, bi, f != NULL, &c);
  graphene_rect_t r = GRAPHENE_RECT_INIT ((float) box->x, (float) box->y, (float) box->w,
                                          (float) box->h);
  gboolean block = box->module != NULL;
  if (block)
    {
      /* A stack of cards: several layers behind one face. */
      for (int k = 2; k >= 1; k--)
        {
          graphene_rect_t back = r;
          graphene_rect_offset (&back, 3.5f * k, 3.5f * k);
          GdkRGBA bf = mix (c.fill, p->fg, 0.05f * k);
          fill_rounded (s, &back, BOX_RADIUS, &bf);
          stroke_rounded (s, &back, BOX_RADIUS, 1, &c.border);
        }
    }
  if (f && !p->dark && !bi->train_only)
    {
      GskRoundedRect rr;
      gsk_rounded_rect_init_from_rect (&rr, &r, BOX_RADIUS);
      gtk_snapshot_append_outset_shadow (s, &rr, &(GdkRGBA) { 0, 0, 0, 0.10f }, 0, 1, 0, 2);
    }
  GskRoundedRect rr;
  gsk_rounded_rect_init_from_rect (&rr, &r, BOX_RADIUS);
  gtk_snapshot_push_rounded_clip (s, &rr);
  gtk_snapshot_append_color (s, &c.fill, &r);
  gtk_snapshot_append_color (s, &c.stripe,
                             &GRAPHENE_RECT_INIT (r.origin.x, r.origin.y, STRIPE_W, r.size.height));
  guint m = self->overlay - 1;
  gboolean bar = self->overlay != CS_OVERLAY_NONE && bi->v[m] > 0 && self->vmax[m] > 0;
  const double left = STRIPE_W + 8, right = 9;
  if (bar)
    {
      /* Linear in the value: the colour is on a square-root scale, the bar keeps the true
       * proportions (conv1's 3.2M against fc6's 4K). */
      double span = box->w - left - right;
      double len = MAX (1.5, span * bi->v[m] / self->vmax[m]);
      GdkRGBA track = with_alpha (c.text, 0.14f), fill = with_alpha (c.text, 0.78f);
      gtk_snapshot_append_color (s, &track, &GRAPHENE_RECT_INIT ((float) (box->x + left),
                                 (float) (box->y + box->h - 6.5), (float) span, 3));
      gtk_snapshot_append_color (s, &fill, &GRAPHENE_RECT_INIT ((float) (box->x + left),
                                 (float) (box->y + box->h - 6.5), (float) len, 3));
    }
  gtk_snapshot_pop (s);
  stroke_rounded (s, &r, BOX_RADIUS, 1, &c.border);
  if (f == NULL)
    return;

  double y1 = box->y + (bar ? 5 : 6.5), y2 = box->y + (bar ? 22.5 : 24.5);
  double inner = box->w - left - right;
  g_autofree char *title = NULL, *note = NULL, *detail = NULL, *value = NULL;
  if (block)
    {
      title = g_strdup_printf ("▸ %s", last_component (box->module));
      note = g_strdup_printf ("%u layers", box->n_members);
      if (self->overlay == CS_OVERLAY_NONE)
        {
          g_autofree char *pp = cs_format_si ((guint64) bi->v[M_PARAMS]);
          g_autofree char *mm = cs_format_si ((guint64) bi->v[M_MACS]);
          detail = g_strdup_printf ("%s params · %s MACs", pp, mm);
        }
      else
        detail = volume_text (&n->shape);
    }
  else
    {
      title = node_label (g, n);
      const char *name = last_component (n->name);
      if (g_ascii_strcasecmp (name, title) != 0)
        note = g_strdup (name);
      detail = volume_text (&n->shape);
    }
  if (self->overlay != CS_OVERLAY_NONE)
    {
      if (bi->v[m] > 0)
        value = measure_text (m, bi->v[m], bi);
      else if (m < M_FORWARD || has_times (self, m))
        value = g_strdup ("—");
    }

  double tw = text_width (f->title, title, inner);
  put_text (s, f->title, box->x + left, y1, &c.text);
  if (note)
    {
      double room = inner - tw - 10;
      if (room >= 28)
        {
          double nw = text_width (f->note, note, room);
          put_text (s, f->note, box->x + box->w - right - nw, y1 + 1.5, &c.dim);
        }
    }
  double vw = 0;
  if (value)
    {
      vw = text_width (f->value, value, 0);
      put_text (s, f->value, box->x + box->w - right - vw, y2, &c.text);
      vw += 8;
    }
  text_width (f->detail, detail, inner - vw);
  put_text (s, f->detail, box->x + left, y2, block && !value ? &c.text : &c.dim);
}

/* Frames under edges under boxes, each layer in bands from the top. */
static GPtrArray *
build_scene (CsGraphView *self, gboolean detailed)
{
  const CsLayout *l = self->layout;
  GPtrArray *layers = g_ptr_array_new_with_free_func ((GDestroyNotify) gsk_render_node_unref);
  Fonts f = { 0 };
  if (detailed)
    fonts_init (self, &f);

  Bands bands;
  bands_init (&bands, l->height);
  draw_frames (self, &bands, detailed ? &f : NULL);
  bands_finish (&bands, layers);

  if (self->edges == NULL)
    self->edges = build_edges (self);
  for (guint i = 0; i < self->edges->len; i++)
    g_ptr_array_add (layers, gsk_render_node_ref (self->edges->pdata[i]));

  bands_init (&bands, l->height);
  for (guint b = 0; b < l->n_boxes; b++)
    draw_box (self, bands_at (&bands, l->boxes[b].y), b, detailed ? &f : NULL);
  bands_finish (&bands, layers);

  fonts_clear (&f);
  return layers;
}

static GPtrArray *
scene (CsGraphView *self, gboolean detailed)
{
  if (self->scene[detailed] == NULL && self->layout && self->info)
    self->scene[detailed] = build_scene (self, detailed);
  return self->scene[detailed];
}

/* The selected box's ring and its edges in the accent colour: small, rebuilt on selection. */
static GskRenderNode *
build_selection (CsGraphView *self)
{
  const CsLayout *l = self->layout;
  if (l == NULL || self->selected < 0 || self->model == NULL
      || (guint) self->selected >= self->model->n)
    return NULL;
  guint b = l->box_of_node[self->selected];
  if (b >= l->n_boxes)
    return NULL;
  const Palette *p = palette (self);
  GtkSnapshot *s = gtk_snapshot_new ();
  GdkRGBA accent = p->accent;
  for (guint i = 0; i < l->n_edges; i++)
    {
      const CsLayoutEdge *e = &l->edges[i];
      if (e->from == b || e->to == b)
        draw_edge (s, e, &accent, 2.2, FALSE);
    }
  const CsLayoutBox *box = &l->boxes[b];
  graphene_rect_t r = GRAPHENE_RECT_INIT ((float) box->x - 3.5f, (float) box->y - 3.5f,
                                          (float) box->w + 7, (float) box->h + 7);
  stroke_rounded (s, &r, BOX_RADIUS + 3.5f, 2.5f, &accent);
  return gtk_snapshot_free_to_node (s);
}

/* ---- Legend ----------------------------------------------------------------------------- */

static GskRenderNode *
build_legend (CsGraphView *self, double *width, double *height)
{
  *width = *height = 0;
  if (self->layout == NULL || self->info == NULL)
    return NULL;
  const Palette *p = palette (self);
  GtkSnapshot *s = gtk_snapshot_new ();
  g_autoptr (PangoLayout) title = make_layout (self, 12, PANGO_WEIGHT_BOLD, FALSE);
  g_autoptr (PangoLayout) small = make_layout (self, 10.5, PANGO_WEIGHT_NORMAL, TRUE);
  GdkRGBA fg = with_alpha (p->fg, 0.9f), dim = with_alpha (p->fg, 0.6f);
  const double pad = 12, W = 232;
  double y = pad;
  GtkSnapshot *body = gtk_snapshot_new ();

  if (self->overlay == CS_OVERLAY_NONE)
    {
      gboolean present[N_KINDS] = { FALSE };
      for (guint b = 0; b < self->layout->n_boxes; b++)
        present[self->info[b].kind] = TRUE;
      text_width (title, "Layer kinds", 0);
      put_text (body, title, pad, y, &fg);
      y += 20;
      double x = pad;
      for (guint k = 0; k < N_KINDS; k++)
        {
          if (!present[k])
            continue;
          double tw = text_width (small, kinds[k].name, 0);
          if (x + 14 + tw > W - pad && x > pad)
            x = pad, y += 17;
          GdkRGBA hue = rgb (kinds[k].rgb, 1);
          graphene_rect_t sw = GRAPHENE_RECT_INIT ((float) x, (float) y + 2.5f, 10, 10);
          fill_rounded (body, &sw, 2.5f, &hue);
          put_text (body, small, x + 14, y, &dim);
          x += 14 + tw + 12;
        }
      y += 17;
    }
  else
    {
      guint m = self->overlay - 1;
      text_width (title, measure_titles[m], 0);
      put_text (body, title, pad, y, &fg);
      y += 17;
      text_width (small, measure_subtitles[m], W - 2 * pad);
      put_text (body, small, pad, y, &dim);
      y += 19;
      if (self->vmax[m] <= 0)
        {
          const char *why = m >= M_FORWARD ? "No times yet: run a profile." : "All zero.";
          text_width (small, why, W - 2 * pad);
          put_text (body, small, pad, y, &fg);
          y += 16;
        }
      else
        {
          /* The ramp as it is used: colour at sqrt(v / max), ticks at 0, max/4 and max. */
          const guint N = 24;
          GskColorStop stops[24];
          for (guint i = 0; i < N; i++)
            stops[i] = (GskColorStop) { (float) i / (N - 1), ramp (p, (double) i / (N - 1)) };
          graphene_rect_t bar = GRAPHENE_RECT_INIT ((float) pad, (float) y,
                                                    (float) (W - 2 * pad), 12);
          GskRoundedRect rr;
          gsk_rounded_rect_init_from_rect (&rr, &bar, 3);
          gtk_snapshot_push_rounded_clip (body, &rr);
          gtk_snapshot_append_linear_gradient (body, &bar,
                                               &GRAPHENE_POINT_INIT (bar.origin.x, 0),
                                               &GRAPHENE_POINT_INIT (bar.origin.x
                                                                     + bar.size.width, 0),
                                               stops, N);
          gtk_snapshot_pop (body);
          GdkRGBA edge = with_alpha (p->fg, 0.15f);
          stroke_rounded (body, &bar, 3, 1, &edge);
          y += 15;
          g_autofree char *t_max = measure_text (m, self->vmax[m], NULL);
          g_autofree char *t_q = measure_text (m, self->vmax[m] / 4, NULL);
          double wq = text_width (small, t_q, 0);
          put_text (body, small, pad + (W - 2 * pad) / 2 - wq / 2, y, &dim);
          double wm = text_width (small, t_max, 0);
          put_text (body, small, W - pad - wm, y, &fg);
          text_width (small, "0", 0);
          put_text (body, small, pad, y, &dim);
          y += 17;
          const char *note = "colour: √ scale · bar: linear";
          text_width (small, note, W - 2 * pad);
          put_text (body, small, pad, y, &dim);
          y += 15;
          gint mb = self->vmax_box[m];
          if (mb >= 0)
            {
              const CsLayoutBox *box = &self->layout->boxes[mb];
              const char *who = box->module ? box->module
                                            : cs_graph_node (self->model->graph,
                                                             box->node)->name;
              g_autofree char *line = NULL;
              if (m == M_RF)
                line = g_strdup_printf ("max at %s", who);
              else
                {
                  g_autofree char *tot = measure_text (m, self->vsum[m], NULL);
                  line = g_strdup_printf ("total %s · max at %s", tot, who);
                }
              text_width (small, line, W - 2 * pad);
              put_text (body, small, pad, y, &dim);
              y += 15;
            }
        }
    }
  y += pad - 3;
  graphene_rect_t card = GRAPHENE_RECT_INIT (0, 0, (float) W, (float) y);
  GskRoundedRect rr;
  gsk_rounded_rect_init_from_rect (&rr, &card, 10);
  gtk_snapshot_append_outset_shadow (s, &rr, &(GdkRGBA) { 0, 0, 0, p->dark ? 0.4f : 0.12f },
                                     0, 1, 0, 5);
  GdkRGBA bg = with_alpha (mix (p->bg, p->fg, p->dark ? 0.06f : 0.0f), 0.94f);
  fill_rounded (s, &card, 10, &bg);
  GdkRGBA border = with_alpha (p->fg, 0.12f);
  stroke_rounded (s, &card, 10, 1, &border);
  GskRenderNode *content = gtk_snapshot_free_to_node (body);
  if (content)
    {
      gtk_snapshot_append_node (s, content);
      gsk_render_node_unref (content);
    }
  *width = W, *height = y;
  return gtk_snapshot_free_to_node (s);
}

static GskRenderNode *
legend (CsGraphView *self)
{
  if (self->legend_node == NULL)
    self->legend_node = build_legend (self, &self->legend_w, &self->legend_h);
  return self->legend_node;
}

/* ---- View geometry ---------------------------------------------------------------------- */

static double
fit_zoom (CsGraphView *self)
{
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  if (self->layout == NULL || vw <= 0 || vh <= 0)
    return 1;
  double w = MAX (self->layout->width, 1), h = MAX (self->layout->height, 1);
  return MIN ((vw - 2 * VIEW_MARGIN) / w, (vh - 2 * VIEW_MARGIN) / h);
}

static double
zoom_min (CsGraphView *self)
{
  return MAX (ZOOM_FLOOR, MIN (0.25, fit_zoom (self) * 0.8));
}

/* Keeps part of the drawing in the view: it may move anywhere while it fits, and no further
 * than a margin past the view's edges when it does not. */
static void
clamp_view (CsGraphView *self)
{
  if (self->layout == NULL)
    return;
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  if (vw <= 0 || vh <= 0)
    return;
  double w = self->layout->width * self->zoom, h = self->layout->height * self->zoom;
  double lo = MIN (VIEW_MARGIN, vw - w - VIEW_MARGIN), hi = MAX (VIEW_MARGIN, vw - w - VIEW_MARGIN);
  self->ox = CLAMP (self->ox, lo, hi);
  lo = MIN (VIEW_MARGIN, vh - h - VIEW_MARGIN), hi = MAX (VIEW_MARGIN, vh - h - VIEW_MARGIN);
  self->oy = CLAMP (self->oy, lo, hi);
}

static void
stop_animation (CsGraphView *self)
{
  if (self->anim_tick)
    {
      gtk_widget_remove_tick_callback (GTK_WIDGET (self), self->anim_tick);
      self->anim_tick = 0;
    }
}

static void
set_zoom_at (CsGraphView *self, double zoom, double px, double py)
{
  zoom = CLAMP (zoom, zoom_min (self), ZOOM_MAX);
  if (!isfinite (zoom) || zoom <= 0)
    return;
  stop_animation (self);
  double k = zoom / self->zoom;
  self->ox = px - (px - self->ox) * k;
  self->oy = py - (py - self->oy) * k;
  gboolean changed = zoom != self->zoom;
  self->zoom = zoom;
  clamp_view (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

static void
set_view (CsGraphView *self, double zoom, double ox, double oy)
{
  zoom = CLAMP (zoom, zoom_min (self), ZOOM_MAX);
  gboolean changed = zoom != self->zoom;
  stop_animation (self);
  self->zoom = zoom, self->ox = ox, self->oy = oy;
  clamp_view (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

static gboolean
anim_step (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  double t = (gdk_frame_clock_get_frame_time (clock) - self->anim_start) / (double) PAN_ANIM_US;
  t = CLAMP (t, 0.0, 1.0);
  double e = 1 - pow (1 - t, 3);
  self->ox = self->anim_from[0] + (self->anim_to[0] - self->anim_from[0]) * e;
  self->oy = self->anim_from[1] + (self->anim_to[1] - self->anim_from[1]) * e;
  gtk_widget_queue_draw (widget);
  if (t >= 1)
    {
      self->anim_tick = 0;
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* Pans to (OX, OY), smoothly when on screen so that the eye can follow. */
static void
pan_to (CsGraphView *self, double ox, double oy)
{
  double keep_x = self->ox, keep_y = self->oy;
  self->ox = ox, self->oy = oy;
  clamp_view (self);
  ox = self->ox, oy = self->oy;
  if (!gtk_widget_get_mapped (GTK_WIDGET (self)) || (fabs (ox - keep_x) < 1 && fabs (oy - keep_y) < 1))
    {
      stop_animation (self);
      gtk_widget_queue_draw (GTK_WIDGET (self));
      return;
    }
  self->ox = keep_x, self->oy = keep_y;
  self->anim_from[0] = keep_x, self->anim_from[1] = keep_y;
  self->anim_to[0] = ox, self->anim_to[1] = oy;
  GdkFrameClock *clock = gtk_widget_get_frame_clock (GTK_WIDGET (self));
  self->anim_start = clock ? gdk_frame_clock_get_frame_time (clock) : g_get_monotonic_time ();
  if (self->anim_tick == 0)
    self->anim_tick = gtk_widget_add_tick_callback (GTK_WIDGET (self), anim_step, NULL, NULL);
}

/* Brings box B into view: to the centre with CENTRE, else by the least move. */
static void
reveal_box (CsGraphView *self, guint b, gboolean centre)
{
  const CsLayout *l = self->layout;
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  if (l == NULL || b >= l->n_boxes || vw <= 0 || vh <= 0)
    return;
  const CsLayoutBox *box = &l->boxes[b];
  double z = self->zoom;
  double cx = box->x + box->w / 2, cy = box->y + box->h / 2;
  double ox = self->ox, oy = self->oy;
  if (centre)
    ox = vw / 2 - cx * z, oy = vh / 2 - cy * z;
  else
    {
      const double m = 24;
      double x0 = box->x * z + ox, x1 = (box->x + box->w) * z + ox;
      double y0 = box->y * z + oy, y1 = (box->y + box->h) * z + oy;
      if (x1 - x0 > vw - 2 * m)
        ox = vw / 2 - cx * z;
      else if (x0 < m)
        ox += m - x0;
      else if (x1 > vw - m)
        ox -= x1 - (vw - m);
      if (y1 - y0 > vh - 2 * m)
        oy = vh / 2 - cy * z;
      else if (y0 < m)
        oy += m - y0;
      else if (y1 > vh - m)
        oy -= y1 - (vh - m);
    }
  pan_to (self, ox, oy);
}

/* The first view of a model: all of it when that is readable, else its top at a size that
 * is (the lecture's VGG16 fits; a ResNet starts at its stem). */
static void
initial_view (CsGraphView *self)
{
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  if (self->layout == NULL || vw <= 0 || vh <= 0)
    return;
  double w = MAX (self->layout->width, 1), h = MAX (self->layout->height, 1);
  double fit = fit_zoom (self);
  double z;
  if (fit >= 0.6)
    z = MIN (fit, 1.0);
  else
    z = CLAMP ((vw - 2 * VIEW_MARGIN) / w, 0.6, 0.9);
  self->view_valid = TRUE;
  set_view (self, z, (vw - w * z) / 2, fit >= 0.6 ? (vh - h * z) / 2 : VIEW_MARGIN);
}

/* The node whose box is nearest the middle of the view, and where that box is. */
static gint
centre_node (CsGraphView *self, double *sx, double *sy)
{
  const CsLayout *l = self->layout;
  if (l == NULL || l->n_boxes == 0)
    return -1;
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  double gx = (vw / 2 - self->ox) / self->zoom, gy = (vh / 2 - self->oy) / self->zoom;
  guint best = 0;
  double bd = G_MAXDOUBLE;
  for (guint b = 0; b < l->n_boxes; b++)
    {
      double dx = l->boxes[b].x + l->boxes[b].w / 2 - gx, dy = l->boxes[b].y - gy;
      double d = dx * dx + dy * dy;
      if (d < bd)
        bd = d, best = b;
    }
  *sx = (l->boxes[best].x + l->boxes[best].w / 2) * self->zoom + self->ox;
  *sy = l->boxes[best].y * self->zoom + self->oy;
  return (gint) l->boxes[best].node;
}

static void
anchor_clear (Anchor *a)
{
  g_clear_pointer (&a->module, g_free);
  a->active = FALSE;
  a->centre = FALSE;
  a->node = -1;
}

/* The top centre of what the anchor names in layout L. */
static gboolean
anchor_point (const CsLayout *l, const Anchor *a, double *gx, double *gy)
{
  if (a->module)
    {
      for (guint b = 0; b < l->n_boxes; b++)
        if (l->boxes[b].module && strcmp (l->boxes[b].module, a->module) == 0)
          {
            *gx = l->boxes[b].x + l->boxes[b].w / 2, *gy = l->boxes[b].y;
            return TRUE;
          }
      for (guint f = 0; f < l->n_frames; f++)
        if (strcmp (l->frames[f].module, a->module) == 0)
          {
            *gx = l->frames[f].x + l->frames[f].w / 2, *gy = l->frames[f].y;
            return TRUE;
          }
      return FALSE;
    }
  if (a->node >= 0)
    {
      guint b = l->box_of_node[a->node];
      if (b < l->n_boxes)
        {
          *gx = l->boxes[b].x + l->boxes[b].w / 2, *gy = l->boxes[b].y;
          return TRUE;
        }
    }
  return FALSE;
}

/* Remembers what is in the middle of the view, to keep it there across a relayout. */
static void
anchor_on_centre (CsGraphView *self)
{
  if (self->anchor.active || self->layout == NULL || !self->view_valid)
    return;
  double sx, sy;
  gint node = centre_node (self, &sx, &sy);
  if (node < 0)
    return;
  anchor_clear (&self->anchor);
  self->anchor.active = TRUE;
  self->anchor.node = node;
  self->anchor.sx = sx, self->anchor.sy = sy;
}

static void
anchor_on_module (CsGraphView *self, const char *module)
{
  if (self->layout == NULL || !self->view_valid)
    return;
  Anchor a = { TRUE, (char *) module, -1, FALSE, 0, 0 };
  double gx, gy;
  if (!anchor_point (self->layout, &a, &gx, &gy))
    {
      anchor_on_centre (self);
      return;
    }
  anchor_clear (&self->anchor);
  self->anchor.active = TRUE;
  self->anchor.module = g_strdup (module);
  self->anchor.sx = gx * self->zoom + self->ox;
  self->anchor.sy = gy * self->zoom + self->oy;
}

static void
apply_anchor (CsGraphView *self)
{
  Anchor *a = &self->anchor;
  double gx, gy;
  if (!a->active || self->layout == NULL || !anchor_point (self->layout, a, &gx, &gy))
    {
      clamp_view (self);
      anchor_clear (a);
      return;
    }
  if (a->centre)
    {
      guint b = self->layout->box_of_node[a->node];
      anchor_clear (a);
      clamp_view (self);
      reveal_box (self, b, TRUE);
      return;
    }
  self->ox = a->sx - gx * self->zoom;
  self->oy = a->sy - gy * self->zoom;
  anchor_clear (a);
  clamp_view (self);
}

/* ---- The worker ------------------------------------------------------------------------- */

static void
job_free (gpointer data)
{
  LayoutJob *job = data;
  model_unref (job->model);
  g_hash_table_unref (job->collapsed);
  g_free (job);
}

static void
layout_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  LayoutJob *job = data;
  GError *error = NULL;
  CsLayout *l = cs_layout_compute (job->model->graph, job->collapsed, job->fold, &job->metrics,
                                   cancellable, &error);
  if (l)
    g_task_return_pointer (task, l, (GDestroyNotify) cs_layout_free);
  else
    g_task_return_error (task, error);
}

static void
set_busy (CsGraphView *self, gboolean busy)
{
  gboolean was_ready = cs_graph_view_is_ready (self);
  self->busy = busy;
  if (busy)
    self->busy_since = g_get_monotonic_time ();
  else if (self->busy_tick)
    {
      gtk_widget_remove_tick_callback (GTK_WIDGET (self), self->busy_tick);
      self->busy_tick = 0;
    }
  if (was_ready != cs_graph_view_is_ready (self))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_READY]);
}

static void
install_layout (CsGraphView *self, CsLayout *l)
{
  gboolean new_model = self->model != self->want
                       && (self->model == NULL || self->model->graph != self->want->graph);
  g_clear_pointer (&self->layout, cs_layout_free);
  self->layout = l;
  if (self->model != self->want)
    {
      g_clear_pointer (&self->model, model_unref);
      self->model = model_ref (self->want);
    }
  compute_info (self);
  drop_all_caches (self);
  if (new_model)
    {
      self->view_valid = FALSE;
      anchor_clear (&self->anchor);
    }
  if (!self->view_valid)
    initial_view (self);
  if (self->view_valid)
    apply_anchor (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
layout_done (GObject *source, GAsyncResult *res, gpointer data)
{
  CsGraphView *self = CS_GRAPH_VIEW (source);
  guint serial = GPOINTER_TO_UINT (data);
  GError *error = NULL;
  CsLayout *l = g_task_propagate_pointer (G_TASK (res), &error);
  if (serial != self->serial)
    {
      /* A newer request replaced this one; its result is of no use. */
      g_clear_pointer (&l, cs_layout_free);
      g_clear_error (&error);
      return;
    }
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->error, g_free);
  if (l)
    install_layout (self, l);
  else
    {
      self->error = g_strdup (error ? error->message : "layout failed");
      g_warning ("graph view: %s", self->error);
      g_clear_error (&error);
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
  set_busy (self, FALSE);
}

static gboolean
busy_step (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  if (!self->busy)
    {
      self->busy_tick = 0;
      return G_SOURCE_REMOVE;
    }
  if (g_get_monotonic_time () - self->busy_since >= BUSY_DELAY_US)
    gtk_widget_queue_draw (widget);
  return G_SOURCE_CONTINUE;
}

/* Starts a layout of the wanted model with the current collapse state and fold; a layout still
 * running is cancelled. The last layout stays on screen until the new one is done. */
static void
request_layout (CsGraphView *self)
{
  if (self->cancellable)
    {
      g_cancellable_cancel (self->cancellable);
      g_clear_object (&self->cancellable);
    }
  self->serial++;
  if (self->want == NULL)
    {
      set_busy (self, FALSE);
      return;
    }
  LayoutJob *job = g_new0 (LayoutJob, 1);
  job->model = model_ref (self->want);
  job->collapsed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, self->collapsed);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_hash_table_add (job->collapsed, g_strdup (key));
  job->fold = self->fold;
  job->metrics = (CsLayoutMetrics) { BOX_W, BOX_H, H_GAP, V_GAP, MODULE_PAD };
  job->serial = self->serial;

  self->cancellable = g_cancellable_new ();
  GTask *task = g_task_new (self, self->cancellable, layout_done, GUINT_TO_POINTER (self->serial));
  g_task_set_source_tag (task, request_layout);
  g_task_set_task_data (task, job, job_free);
  g_task_run_in_thread (task, layout_thread);
  g_object_unref (task);

  set_busy (self, TRUE);
  if (self->busy_tick == 0)
    self->busy_tick = gtk_widget_add_tick_callback (GTK_WIDGET (self), busy_step, NULL, NULL);
}

/* ---- Snapshot --------------------------------------------------------------------------- */

static void
draw_message (CsGraphView *self, GtkSnapshot *s, const char *text)
{
  const Palette *p = palette (self);
  PangoLayout *l = gtk_widget_create_pango_layout (GTK_WIDGET (self), text);
  int w, h;
  pango_layout_set_width (l, (int) (MAX (50, gtk_widget_get_width (GTK_WIDGET (self)) - 48) * PANGO_SCALE));
  pango_layout_set_alignment (l, PANGO_ALIGN_CENTER);
  pango_layout_get_pixel_size (l, &w, &h);
  GdkRGBA dim = with_alpha (p->fg, 0.55f);
  put_text (s, l, (gtk_widget_get_width (GTK_WIDGET (self)) - w) / 2.0,
            (gtk_widget_get_height (GTK_WIDGET (self)) - h) / 2.0, &dim);
  g_object_unref (l);
}

/* "Laying out…" in a pill at the top, with a turning arc. */
static void
draw_busy (CsGraphView *self, GtkSnapshot *s)
{
  const Palette *p = palette (self);
  PangoLayout *l = gtk_widget_create_pango_layout (GTK_WIDGET (self), "Laying out…");
  int tw, th;
  pango_layout_get_pixel_size (l, &tw, &th);
  double w = tw + 52, h = th + 14;
  double x = (gtk_widget_get_width (GTK_WIDGET (self)) - w) / 2, y = 12;
  graphene_rect_t r = GRAPHENE_RECT_INIT ((float) x, (float) y, (float) w, (float) h);
  GskRoundedRect rr;
  gsk_rounded_rect_init_from_rect (&rr, &r, (float) h / 2);
  gtk_snapshot_append_outset_shadow (s, &rr, &(GdkRGBA) { 0, 0, 0, 0.2f }, 0, 1, 0, 4);
  GdkRGBA bg = with_alpha (mix (p->bg, p->fg, 0.05f), 0.96f);
  fill_rounded (s, &r, (float) h / 2, &bg);
  GdkRGBA fg = with_alpha (p->fg, 0.85f);
  put_text (s, l, x + 38, y + 7, &fg);
  g_object_unref (l);
  double cx = x + 22, cy = y + h / 2, rad = 6.5;
  double phase = fmod (g_get_monotonic_time () / 1e6 * 2 * G_PI * 1.1, 2 * G_PI);
  cairo_t *cr = gtk_snapshot_append_cairo (s, &GRAPHENE_RECT_INIT ((float) (cx - 9), (float) (cy - 9), 18, 18));
  cairo_set_line_width (cr, 2);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  gdk_cairo_set_source_rgba (cr, &(GdkRGBA) { p->fg.red, p->fg.green, p->fg.blue, 0.15f });
  cairo_arc (cr, cx, cy, rad, 0, 2 * G_PI);
  cairo_stroke (cr);
  gdk_cairo_set_source_rgba (cr, &p->accent);
  cairo_arc (cr, cx, cy, rad, phase, phase + G_PI * 0.6);
  cairo_stroke (cr);
  cairo_destroy (cr);
}

static void
cs_graph_view_snapshot (GtkWidget *widget, GtkSnapshot *s)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  double vw = gtk_widget_get_width (widget), vh = gtk_widget_get_height (widget);
  if (self->want == NULL && self->layout == NULL)
    {
      draw_message (self, s, "No model");
      return;
    }
  if (self->layout && self->info)
    {
      gboolean detailed = self->zoom >= TEXT_ZOOM;
      GPtrArray *nodes = scene (self, detailed);
      if (self->selection_node == NULL)
        self->selection_node = build_selection (self);
      gtk_snapshot_push_clip (s, &GRAPHENE_RECT_INIT (0, 0, (float) vw, (float) vh));
      gtk_snapshot_save (s);
      /* Whole-pixel offsets keep text and 1 px lines sharp at zoom 1. */
      gtk_snapshot_translate (s, &GRAPHENE_POINT_INIT ((float) round (self->ox),
                                                       (float) round (self->oy)));
      gtk_snapshot_scale (s, (float) self->zoom, (float) self->zoom);
      graphene_rect_t seen = GRAPHENE_RECT_INIT ((float) (-round (self->ox) / self->zoom),
                                                 (float) (-round (self->oy) / self->zoom),
                                                 (float) (vw / self->zoom),
                                                 (float) (vh / self->zoom));
      for (guint i = 0; nodes && i < nodes->len; i++)
        {
          graphene_rect_t b;
          gsk_render_node_get_bounds (nodes->pdata[i], &b);
          if (graphene_rect_intersection (&b, &seen, NULL))
            gtk_snapshot_append_node (s, nodes->pdata[i]);
        }
      const Palette *p = palette (self);
      if (self->hover_frame >= 0 && (guint) self->hover_frame < self->layout->n_frames)
        {
          const CsLayoutFrame *fr = &self->layout->frames[self->hover_frame];
          GdkRGBA c = with_alpha (p->accent, 0.10f);
          graphene_rect_t r = GRAPHENE_RECT_INIT ((float) fr->x, (float) fr->y, (float) fr->w,
                                                  (float) fr->h);
          fill_rounded (s, &r, FRAME_RADIUS, &c);
          c.alpha = 0.6f;
          stroke_rounded (s, &r, FRAME_RADIUS, 1.5f, &c);
        }
      if (self->hover_box >= 0 && (guint) self->hover_box < self->layout->n_boxes)
        {
          const CsLayoutBox *b = &self->layout->boxes[self->hover_box];
          GdkRGBA c = with_alpha (p->fg, 0.45f);
          graphene_rect_t r = GRAPHENE_RECT_INIT ((float) b->x - 1.5f, (float) b->y - 1.5f,
                                                  (float) b->w + 3, (float) b->h + 3);
          stroke_rounded (s, &r, BOX_RADIUS + 1.5f, 1.5f, &c);
        }
      if (self->selection_node)
        gtk_snapshot_append_node (s, self->selection_node);
      gtk_snapshot_restore (s);
      gtk_snapshot_pop (s);

      GskRenderNode *leg = legend (self);
      if (leg && vw > self->legend_w + 40)
        {
          gtk_snapshot_save (s);
          gtk_snapshot_translate (s, &GRAPHENE_POINT_INIT ((float) round (vw - self->legend_w - 12), 12));
          gtk_snapshot_append_node (s, leg);
          gtk_snapshot_restore (s);
        }
    }
  else if (self->error)
    draw_message (self, s, self->error);
  if (self->busy && g_get_monotonic_time () - self->busy_since >= BUSY_DELAY_US)
    draw_busy (self, s);
}

/* ---- Input ------------------------------------------------------------------------------ */

static void
to_graph (CsGraphView *self, double x, double y, double *gx, double *gy)
{
  *gx = (x - self->ox) / self->zoom;
  *gy = (y - self->oy) / self->zoom;
}

static gint
box_at (CsGraphView *self, double x, double y)
{
  if (self->layout == NULL)
    return -1;
  double gx, gy;
  to_graph (self, x, y, &gx, &gy);
  return cs_layout_hit (self->layout, gx, gy);
}

/* The innermost frame whose header band (its top padding, with the name) holds (X, Y). */
static gint
frame_header_at (CsGraphView *self, double x, double y)
{
  if (self->layout == NULL)
    return -1;
  double gx, gy;
  to_graph (self, x, y, &gx, &gy);
  gint best = -1;
  guint depth = 0;
  for (guint i = 0; i < self->layout->n_frames; i++)
    {
      const CsLayoutFrame *f = &self->layout->frames[i];
      if (gx >= f->x && gx <= f->x + f->w && gy >= f->y && gy <= f->y + MODULE_PAD
          && f->depth >= depth)
        best = (gint) i, depth = f->depth;
    }
  return best;
}

static void
update_hover (CsGraphView *self)
{
  gint b = -1, f = -1;
  if (self->pointer_inside && !self->dragging)
    {
      b = box_at (self, self->pointer_x, self->pointer_y);
      if (b < 0)
        f = frame_header_at (self, self->pointer_x, self->pointer_y);
    }
  if (b != self->hover_box || f != self->hover_frame)
    {
      self->hover_box = b, self->hover_frame = f;
      gboolean clickable = f >= 0 || (b >= 0 && self->layout->boxes[b].module != NULL);
      gtk_widget_set_cursor_from_name (GTK_WIDGET (self),
                                       self->dragging ? "grabbing" : clickable ? "pointer" : NULL);
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
}

static void
on_motion (GtkEventControllerMotion *c, double x, double y, CsGraphView *self)
{
  self->pointer_x = x, self->pointer_y = y;
  self->pointer_inside = TRUE;
  update_hover (self);
}

static void
on_leave (GtkEventControllerMotion *c, CsGraphView *self)
{
  self->pointer_inside = FALSE;
  update_hover (self);
}

static gboolean
on_scroll (GtkEventControllerScroll *c, double dx, double dy, CsGraphView *self)
{
  if (self->layout == NULL)
    return FALSE;
  GdkModifierType mods = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (c));
  gboolean wheel = gtk_event_controller_scroll_get_unit (c) == GDK_SCROLL_UNIT_WHEEL;
  if (mods & GDK_CONTROL_MASK)
    {
      double px = self->pointer_inside ? self->pointer_x : gtk_widget_get_width (GTK_WIDGET (self)) / 2.0;
      double py = self->pointer_inside ? self->pointer_y : gtk_widget_get_height (GTK_WIDGET (self)) / 2.0;
      double factor = wheel ? pow (1.15, -dy) : exp (-dy * 0.01);
      set_zoom_at (self, self->zoom * factor, px, py);
      return TRUE;
    }
  if ((mods & GDK_SHIFT_MASK) && dx == 0)
    dx = dy, dy = 0;
  double step = wheel ? 60 : 1;
  stop_animation (self);
  self->ox -= dx * step;
  self->oy -= dy * step;
  clamp_view (self);
  update_hover (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

static void
on_drag_begin (GtkGestureDrag *g, double x, double y, CsGraphView *self)
{
  stop_animation (self);
  self->drag_ox = self->ox, self->drag_oy = self->oy;
  self->drag_moved = FALSE;
}

static void
on_drag_update (GtkGestureDrag *g, double dx, double dy, CsGraphView *self)
{
  if (!self->dragging && hypot (dx, dy) < 3)
    return;
  if (!self->dragging)
    {
      self->dragging = TRUE;
      self->drag_moved = TRUE;
      gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "grabbing");
      self->hover_box = self->hover_frame = -1;
    }
  self->ox = self->drag_ox + dx, self->oy = self->drag_oy + dy;
  clamp_view (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
on_drag_end (GtkGestureDrag *g, double dx, double dy, CsGraphView *self)
{
  if (self->dragging)
    {
      self->dragging = FALSE;
      gtk_widget_set_cursor_from_name (GTK_WIDGET (self), NULL);
      self->hover_box = self->hover_frame = -2;   /* forces the cursor to be set again */
      update_hover (self);
    }
}

static void
on_zoom_begin (GtkGesture *g, GdkEventSequence *seq, CsGraphView *self)
{
  self->pinch_zoom = self->zoom;
}

static void
on_zoom_scale (GtkGestureZoom *g, double scale, CsGraphView *self)
{
  double cx, cy;
  if (!gtk_gesture_get_bounding_box_center (GTK_GESTURE (g), &cx, &cy))
    cx = gtk_widget_get_width (GTK_WIDGET (self)) / 2.0, cy = gtk_widget_get_height (GTK_WIDGET (self)) / 2.0;
  set_zoom_at (self, self->pinch_zoom * scale, cx, cy);
}

static void
select_node (CsGraphView *self, gint node, gboolean user)
{
  if (self->want == NULL || node < -1 || node >= (gint) self->want->n)
    node = -1;
  if (node == self->selected)
    return;
  self->selected = node;
  g_clear_pointer (&self->selection_node, gsk_render_node_unref);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SELECTED]);
  if (user)
    g_signal_emit (self, signals[NODE_SELECTED], 0, node);
}

static void
toggle_module (CsGraphView *self, const char *module, gboolean collapse)
{
  anchor_on_module (self, module);
  cs_graph_view_set_collapsed (self, module, collapse);
}

static void
on_pressed (GtkGestureClick *g, int n_press, double x, double y, CsGraphView *self)
{
  if (n_press != 2 || self->layout == NULL)
    return;
  gint b = box_at (self, x, y);
  if (b >= 0 && self->layout->boxes[b].module)
    {
      g_autofree char *module = g_strdup (self->layout->boxes[b].module);
      toggle_module (self, module, FALSE);
      return;
    }
  gint f = b < 0 ? frame_header_at (self, x, y) : -1;
  if (f >= 0)
    {
      g_autofree char *module = g_strdup (self->layout->frames[f].module);
      toggle_module (self, module, TRUE);
    }
}

static void
on_released (GtkGestureClick *g, int n_press, double x, double y, CsGraphView *self)
{
  if (n_press != 1 || self->layout == NULL || self->dragging || self->drag_moved)
    return;
  gint b = box_at (self, x, y);
  if (b >= 0)
    select_node (self, (gint) self->layout->boxes[b].node, TRUE);
  else if (frame_header_at (self, x, y) < 0)
    select_node (self, -1, TRUE);
}

static gboolean
cs_graph_view_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard,
                             GtkTooltip *tooltip)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  if (self->layout == NULL || self->model == NULL || keyboard)
    return FALSE;
  gint b = box_at (self, x, y);
  GString *s = g_string_new (NULL);
  if (b >= 0)
    {
      const CsLayoutBox *box = &self->layout->boxes[b];
      const BoxInfo *bi = &self->info[b];
      const CsNode *n = cs_graph_node (self->model->graph, box->node);
      g_autofree char *vol = volume_text (&n->shape);
      g_autofree char *pp = cs_format_si ((guint64) bi->v[M_PARAMS]);
      g_autofree char *mm = cs_format_si ((guint64) bi->v[M_MACS]);
      g_autofree char *act = cs_format_si ((guint64) bi->v[M_MEMORY]);
      if (box->module)
        {
          g_autofree char *name = g_markup_escape_text (box->module, -1);
          g_string_append_printf (s, "<b>%s</b>  (block of %u layers)\n", name, box->n_members);
        }
      else
        {
          g_autofree char *name = g_markup_escape_text (n->name, -1);
          g_string_append_printf (s, "<b>%s</b>  %s\n", name, cs_layer_class (n->op)->title);
          if (box->n_members > 1)
            {
              g_string_append (s, "with ");
              guint k = 0;
              for (guint i = 0; i < self->model->n; i++)
                if (i != box->node && self->layout->box_of_node[i] == (guint) b)
                  {
                    g_autofree char *o = g_markup_escape_text (cs_layer_class (cs_graph_node (self->model->graph, i)->op)->title, -1);
                    g_string_append_printf (s, "%s%s", k++ ? ", " : "", o);
                  }
              g_string_append_c (s, '\n');
            }
        }
      g_string_append_printf (s, "Output %s · memory %s\nParams %s · MACs %s", vol, act, pp, mm);
      g_string_append_printf (s, "\nReceptive field %" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT,
                              bi->rf_h, bi->rf_w);
      if (has_times (self, M_FORWARD) || has_times (self, M_BACKWARD))
        {
          g_autofree char *f = ms_text (bi->v[M_FORWARD]), *bw = ms_text (bi->v[M_BACKWARD]);
          g_string_append_printf (s, "\nForward %s · backward %s", f, bw);
        }
      if (bi->train_only)
        g_string_append (s, "\n<i>Training only (auxiliary branch)</i>");
      if (box->module)
        g_string_append (s, "\n<i>Double-click to expand</i>");
      graphene_rect_t r = GRAPHENE_RECT_INIT ((float) (box->x * self->zoom + self->ox),
                                              (float) (box->y * self->zoom + self->oy),
                                              (float) (box->w * self->zoom),
                                              (float) (box->h * self->zoom));
      gtk_tooltip_set_tip_area (tooltip, &(GdkRectangle) { (int) r.origin.x, (int) r.origin.y,
                                                           (int) r.size.width, (int) r.size.height });
    }
  else
    {
      gint f = frame_header_at (self, x, y);
      if (f < 0)
        {
          g_string_free (s, TRUE);
          return FALSE;
        }
      g_autofree char *name = g_markup_escape_text (self->layout->frames[f].module, -1);
      g_string_append_printf (s, "<b>%s</b>\n<i>Double-click to collapse</i>", name);
    }
  gtk_tooltip_set_markup (tooltip, s->str);
  g_string_free (s, TRUE);
  return TRUE;
}

/* ---- GtkWidget -------------------------------------------------------------------------- */

static void
cs_graph_view_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                       int *minimum, int *natural, int *min_baseline, int *nat_baseline)
{
  *minimum = 120;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 480 : 360;
}

static void
cs_graph_view_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  if (self->layout == NULL)
    return;
  if (!self->view_valid)
    {
      initial_view (self);
      apply_anchor (self);
    }
  if (self->fit_pending)
    cs_graph_view_zoom_fit (self);
  else
    clamp_view (self);
}

static void
cs_graph_view_css_changed (GtkWidget *widget, GtkCssStyleChange *change)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  GTK_WIDGET_CLASS (cs_graph_view_parent_class)->css_changed (widget, change);
  /* Called on every state change (hover too): rebuild only when the colours really moved. */
  Palette p;
  palette_read (self, &p);
  if (!self->pal_valid || !gdk_rgba_equal (&p.fg, &self->pal.fg)
      || !gdk_rgba_equal (&p.bg, &self->pal.bg) || !gdk_rgba_equal (&p.accent, &self->pal.accent))
    {
      self->pal = p;
      self->pal_valid = TRUE;
      drop_all_caches (self);
      gtk_widget_queue_draw (widget);
    }
}

static void
cs_graph_view_system_setting_changed (GtkWidget *widget, GtkSystemSetting setting)
{
  CsGraphView *self = CS_GRAPH_VIEW (widget);
  GTK_WIDGET_CLASS (cs_graph_view_parent_class)->system_setting_changed (widget, setting);
  g_clear_object (&self->pango);
  drop_all_caches (self);
  gtk_widget_queue_draw (widget);
}

static void
cs_graph_view_dispose (GObject *object)
{
  CsGraphView *self = CS_GRAPH_VIEW (object);
  if (self->cancellable)
    g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->serial++;
  stop_animation (self);
  if (self->busy_tick)
    gtk_widget_remove_tick_callback (GTK_WIDGET (self), self->busy_tick);
  self->busy_tick = 0;
  drop_all_caches (self);
  g_clear_pointer (&self->layout, cs_layout_free);
  g_clear_pointer (&self->info, g_free);
  g_clear_pointer (&self->model, model_unref);
  g_clear_pointer (&self->want, model_unref);
  g_clear_object (&self->pango);
  anchor_clear (&self->anchor);
  G_OBJECT_CLASS (cs_graph_view_parent_class)->dispose (object);
}

static void
cs_graph_view_finalize (GObject *object)
{
  CsGraphView *self = CS_GRAPH_VIEW (object);
  g_hash_table_unref (self->collapsed);
  g_free (self->forward_ms);
  g_free (self->backward_ms);
  g_free (self->error);
  G_OBJECT_CLASS (cs_graph_view_parent_class)->finalize (object);
}

static void
cs_graph_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  CsGraphView *self = CS_GRAPH_VIEW (object);
  switch (prop_id)
    {
    case PROP_STATS: g_value_set_pointer (value, self->stats); break;
    case PROP_OVERLAY: g_value_set_enum (value, self->overlay); break;
    case PROP_FOLD: g_value_set_boolean (value, self->fold); break;
    case PROP_SELECTED: g_value_set_int (value, self->selected); break;
    case PROP_ZOOM: g_value_set_double (value, self->zoom); break;
    case PROP_READY: g_value_set_boolean (value, cs_graph_view_is_ready (self)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
cs_graph_view_set_property (GObject *object, guint prop_id, const GValue *value,
                            GParamSpec *pspec)
{
  CsGraphView *self = CS_GRAPH_VIEW (object);
  switch (prop_id)
    {
    case PROP_STATS: cs_graph_view_set_stats (self, g_value_get_pointer (value)); break;
    case PROP_OVERLAY: cs_graph_view_set_overlay (self, g_value_get_enum (value)); break;
    case PROP_FOLD: cs_graph_view_set_fold (self, g_value_get_boolean (value)); break;
    case PROP_SELECTED: cs_graph_view_select (self, g_value_get_int (value)); break;
    case PROP_ZOOM:
      {
        double vw = gtk_widget_get_width (GTK_WIDGET (self)) / 2.0;
        double vh = gtk_widget_get_height (GTK_WIDGET (self)) / 2.0;
        set_zoom_at (self, g_value_get_double (value), vw, vh);
      }
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
cs_graph_view_class_init (CsGraphViewClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  oc->dispose = cs_graph_view_dispose;
  oc->finalize = cs_graph_view_finalize;
  oc->get_property = cs_graph_view_get_property;
  oc->set_property = cs_graph_view_set_property;
  wc->snapshot = cs_graph_view_snapshot;
  wc->measure = cs_graph_view_measure;
  wc->size_allocate = cs_graph_view_size_allocate;
  wc->css_changed = cs_graph_view_css_changed;
  wc->system_setting_changed = cs_graph_view_system_setting_changed;
  wc->query_tooltip = cs_graph_view_query_tooltip;

  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;
  properties[PROP_STATS] =
    g_param_spec_pointer ("stats", NULL, NULL, rw);
  properties[PROP_OVERLAY] =
    g_param_spec_enum ("overlay", NULL, NULL, CS_TYPE_OVERLAY, CS_OVERLAY_NONE, rw);
  properties[PROP_FOLD] =
    g_param_spec_boolean ("fold", NULL, NULL, TRUE, rw);
  properties[PROP_SELECTED] =
    g_param_spec_int ("selected", NULL, NULL, -1, G_MAXINT, -1, rw);
  properties[PROP_ZOOM] =
    g_param_spec_double ("zoom", NULL, NULL, ZOOM_FLOOR, ZOOM_MAX, 1.0, rw);
  properties[PROP_READY] =
    g_param_spec_boolean ("ready", NULL, NULL, TRUE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (oc, N_PROPS, properties);

  /* The user picked a node: by a click (-1 when clicking empty space) or through find. */
  signals[NODE_SELECTED] =
    g_signal_new ("node-selected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_INT);

  gtk_widget_class_set_css_name (wc, "graphview");
  gtk_widget_class_set_accessible_role (wc, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
cs_graph_view_init (CsGraphView *self)
{
  GtkWidget *w = GTK_WIDGET (self);
  self->collapsed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->fold = TRUE;
  self->selected = -1;
  self->zoom = 1;
  self->hover_box = self->hover_frame = -1;
  self->anchor.node = -1;
  gtk_widget_set_overflow (w, GTK_OVERFLOW_HIDDEN);
  gtk_widget_set_has_tooltip (w, TRUE);
  gtk_widget_add_css_class (w, "view");
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  "Layer graph", -1);

  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (on_motion), self);
  g_signal_connect (motion, "enter", G_CALLBACK (on_motion), self);
  g_signal_connect (motion, "leave", G_CALLBACK (on_leave), self);
  gtk_widget_add_controller (w, motion);

  GtkEventController *scroll =
    gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
  g_signal_connect (scroll, "scroll", G_CALLBACK (on_scroll), self);
  gtk_widget_add_controller (w, scroll);

  GtkGesture *drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (on_drag_begin), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (on_drag_update), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (on_drag_end), self);
  gtk_widget_add_controller (w, GTK_EVENT_CONTROLLER (drag));

  GtkGesture *zoom = gtk_gesture_zoom_new ();
  g_signal_connect (zoom, "begin", G_CALLBACK (on_zoom_begin), self);
  g_signal_connect (zoom, "scale-changed", G_CALLBACK (on_zoom_scale), self);
  gtk_widget_add_controller (w, GTK_EVENT_CONTROLLER (zoom));

  GtkGesture *click = gtk_gesture_click_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (click), GDK_BUTTON_PRIMARY);
  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  g_signal_connect (click, "released", G_CALLBACK (on_released), self);
  gtk_widget_add_controller (w, GTK_EVENT_CONTROLLER (click));
}

/* ---- Public API ------------------------------------------------------------------------- */

GtkWidget *
cs_graph_view_new (void)
{
  return g_object_new (CS_TYPE_GRAPH_VIEW, NULL);
}

void
cs_graph_view_set_stats (CsGraphView *self, CsStats *st)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  g_return_if_fail (st == NULL || st->graph != NULL);
  gboolean same_graph = st && self->want && self->want->graph == st->graph;
  gboolean changed = st != self->stats;
  self->stats = st;
  g_clear_pointer (&self->want, model_unref);
  g_clear_pointer (&self->error, g_free);
  if (st == NULL)
    {
      request_layout (self);   /* cancels */
      g_clear_pointer (&self->layout, cs_layout_free);
      g_clear_pointer (&self->info, g_free);
      g_clear_pointer (&self->model, model_unref);
      g_hash_table_remove_all (self->collapsed);
      g_clear_pointer (&self->forward_ms, g_free);
      g_clear_pointer (&self->backward_ms, g_free);
      self->n_times = 0;
      drop_all_caches (self);
      anchor_clear (&self->anchor);
      self->view_valid = FALSE;
      select_node (self, -1, FALSE);
    }
  else
    {
      self->want = model_new (st);
      if (same_graph)
        {
          /* Same network, new numbers (another batch): the layout still holds. */
          if (!self->busy && self->layout)
            {
              g_clear_pointer (&self->model, model_unref);
              self->model = model_ref (self->want);
              compute_info (self);
              drop_all_caches (self);
            }
        }
      else
        {
          g_hash_table_remove_all (self->collapsed);
          g_clear_pointer (&self->forward_ms, g_free);
          g_clear_pointer (&self->backward_ms, g_free);
          self->n_times = 0;
          anchor_clear (&self->anchor);
          select_node (self, -1, FALSE);
          request_layout (self);
        }
    }
  gtk_widget_queue_draw (GTK_WIDGET (self));
  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATS]);
}

CsStats *
cs_graph_view_get_stats (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), NULL);
  return self->stats;
}

void
cs_graph_view_set_overlay (CsGraphView *self, CsOverlay overlay)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  g_return_if_fail (overlay >= CS_OVERLAY_NONE && overlay <= CS_OVERLAY_BACKWARD_TIME);
  if (overlay == self->overlay)
    return;
  self->overlay = overlay;
  drop_scene (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_OVERLAY]);
}

CsOverlay
cs_graph_view_get_overlay (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), CS_OVERLAY_NONE);
  return self->overlay;
}

void
cs_graph_view_set_times (CsGraphView *self, const double *forward_ms, const double *backward_ms)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  g_clear_pointer (&self->forward_ms, g_free);
  g_clear_pointer (&self->backward_ms, g_free);
  self->n_times = 0;
  if (self->want && (forward_ms || backward_ms))
    {
      self->n_times = self->want->n;
      if (forward_ms)
        self->forward_ms = g_memdup2 (forward_ms, sizeof (double) * MAX (self->n_times, 1));
      if (backward_ms)
        self->backward_ms = g_memdup2 (backward_ms, sizeof (double) * MAX (self->n_times, 1));
    }
  compute_info (self);
  drop_scene (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
cs_graph_view_set_fold (CsGraphView *self, gboolean fold)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  fold = !!fold;
  if (fold == self->fold)
    return;
  self->fold = fold;
  if (self->want)
    {
      anchor_on_centre (self);
      request_layout (self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FOLD]);
}

gboolean
cs_graph_view_get_fold (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), TRUE);
  return self->fold;
}

void
cs_graph_view_select (CsGraphView *self, gint node)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  select_node (self, node, FALSE);
  if (self->selected >= 0 && self->layout && self->model == self->want)
    reveal_box (self, self->layout->box_of_node[self->selected], FALSE);
}

gint
cs_graph_view_get_selected (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), -1);
  return self->selected;
}

void
cs_graph_view_set_collapsed (CsGraphView *self, const char *module, gboolean collapsed)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  g_return_if_fail (module != NULL);
  gboolean now = g_hash_table_contains (self->collapsed, module);
  if (!!collapsed == now)
    return;
  if (collapsed)
    g_hash_table_add (self->collapsed, g_strdup (module));
  else
    g_hash_table_remove (self->collapsed, module);
  if (self->want)
    {
      anchor_on_module (self, module);
      request_layout (self);
    }
}

gboolean
cs_graph_view_get_collapsed (CsGraphView *self, const char *module)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), FALSE);
  return module && g_hash_table_contains (self->collapsed, module);
}

void
cs_graph_view_collapse_all (CsGraphView *self)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  if (self->want == NULL)
    return;
  /* Every module, not only the outermost: expanding one then shows its parts folded. */
  GPtrArray *mods = cs_graph_modules (self->want->graph);
  gboolean changed = FALSE;
  for (guint i = 0; i < mods->len; i++)
    if (!g_hash_table_contains (self->collapsed, mods->pdata[i]))
      {
        g_hash_table_add (self->collapsed, g_strdup (mods->pdata[i]));
        changed = TRUE;
      }
  g_ptr_array_unref (mods);
  if (changed)
    {
      anchor_on_centre (self);
      request_layout (self);
    }
}

void
cs_graph_view_expand_all (CsGraphView *self)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  if (g_hash_table_size (self->collapsed) == 0)
    return;
  g_hash_table_remove_all (self->collapsed);
  if (self->want)
    {
      anchor_on_centre (self);
      request_layout (self);
    }
}

static gboolean
name_matches (const char *name, const char *needle_folded)
{
  g_autofree char *hay = g_utf8_casefold (name, -1);
  return strstr (hay, needle_folded) != NULL;
}

gboolean
cs_graph_view_find (CsGraphView *self, const char *text)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), FALSE);
  if (self->want == NULL || text == NULL || *text == '\0')
    return FALSE;
  g_autofree char *needle = g_utf8_casefold (text, -1);
  const CsGraph *g = self->want->graph;
  guint n = self->want->n;
  guint start = self->selected >= 0 ? (guint) self->selected + 1 : 0;
  for (guint k = 0; k < n; k++)
    {
      guint i = (start + k) % n;
      const CsNode *node = cs_graph_node (g, i);
      if (!name_matches (node->name, needle))
        continue;
      /* A match inside collapsed blocks opens them: the user asked to see that layer. */
      gboolean opened = FALSE;
      GHashTableIter it;
      gpointer key;
      g_hash_table_iter_init (&it, self->collapsed);
      while (g_hash_table_iter_next (&it, &key, NULL))
        {
          gsize len = strlen (key);
          if (strncmp (node->module, key, len) == 0
              && (node->module[len] == '\0' || node->module[len] == '/'))
            {
              g_hash_table_iter_remove (&it);
              opened = TRUE;
            }
        }
      select_node (self, (gint) i, TRUE);
      if (opened || self->busy || self->model != self->want)
        {
          anchor_clear (&self->anchor);
          self->anchor.active = TRUE;
          self->anchor.node = (gint) i;
          self->anchor.centre = TRUE;
          if (opened)
            request_layout (self);
        }
      else if (self->layout)
        reveal_box (self, self->layout->box_of_node[i], TRUE);
      return TRUE;
    }
  return FALSE;
}

void
cs_graph_view_zoom_by (CsGraphView *self, double factor)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  g_return_if_fail (factor > 0);
  set_zoom_at (self, self->zoom * factor, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
               gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

void
cs_graph_view_zoom_fit (CsGraphView *self)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  double vw = gtk_widget_get_width (GTK_WIDGET (self)), vh = gtk_widget_get_height (GTK_WIDGET (self));
  self->fit_pending = self->layout == NULL || vw <= 0 || vh <= 0;
  if (self->fit_pending)
    return;
  double z = MIN (fit_zoom (self), 1.0);
  set_view (self, z, (vw - self->layout->width * z) / 2, (vh - self->layout->height * z) / 2);
}

void
cs_graph_view_zoom_reset (CsGraphView *self)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  set_zoom_at (self, 1.0, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
               gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

double
cs_graph_view_get_zoom (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), 1.0);
  return self->zoom;
}

gboolean
cs_graph_view_is_ready (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), FALSE);
  return !self->busy;
}

guint
cs_graph_view_get_n_boxes (CsGraphView *self)
{
  g_return_val_if_fail (CS_IS_GRAPH_VIEW (self), 0);
  return self->layout ? self->layout->n_boxes : 0;
}

void
cs_graph_view_render (CsGraphView *self, cairo_t *cr, double *width, double *height)
{
  g_return_if_fail (CS_IS_GRAPH_VIEW (self));
  double w = 0, h = 0;
  GPtrArray *nodes = self->layout && self->info ? scene (self, TRUE) : NULL;
  GskRenderNode *leg = nodes ? legend (self) : NULL;
  if (self->layout)
    {
      w = self->layout->width + 2 * EXPORT_MARGIN;
      h = self->layout->height + 2 * EXPORT_MARGIN;
      if (leg)
        {
          /* Beside the drawing, not over it: a narrow network would be hidden by it. */
          w += self->legend_w + EXPORT_MARGIN;
          h = MAX (h, self->legend_h + 2 * EXPORT_MARGIN);
        }
    }
  if (width)
    *width = w;
  if (height)
    *height = h;
  if (cr == NULL || nodes == NULL)
    return;
  const Palette *p = palette (self);
  cairo_save (cr);
  gdk_cairo_set_source_rgba (cr, &p->bg);
  cairo_rectangle (cr, 0, 0, w, h);
  cairo_fill (cr);
  cairo_translate (cr, EXPORT_MARGIN, EXPORT_MARGIN);
  for (guint i = 0; i < nodes->len; i++)
    gsk_render_node_draw (nodes->pdata[i], cr);
  if (leg)
    {
      cairo_translate (cr, self->layout->width + EXPORT_MARGIN, 0);
      gsk_render_node_draw (leg, cr);
    }
  cairo_restore (cr);
}
