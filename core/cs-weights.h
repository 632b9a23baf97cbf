/* Saving and loading parameters in the safetensors format, and NumPy .npy arrays. */
#pragma once

#include "cs-tensor.h"

G_BEGIN_DECLS

/* Writes TENSORS (F32, keyed by name) to PATH atomically: a temporary file in the same folder,
 * then a rename, so a failed save leaves any previous file intact. */
gboolean cs_safetensors_save (const char *path, CsTensor *const *tensors, guint n,
                              GError **error);

/* Fills TENSORS from PATH. Every name must be present with dtype F32 and the same shape; all
 * mismatches (missing, unexpected, wrong dtype, wrong shape) are reported in one
 * CS_ERROR_IO error, and nothing is changed unless all of them match. A truncated or malformed
 * file is a CS_ERROR_IO error naming the file and the byte offset. */
gboolean cs_safetensors_load (const char *path, CsTensor *const *tensors, guint n,
                              GError **error);

/* The same, with string METADATA stored in the file's "__metadata__" (and read back into a new
 * table when METADATA is not NULL; it is set only on success). */
gboolean cs_safetensors_save_full (const char *path, CsTensor *const *tensors, guint n,
                                   GHashTable *metadata, GError **error);
gboolean cs_safetensors_load_full (const char *path, CsTensor *const *tensors, guint n,
                                   GHashTable **metadata, GError **error);

/* Reads a float32 (little-endian, C order) .npy file of rank 1 to 4. */
float   *cs_npy_read  (const char *path, guint *rank, guint64 shape[CS_TENSOR_MAX_RANK],
                       GError **error);
/* Writes a float32 .npy file of rank 1 to 4, atomically. */
gboolean cs_npy_write (const char *path, const float *data, guint rank, const guint64 *shape,
                       GError **error);

G_END_DECLS
