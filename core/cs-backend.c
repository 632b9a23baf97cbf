/* What every backend shares. */
#include "cs-backend.h"
#include "cs-net.h"

void
cs_backend_free (CsBackend *be)
{
  if (be)
    be->destroy (be);
}

float
cs_kernel_droppath_factor (const CsKernelArgs *a)
{
  float p = (float) a->node->p.p;
  if (!a->training || p >= 1)
    return 1.0f;
  return cs_uniform (a->seed, 0) < p ? 1.0f / p : 0.0f;
}

guint
cs_kernel_join_kept (const CsKernelArgs *a, gboolean *kept)
{
  float p = a->node->op == CS_OP_MEAN ? (float) a->node->p.p : 0.0f;
  guint k = 0;
  for (guint i = 0; i < a->n_in; i++)
    k += kept[i] = !a->training || p == 0 || cs_uniform (a->seed, i) >= p;
  if (k == 0)
    {
      kept[cs_mix64 (a->seed) % a->n_in] = TRUE;
      k = 1;
    }
  return k;
}

CsPoolGeom
cs_kernel_pool_geom (const CsNode *n, const CsShape *in)
{
  guint64 k[2], s[2], p[2], d[2];
  cs_layer_window (n, in, k, s, p, d);
  return (CsPoolGeom) { (int) in->h, (int) in->w, (int) k[0], (int) k[1], (int) s[0], (int) s[1],
                        (int) p[0], (int) p[1], (int) n->shape.h, (int) n->shape.w };
}
