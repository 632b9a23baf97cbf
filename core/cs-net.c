/* CsNet: allocation of every node's parameters and their deterministic initialisation. */
#include "cs-net.h"
#include "cs-error.h"

#include <math.h>

static gint
add_tensor (CsNet *net, const CsNode *n, const char *what, guint rank, const guint64 *shape,
            gboolean trainable, GError **error)
{
  g_autofree char *name = g_strconcat (n->name, ".", what, NULL);
  CsTensor *t = cs_tensor_new (name, rank, shape, trainable, error);
  if (t == NULL)
    return -2;
  g_ptr_array_add (net->tensors, t);
  return net->tensors->len - 1;
}

CsNet *
cs_net_new (CsGraph *g, GError **error)
{
  g_return_val_if_fail (g->finalized, NULL);
  guint n = cs_graph_n_nodes (g);
  g_autoptr (CsNet) net = g_new0 (CsNet, 1);
  net->graph = cs_graph_ref (g);
  net->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) cs_tensor_free);
  net->weight = g_new (gint, n);
  net->bias = g_new (gint, n);
  net->run_mean = g_new (gint, n);
  net->run_var = g_new (gint, n);
  for (guint i = 0; i < n; i++)
    {
      const CsNode *node = cs_graph_node (g, i);
      const CsShape *in = node->n_inputs ? &cs_graph_node (g, node->inputs[0])->shape : NULL;
      net->weight[i] = net->bias[i] = net->run_mean[i] = net->run_var[i] = -1;
      if (node->op == CS_OP_CONV)
        {
          guint64 ws[4] = { node->p.out, in->c / node->p.groups, node->p.kh, node->p.kw };
          net->weight[i] = add_tensor (net, node, "weight", 4, ws, TRUE, error);
          if (!node->p.nobias)
            net->bias[i] = add_tensor (net, node, "bias", 1, &node->p.out, TRUE, error);
        }
      else if (node->op == CS_OP_FC)
        {
          guint64 fan_in = in->c * in->h * in->w;
          guint64 ws[2] = { node->p.out, fan_in };
          net->weight[i] = add_tensor (net, node, "weight", 2, ws, TRUE, error);
          if (!node->p.nobias)
            net->bias[i] = add_tensor (net, node, "bias", 1, &node->p.out, TRUE, error);
        }
      else if (node->op == CS_OP_BN)
        {
          if (!node->p.noaffine)
            {
              net->weight[i] = add_tensor (net, node, "weight", 1, &in->c, TRUE, error);
              net->bias[i] = add_tensor (net, node, "bias", 1, &in->c, TRUE, error);
            }
          net->run_mean[i] = add_tensor (net, node, "running_mean", 1, &in->c, FALSE, error);
          net->run_var[i] = add_tensor (net, node, "running_var", 1, &in->c, FALSE, error);
        }
      if (net->weight[i] == -2 || net->bias[i] == -2 || net->run_mean[i] == -2
          || net->run_var[i] == -2)
        return NULL;
    }
  return g_steal_pointer (&net);
}

void
cs_net_free (CsNet *net)
{
  if (net == NULL)
    return;
  cs_graph_unref (net->graph);
  g_ptr_array_unref (net->tensors);
  g_free (net->weight), g_free (net->bias), g_free (net->run_mean), g_free (net->run_var);
  g_free (net);
}

/* A standard normal number from two counter-based uniforms (Box-Muller). */
static float
normal (guint64 seed, guint64 i)
{
  double u1 = (cs_mix64 (seed ^ cs_mix64 (2 * i)) >> 11) * (1.0 / 9007199254740992.0);
  double u2 = (cs_mix64 (seed ^ cs_mix64 (2 * i + 1)) >> 11) * (1.0 / 9007199254740992.0);
  return (float) (sqrt (-2.0 * log (1.0 - u1)) * cos (2.0 * G_PI * u2));
}

void
cs_net_init (CsNet *net, guint64 seed, gboolean xavier)
{
  for (guint t = 0; t < net->tensors->len; t++)
    {
      CsTensor *ten = net->tensors->pdata[t];
      gboolean is_weight = g_str_has_suffix (ten->name, ".weight");
      gboolean is_var = g_str_has_suffix (ten->name, ".running_var");
      if (is_weight && ten->rank >= 2)
        {
          guint64 fan_in = ten->numel / ten->shape[0];
          double std = sqrt ((xavier ? 1.0 : 2.0) / (double) fan_in);
          guint64 tseed = cs_mix64 (seed ^ cs_mix64 (t + 1));
          for (gsize i = 0; i < ten->numel; i++)
            ten->data[i] = (float) (std * normal (tseed, i));
        }
      else
        {
          float v = (is_weight || is_var) ? 1.0f : 0.0f;   /* bn scale and variance start at 1 */
          for (gsize i = 0; i < ten->numel; i++)
            ten->data[i] = v;
        }
    }
}
