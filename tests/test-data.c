/* Tests of the datasets: shapes, the CIFAR-10, MNIST and folder loaders, and batches. */
#include "cs-data.h"
#include "cs-error.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------- */

static char *
make_tmp (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("cs-test-data-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

/* Removes DIR and everything under it: the test only ever creates plain files and folders. */
static void
remove_tree (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (d == NULL)
    return;
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        remove_tree (path);
      else
        g_unlink (path);
    }
  g_dir_close (d);
  g_rmdir (dir);
}

static void
write_file (const char *dir, const char *name, const void *data, gsize len)
{
  GError *error = NULL;
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
}

static void
write_gzip (const char *dir, const char *name, const void *data, gsize len)
{
  GError *error = NULL;
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileOutputStream) fo = g_file_replace (file, NULL, FALSE, 0, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (GZlibCompressor) z = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, -1);
  g_autoptr (GOutputStream) out =
    g_converter_output_stream_new (G_OUTPUT_STREAM (fo), G_CONVERTER (z));
  g_output_stream_write_all (out, data, len, NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_close (out, NULL, &error);
  g_assert_no_error (error);
}

/* Asserts that opening SPEC fails with CS_ERROR_IO, and that the message names FILE and, when
 * OFFSET is not negative, gives that byte offset. */
static void
assert_io_error (const char *spec, guint h, guint w, const char *file, gint64 offset)
{
  GError *error = NULL;
  CsDataset *train = NULL, *val = NULL;
  g_assert_false (cs_data_open (spec, h, w, 1, &train, &val, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_assert_null (train);
  g_assert_null (val);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, file));
  if (offset >= 0)
    {
      g_autofree char *at = g_strdup_printf ("byte offset %" G_GINT64_FORMAT ":", offset);
      g_assert_nonnull (strstr (error->message, at));
    }
  g_error_free (error);
}

static void
assert_usage_error (const char *spec, guint h, guint w)
{
  GError *error = NULL;
  CsDataset *train = NULL, *val = NULL;
  g_assert_false (cs_data_open (spec, h, w, 1, &train, &val, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_USAGE);
  g_assert_null (train);
  g_assert_null (val);
  g_error_free (error);
}

static CsDataset *
small_set (guint c, guint h, guint w, guint n, const guint8 *pixels)
{
  GError *error = NULL;
  CsDataset *ds = cs_dataset_new ("test", c, h, w, n, 10, &error);
  g_assert_no_error (error);
  memcpy (ds->pixels, pixels, (gsize) n * c * h * w);
  for (guint i = 0; i < n; i++)
    ds->labels[i] = (guint16) (i % 10);
  return ds;
}

/* ---- shapes ---------------------------------------------------------------------------- */

static void
test_shapes_deterministic (void)
{
  g_autoptr (CsDataset) a = cs_dataset_shapes (64, 32, 7);
  g_autoptr (CsDataset) b = cs_dataset_shapes (64, 32, 7);
  g_autoptr (CsDataset) other = cs_dataset_shapes (64, 32, 8);
  g_assert_nonnull (a);
  g_assert_cmpstr (a->name, ==, "shapes");
  g_assert_cmpuint (a->c, ==, 3);
  g_assert_cmpuint (a->h, ==, 32);
  g_assert_cmpuint (a->w, ==, 32);
  g_assert_cmpuint (a->n, ==, 64);
  g_assert_cmpuint (a->n_classes, >=, 6);
  g_assert_cmpuint (g_strv_length (a->class_names), ==, a->n_classes);
  const char *const want[] = { "circle", "square", "triangle", "cross", "ring", "stripes" };
  for (guint k = 0; k < G_N_ELEMENTS (want); k++)
    g_assert_true (g_strv_contains ((const char *const *) a->class_names, want[k]));

  gsize bytes = (gsize) 64 * 3 * 32 * 32;
  g_assert_cmpmem (a->pixels, bytes, b->pixels, bytes);
  g_assert_cmpmem (a->labels, 64 * sizeof (guint16), b->labels, 64 * sizeof (guint16));
  /* Another seed changes nearly every image, not just a pixel or two. */
  guint same = 0;
  for (guint i = 0; i < 64; i++)
    same += memcmp (a->pixels + i * 3072, other->pixels + i * 3072, 3072) == 0;
  g_assert_cmpuint (same, ==, 0);

  /* The seed's upper half counts too. */
  g_autoptr (CsDataset) high = cs_dataset_shapes (8, 32, 7 | (G_GUINT64_CONSTANT (1) << 40));
  g_assert_cmpint (memcmp (a->pixels, high->pixels, 8 * 3072), !=, 0);
}

static void
test_shapes_balanced (void)
{
  const guint n = 803;
  g_autoptr (CsDataset) ds = cs_dataset_shapes (n, 16, 3);
  guint counts[64] = { 0 };
  g_assert_cmpuint (ds->n_classes, <=, G_N_ELEMENTS (counts));
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (ds->labels[i], <, ds->n_classes);
      counts[ds->labels[i]]++;
    }
  for (guint k = 0; k < ds->n_classes; k++)
    {
      g_assert_cmpuint (counts[k], >=, n / ds->n_classes);
      g_assert_cmpuint (counts[k], <=, n / ds->n_classes + 1);
    }
  /* Shuffled: the labels are not simply 0, 1, 2, ... in turn. */
  guint in_turn = 0;
  for (guint i = 0; i < n; i++)
    in_turn += ds->labels[i] == i % ds->n_classes;
  g_assert_cmpuint (in_turn, <, n / 2);
}

#define N_FEATURES 9

/* Colour-, position-, size- and rotation-free features of one 3 x S x S image: where the
 * foreground sits relative to its centroid, in rings scaled to its extent. The corners are
 * background by construction, so they give the background colour. Returns the foreground
 * fraction. */
static double
shape_features (const guint8 *img, guint s, double *f)
{
  gsize plane = (gsize) s * s;
  double bg = 0;
  const gsize corners[] = { 0, s - 1, (gsize) (s - 1) * s, plane - 1 };
  for (guint k = 0; k < 4; k++)
    bg += (0.299 * img[corners[k]] + 0.587 * img[plane + corners[k]]
           + 0.114 * img[2 * plane + corners[k]]) / 4;
  g_autofree gboolean *fg = g_new (gboolean, plane);
  double mx = 0, my = 0, area = 0;
  for (gsize j = 0; j < plane; j++)
    {
      double l = 0.299 * img[j] + 0.587 * img[plane + j] + 0.114 * img[2 * plane + j];
      fg[j] = fabs (l - bg) > 45;
      if (fg[j])
        {
          mx += j % s;
          my += j / s;
          area++;
        }
    }
  if (area == 0)
    {
      memset (f, 0, N_FEATURES * sizeof *f);
      return 0;
    }
  mx /= area;
  my /= area;
  double r2 = 0;
  for (gsize j = 0; j < plane; j++)
    if (fg[j])
      r2 = MAX (r2, (j % s - mx) * (j % s - mx) + (j / s - my) * (j / s - my));
  double r = sqrt (r2) + 0.5;
  double in[N_FEATURES - 1] = { 0 }, all[N_FEATURES - 1] = { 0 };
  for (gsize j = 0; j < plane; j++)
    {
      double d = sqrt ((j % s - mx) * (j % s - mx) + (j / s - my) * (j / s - my)) / r;
      guint bin = MIN ((guint) (d * (N_FEATURES - 1)), N_FEATURES - 2);
      all[bin]++;
      in[bin] += fg[j];
    }
  for (guint b = 0; b < N_FEATURES - 1; b++)
    f[b] = all[b] ? in[b] / all[b] : 0;
  f[N_FEATURES - 1] = area / (G_PI * r * r);
  return area / plane;
}

/* Every image shows a shape of reasonable size, and a nearest-centroid classifier on features
 * that ignore colour, place, size and angle, trained on one seed, recognises another seed's
 * images far above chance: the classes differ in form, not just in name. */
static void
test_shapes_distinct (void)
{
  const guint s = 32, n_train = 1600, n_test = 800;
  g_autoptr (CsDataset) train = cs_dataset_shapes (n_train, s, 11);
  g_autoptr (CsDataset) test = cs_dataset_shapes (n_test, s, 12);
  guint k_n = train->n_classes;
  g_autofree double *centroid = g_new0 (double, k_n * N_FEATURES);
  g_autofree double *coverage = g_new0 (double, k_n);
  g_autofree guint *count = g_new0 (guint, k_n);
  double f[N_FEATURES];

  for (guint i = 0; i < n_train; i++)
    {
      guint k = train->labels[i];
      double cov = shape_features (train->pixels + (gsize) i * 3 * s * s, s, f);
      /* Big enough to see at 32x32, never the whole image (the extremes over 20000 images
       * are the thinnest stripes, 0.088, and the largest disc, 0.68). */
      g_assert_cmpfloat (cov, >, 0.05);
      g_assert_cmpfloat (cov, <, 0.8);
      for (guint j = 0; j < N_FEATURES; j++)
        centroid[k * N_FEATURES + j] += f[j];
      coverage[k] += cov;
      count[k]++;
    }
  for (guint k = 0; k < k_n; k++)
    {
      for (guint j = 0; j < N_FEATURES; j++)
        centroid[k * N_FEATURES + j] /= count[k];
      coverage[k] /= count[k];
      g_test_message ("%-10s mean coverage %.3f", train->class_names[k], coverage[k]);
    }
  /* A ring covers less than the disc it is cut from. */
  g_assert_cmpfloat (coverage[4], <, 0.8 * coverage[0]);

  g_autofree guint *right = g_new0 (guint, k_n);
  g_autofree guint *seen = g_new0 (guint, k_n);
  guint correct = 0;
  for (guint i = 0; i < n_test; i++)
    {
      shape_features (test->pixels + (gsize) i * 3 * s * s, s, f);
      guint best = 0;
      double best_d = G_MAXDOUBLE;
      for (guint k = 0; k < k_n; k++)
        {
          double d = 0;
          for (guint j = 0; j < N_FEATURES; j++)
            d += (f[j] - centroid[k * N_FEATURES + j]) * (f[j] - centroid[k * N_FEATURES + j]);
          if (d < best_d)
            {
              best_d = d;
              best = k;
            }
        }
      guint truth = test->labels[i];
      seen[truth]++;
      if (best == truth)
        {
          right[truth]++;
          correct++;
        }
    }
  double acc = (double) correct / n_test;
  g_test_message ("nearest centroid: %.1f%% right (chance %.1f%%)", 100 * acc, 100.0 / k_n);
  for (guint k = 0; k < k_n; k++)
    {
      double recall = (double) right[k] / seen[k];
      g_test_message ("%-10s %.1f%%", test->class_names[k], 100 * recall);
      /* Every class, not just some, is told apart from the rest at least twice as often as
       * chance would. */
      g_assert_cmpfloat (recall, >, 2.0 / k_n);
    }
  g_assert_cmpfloat (acc, >, 4.0 / k_n);
}

static void
test_shapes_open (void)
{
  GError *error = NULL;
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  g_assert_true (cs_data_open ("shapes:50", 32, 32, 99, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (train->n, ==, 50);
  g_assert_cmpuint (val->n, ==, 10);
  g_autoptr (CsDataset) same = cs_dataset_shapes (50, 32, 99);
  g_assert_cmpmem (train->pixels, 50 * 3072, same->pixels, 50 * 3072);
  /* The validation set is drawn with another seed, not copied from the training set. */
  g_assert_cmpint (memcmp (train->pixels, val->pixels, 10 * 3072), !=, 0);
  g_assert_cmpuint (val->n_classes, ==, train->n_classes);
  g_clear_pointer (&train, cs_dataset_free);
  g_clear_pointer (&val, cs_dataset_free);

  /* Not square: the larger side. */
  g_assert_true (cs_data_open ("shapes:10", 16, 24, 1, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (train->h, ==, 24);
  g_assert_cmpuint (train->w, ==, 24);
  g_assert_cmpuint (val->n, ==, 2);
  g_clear_pointer (&train, cs_dataset_free);
  g_clear_pointer (&val, cs_dataset_free);

  /* The default count. */
  g_assert_true (cs_data_open ("shapes", 8, 8, 1, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (train->n, ==, 5000);
  g_assert_cmpuint (val->n, ==, 1000);

  assert_usage_error ("shapes:0", 32, 32);
  assert_usage_error ("shapes:", 32, 32);
  assert_usage_error ("shapes:12x", 32, 32);
  assert_usage_error ("shapes:-3", 32, 32);
  assert_usage_error ("shapes:99999999999999999999", 32, 32);
  assert_usage_error ("shapes:10", 0, 0);
  assert_usage_error ("shapes:10", 100000, 100000);
  assert_usage_error ("imagenet:/tmp", 32, 32);
  assert_usage_error ("", 32, 32);
  assert_usage_error ("cifar10:", 32, 32);
  assert_usage_error ("mnist", 32, 32);

  g_assert_null (cs_dataset_shapes (4, 0, 1));
  g_autoptr (CsDataset) empty = cs_dataset_shapes (0, 8, 1);
  g_assert_nonnull (empty);
  g_assert_cmpuint (empty->n, ==, 0);
}

/* ---- CIFAR-10 -------------------------------------------------------------------------- */

static guint8
cifar_pixel (guint record, guint j)
{
  return (guint8) (record * 7 + j * 13 + j / 1024);
}

/* N records numbered from FIRST: label (FIRST+i)*3+1 mod 10 and a pattern of pixels. */
static guint8 *
cifar_records (guint first, guint n, gsize *len)
{
  *len = (gsize) n * 3073;
  guint8 *data = g_malloc (*len);
  for (guint i = 0; i < n; i++)
    {
      guint8 *rec = data + (gsize) i * 3073;
      rec[0] = ((first + i) * 3 + 1) % 10;
      for (guint j = 0; j < 3072; j++)
        rec[1 + j] = cifar_pixel (first + i, j);
    }
  return data;
}

static void
check_cifar (const CsDataset *ds, guint first, guint n)
{
  g_assert_cmpstr (ds->name, ==, "cifar10");
  g_assert_cmpuint (ds->c, ==, 3);
  g_assert_cmpuint (ds->h, ==, 32);
  g_assert_cmpuint (ds->w, ==, 32);
  g_assert_cmpuint (ds->n, ==, n);
  g_assert_cmpuint (ds->n_classes, ==, 10);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (ds->labels[i], ==, ((first + i) * 3 + 1) % 10);
      for (guint j = 0; j < 3072; j++)
        g_assert_cmpuint (ds->pixels[(gsize) i * 3072 + j], ==, cifar_pixel (first + i, j));
    }
}

static void
test_cifar (void)
{
  g_autofree char *dir = make_tmp ();
  g_autofree char *spec = g_strconcat ("cifar10:", dir, NULL);
  gsize len;
  g_autofree guint8 *b1 = cifar_records (0, 3, &len);
  write_file (dir, "data_batch_1.bin", b1, len);
  /* A gap in the numbering: batches 1 and 3 are read, in order. */
  g_autofree guint8 *b3 = cifar_records (3, 2, &len);
  write_file (dir, "data_batch_3.bin", b3, len);
  g_autofree guint8 *t = cifar_records (100, 2, &len);
  write_file (dir, "test_batch.bin", t, len);

  GError *error = NULL;
  CsDataset *train = NULL, *val = NULL;
  g_assert_true (cs_data_open (spec, 0, 0, 1, &train, &val, &error));
  g_assert_no_error (error);
  check_cifar (train, 0, 5);
  check_cifar (val, 100, 2);
  g_assert_cmpstr (train->class_names[0], ==, "airplane");
  g_assert_cmpstr (train->class_names[9], ==, "truck");
  g_assert_null (train->class_names[10]);
  g_assert_cmpstr (val->class_names[3], ==, "cat");
  cs_dataset_free (train);
  cs_dataset_free (val);

  const char *meta = "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n\n";
  write_file (dir, "batches.meta.txt", meta, strlen (meta));
  g_assert_true (cs_data_open (spec, 0, 0, 1, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (train->class_names[0], ==, "zero");
  g_assert_cmpstr (train->class_names[9], ==, "nine");
  g_assert_cmpstr (val->class_names[5], ==, "five");
  cs_dataset_free (train);
  cs_dataset_free (val);

  remove_tree (dir);
}

static void
test_cifar_corrupt (void)
{
  g_autofree char *dir = make_tmp ();
  g_autofree char *spec = g_strconcat ("cifar10:", dir, NULL);
  gsize len;
  g_autofree guint8 *good = cifar_records (0, 3, &len);

  /* No batches at all: the first is required. */
  assert_io_error (spec, 0, 0, "data_batch_1.bin", -1);

  /* Truncated: the third record is cut short, and starts at 2 * 3073. */
  write_file (dir, "data_batch_1.bin", good, len - 100);
  write_file (dir, "test_batch.bin", good, len);
  assert_io_error (spec, 0, 0, "data_batch_1.bin", 6146);

  /* A label out of range in the second record. */
  g_autofree guint8 *bad = g_memdup2 (good, len);
  bad[3073] = 10;
  write_file (dir, "data_batch_1.bin", bad, len);
  assert_io_error (spec, 0, 0, "data_batch_1.bin", 3073);

  /* The same in a later batch and in the test batch. */
  write_file (dir, "data_batch_1.bin", good, len);
  write_file (dir, "data_batch_2.bin", bad, len);
  assert_io_error (spec, 0, 0, "data_batch_2.bin", 3073);
  g_autofree char *b2 = g_build_filename (dir, "data_batch_2.bin", NULL);
  g_unlink (b2);
  bad[3073] = 1;
  bad[2 * 3073] = 255;
  write_file (dir, "test_batch.bin", bad, len);
  assert_io_error (spec, 0, 0, "test_batch.bin", 6146);

  /* An empty file, and a missing test set. */
  write_file (dir, "test_batch.bin", "", 0);
  assert_io_error (spec, 0, 0, "test_batch.bin", 0);
  g_autofree char *tb = g_build_filename (dir, "test_batch.bin", NULL);
  g_unlink (tb);
  assert_io_error (spec, 0, 0, "test_batch.bin", -1);

  /* Not a folder. */
  g_autofree char *nowhere = g_strconcat ("cifar10:", dir, "/nowhere", NULL);
  assert_io_error (nowhere, 0, 0, "nowhere", -1);

  remove_tree (dir);
}

/* ---- MNIST ----------------------------------------------------------------------------- */

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static guint8
mnist_pixel (guint image, guint j)
{
  return (guint8) (image * 31 + j * 5 + 1);
}

/* An idx3 file of N images of ROWS x COLS, and its idx1 labels (image i is digit (i*7+2)%10). */
static guint8 *
mnist_images (guint first, guint n, guint rows, guint cols, gsize *len)
{
  *len = 16 + (gsize) n * rows * cols;
  guint8 *data = g_malloc (*len);
  put_be32 (data, 0x803);
  put_be32 (data + 4, n);
  put_be32 (data + 8, rows);
  put_be32 (data + 12, cols);
  for (guint i = 0; i < n; i++)
    for (guint j = 0; j < rows * cols; j++)
      data[16 + i * rows * cols + j] = mnist_pixel (first + i, j);
  return data;
}

static guint8 *
mnist_labels (guint first, guint n, gsize *len)
{
  *len = 8 + n;
  guint8 *data = g_malloc (*len);
  put_be32 (data, 0x801);
  put_be32 (data + 4, n);
  for (guint i = 0; i < n; i++)
    data[8 + i] = ((first + i) * 7 + 2) % 10;
  return data;
}

static void
check_mnist (const CsDataset *ds, guint first, guint n, guint rows, guint cols)
{
  g_assert_cmpstr (ds->name, ==, "mnist");
  g_assert_cmpuint (ds->c, ==, 1);
  g_assert_cmpuint (ds->h, ==, rows);
  g_assert_cmpuint (ds->w, ==, cols);
  g_assert_cmpuint (ds->n, ==, n);
  g_assert_cmpuint (ds->n_classes, ==, 10);
  g_assert_cmpstr (ds->class_names[7], ==, "7");
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (ds->labels[i], ==, ((first + i) * 7 + 2) % 10);
      for (guint j = 0; j < rows * cols; j++)
        g_assert_cmpuint (ds->pixels[i * rows * cols + j], ==, mnist_pixel (first + i, j));
    }
}

/* Writes a good MNIST folder: 3 training and 2 test images of 4 x 5, so rows and columns
 * cannot be swapped unnoticed. */
static void
write_mnist (const char *dir, gboolean gz)
{
  gsize len;
  void (*put) (const char *, const char *, const void *, gsize) = gz ? write_gzip : write_file;
  const char *sfx = gz ? ".gz" : "";
  g_autofree char *n1 = g_strconcat ("train-images-idx3-ubyte", sfx, NULL);
  g_autofree char *n2 = g_strconcat ("train-labels-idx1-ubyte", sfx, NULL);
  g_autofree char *n3 = g_strconcat ("t10k-images-idx3-ubyte", sfx, NULL);
  g_autofree char *n4 = g_strconcat ("t10k-labels-idx1-ubyte", sfx, NULL);
  g_autofree guint8 *ti = mnist_images (0, 3, 4, 5, &len);
  put (dir, n1, ti, len);
  g_autofree guint8 *tl = mnist_labels (0, 3, &len);
  put (dir, n2, tl, len);
  g_autofree guint8 *vi = mnist_images (10, 2, 4, 5, &len);
  put (dir, n3, vi, len);
  g_autofree guint8 *vl = mnist_labels (10, 2, &len);
  put (dir, n4, vl, len);
}

static void
test_mnist (gconstpointer data)
{
  gboolean gz = GPOINTER_TO_INT (data);
  g_autofree char *dir = make_tmp ();
  g_autofree char *spec = g_strconcat ("mnist:", dir, NULL);
  write_mnist (dir, gz);
  GError *error = NULL;
  g_autoptr (CsDataset) train = NULL;
  g_autoptr (CsDataset) val = NULL;
  g_assert_true (cs_data_open (spec, 28, 28, 1, &train, &val, &error));
  g_assert_no_error (error);
  check_mnist (train, 0, 3, 4, 5);
  check_mnist (val, 10, 2, 4, 5);
  remove_tree (dir);
}

static void
test_mnist_corrupt (void)
{
  g_autofree char *dir = make_tmp ();
  g_autofree char *spec = g_strconcat ("mnist:", dir, NULL);
  gsize len, llen;
  g_autofree guint8 *images = mnist_images (0, 3, 4, 5, &len);
  g_autofree guint8 *labels = mnist_labels (0, 3, &llen);

  assert_io_error (spec, 0, 0, "train-labels-idx1-ubyte", -1);
  write_mnist (dir, FALSE);

  /* Bad magic in each file. */
  g_autofree guint8 *bad = g_memdup2 (images, len);
  bad[3] = 0x02;
  write_file (dir, "train-images-idx3-ubyte", bad, len);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 0);
  write_file (dir, "train-images-idx3-ubyte", images, len);
  g_autofree guint8 *badl = g_memdup2 (labels, llen);
  badl[3] = 0x03; /* the image magic in a label file */
  write_file (dir, "t10k-labels-idx1-ubyte", badl, llen);
  assert_io_error (spec, 0, 0, "t10k-labels-idx1-ubyte", 0);
  write_mnist (dir, FALSE);

  /* An image file with another count than its labels: the count is at byte 4. */
  g_autofree guint8 *two = mnist_images (0, 2, 4, 5, &len);
  write_file (dir, "train-images-idx3-ubyte", two, len);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 4);

  /* Truncated images: the file ends 7 bytes early. */
  write_file (dir, "train-images-idx3-ubyte", images, 16 + 60 - 7);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 16 + 60 - 7);

  /* A truncated header. */
  write_file (dir, "train-images-idx3-ubyte", images, 10);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 10);

  /* Data after the last image. */
  g_autofree guint8 *longer = g_malloc0 (len + 64);
  memcpy (longer, images, 16 + 60);
  write_file (dir, "train-images-idx3-ubyte", longer, 16 + 60 + 3);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 16 + 60);

  /* Zero rows. */
  g_autofree guint8 *flat = g_memdup2 (images, 16 + 60);
  put_be32 (flat + 8, 0);
  write_file (dir, "train-images-idx3-ubyte", flat, 16);
  assert_io_error (spec, 0, 0, "train-images-idx3-ubyte", 8);
  write_file (dir, "train-images-idx3-ubyte", images, 16 + 60);

  /* A label that is no digit: the third label, at byte 8 + 2. */
  g_free (badl);
  badl = g_memdup2 (labels, llen);
  badl[10] = 10;
  write_file (dir, "train-labels-idx1-ubyte", badl, llen);
  assert_io_error (spec, 0, 0, "train-labels-idx1-ubyte", 10);
  g_free (badl);

  /* A label count past the end of the file. */
  badl = g_memdup2 (labels, llen);
  put_be32 (badl + 4, 1000000);
  write_file (dir, "train-labels-idx1-ubyte", badl, llen);
  assert_io_error (spec, 0, 0, "train-labels-idx1-ubyte", llen);
  write_file (dir, "train-labels-idx1-ubyte", labels, llen);

  /* A gzip file under the plain name is named as such; a truncated .gz is caught too. */
  g_autofree char *plain = g_build_filename (dir, "t10k-images-idx3-ubyte", NULL);
  g_unlink (plain);
  write_gzip (dir, "t10k-images-idx3-ubyte", images, len);
  assert_io_error (spec, 0, 0, "t10k-images-idx3-ubyte", 0);
  g_unlink (plain);
  g_autofree guint8 *vi = mnist_images (10, 2, 4, 5, &len);
  write_gzip (dir, "t10k-images-idx3-ubyte.gz", vi, len - 5);
  assert_io_error (spec, 0, 0, "t10k-images-idx3-ubyte.gz", len - 5);
  /* Garbage that is not gzip at all under a .gz name. */
  write_file (dir, "t10k-images-idx3-ubyte.gz", "not gzip at all, no", 19);
  assert_io_error (spec, 0, 0, "t10k-images-idx3-ubyte.gz", -1);

  remove_tree (dir);
}

/* ---- folders --------------------------------------------------------------------------- */

static void
save_png (const char *dir, const char *name, guint w, guint h, gboolean alpha, guint8 r,
          guint8 g, guint8 b, guint8 a)
{
  GError *error = NULL;
  g_autoptr (GdkPixbuf) pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, alpha, 8, w, h);
  gdk_pixbuf_fill (pb, ((guint32) r << 24) | ((guint32) g << 16) | ((guint32) b << 8) | a);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_assert_true (gdk_pixbuf_save (pb, path, "png", &error, NULL));
  g_assert_no_error (error);
}

static void
assert_pixel (const CsDataset *ds, guint i, guint8 r, guint8 g, guint8 b)
{
  gsize plane = (gsize) ds->h * ds->w;
  const guint8 *p = ds->pixels + (gsize) i * 3 * plane;
  for (gsize j = 0; j < plane; j++)
    {
      g_assert_cmpuint (p[j], ==, r);
      g_assert_cmpuint (p[plane + j], ==, g);
      g_assert_cmpuint (p[2 * plane + j], ==, b);
    }
}

static void
test_folder (void)
{
  g_autofree char *dir = make_tmp ();
  g_autofree char *spec = g_strconcat ("folder:", dir, NULL);
  g_autofree char *cat = g_build_filename (dir, "a_cat", NULL);
  g_autofree char *dog = g_build_filename (dir, "b_dog", NULL);
  /* Made in reverse order, so that only sorting puts them right. */
  g_mkdir (dog, 0700);
  g_mkdir (cat, 0700);

  /* Eleven cats of 6 x 5, resized to 4 x 4; each colour says which file it was. */
  for (guint j = 0; j < 11; j++)
    {
      g_autofree char *name = g_strdup_printf ("f%02u.png", 10 - j);
      save_png (cat, name, 6, 5, FALSE, (10 - j) * 20 + 1, 100, 7, 255);
    }
  /* Half-transparent dogs at the final size: composited over black. */
  for (guint j = 0; j < 3; j++)
    {
      g_autofree char *name = g_strdup_printf ("d%u.PNG", j);
      save_png (dog, name, 4, 4, TRUE, 200, 100, 51 * j, 128);
    }
  /* Not images, or hidden: skipped. */
  write_file (cat, "notes.txt", "hello", 5);
  write_file (cat, ".hidden.png", "junk", 4);

  GError *error = NULL;
  CsDataset *train = NULL, *val = NULL;
  g_assert_true (cs_data_open (spec, 4, 4, 1, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (train->name, ==, "folder");
  g_assert_cmpuint (train->n_classes, ==, 2);
  g_assert_cmpstr (train->class_names[0], ==, "a_cat");
  g_assert_cmpstr (train->class_names[1], ==, "b_dog");
  g_assert_null (train->class_names[2]);
  g_assert_cmpstr (val->class_names[1], ==, "b_dog");
  g_assert_cmpuint (train->c, ==, 3);
  g_assert_cmpuint (train->h, ==, 4);
  g_assert_cmpuint (train->w, ==, 4);
  /* The tenth cat (f09) is held out; the dogs are too few to lose one. */
  g_assert_cmpuint (train->n, ==, 13);
  g_assert_cmpuint (val->n, ==, 1);
  g_assert_cmpuint (val->labels[0], ==, 0);
  assert_pixel (val, 0, 9 * 20 + 1, 100, 7);
  const guint cats[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 10 };
  for (guint i = 0; i < 10; i++)
    {
      g_assert_cmpuint (train->labels[i], ==, 0);
      assert_pixel (train, i, cats[i] * 20 + 1, 100, 7);
    }
  for (guint j = 0; j < 3; j++)
    {
      g_assert_cmpuint (train->labels[10 + j], ==, 1);
      assert_pixel (train, 10 + j, (200 * 128 + 127) / 255, (100 * 128 + 127) / 255,
                    (51 * j * 128 + 127) / 255);
    }
  cs_dataset_free (train);
  cs_dataset_free (val);

  /* A file that will not decode is named. */
  write_file (dog, "broken.png", "\x89PNG\r\n\x1a\nthis is no png", 22);
  g_autofree char *broken = g_build_filename (dog, "broken.png", NULL);
  assert_io_error (spec, 4, 4, "broken.png", -1);

  /* No size to resize to. */
  assert_usage_error (spec, 0, 4);

  /* JPEG too, where gdk-pixbuf can write it; lossy, so only close. */
  gboolean jpeg = FALSE;
  g_autoptr (GSList) formats = gdk_pixbuf_get_formats ();
  for (GSList *l = formats; l != NULL; l = l->next)
    {
      g_autofree char *fname = gdk_pixbuf_format_get_name (l->data);
      jpeg |= g_str_equal (fname, "jpeg") && gdk_pixbuf_format_is_writable (l->data);
    }
  if (jpeg)
    {
      g_autofree char *bird = g_build_filename (dir, "c_bird", NULL);
      g_mkdir (bird, 0700);
      g_autoptr (GdkPixbuf) pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 16, 16);
      gdk_pixbuf_fill (pb, 0x50a0f0ff);
      g_autofree char *path = g_build_filename (bird, "b.jpg", NULL);
      g_assert_true (gdk_pixbuf_save (pb, path, "jpeg", &error, "quality", "95", NULL));
      g_assert_no_error (error);
      g_unlink (broken);
      g_assert_true (cs_data_open (spec, 4, 4, 1, &train, &val, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (train->n_classes, ==, 3);
      g_assert_cmpstr (train->class_names[2], ==, "c_bird");
      g_assert_cmpuint (train->n, ==, 14);
      g_assert_cmpuint (train->labels[13], ==, 2);
      const guint8 want[] = { 0x50, 0xa0, 0xf0 };
      for (guint ch = 0; ch < 3; ch++)
        for (guint j = 0; j < 16; j++)
          g_assert_cmpint (abs ((int) train->pixels[13 * 48 + ch * 16 + j] - want[ch]), <=, 4);
      cs_dataset_free (train);
      cs_dataset_free (val);
    }
  else
    g_test_message ("no JPEG writer: JPEG not checked");
  remove_tree (dir);

  /* No class folders. */
  g_free (dir);
  dir = make_tmp ();
  g_free (spec);
  spec = g_strconcat ("folder:", dir, NULL);
  write_file (dir, "stray.png", "x", 1);
  assert_io_error (spec, 4, 4, dir, -1);
  remove_tree (dir);
}

/* ---- statistics and batches ------------------------------------------------------------ */

static void
test_channel_stats (void)
{
  /* Two images of 1 x 2, two channels: 0/255 in the first, a flat 51 in the second. */
  const guint8 px[] = { 0, 255, 51, 51, 255, 0, 51, 51 };
  g_autoptr (CsDataset) ds = small_set (2, 1, 2, 2, px);
  float mean[4] = { -1, -1, -1, -1 }, std[4] = { -1, -1, -1, -1 };
  cs_dataset_channel_stats (ds, mean, std);
  g_assert_cmpfloat_with_epsilon (mean[0], 0.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[0], 0.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (mean[1], 0.2, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[1], 0.0, 1e-6);
  /* Only the set's channels are written. */
  g_assert_cmpfloat (mean[2], ==, -1);

  /* Three values, 0, 51 and 255: mean 102, population deviation 108.6... */
  const guint8 px3[] = { 0, 51, 255 };
  g_autoptr (CsDataset) three = small_set (1, 1, 1, 3, px3);
  cs_dataset_channel_stats (three, mean, std);
  double m = 102.0, v = ((0 - m) * (0 - m) + (51 - m) * (51 - m) + (255 - m) * (255 - m)) / 3;
  g_assert_cmpfloat_with_epsilon (mean[0], m / 255, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[0], sqrt (v) / 255, 1e-6);
}

static void
test_batch_normalise (void)
{
  /* One 3 x 2 x 2 image, every value different. */
  const guint8 px[] = { 0, 50, 100, 255, 10, 20, 30, 40, 200, 210, 220, 230 };
  g_autoptr (CsDataset) ds = small_set (3, 2, 2, 1, px);
  ds->labels[0] = 7;
  CsAugment aug = { .mean = { 0.5f, 0.25f, 0.1f }, .std = { 0.2f, 0.5f, 1.0f } };
  float out[12];
  guint label = 0, index = 0;
  cs_dataset_batch (ds, &index, 1, 3, 2, 2, &aug, NULL, out, &label);
  g_assert_cmpuint (label, ==, 7);
  for (guint j = 0; j < 12; j++)
    {
      guint ch = j / 4;
      double want = (px[j] / 255.0 - aug.mean[ch]) / aug.std[ch];
      g_assert_cmpfloat_with_epsilon (out[j], want, 1e-5);
    }

  /* No augmentation: [0,1] scaling only. */
  cs_dataset_batch (ds, &index, 1, 3, 2, 2, NULL, NULL, out, NULL);
  for (guint j = 0; j < 12; j++)
    g_assert_cmpfloat_with_epsilon (out[j], px[j] / 255.0, 1e-6);

  /* A zero spread is not divided by. */
  CsAugment flat = { .mean = { 0, 0, 0 }, .std = { 0, 0, 0 } };
  cs_dataset_batch (ds, &index, 1, 3, 2, 2, &flat, NULL, out, NULL);
  for (guint j = 0; j < 12; j++)
    g_assert_true (isfinite (out[j]));
}

static void
test_batch_flip (void)
{
  /* One grey 3 x 4 image, every value different; with FLIP and no crop each output is the
   * image or its exact mirror, and over 64 draws both happen. */
  guint8 px[12];
  for (guint j = 0; j < 12; j++)
    px[j] = (guint8) (j * 20 + 3);
  g_autoptr (CsDataset) ds = small_set (1, 3, 4, 1, px);
  CsAugment aug = { .mean = { 0 }, .std = { 1 }, .flip = TRUE };
  g_autoptr (GRand) rng = g_rand_new_with_seed (5);
  guint indices[64] = { 0 };
  float out[64 * 12];
  cs_dataset_batch (ds, indices, 64, 1, 3, 4, &aug, rng, out, NULL);
  guint mirrored = 0, plain = 0;
  for (guint i = 0; i < 64; i++)
    {
      const float *o = out + i * 12;
      gboolean is_plain = TRUE, is_mirror = TRUE;
      for (guint y = 0; y < 3; y++)
        for (guint x = 0; x < 4; x++)
          {
            is_plain &= o[y * 4 + x] == px[y * 4 + x] / 255.0f;
            is_mirror &= o[y * 4 + x] == px[y * 4 + 3 - x] / 255.0f;
          }
      g_assert_true (is_plain || is_mirror);
      plain += is_plain;
      mirrored += is_mirror;
    }
  g_assert_cmpuint (plain, >, 10);
  g_assert_cmpuint (mirrored, >, 10);
  g_assert_cmpuint (plain + mirrored, ==, 64);

  /* Without a generator there is no augmentation at all. */
  cs_dataset_batch (ds, indices, 1, 1, 3, 4, &aug, NULL, out, NULL);
  for (guint j = 0; j < 12; j++)
    g_assert_cmpfloat (out[j], ==, px[j] / 255.0f);
}

static void
test_batch_crop (void)
{
  /* With a pad of 2, each output is the image shifted by some (dy, dx) in [-2, 2], the
   * uncovered part zero (the normalised mean); over many draws every shift appears. */
  guint8 px[25];
  for (guint j = 0; j < 25; j++)
    px[j] = (guint8) (j * 10 + 5);
  g_autoptr (CsDataset) ds = small_set (1, 5, 5, 1, px);
  CsAugment aug = { .mean = { 0.1f }, .std = { 0.5f }, .crop_pad = 2 };
  g_autoptr (GRand) rng = g_rand_new_with_seed (9);
  enum { N = 400 };
  guint *indices = g_new0 (guint, N);
  float *out = g_new (float, N * 25);
  cs_dataset_batch (ds, indices, N, 1, 5, 5, &aug, rng, out, NULL);
  gboolean seen[5][5] = { { FALSE } };
  for (guint i = 0; i < N; i++)
    {
      gboolean found = FALSE;
      for (int dy = -2; dy <= 2 && !found; dy++)
        for (int dx = -2; dx <= 2 && !found; dx++)
          {
            gboolean match = TRUE;
            for (int y = 0; y < 5; y++)
              for (int x = 0; x < 5; x++)
                {
                  int sy = y + dy, sx = x + dx;
                  float want = (sy < 0 || sy >= 5 || sx < 0 || sx >= 5)
                                 ? 0.0f
                                 : (px[sy * 5 + sx] / 255.0f - 0.1f) / 0.5f;
                  match &= fabsf (out[i * 25 + y * 5 + x] - want) < 1e-6f;
                }
            if (match)
              {
                found = TRUE;
                seen[dy + 2][dx + 2] = TRUE;
              }
          }
      g_assert_true (found);
    }
  for (guint a = 0; a < 5; a++)
    for (guint b = 0; b < 5; b++)
      g_assert_true (seen[a][b]);
  g_free (indices);
  g_free (out);
}

static void
test_batch_resize (void)
{
  /* A flat 3 x 5 x 7 image stays flat at any size, up or down. */
  guint8 px[105];
  for (guint j = 0; j < 105; j++)
    px[j] = j < 35 ? 17 : j < 70 ? 140 : 251;
  g_autoptr (CsDataset) ds = small_set (3, 5, 7, 1, px);
  guint index = 0;
  float big[3 * 13 * 3], small[3 * 2 * 2];
  cs_dataset_batch (ds, &index, 1, 3, 13, 3, NULL, NULL, big, NULL);
  for (guint j = 0; j < G_N_ELEMENTS (big); j++)
    g_assert_cmpfloat (big[j], ==, (j < 39 ? 17 : j < 78 ? 140 : 251) / 255.0f);
  cs_dataset_batch (ds, &index, 1, 3, 2, 2, NULL, NULL, small, NULL);
  for (guint j = 0; j < G_N_ELEMENTS (small); j++)
    g_assert_cmpfloat (small[j], ==, (j < 4 ? 17 : j < 8 ? 140 : 251) / 255.0f);

  /* Bilinear with aligned pixel centres: 0 and 255 across two pixels become 0, 63.75, 191.25
   * and 255 across four. */
  const guint8 edge[] = { 0, 255 };
  g_autoptr (CsDataset) two = small_set (1, 1, 2, 1, edge);
  float row[4];
  cs_dataset_batch (two, &index, 1, 1, 1, 4, NULL, NULL, row, NULL);
  const float want[] = { 0, 63.75f, 191.25f, 255 };
  for (guint j = 0; j < 4; j++)
    g_assert_cmpfloat_with_epsilon (row[j], want[j] / 255.0f, 1e-6);
}

static void
test_batch_channels (void)
{
  /* Grey to colour: the plane three times, each normalised with its own channel's values. */
  const guint8 grey[] = { 0, 100, 200, 255 };
  g_autoptr (CsDataset) g = small_set (1, 2, 2, 1, grey);
  CsAugment aug = { .mean = { 0.1f, 0.2f, 0.3f }, .std = { 1.0f, 2.0f, 4.0f } };
  guint index = 0;
  float out[12];
  cs_dataset_batch (g, &index, 1, 3, 2, 2, &aug, NULL, out, NULL);
  for (guint ch = 0; ch < 3; ch++)
    for (guint j = 0; j < 4; j++)
      g_assert_cmpfloat_with_epsilon (out[ch * 4 + j],
                                      (grey[j] / 255.0 - aug.mean[ch]) / aug.std[ch], 1e-6);

  /* Colour to grey: the mean of the three planes. */
  const guint8 rgb[] = { 0, 30, 60, 90, 3, 60, 120, 180, 255, 90, 180, 255 };
  g_autoptr (CsDataset) c = small_set (3, 2, 2, 1, rgb);
  float one[4];
  cs_dataset_batch (c, &index, 1, 1, 2, 2, NULL, NULL, one, NULL);
  for (guint j = 0; j < 4; j++)
    g_assert_cmpfloat_with_epsilon (one[j], (rgb[j] + rgb[4 + j] + rgb[8 + j]) / 3.0 / 255.0,
                                    1e-6);
}

static void
test_batch_indices (void)
{
  /* Images are picked by index, and labels follow them. */
  guint8 px[4 * 3];
  for (guint j = 0; j < 12; j++)
    px[j] = (guint8) (j * 9);
  g_autoptr (CsDataset) ds = small_set (1, 1, 3, 4, px);
  const guint indices[] = { 3, 0, 3, 2 };
  float out[12];
  guint labels[4];
  cs_dataset_batch (ds, indices, 4, 1, 1, 3, NULL, NULL, out, labels);
  for (guint i = 0; i < 4; i++)
    {
      g_assert_cmpuint (labels[i], ==, indices[i] % 10);
      for (guint x = 0; x < 3; x++)
        g_assert_cmpfloat (out[i * 3 + x], ==, px[indices[i] * 3 + x] / 255.0f);
    }
}

static void
test_dataset_new (void)
{
  GError *error = NULL;
  g_autoptr (CsDataset) ds = cs_dataset_new ("x", 3, 4, 5, 6, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ds->class_names[2], ==, "2");
  g_assert_null (ds->class_names[3]);
  /* Sizes whose product does not fit in memory, or in 64 bits. */
  g_assert_null (cs_dataset_new ("x", G_MAXUINT, G_MAXUINT, G_MAXUINT, G_MAXUINT, 2, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY);
  g_clear_error (&error);
  cs_dataset_free (NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/core/data/shapes/deterministic", test_shapes_deterministic);
  g_test_add_func ("/core/data/shapes/balanced", test_shapes_balanced);
  g_test_add_func ("/core/data/shapes/distinct", test_shapes_distinct);
  g_test_add_func ("/core/data/shapes/open", test_shapes_open);
  g_test_add_func ("/core/data/cifar10/read", test_cifar);
  g_test_add_func ("/core/data/cifar10/corrupt", test_cifar_corrupt);
  g_test_add_data_func ("/core/data/mnist/read", GINT_TO_POINTER (FALSE), test_mnist);
  g_test_add_data_func ("/core/data/mnist/read-gz", GINT_TO_POINTER (TRUE), test_mnist);
  g_test_add_func ("/core/data/mnist/corrupt", test_mnist_corrupt);
  g_test_add_func ("/core/data/folder", test_folder);
  g_test_add_func ("/core/data/channel-stats", test_channel_stats);
  g_test_add_func ("/core/data/batch/normalise", test_batch_normalise);
  g_test_add_func ("/core/data/batch/flip", test_batch_flip);
  g_test_add_func ("/core/data/batch/crop", test_batch_crop);
  g_test_add_func ("/core/data/batch/resize", test_batch_resize);
  g_test_add_func ("/core/data/batch/channels", test_batch_channels);
  g_test_add_func ("/core/data/batch/indices", test_batch_indices);
  g_test_add_func ("/core/data/new", test_dataset_new);
  return g_test_run ();
}
