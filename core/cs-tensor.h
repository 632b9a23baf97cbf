/* Host tensors: the named float32 arrays that hold a network's parameters and buffers. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CS_TENSOR_MAX_RANK 4

typedef struct {
  char *name;                        /* "conv1.weight", "inception_3a/conv2.bias", "bn1.running_mean" */
  guint rank;
  guint64 shape[CS_TENSOR_MAX_RANK];
  gsize numel;
  float *data;                       /* host copy, numel values, owned */
  gboolean trainable;                /* FALSE for buffers (batch norm running statistics) */
} CsTensor;

/* A tensor of the given shape, zero-filled; NULL with CS_ERROR_OUT_OF_MEMORY or
 * CS_ERROR_OVERFLOW set when it cannot be allocated. */
CsTensor *cs_tensor_new   (const char *name, guint rank, const guint64 *shape, gboolean trainable,
                           GError **error);
void      cs_tensor_free  (CsTensor *t);
/* "64x3x7x7" */
char     *cs_tensor_shape_string (guint rank, const guint64 *shape);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsTensor, cs_tensor_free)

G_END_DECLS
