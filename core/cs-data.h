/* Datasets: the built-in procedural shapes, CIFAR-10, MNIST and folders of images, with
 * normalisation and augmentation into NCHW float32 batches. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *name;               /* "shapes", "cifar10", "mnist", "folder" */
  guint c, h, w;            /* stored image size */
  guint n;                  /* images */
  guint n_classes;
  char **class_names;       /* n_classes names, NULL-terminated */
  guint8 *pixels;           /* n * c*h*w bytes, CHW per image */
  guint16 *labels;          /* n */
} CsDataset;

typedef struct {
  float mean[4], std[4];    /* per channel, on values scaled to [0,1] */
  gboolean flip;            /* random horizontal flip */
  guint crop_pad;           /* random crop after zero padding by this many pixels; 0: none */
} CsAugment;

/* Opens SPEC: "shapes" or "shapes:N" (N training images, default 5000), "cifar10:DIR",
 * "mnist:DIR" or "folder:DIR" (one sub-folder per class, PNG/JPEG). Images are stored at their
 * own size, except folders, which are resized to H x W when read. The validation split is the
 * format's test set (CIFAR-10 test_batch.bin, MNIST t10k), a held-out tenth of a folder, or for
 * shapes a set drawn with another seed. Errors name the file and the byte offset. */
gboolean cs_data_open (const char *spec, guint h, guint w, guint64 seed,
                       CsDataset **train, CsDataset **val, GError **error);

/* N procedural images of SIZE x SIZE x 3: circle, square, triangle, cross, ring, stripes... in
 * random colours, sizes and positions with noise, drawn with Cairo; the same for the same seed. */
CsDataset *cs_dataset_shapes (guint n, guint size, guint64 seed);

/* Like cs_dataset_shapes, but says why it failed (a size of 0 or over 16384: CS_ERROR_USAGE;
 * no memory: CS_ERROR_OUT_OF_MEMORY), where cs_dataset_shapes just returns NULL. Classes are
 * balanced (counts differ by at most one) in a shuffled order. */
CsDataset *cs_dataset_shapes_checked (guint n, guint size, guint64 seed, GError **error);

/* An empty set of N images of C x H x W with N_CLASSES classes named "0", "1", ...: pixels and
 * labels allocated but not cleared; the sizes are checked, and failure to allocate is
 * CS_ERROR_OUT_OF_MEMORY. Every field is freed with g_free, so callers may replace names. */
CsDataset *cs_dataset_new (const char *name, guint c, guint h, guint w, guint n,
                           guint n_classes, GError **error);

/* N image files (PNG, JPEG...) resized to H x W, as one unlabelled set: inference input. */
CsDataset *cs_dataset_from_images (char *const *paths, guint n, guint h, guint w,
                                   GError **error);

void cs_dataset_free (CsDataset *ds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsDataset, cs_dataset_free)

/* Per-channel mean and standard deviation over the whole set, in [0,1] units. */
void cs_dataset_channel_stats (const CsDataset *ds, float *mean, float *std);

/* Writes N images (INDICES into DS) as a float32 NCHW batch of C x H x W: resized (bilinear)
 * when the stored size differs, grey replicated when the model wants 3 channels, normalised
 * with AUG's mean and std, and, when RNG is not NULL, augmented (crop, flip). LABELS gets the
 * classes. */
void cs_dataset_batch (const CsDataset *ds, const guint *indices, guint n, guint c, guint h,
                       guint w, const CsAugment *aug, GRand *rng, float *out, guint *labels);

G_END_DECLS
