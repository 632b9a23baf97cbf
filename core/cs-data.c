/* Datasets: procedural shapes, CIFAR-10, MNIST, image folders, batches. */
#include "cs-data.h"
#include "cs-error.h"
#include "cs-net.h"

#include <cairo.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define SHAPES_DEFAULT_N 5000
/* Far beyond any sensible image, but small enough that Cairo and gdk-pixbuf accept it. */
#define MAX_SIDE 16384
#define MAX_CLASSES 65536

#define CIFAR_SIDE 32
#define CIFAR_IMAGE (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_IMAGE)
#define CIFAR_CHUNK 1024 /* records per read: 3 MB, so reads are few and memory stays small */

#define MNIST_LABELS_MAGIC 0x00000801u
#define MNIST_IMAGES_MAGIC 0x00000803u

static const char *const shape_names[] = {
  "circle", "square", "triangle", "cross", "ring", "stripes", "star", "crescent", NULL,
};
#define N_SHAPES (G_N_ELEMENTS (shape_names) - 1)

static const char *const cifar_names[] = {
  "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck", NULL,
};

/* ---- errors ---------------------------------------------------------------------------- */

static void file_error (GError **error, const char *path, guint64 offset, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);

/* Every complaint about a file's contents has the same shape, so a user can find the spot. */
static void
file_error (GError **error, const char *path, guint64 offset, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *name = g_filename_display_name (path);
  /* Offsets into a .gz file count the data it holds, which is what the header talks about. */
  g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %sbyte offset %" G_GUINT64_FORMAT ": %s", name,
               g_str_has_suffix (path, ".gz") ? "uncompressed " : "", offset, what);
}

static void
file_error_plain (GError **error, const char *path, const char *what)
{
  g_autofree char *name = g_filename_display_name (path);
  g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: %s", name, what);
}

/* ---- datasets -------------------------------------------------------------------------- */

CsDataset *
cs_dataset_new (const char *name, guint c, guint h, guint w, guint n, guint n_classes,
                GError **error)
{
  guint64 image, total;
  if (n_classes > MAX_CLASSES || !g_uint64_checked_mul (&image, (guint64) h * w, c)
      || !g_uint64_checked_mul (&total, image, n) || total > G_MAXSIZE)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY,
                   "%s: %u images of %ux%ux%u do not fit in memory", name, n, c, h, w);
      return NULL;
    }
  /* One byte more than needed, so an empty set still gets a real pointer. */
  guint8 *pixels = g_try_malloc (total + 1);
  guint16 *labels = g_try_malloc (((gsize) n + 1) * sizeof (guint16));
  char **names = g_try_malloc0 (((gsize) n_classes + 1) * sizeof (char *));
  if (pixels == NULL || labels == NULL || names == NULL)
    {
      g_free (pixels);
      g_free (labels);
      g_free (names);
      g_autofree char *size = g_format_size (total);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY,
                   "%s: cannot allocate %s for %u images", name, size, n);
      return NULL;
    }
  for (guint k = 0; k < n_classes; k++)
    names[k] = g_strdup_printf ("%u", k);
  CsDataset *ds = g_new0 (CsDataset, 1);
  ds->name = g_strdup (name);
  ds->c = c;
  ds->h = h;
  ds->w = w;
  ds->n = n;
  ds->n_classes = n_classes;
  ds->class_names = names;
  ds->pixels = pixels;
  ds->labels = labels;
  return ds;
}

void
cs_dataset_free (CsDataset *ds)
{
  if (ds == NULL)
    return;
  g_free (ds->name);
  g_strfreev (ds->class_names);
  g_free (ds->pixels);
  g_free (ds->labels);
  g_free (ds);
}

static void
set_class_names (CsDataset *ds, const char *const *names)
{
  for (guint k = 0; k < ds->n_classes && names[k] != NULL; k++)
    {
      g_free (ds->class_names[k]);
      ds->class_names[k] = g_strdup (names[k]);
    }
}

static gsize
image_bytes (const CsDataset *ds)
{
  return (gsize) ds->c * ds->h * ds->w;
}

/* ---- shapes ---------------------------------------------------------------------------- */

static double
uniform (GRand *rng, double lo, double hi)
{
  return g_rand_double_range (rng, lo, hi);
}

static double
luminance (const double *rgb)
{
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
}

/* A path of N points alternating between radii R0 and R1, the first pointing up. */
static void
polygon (cairo_t *cr, guint n, double r0, double r1)
{
  for (guint i = 0; i < n; i++)
    {
      double a = -G_PI / 2 + 2 * G_PI * i / n, r = (i % 2) ? r1 : r0;
      if (i == 0)
        cairo_move_to (cr, r * cos (a), r * sin (a));
      else
        cairo_line_to (cr, r * cos (a), r * sin (a));
    }
  cairo_close_path (cr);
}

/* Draws shape LABEL centred on the origin inside the circle of radius R, so that every class
 * fits the same disc and only its form tells it apart. */
static void
draw_shape (cairo_t *cr, guint label, double r)
{
  switch (label)
    {
    case 0: /* circle */
      cairo_arc (cr, 0, 0, r, 0, 2 * G_PI);
      cairo_fill (cr);
      break;
    case 1: /* square */
      {
        double a = r / G_SQRT2;
        cairo_rectangle (cr, -a, -a, 2 * a, 2 * a);
        cairo_fill (cr);
        break;
      }
    case 2: /* triangle */
      polygon (cr, 3, r, r);
      cairo_fill (cr);
      break;
    case 3: /* cross: arms thick enough to survive 32x32 */
      {
        double l = 0.95 * r, t = 0.27 * r;
        cairo_rectangle (cr, -l, -t, 2 * l, 2 * t);
        cairo_rectangle (cr, -t, -l, 2 * t, 2 * l);
        cairo_fill (cr);
        break;
      }
    case 4: /* ring: a hole wide enough to stay open at 32x32 */
      cairo_set_fill_rule (cr, CAIRO_FILL_RULE_EVEN_ODD);
      cairo_arc (cr, 0, 0, r, 0, 2 * G_PI);
      cairo_new_sub_path (cr);
      cairo_arc (cr, 0, 0, 0.55 * r, 0, 2 * G_PI);
      cairo_fill (cr);
      cairo_set_fill_rule (cr, CAIRO_FILL_RULE_WINDING);
      break;
    case 5: /* stripes: three bars with gaps as wide as the bars */
      {
        double a = 0.7 * r, bar = 2 * a / 5;
        for (guint k = 0; k < 3; k++)
          cairo_rectangle (cr, -a + 2 * k * bar, -a, bar, 2 * a);
        cairo_fill (cr);
        break;
      }
    case 6: /* five-pointed star, thin enough not to read as a pentagon */
      polygon (cr, 10, r, 0.42 * r);
      cairo_fill (cr);
      break;
    default: /* crescent: the disc less an offset disc */
      cairo_save (cr);
      cairo_arc (cr, 0, 0, r, 0, 2 * G_PI);
      cairo_clip (cr);
      cairo_set_fill_rule (cr, CAIRO_FILL_RULE_EVEN_ODD);
      cairo_rectangle (cr, -r, -r, 2 * r, 2 * r);
      cairo_new_sub_path (cr);
      cairo_arc (cr, 0.45 * r, 0, 0.8 * r, 0, 2 * G_PI);
      cairo_fill (cr);
      cairo_restore (cr);
      break;
    }
}

/* Draws one image of class LABEL on CR's SIZE x SIZE surface. Every random choice comes from
 * RNG, in a fixed order, so a seed always gives the same picture. */
static void
render_shape (cairo_t *cr, GRand *rng, guint label, guint size)
{
  double bg[3], fg[3];
  for (guint i = 0; i < 3; i++)
    bg[i] = uniform (rng, 0, 1);
  /* Colour is no clue to the class, but the shape must stand out from the background; 0.35 of
   * the luminance range can always be reached from any background. */
  gboolean found = FALSE;
  for (guint tries = 0; tries < 64 && !found; tries++)
    {
      for (guint i = 0; i < 3; i++)
        fg[i] = uniform (rng, 0, 1);
      found = fabs (luminance (fg) - luminance (bg)) >= 0.35;
    }
  if (!found)
    for (guint i = 0; i < 3; i++)
      fg[i] = luminance (bg) > 0.5 ? 0.0 : 1.0;

  /* R is the radius of the disc that holds any shape: 56% to 92% of the side across, so even
   * the smallest square is 40% of the side. */
  double r = size * uniform (rng, 0.28, 0.46);
  double lo = r + 0.5, hi = size - r - 0.5;
  double cx = lo < hi ? uniform (rng, lo, hi) : size / 2.0;
  double cy = lo < hi ? uniform (rng, lo, hi) : size / 2.0;
  double angle = uniform (rng, 0, 2 * G_PI);

  cairo_identity_matrix (cr);
  cairo_set_source_rgb (cr, bg[0], bg[1], bg[2]);
  cairo_paint (cr);
  cairo_translate (cr, cx, cy);
  cairo_rotate (cr, angle);
  cairo_set_source_rgb (cr, fg[0], fg[1], fg[2]);
  draw_shape (cr, label, r);
}

/* Copies the ARGB32 surface into DST as CHW bytes with uniform noise of up to +-AMP. */
static void
copy_with_noise (cairo_surface_t *surface, guint size, GRand *rng, gint32 amp, guint8 *dst)
{
  cairo_surface_flush (surface);
  const guint8 *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  gsize plane = (gsize) size * size;
  for (guint y = 0; y < size; y++)
    {
      const guint32 *row = (const guint32 *) (data + (gsize) y * stride);
      for (guint x = 0; x < size; x++)
        for (guint ch = 0; ch < 3; ch++)
          {
            /* The surface is opaque, so premultiplication changes nothing. */
            gint32 v = (row[x] >> (16 - 8 * ch)) & 0xff;
            if (amp > 0)
              v += g_rand_int_range (rng, -amp, amp + 1);
            dst[ch * plane + (gsize) y * size + x] = (guint8) CLAMP (v, 0, 255);
          }
    }
}

CsDataset *
cs_dataset_shapes_checked (guint n, guint size, guint64 seed, GError **error)
{
  if (size == 0 || size > MAX_SIDE)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE,
                   "shapes: image size %u is not between 1 and %u", size, MAX_SIDE);
      return NULL;
    }
  g_autoptr (CsDataset) ds = cs_dataset_new ("shapes", 3, size, size, n, N_SHAPES, error);
  if (ds == NULL)
    return NULL;
  set_class_names (ds, shape_names);

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, size, size);
  cairo_t *cr = cairo_create (surface);
  if (cairo_status (cr) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "shapes: cannot draw: %s",
                   cairo_status_to_string (cairo_status (cr)));
      cairo_destroy (cr);
      cairo_surface_destroy (surface);
      return NULL;
    }

  guint32 words[2] = { (guint32) seed, (guint32) (seed >> 32) };
  GRand *rng = g_rand_new_with_seed_array (words, 2);

  /* Balanced classes in a shuffled order, so no run of indices favours one class. */
  for (guint i = 0; i < n; i++)
    ds->labels[i] = i % N_SHAPES;
  for (guint i = n; i > 1; i--)
    {
      guint j = g_rand_int_range (rng, 0, (gint32) MIN (i, (guint) G_MAXINT32));
      guint16 t = ds->labels[i - 1];
      ds->labels[i - 1] = ds->labels[j];
      ds->labels[j] = t;
    }

  gsize stride = image_bytes (ds);
  for (guint i = 0; i < n; i++)
    {
      render_shape (cr, rng, ds->labels[i], size);
      gint32 amp = g_rand_int_range (rng, 0, 21);
      copy_with_noise (surface, size, rng, amp, ds->pixels + i * stride);
    }

  g_rand_free (rng);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  return g_steal_pointer (&ds);
}

CsDataset *
cs_dataset_shapes (guint n, guint size, guint64 seed)
{
  return cs_dataset_shapes_checked (n, size, seed, NULL);
}

/* The validation seed: far from SEED in the generator's space, and never equal to it. */
static guint64
derive_seed (guint64 seed)
{
  guint64 z = cs_mix64 (seed);
  return z == seed ? z + 1 : z;
}

/* Both sets or neither: with VAL NULL (its loader failed and said why) TRAIN is freed too. */
static gboolean
both_or_neither (CsDataset **train, CsDataset **val, CsDataset *loaded_val)
{
  *val = loaded_val;
  if (loaded_val == NULL)
    g_clear_pointer (train, cs_dataset_free);
  return loaded_val != NULL;
}

static gboolean
open_shapes (const char *arg, guint h, guint w, guint64 seed, CsDataset **train, CsDataset **val,
             GError **error)
{
  guint64 n = SHAPES_DEFAULT_N;
  if (arg != NULL)
    {
      g_autoptr (GError) e = NULL;
      if (!g_ascii_string_to_unsigned (arg, 10, 1, G_MAXINT32, &n, &e))
        {
          g_set_error (error, CS_ERROR, CS_ERROR_USAGE,
                       "shapes:%s: the image count must be a whole number from 1 to %d", arg,
                       G_MAXINT32);
          return FALSE;
        }
    }
  guint size = MAX (h, w);
  if (size == 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "shapes: the image size must not be 0");
      return FALSE;
    }
  *train = cs_dataset_shapes_checked ((guint) n, size, seed, error);
  if (*train == NULL)
    return FALSE;
  /* A set of fewer than five still gets one validation image, so accuracy is defined. */
  return both_or_neither (train, val, cs_dataset_shapes_checked (MAX ((guint) n / 5, 1u), size,
                                                                 derive_seed (seed), error));
}

/* ---- reading files --------------------------------------------------------------------- */

typedef struct {
  const char *path;
  GInputStream *in;
  guint64 offset; /* bytes consumed; in the uncompressed data for .gz */
  gint64 size;    /* the file's length; -1 when compressed */
} Reader;

static gboolean
reader_open (Reader *r, const char *path, GError **error)
{
  memset (r, 0, sizeof *r);
  r->path = path;
  r->size = -1;
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GError) e = NULL;
  GFileInputStream *fin = g_file_read (file, NULL, &e);
  if (fin == NULL)
    {
      /* GIO's own message repeats the path; the common case reads better short. */
      file_error_plain (error, path,
                        g_error_matches (e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ? "no such file"
                                                                              : e->message);
      return FALSE;
    }
  if (g_str_has_suffix (path, ".gz"))
    {
      g_autoptr (GZlibDecompressor) z = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
      r->in = g_converter_input_stream_new (G_INPUT_STREAM (fin), G_CONVERTER (z));
      g_object_unref (fin);
      return TRUE;
    }
  g_autoptr (GFileInfo) info =
    g_file_input_stream_query_info (fin, G_FILE_ATTRIBUTE_STANDARD_SIZE, NULL, &e);
  if (info == NULL)
    {
      file_error_plain (error, path, e->message);
      g_object_unref (fin);
      return FALSE;
    }
  r->size = g_file_info_get_size (info);
  r->in = G_INPUT_STREAM (fin);
  return TRUE;
}

static void
reader_close (Reader *r)
{
  g_clear_object (&r->in);
}

/* Reads exactly LEN bytes; WHAT says what they were for when the file ends early. */
static gboolean
reader_read (Reader *r, void *buf, gsize len, const char *what, GError **error)
{
  gsize got = 0;
  g_autoptr (GError) e = NULL;
  gboolean ok = g_input_stream_read_all (r->in, buf, len, &got, NULL, &e);
  r->offset += got;
  if (!ok)
    {
      file_error (error, r->path, r->offset, "%s", e->message);
      return FALSE;
    }
  if (got < len)
    {
      file_error (error, r->path, r->offset, "the file ends in the middle of %s", what);
      return FALSE;
    }
  return TRUE;
}

static gboolean
reader_expect_end (Reader *r, GError **error)
{
  guint8 b;
  gsize got = 0;
  g_autoptr (GError) e = NULL;
  if (!g_input_stream_read_all (r->in, &b, 1, &got, NULL, &e))
    {
      file_error (error, r->path, r->offset, "%s", e->message);
      return FALSE;
    }
  if (got != 0)
    {
      file_error (error, r->path, r->offset, "unexpected data after the last record");
      return FALSE;
    }
  return TRUE;
}

static guint32
be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

static gboolean
require_folder (const char *scheme, const char *dir, GError **error)
{
  if (dir == NULL || *dir == '\0')
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "%s: give a folder, as in %s:DIR", scheme,
                   scheme);
      return FALSE;
    }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      file_error_plain (error, dir,
                        g_file_test (dir, G_FILE_TEST_EXISTS) ? "not a folder" : "no such folder");
      return FALSE;
    }
  return TRUE;
}

/* ---- CIFAR-10 -------------------------------------------------------------------------- */

/* Checks a batch file's length and returns its record count in COUNT. */
static gboolean
cifar_count (const char *path, guint *count, GError **error)
{
  Reader r;
  if (!reader_open (&r, path, error))
    return FALSE;
  gint64 size = r.size;
  reader_close (&r);
  if (size <= 0)
    {
      file_error (error, path, 0, "no CIFAR-10 records");
      return FALSE;
    }
  if (size % CIFAR_RECORD != 0)
    {
      file_error (error, path, (guint64) (size - size % CIFAR_RECORD),
                  "truncated record: %" G_GINT64_FORMAT " bytes of %d (the length is not a "
                  "multiple of %d)",
                  size % CIFAR_RECORD, CIFAR_RECORD, CIFAR_RECORD);
      return FALSE;
    }
  if (size / CIFAR_RECORD > G_MAXINT32)
    {
      file_error (error, path, 0, "too many records");
      return FALSE;
    }
  *count = (guint) (size / CIFAR_RECORD);
  return TRUE;
}

/* Reads COUNT records of PATH into DS from image FIRST on. */
static gboolean
cifar_read (const char *path, guint count, CsDataset *ds, guint first, guint8 *chunk,
            GError **error)
{
  Reader r;
  if (!reader_open (&r, path, error))
    return FALSE;
  gboolean ok = TRUE;
  for (guint done = 0; ok && done < count;)
    {
      guint m = MIN (count - done, (guint) CIFAR_CHUNK);
      guint64 start = r.offset;
      ok = reader_read (&r, chunk, (gsize) m * CIFAR_RECORD, "a record", error);
      for (guint k = 0; ok && k < m; k++)
        {
          const guint8 *rec = chunk + (gsize) k * CIFAR_RECORD;
          if (rec[0] > 9)
            {
              file_error (error, path, start + (guint64) k * CIFAR_RECORD,
                          "label %u is not a CIFAR-10 class (0 to 9)", rec[0]);
              ok = FALSE;
              break;
            }
          guint i = first + done + k;
          ds->labels[i] = rec[0];
          memcpy (ds->pixels + (gsize) i * CIFAR_IMAGE, rec + 1, CIFAR_IMAGE);
        }
      done += m;
    }
  ok = ok && reader_expect_end (&r, error);
  reader_close (&r);
  return ok;
}

static CsDataset *
cifar_load (char **paths, guint n_paths, const char *const *names, guint8 *chunk,
            GError **error)
{
  guint counts[8], total = 0;
  for (guint f = 0; f < n_paths; f++)
    {
      if (!cifar_count (paths[f], &counts[f], error))
        return NULL;
      if (!g_uint_checked_add (&total, total, counts[f]) || total > G_MAXINT32)
        {
          file_error (error, paths[f], 0, "too many records in all");
          return NULL;
        }
    }
  g_autoptr (CsDataset) ds = cs_dataset_new ("cifar10", 3, CIFAR_SIDE, CIFAR_SIDE, total, 10,
                                             error);
  if (ds == NULL)
    return NULL;
  set_class_names (ds, names);
  guint first = 0;
  for (guint f = 0; f < n_paths; f++)
    {
      if (!cifar_read (paths[f], counts[f], ds, first, chunk, error))
        return NULL;
      first += counts[f];
    }
  return g_steal_pointer (&ds);
}

/* The ten class names of batches.meta.txt, one a line; NULL when absent or short. */
static char **
cifar_meta_names (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "batches.meta.txt", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  /* The real file is 61 bytes; a huge one is not a meta file. */
  GStatBuf st;
  if (g_stat (path, &st) != 0 || st.st_size > 65536
      || !g_file_get_contents (path, &text, &len, NULL))
    return NULL;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; lines[i] != NULL && names->len < 10; i++)
    {
      char *name = g_strstrip (lines[i]);
      if (*name != '\0')
        g_ptr_array_add (names, g_utf8_make_valid (name, -1));
    }
  if (names->len < 10)
    {
      g_ptr_array_free (names, TRUE);
      return NULL;
    }
  g_ptr_array_add (names, NULL);
  g_ptr_array_set_free_func (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

static gboolean
open_cifar (const char *dir, CsDataset **train, CsDataset **val, GError **error)
{
  if (!require_folder ("cifar10", dir, error))
    return FALSE;
  g_auto (GStrv) meta = cifar_meta_names (dir);
  const char *const *names = meta ? (const char *const *) meta : cifar_names;

  char *paths[5];
  guint n_paths = 0;
  for (guint b = 1; b <= 5; b++)
    {
      g_autofree char *base = g_strdup_printf ("data_batch_%u.bin", b);
      char *path = g_build_filename (dir, base, NULL);
      /* The first batch is required, so a wrong folder fails here rather than yielding nothing. */
      if (b == 1 || g_file_test (path, G_FILE_TEST_EXISTS))
        paths[n_paths++] = path;
      else
        g_free (path);
    }
  g_autofree char *test_path = g_build_filename (dir, "test_batch.bin", NULL);

  gboolean ok = FALSE;
  guint8 *chunk = g_try_malloc ((gsize) CIFAR_CHUNK * CIFAR_RECORD);
  if (chunk == NULL)
    g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "cifar10: cannot allocate a buffer");
  else if ((*train = cifar_load (paths, n_paths, names, chunk, error)) != NULL)
    ok = both_or_neither (train, val, cifar_load (&test_path, 1, names, chunk, error));
  g_free (chunk);
  for (guint f = 0; f < n_paths; f++)
    g_free (paths[f]);
  return ok;
}

/* ---- MNIST ----------------------------------------------------------------------------- */

/* DIR's file named BASE: the idx file as published, gzipped, or with the dot some mirrors use
 * ("train-images.idx3-ubyte"). Returns the first that exists, else BASE itself. */
static char *
mnist_find (const char *dir, const char *base)
{
  g_autofree char *dotted = g_strdup (base);
  char *dash = strstr (dotted, "-idx");
  if (dash != NULL)
    *dash = '.';
  const char *const forms[] = { base, dotted };
  for (guint i = 0; i < G_N_ELEMENTS (forms); i++)
    for (guint gz = 0; gz < 2; gz++)
      {
        g_autofree char *name = g_strconcat (forms[i], gz ? ".gz" : "", NULL);
        char *path = g_build_filename (dir, name, NULL);
        if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
          return path;
        g_free (path);
      }
  return g_build_filename (dir, base, NULL);
}

static gboolean
mnist_magic (const char *path, guint32 magic, guint32 want, const char *kind, GError **error)
{
  if (magic == want)
    return TRUE;
  if ((magic >> 16) == 0x1f8b)
    file_error (error, path, 0,
                "bad magic 0x%08x: the file is gzip-compressed; name it .gz or unpack it", magic);
  else
    file_error (error, path, 0, "bad magic 0x%08x where an idx %s file has 0x%08x", magic, kind,
                want);
  return FALSE;
}

/* Checks a plain file's length against what its header promises. */
static gboolean
mnist_length (const Reader *r, guint64 expected, GError **error)
{
  if (r->size < 0 || (guint64) r->size == expected)
    return TRUE;
  if ((guint64) r->size < expected)
    file_error (error, r->path, (guint64) r->size,
                "the file ends here, but its header promises %" G_GUINT64_FORMAT " bytes",
                expected);
  else
    file_error (error, r->path, expected,
                "unexpected data after the last record (the header promises %" G_GUINT64_FORMAT
                " bytes, the file has %" G_GINT64_FORMAT ")",
                expected, r->size);
  return FALSE;
}

/* Reads PATH's labels into *LABELS (N of them). */
static gboolean
mnist_labels (const char *path, guint8 **labels, guint32 *n, GError **error)
{
  Reader r;
  guint8 head[8];
  if (!reader_open (&r, path, error))
    return FALSE;
  gboolean ok = reader_read (&r, head, 8, "the idx header", error)
                && mnist_magic (path, be32 (head), MNIST_LABELS_MAGIC, "label", error);
  *n = ok ? be32 (head + 4) : 0;
  if (ok && *n > G_MAXINT32)
    {
      file_error (error, path, 4, "%u labels are too many", *n);
      ok = FALSE;
    }
  ok = ok && mnist_length (&r, 8 + (guint64) *n, error);
  if (ok && (*labels = g_try_malloc ((gsize) *n + 1)) == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "mnist: cannot allocate %u labels",
                   *n);
      ok = FALSE;
    }
  ok = ok && reader_read (&r, *labels, *n, "the labels", error) && reader_expect_end (&r, error);
  for (guint32 i = 0; ok && i < *n; i++)
    if ((*labels)[i] > 9)
      {
        file_error (error, path, 8 + (guint64) i, "label %u is not a digit (0 to 9)",
                    (*labels)[i]);
        ok = FALSE;
      }
  reader_close (&r);
  if (!ok)
    g_clear_pointer (labels, g_free);
  return ok;
}

/* Reads PATH's images, which must be N to match LABELS_PATH. */
static CsDataset *
mnist_images (const char *path, guint32 n, const char *labels_path, GError **error)
{
  Reader r;
  guint8 head[16];
  CsDataset *ds = NULL;
  if (!reader_open (&r, path, error))
    return NULL;
  if (!reader_read (&r, head, 16, "the idx header", error)
      || !mnist_magic (path, be32 (head), MNIST_IMAGES_MAGIC, "image", error))
    goto out;
  guint32 count = be32 (head + 4), rows = be32 (head + 8), cols = be32 (head + 12);
  if (count != n)
    {
      g_autofree char *other = g_filename_display_basename (labels_path);
      file_error (error, path, 4, "%u images, but %s has %u labels", count, other, n);
      goto out;
    }
  if (rows == 0 || rows > MAX_SIDE)
    {
      file_error (error, path, 8, "%u rows is not an image height", rows);
      goto out;
    }
  if (cols == 0 || cols > MAX_SIDE)
    {
      file_error (error, path, 12, "%u columns is not an image width", cols);
      goto out;
    }
  /* Cannot overflow: the count is below 2^31 and each side at most 2^14. */
  guint64 payload = (guint64) n * rows * cols;
  if (!mnist_length (&r, 16 + payload, error))
    goto out;
  ds = cs_dataset_new ("mnist", 1, rows, cols, n, 10, error);
  if (ds != NULL
      && (!reader_read (&r, ds->pixels, payload, "the images", error)
          || !reader_expect_end (&r, error)))
    g_clear_pointer (&ds, cs_dataset_free);
out:
  reader_close (&r);
  return ds;
}

static CsDataset *
mnist_load (const char *dir, const char *images_base, const char *labels_base, GError **error)
{
  g_autofree char *labels_path = mnist_find (dir, labels_base);
  g_autofree char *images_path = mnist_find (dir, images_base);
  g_autofree guint8 *labels = NULL;
  guint32 n = 0;
  if (!mnist_labels (labels_path, &labels, &n, error))
    return NULL;
  CsDataset *ds = mnist_images (images_path, n, labels_path, error);
  for (guint32 i = 0; ds != NULL && i < n; i++)
    ds->labels[i] = labels[i];
  return ds;
}

static gboolean
open_mnist (const char *dir, CsDataset **train, CsDataset **val, GError **error)
{
  if (!require_folder ("mnist", dir, error))
    return FALSE;
  *train = mnist_load (dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", error);
  if (*train == NULL)
    return FALSE;
  return both_or_neither (train, val, mnist_load (dir, "t10k-images-idx3-ubyte",
                                                  "t10k-labels-idx1-ubyte", error));
}

/* ---- folders --------------------------------------------------------------------------- */

static int
compare_names (gconstpointer a, gconstpointer b)
{
  /* Byte order, not the locale's collation, so every machine sees the same classes and split. */
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* DIR's sub-folders (WANT_DIRS) or its PNG and JPEG files, by name, hidden ones skipped. */
static GPtrArray *
list_entries (const char *dir, gboolean want_dirs, GError **error)
{
  g_autoptr (GError) e = NULL;
  GDir *d = g_dir_open (dir, 0, &e);
  if (d == NULL)
    {
      file_error_plain (error, dir, e->message);
      return NULL;
    }
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      if (name[0] == '.')
        continue;
      g_autofree char *path = g_build_filename (dir, name, NULL);
      if (want_dirs)
        {
          if (g_file_test (path, G_FILE_TEST_IS_DIR))
            g_ptr_array_add (out, g_strdup (name));
        }
      else
        {
          g_autofree char *lower = g_ascii_strdown (name, -1);
          if ((g_str_has_suffix (lower, ".png") || g_str_has_suffix (lower, ".jpg")
               || g_str_has_suffix (lower, ".jpeg"))
              && g_file_test (path, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add (out, g_strdup (name));
        }
    }
  g_dir_close (d);
  g_ptr_array_sort (out, compare_names);
  return out;
}

/* Decodes PATH into DST as 3 x H x W bytes. */
static gboolean
folder_image (const char *path, guint h, guint w, guint8 *dst, GError **error)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (GdkPixbuf) src = gdk_pixbuf_new_from_file (path, &e);
  if (src == NULL)
    {
      g_autofree char *why = g_strdup_printf ("cannot decode the image: %s", e->message);
      file_error_plain (error, path, why);
      return FALSE;
    }
  int nch = gdk_pixbuf_get_n_channels (src);
  gboolean alpha = gdk_pixbuf_get_has_alpha (src);
  if (gdk_pixbuf_get_colorspace (src) != GDK_COLORSPACE_RGB
      || gdk_pixbuf_get_bits_per_sample (src) != 8 || nch != (alpha ? 4 : 3))
    {
      file_error_plain (error, path, "not an 8-bit RGB image");
      return FALSE;
    }
  g_autoptr (GdkPixbuf) img = NULL;
  if ((guint) gdk_pixbuf_get_width (src) == w && (guint) gdk_pixbuf_get_height (src) == h)
    img = g_object_ref (src);
  else
    img = gdk_pixbuf_scale_simple (src, (int) w, (int) h, GDK_INTERP_BILINEAR);
  if (img == NULL)
    {
      g_autofree char *name = g_filename_display_name (path);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "%s: cannot resize to %ux%u", name,
                   w, h);
      return FALSE;
    }
  const guint8 *px = gdk_pixbuf_read_pixels (img);
  gsize rowstride = gdk_pixbuf_get_rowstride (img), plane = (gsize) h * w;
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++)
      {
        const guint8 *p = px + y * rowstride + (gsize) x * nch;
        for (guint ch = 0; ch < 3; ch++)
          {
            /* Transparent parts become black, as if composited over black. */
            guint v = alpha ? (p[ch] * p[3] + 127) / 255 : p[ch];
            dst[ch * plane + (gsize) y * w + x] = (guint8) v;
          }
      }
  return TRUE;
}

static gboolean
open_folder (const char *dir, guint h, guint w, CsDataset **train, CsDataset **val,
             GError **error)
{
  if (!require_folder ("folder", dir, error))
    return FALSE;
  if (h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE,
                   "folder: images are resized to %ux%u, which is not a size from 1 to %u", w,
                   h, MAX_SIDE);
      return FALSE;
    }
  g_autoptr (GPtrArray) classes = list_entries (dir, TRUE, error);
  if (classes == NULL)
    return FALSE;
  if (classes->len == 0 || classes->len > MAX_CLASSES)
    {
      file_error_plain (error, dir,
                        classes->len ? "too many class folders"
                                     : "no class folders (one sub-folder per class)");
      return FALSE;
    }

  g_autoptr (GPtrArray) files =
    g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  guint n_train = 0, n_val = 0;
  for (guint k = 0; k < classes->len; k++)
    {
      g_autofree char *sub = g_build_filename (dir, classes->pdata[k], NULL);
      GPtrArray *list = list_entries (sub, FALSE, error);
      if (list == NULL)
        return FALSE;
      g_ptr_array_add (files, list);
      if ((guint64) n_train + n_val + list->len > G_MAXINT32)
        {
          file_error_plain (error, dir, "too many images");
          return FALSE;
        }
      n_val += list->len / 10;
      n_train += list->len - list->len / 10;
    }
  if (n_train == 0)
    {
      file_error_plain (error, dir, "no PNG or JPEG images in its class folders");
      return FALSE;
    }

  g_autoptr (CsDataset) tr = cs_dataset_new ("folder", 3, h, w, n_train, classes->len, error);
  if (tr == NULL)
    return FALSE;
  g_autoptr (CsDataset) va = cs_dataset_new ("folder", 3, h, w, n_val, classes->len, error);
  if (va == NULL)
    return FALSE;
  for (guint k = 0; k < classes->len; k++)
    {
      g_free (tr->class_names[k]);
      g_free (va->class_names[k]);
      tr->class_names[k] = g_filename_display_name (classes->pdata[k]);
      va->class_names[k] = g_strdup (tr->class_names[k]);
    }

  gsize stride = image_bytes (tr);
  guint it = 0, iv = 0;
  for (guint k = 0; k < classes->len; k++)
    {
      GPtrArray *list = files->pdata[k];
      for (guint j = 0; j < list->len; j++)
        {
          /* Every tenth file in sorted order is held out: the same split on every run. */
          CsDataset *ds = (j % 10 == 9) ? va : tr;
          guint *i = (j % 10 == 9) ? &iv : &it;
          g_autofree char *path = g_build_filename (dir, classes->pdata[k], list->pdata[j], NULL);
          if (!folder_image (path, h, w, ds->pixels + (gsize) *i * stride, error))
            return FALSE;
          ds->labels[*i] = (guint16) k;
          (*i)++;
        }
    }
  *train = g_steal_pointer (&tr);
  *val = g_steal_pointer (&va);
  return TRUE;
}

/* ---- opening a spec -------------------------------------------------------------------- */

gboolean
cs_data_open (const char *spec, guint h, guint w, guint64 seed, CsDataset **train,
              CsDataset **val, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  CsDataset *tr = NULL, *va = NULL;
  if (train != NULL)
    *train = NULL;
  if (val != NULL)
    *val = NULL;
  if (spec == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no dataset given");
      return FALSE;
    }

  const char *colon = strchr (spec, ':');
  g_autofree char *scheme = colon ? g_strndup (spec, colon - spec) : g_strdup (spec);
  const char *arg = colon ? colon + 1 : NULL;
  gboolean ok;
  if (strcmp (scheme, "shapes") == 0)
    ok = open_shapes (arg, h, w, seed, &tr, &va, error);
  else if (strcmp (scheme, "cifar10") == 0)
    ok = open_cifar (arg, &tr, &va, error);
  else if (strcmp (scheme, "mnist") == 0)
    ok = open_mnist (arg, &tr, &va, error);
  else if (strcmp (scheme, "folder") == 0)
    ok = open_folder (arg, h, w, &tr, &va, error);
  else
    {
      g_autofree char *shown = g_utf8_make_valid (spec, -1);
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE,
                   "unknown dataset \"%s\": use shapes, shapes:N, cifar10:DIR, mnist:DIR or "
                   "folder:DIR",
                   shown);
      ok = FALSE;
    }
  if (!ok)
    return FALSE;
  if (train != NULL)
    *train = tr;
  else
    cs_dataset_free (tr);
  if (val != NULL)
    *val = va;
  else
    cs_dataset_free (va);
  return TRUE;
}

/* ---- statistics and batches ------------------------------------------------------------ */

void
cs_dataset_channel_stats (const CsDataset *ds, float *mean, float *std)
{
  g_return_if_fail (ds != NULL && mean != NULL && std != NULL);
  gsize plane = (gsize) ds->h * ds->w;
  for (guint ch = 0; ch < ds->c; ch++)
    {
      /* A histogram makes the sums exact and the pass a single cheap read. */
      guint64 hist[256] = { 0 }, count = 0;
      for (guint i = 0; i < ds->n; i++)
        {
          const guint8 *p = ds->pixels + (gsize) i * image_bytes (ds) + ch * plane;
          for (gsize j = 0; j < plane; j++)
            hist[p[j]]++;
        }
      double sum = 0;
      for (guint v = 0; v < 256; v++)
        {
          count += hist[v];
          sum += (double) hist[v] * v;
        }
      if (count == 0)
        {
          /* Nothing to measure: values that leave the data as they find it. */
          mean[ch] = 0;
          std[ch] = 1;
          continue;
        }
      double m = sum / count, var = 0;
      for (guint v = 0; v < 256; v++)
        var += (double) hist[v] * (v - m) * (v - m);
      mean[ch] = (float) (m / 255);
      std[ch] = (float) (sqrt (var / count) / 255);
    }
}

typedef struct {
  guint lo, hi;
  float f;
} Tap;

/* Bilinear taps for OUT samples from IN, pixel centres aligned (the half-pixel convention), so
 * equal sizes map every sample onto itself with weight 0 on its neighbour. */
static Tap *
make_taps (guint in, guint out)
{
  Tap *taps = g_new (Tap, out);
  for (guint i = 0; i < out; i++)
    {
      double s = ((double) i + 0.5) * in / out - 0.5;
      s = CLAMP (s, 0.0, (double) in - 1);
      guint lo = (guint) s;
      taps[i].lo = lo;
      taps[i].hi = MIN (lo + 1, in - 1);
      taps[i].f = (float) (s - lo);
    }
  return taps;
}

static float
lerp (float a, float b, float f)
{
  /* This form returns A exactly when A == B, so a flat image stays flat. */
  return a + f * (b - a);
}

static float
sample (const guint8 *plane, guint w, const Tap *ty, const Tap *tx)
{
  const guint8 *r0 = plane + (gsize) ty->lo * w, *r1 = plane + (gsize) ty->hi * w;
  float top = lerp (r0[tx->lo], r0[tx->hi], tx->f);
  float bottom = lerp (r1[tx->lo], r1[tx->hi], tx->f);
  return lerp (top, bottom, ty->f);
}

void
cs_dataset_batch (const CsDataset *ds, const guint *indices, guint n, guint c, guint h,
                  guint w, const CsAugment *aug, GRand *rng, float *out, guint *labels)
{
  g_return_if_fail (ds != NULL && (n == 0 || (indices != NULL && out != NULL)));
  for (guint i = 0; i < n; i++)
    g_return_if_fail (indices[i] < ds->n);
  if (n == 0 || c == 0 || h == 0 || w == 0 || ds->c == 0 || ds->h == 0 || ds->w == 0)
    {
      for (guint i = 0; labels != NULL && i < n; i++)
        labels[i] = ds->labels[indices[i]];
      return;
    }

  Tap *ty = make_taps (ds->h, h), *tx = make_taps (ds->w, w);
  gsize src_plane = (gsize) ds->h * ds->w, dst_plane = (gsize) h * w;
  float mean[4] = { 0 }, scale[4];
  for (guint ch = 0; ch < 4; ch++)
    {
      float s = aug ? aug->std[ch] : 1.0f;
      if (aug)
        mean[ch] = isfinite (aug->mean[ch]) ? aug->mean[ch] : 0.0f;
      /* A flat channel has no spread to divide by; leave it unscaled. */
      scale[ch] = (isfinite (s) && s > 1e-8f) ? 1.0f / s : 1.0f;
    }
  /* Past 2^20 every crop is pure padding anyway, and GRand's ranges are 32-bit. */
  gint64 pad = (aug && rng) ? MIN (aug->crop_pad, 1u << 20) : 0;

  for (guint i = 0; i < n; i++)
    {
      const guint8 *src = ds->pixels + (gsize) indices[i] * image_bytes (ds);
      float *dst = out + (gsize) i * c * dst_plane;
      gint64 dy = 0, dx = 0;
      if (pad > 0)
        {
          dy = g_rand_int_range (rng, 0, (gint32) (2 * pad + 1)) - pad;
          dx = g_rand_int_range (rng, 0, (gint32) (2 * pad + 1)) - pad;
        }
      gboolean flip = aug && rng && aug->flip && g_rand_boolean (rng);
      if (labels != NULL)
        labels[i] = ds->labels[indices[i]];

      for (guint oc = 0; oc < c; oc++)
        {
          float m = oc < 4 ? mean[oc] : 0.0f, k = oc < 4 ? scale[oc] : 1.0f;
          /* Same channel count: channel to channel; to grey: the mean of all; otherwise (grey
           * to colour, or odd mixes) channels repeat. */
          gboolean average = c == 1 && ds->c > 1;
          const guint8 *plane = src + (gsize) (oc % ds->c) * src_plane;
          for (guint y = 0; y < h; y++)
            for (guint x = 0; x < w; x++)
              {
                float *o = dst + oc * dst_plane + (gsize) y * w + x;
                /* The crop of the zero-padded image, then the mirror of that crop. */
                gint64 sy = (gint64) y + dy, sx = (gint64) (flip ? w - 1 - x : x) + dx;
                if (sy < 0 || sy >= h || sx < 0 || sx >= w)
                  {
                    /* Padding is zero after normalisation: the channel's mean. */
                    *o = 0.0f;
                    continue;
                  }
                float v;
                if (average)
                  {
                    v = 0;
                    for (guint sc = 0; sc < ds->c; sc++)
                      v += sample (src + sc * src_plane, ds->w, &ty[sy], &tx[sx]);
                    v /= ds->c;
                  }
                else
                  v = sample (plane, ds->w, &ty[sy], &tx[sx]);
                *o = (v / 255.0f - m) * k;
              }
        }
    }
  g_free (ty);
  g_free (tx);
}

CsDataset *
cs_dataset_from_images (char *const *paths, guint n, guint h, guint w, GError **error)
{
  g_autoptr (CsDataset) ds = cs_dataset_new ("images", 3, h, w, n, 1, error);
  if (ds == NULL)
    return NULL;
  for (guint i = 0; i < n; i++)
    {
      if (!folder_image (paths[i], h, w, ds->pixels + (gsize) i * 3 * h * w, error))
        return NULL;
      ds->labels[i] = 0;
    }
  return g_steal_pointer (&ds);
}
