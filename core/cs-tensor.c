/* Host tensors: allocation with checked sizes, and shape strings for messages. */
#include "cs-tensor.h"
#include "cs-error.h"

CsTensor *
cs_tensor_new (const char *name, guint rank, const guint64 *shape, gboolean trainable,
               GError **error)
{
  g_return_val_if_fail (rank <= CS_TENSOR_MAX_RANK, NULL);
  guint64 n = 1;
  for (guint i = 0; i < rank; i++)
    if (!g_uint64_checked_mul (&n, n, shape[i]) || n > G_MAXSIZE / sizeof (float))
      {
        g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW, "tensor %s: its size overflows", name);
        return NULL;
      }
  float *data = n ? g_try_malloc0 (n * sizeof (float)) : NULL;
  if (n && data == NULL)
    {
      g_autofree char *size = g_format_size (n * sizeof (float));
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY,
                   "tensor %s: cannot allocate %s", name, size);
      return NULL;
    }
  CsTensor *t = g_new0 (CsTensor, 1);
  t->name = g_strdup (name);
  t->rank = rank;
  for (guint i = 0; i < rank; i++)
    t->shape[i] = shape[i];
  t->numel = n;
  t->data = data;
  t->trainable = trainable;
  return t;
}

void
cs_tensor_free (CsTensor *t)
{
  if (t == NULL)
    return;
  g_free (t->name);
  g_free (t->data);
  g_free (t);
}

char *
cs_tensor_shape_string (guint rank, const guint64 *shape)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < rank; i++)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, i ? "x" : "", shape[i]);
  if (rank == 0)
    g_string_append (s, "scalar");
  return g_string_free (s, FALSE);
}
