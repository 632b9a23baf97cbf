/* CsNet: the parameters and buffers of a graph, as named host tensors, and their initialisation. */
#pragma once

#include "cs-graph.h"
#include "cs-tensor.h"

G_BEGIN_DECLS

typedef struct {
  CsGraph *graph;
  GPtrArray *tensors;           /* CsTensor*, owned; in node order */
  gint *weight, *bias;          /* per node: index into tensors, or -1 */
  gint *run_mean, *run_var;
} CsNet;

/* Tensors for every node with parameters: conv weight [out, in/groups, kh, kw] and bias [out];
 * fc weight [out, in] and bias [out]; batch norm weight and bias [C] and the buffers
 * running_mean and running_var [C]. Named "NODE.weight", "NODE.bias", "NODE.running_mean"... */
CsNet *cs_net_new  (CsGraph *g, GError **error);
void   cs_net_free (CsNet *net);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsNet, cs_net_free)

/* He initialisation (normal, variance 2/fan_in) or, with XAVIER, variance 1/fan_in; biases 0,
 * batch norm scale 1, shift 0, running mean 0, variance 1. The same seed gives the same values. */
void   cs_net_init (CsNet *net, guint64 seed, gboolean xavier);

static inline CsTensor *
cs_net_tensor (const CsNet *net, gint i)
{
  return i < 0 ? NULL : net->tensors->pdata[i];
}

/* Uniform and normal numbers from a 64-bit counter: the same for the same (seed, index) on
 * every backend and thread. */
static inline guint64
cs_mix64 (guint64 x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static inline float
cs_uniform (guint64 seed, guint64 index)
{
  return (cs_mix64 (seed ^ cs_mix64 (index)) >> 40) * (1.0f / 16777216.0f);
}

G_END_DECLS
