/* The executor: the order of nodes, which run in place, a memory plan made once (buffers reused
 * once dead), and the forward, loss, backward and update passes over a backend. */
#include "cs-exec.h"
#include "cs-error.h"

#include <math.h>

#define ALIGN 16                /* floats: 64 bytes */
#define NONE G_MAXSIZE

typedef enum { P_W, P_B, P_RM, P_RV, P_DW, P_DB, P_MW, P_MB, P_COUNT } ParamSet;

struct _CsExec {
  CsNet *net;
  CsGraph *g;
  CsBackend *be;
  guint batch, n;               /* planned batch; images in the last call */
  gboolean training, keep_gradients, poison;
  guint64 seed, step;

  guint n_order;
  guint *order;                 /* node ids that run, in order */
  gint *pos;                    /* node id -> place in order, -1 when it does not run */
  guint *value_of;              /* node id -> node whose buffer holds its output */
  gboolean *run_inplace;

  float *arena, *grad_arena;
  gsize *act_off, *grad_off;    /* per node, in floats; NONE when absent */
  float **w, **b, **dw, **db, **mw, **mb, **rm, **rv, **saved;   /* per node, or NULL */
  float *block[P_COUNT];        /* where the parameters live (alloc_params) */
  gsize block_len[P_COUNT];
  gint *folded_into;            /* the node a batch norm or ReLU is folded into, which does its
                                 * work; -1 when none (choose_folds) */
  gint *relu_of;                /* per node: the ReLU it applies, or -1 */
  float **fold_w, **fold_b;     /* per convolution with a batch norm folded in */
  float *work;
  gsize work_len;
  guint *heads;                 /* loss heads: the main output and the auxiliary outputs */
  guint n_heads;
  gboolean *touched;
  CsShape *in_shapes;           /* scratch for kernel arguments */
  float **in_ptrs, **din_ptrs;
  gboolean *din_fresh;
  guint max_inputs;
  CsExecPlan plan;
  gboolean tracing;             /* tag work with its node and phase for the backend's tracer */
  guint *labels_dev_scratch;
};

typedef struct {
  gsize size;
  guint start, end;             /* steps, inclusive */
  gsize offset;
  guint node;
} Interval;

static int
by_size_desc (gconstpointer a, gconstpointer b)
{
  const Interval *x = a, *y = b;
  if (x->size != y->size)
    return x->size > y->size ? -1 : 1;
  return (int) x->node - (int) y->node;
}

static int
by_offset (gconstpointer a, gconstpointer b)
{
  const Interval *x = *(Interval *const *) a, *y = *(Interval *const *) b;
  return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Greedy by size: the largest buffers are placed first, each at the lowest offset where it
 * overlaps no placed buffer alive at the same time. Returns the arena's size in floats. */
static gsize
plan_intervals (Interval *iv, guint n)
{
  qsort (iv, n, sizeof *iv, by_size_desc);
  g_autofree Interval **live = g_new (Interval *, MAX (n, 1));
  gsize total = 0;
  for (guint i = 0; i < n; i++)
    {
      guint k = 0;
      for (guint j = 0; j < i; j++)
        if (iv[j].start <= iv[i].end && iv[i].start <= iv[j].end)
          live[k++] = &iv[j];
      qsort (live, k, sizeof *live, by_offset);
      gsize off = 0;
      for (guint j = 0; j < k; j++)
        {
          if (off + iv[i].size <= live[j]->offset)
            break;
          off = MAX (off, live[j]->offset + live[j]->size);
        }
      iv[i].offset = off;
      total = MAX (total, off + iv[i].size);
    }
  return total;
}

static gsize
align_up (gsize n)
{
  return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static gsize
numel (const CsNode *n, guint batch)
{
  return (gsize) n->shape.c * n->shape.h * n->shape.w * batch;
}

static gboolean
runs (const CsExec *x, const CsNode *n)
{
  return x->training || !(n->flags & CS_NODE_TRAIN_ONLY);
}

static float *
be_alloc (CsExec *x, gsize n, const char *what, GError **error)
{
  if (n == 0)
    return NULL;
  GError *local = NULL;
  float *p = x->be->alloc (x->be, n, &local);
  if (p == NULL)
    {
      g_autofree char *size = g_format_size ((guint64) n * sizeof (float));
      gint code = local ? local->code : CS_ERROR_OUT_OF_MEMORY;
      g_set_error (error, CS_ERROR, code, "cannot allocate %s for %s on %s (batch %u): %s%s",
                   size, what, x->be->name, x->batch, local ? local->message : "out of memory",
                   code == CS_ERROR_OUT_OF_MEMORY && x->batch > 1
                   ? " (a smaller batch needs less)" : "");
      g_clear_error (&local);
    }
  return p;
}

/* Whether NODE is a loss head: the main output or, in training, an auxiliary one. */
static gboolean
is_head (const CsExec *x, guint node)
{
  for (guint h = 0; h < x->n_heads; h++)
    if (x->heads[h] == node)
      return TRUE;
  return FALSE;
}

/* Which nodes may overwrite their input: an in-place kind whose input has no other reader, is
 * not the network's input, and, when training, is not needed by either backward. */
static void
choose_inplace (CsExec *x)
{
  const CsGraph *g = x->g;
  for (guint k = 0; k < x->n_order; k++)
    {
      guint v = x->order[k];
      const CsNode *n = cs_graph_node (g, v);
      x->value_of[v] = v;
      x->run_inplace[v] = FALSE;
      if (!(cs_layer_class (n->op)->flags & CS_LAYER_INPLACE) || n->n_inputs != 1)
        continue;
      const CsNode *u = cs_graph_node (g, n->inputs[0]);
      guint readers = 0;
      for (guint j = 0; j < cs_graph_n_nodes (g); j++)
        {
          const CsNode *c = cs_graph_node (g, j);
          if (!runs (x, c))
            continue;
          for (guint i = 0; i < c->n_inputs; i++)
            readers += c->inputs[i] == u->id;
        }
      if (readers != 1 || u->op == CS_OP_INPUT)
        continue;
      if (x->training && ((cs_layer_class (u->op)->flags & CS_LAYER_BWD_OUTPUT)
                          || (cs_layer_class (n->op)->flags & CS_LAYER_BWD_INPUT)))
        continue;
      /* A loss head's logits must survive its softmax. */
      if (is_head (x, v) && x->training)
        continue;
      x->run_inplace[v] = TRUE;
      x->value_of[v] = x->value_of[u->id];
      x->plan.n_inplace++;
    }
}

static gboolean
plan_memory (CsExec *x, GError **error)
{
  const CsGraph *g = x->g;
  guint S = x->n_order, nn = cs_graph_n_nodes (g);

  /* Activations: one buffer per value, alive from its producer to its last reader. */
  g_autofree Interval *iv = g_new0 (Interval, S);
  g_autofree gint *slot = g_new (gint, nn);
  guint n_iv = 0;
  for (guint i = 0; i < nn; i++)
    slot[i] = -1;
  guint64 naive = 0;
  for (guint k = 0; k < S; k++)
    {
      guint v = x->order[k];
      const CsNode *n = cs_graph_node (g, v);
      naive += numel (n, x->batch);
      guint root = x->value_of[v];
      if (slot[root] < 0)
        {
          slot[root] = n_iv;
          iv[n_iv++] = (Interval) { align_up (numel (n, x->batch)), k, k, 0, root };
        }
      Interval *r = &iv[slot[root]];
      r->end = MAX (r->end, k);
      for (guint i = 0; i < n->n_inputs; i++)
        {
          Interval *in = &iv[slot[x->value_of[n->inputs[i]]]];
          in->end = MAX (in->end, k);
        }
    }
  /* Outputs are read after the pass; in training everything stays for backward. */
  for (guint i = 0; i < n_iv; i++)
    if (x->training || iv[i].node == x->value_of[x->heads[0]])
      iv[i].end = S;
  gsize act_len = plan_intervals (iv, n_iv);
  for (guint i = 0; i < n_iv; i++)
    x->act_off[iv[i].node] = iv[i].offset;
  for (guint k = 0; k < S; k++)
    x->act_off[x->order[k]] = x->act_off[x->value_of[x->order[k]]];
  x->plan.activation_bytes = act_len * sizeof (float);
  x->plan.naive_bytes = naive * sizeof (float);

  /* Gradients: alive in the backward sweep from the first reader's backward to the node's own. */
  gsize grad_len = 0;
  if (x->training)
    {
      g_autofree Interval *gv = g_new0 (Interval, S);
      guint n_gv = 0;
      for (guint k = 0; k < S; k++)
        {
          guint v = x->order[k];
          const CsNode *n = cs_graph_node (g, v);
          /* A layer that applies a ReLU starts its backward from the ReLU's gradient. */
          if (n->op == CS_OP_INPUT || x->relu_of[v] >= 0)
            continue;
          guint last = k;
          for (guint j = k + 1; j < S; j++)
            {
              const CsNode *c = cs_graph_node (g, x->order[j]);
              for (guint i = 0; i < c->n_inputs; i++)
                if (c->inputs[i] == v)
                  last = j;
            }
          for (guint h = 0; h < x->n_heads; h++)
            if (x->heads[h] == v || (cs_graph_node (g, x->heads[h])->op == CS_OP_SOFTMAX
                                     && cs_graph_node (g, x->heads[h])->inputs[0] == v))
              last = S;
          /* Backward step of place k is 2S - k; the loss is step S. A folded ReLU's gradient
           * is read by the backward of the layer that applies it. */
          guint own = x->folded_into[v] >= 0 ? (guint) x->pos[x->folded_into[v]] : k;
          gv[n_gv++] = (Interval) { align_up (numel (n, x->batch)), 2 * S - last,
                                    x->keep_gradients ? 2 * S : 2 * S - own, 0, v };
          naive += numel (n, x->batch);
        }
      grad_len = plan_intervals (gv, n_gv);
      for (guint i = 0; i < n_gv; i++)
        x->grad_off[gv[i].node] = gv[i].offset;
      x->plan.naive_bytes = naive * sizeof (float);
    }
  x->plan.gradient_bytes = grad_len * sizeof (float);

  if ((x->arena = be_alloc (x, act_len, "activations", error)) == NULL && act_len)
    return FALSE;
  if (grad_len && (x->grad_arena = be_alloc (x, grad_len, "gradients", error)) == NULL)
    return FALSE;
  return TRUE;
}

/* Parameters live in blocks, one per set, each tensor at an aligned offset: weights, biases,
 * running means and variances, and the gradients and momenta of weights and biases. So a device
 * backend updates all weights with one SGD call and all biases with another. On a host-memory
 * backend the first four sets stay in the net's tensors, without a block. */
static gboolean
alloc_params (CsExec *x, GError **error)
{
  const CsNet *net = x->net;
  guint nn = cs_graph_n_nodes (x->g);
  gboolean own = !x->be->host_memory;
  struct { gint *idx; float **dst, **grad, **mom; ParamSet g, m; const char *what; } sets[] = {
    { net->weight, x->w, x->dw, x->mw, P_DW, P_MW, "the weights" },
    { net->bias, x->b, x->db, x->mb, P_DB, P_MB, "the biases" },
    { net->run_mean, x->rm, NULL, NULL, 0, 0, "the running means" },
    { net->run_var, x->rv, NULL, NULL, 0, 0, "the running variances" },
  };
  for (guint s = 0; s < G_N_ELEMENTS (sets); s++)
    {
      gsize len = 0;
      for (guint i = 0; i < nn; i++)
        {
          CsTensor *t = cs_net_tensor (net, sets[s].idx[i]);
          if (t && runs (x, cs_graph_node (x->g, i)))
            len += align_up (t->numel);
        }
      if (len == 0)
        continue;
      gboolean grads = x->training && sets[s].grad;
      if ((own && (x->block[s] = be_alloc (x, len, sets[s].what, error)) == NULL)
          || (grads && ((x->block[sets[s].g] = be_alloc (x, len, "gradients", error)) == NULL
                        || (x->block[sets[s].m] = be_alloc (x, len, "momenta", error)) == NULL)))
        return FALSE;
      x->block_len[s] = len;
      gsize off = 0;
      for (guint i = 0; i < nn; i++)
        {
          CsTensor *t = cs_net_tensor (net, sets[s].idx[i]);
          if (t == NULL || !runs (x, cs_graph_node (x->g, i)))
            continue;
          if (!own)
            sets[s].dst[i] = t->data;  /* no second copy of the parameters */
          else if (!x->be->upload (x->be, sets[s].dst[i] = x->block[s] + off, t->data, t->numel,
                                   error))
            return FALSE;
          x->plan.param_bytes += t->numel * sizeof (float);
          if (grads)
            {
              sets[s].grad[i] = x->block[sets[s].g] + off;
              sets[s].mom[i] = x->block[sets[s].m] + off;
              x->plan.param_bytes += 2 * t->numel * sizeof (float);
            }
          off += align_up (t->numel);
        }
    }
  return TRUE;
}

/* The folded weights and bias of convolution U with batch norm N after it, from the net's
 * tensors: y = gamma (conv(x) + b - mean) / sqrt(var + eps) + beta is a convolution with weights
 * scaled by s = gamma / sqrt(var + eps) per output channel and bias (b - mean) s + beta. */
static gboolean
fold_one (CsExec *x, const CsNode *u, const CsNode *n, GError **error)
{
  const CsNet *net = x->net;
  CsTensor *w = cs_net_tensor (net, net->weight[u->id]), *b = cs_net_tensor (net, net->bias[u->id]);
  CsTensor *gamma = cs_net_tensor (net, net->weight[n->id]);
  CsTensor *beta = cs_net_tensor (net, net->bias[n->id]);
  CsTensor *mean_t = cs_net_tensor (net, net->run_mean[n->id]);
  CsTensor *var_t = cs_net_tensor (net, net->run_var[n->id]);
  g_return_val_if_fail (w && mean_t && var_t, FALSE);
  const float *mean = mean_t->data, *var = var_t->data;
  guint64 out = u->shape.c;
  gsize per = w->numel / out;
  g_autofree float *fw = g_new (float, w->numel), *fb = g_new (float, out);
  for (guint64 o = 0; o < out; o++)
    {
      double scale = (gamma ? gamma->data[o] : 1.0) / sqrt ((double) var[o] + n->p.eps);
      for (gsize i = 0; i < per; i++)
        fw[o * per + i] = (float) (w->data[o * per + i] * scale);
      fb[o] = (float) (((b ? b->data[o] : 0.0) - mean[o]) * scale + (beta ? beta->data[o] : 0.0));
    }
  return x->be->upload (x->be, x->fold_w[u->id], fw, w->numel, error)
         && x->be->upload (x->be, x->fold_b[u->id], fb, out, error);
}

/* At inference, a batch norm that runs in place on a convolution's output (its only reader)
 * costs nothing when folded into the convolution's weights and bias. A ReLU that runs in place
 * on a layer's output (or on a folded batch norm's) is applied by that layer as it writes its
 * output, where the backend's kernels for the kind can (CsBackend.applies_relu: convolutions at
 * inference, batch norms and sums in training too, whose backward then masks the gradient). The
 * folded nodes are skipped. Not when training keeps every node's gradient: the layer's own
 * would be missing. Chosen before the memory plan, which keeps a fused ReLU's gradient for the
 * backward of the layer that applies it. */
static void
choose_folds (CsExec *x, gboolean fold)
{
  guint nn = cs_graph_n_nodes (x->g);
  for (guint i = 0; i < nn; i++)
    x->folded_into[i] = x->relu_of[i] = -1;
  if (!fold || x->keep_gradients)
    return;
  for (guint k = 0; !x->training && k < x->n_order; k++)
    {
      const CsNode *n = cs_graph_node (x->g, x->order[k]);
      if (n->op != CS_OP_BN || !x->run_inplace[n->id])
        continue;
      /* In place, so the convolution has no other reader, and no other batch norm. */
      const CsNode *u = cs_graph_node (x->g, n->inputs[0]);
      if (u->op != CS_OP_CONV || is_head (x, u->id) || x->net->weight[u->id] < 0
          || x->net->run_mean[n->id] < 0 || x->net->run_var[n->id] < 0)
        continue;
      x->folded_into[n->id] = (gint) u->id;
      x->plan.n_folded++;
    }
  for (guint k = 0; k < x->n_order; k++)
    {
      const CsNode *n = cs_graph_node (x->g, x->order[k]);
      if (n->op != CS_OP_RELU || !x->run_inplace[n->id])
        continue;
      guint u = n->inputs[0];
      gint into = x->folded_into[u] >= 0 ? x->folded_into[u] : (gint) u;
      if (is_head (x, u) || x->relu_of[into] >= 0
          || !x->be->applies_relu[x->training][cs_graph_node (x->g, into)->op])
        continue;
      x->relu_of[into] = (gint) n->id;
      x->folded_into[n->id] = into;
      x->plan.n_fused_relus++;
    }
}

/* The folded batch norms' convolutions get weights and biases of their own. */
static gboolean
fold_weights (CsExec *x, GError **error)
{
  for (guint k = 0; k < x->n_order; k++)
    {
      const CsNode *n = cs_graph_node (x->g, x->order[k]);
      if (n->op != CS_OP_BN || x->folded_into[n->id] < 0)
        continue;
      const CsNode *u = cs_graph_node (x->g, x->folded_into[n->id]);
      CsTensor *w = cs_net_tensor (x->net, x->net->weight[u->id]);
      g_return_val_if_fail (w != NULL, FALSE);  /* choose_folds saw it */
      if ((x->fold_w[u->id] = be_alloc (x, w->numel, "folded weights", error)) == NULL
          || (x->fold_b[u->id] = be_alloc (x, u->shape.c, "folded biases", error)) == NULL
          || !fold_one (x, u, n, error))
        return FALSE;
    }
  return TRUE;
}

static const CsShape *
input_shapes (CsExec *x, const CsNode *n)
{
  for (guint i = 0; i < n->n_inputs; i++)
    x->in_shapes[i] = cs_graph_node (x->g, n->inputs[i])->shape;
  return x->in_shapes;
}

CsExec *
cs_exec_new (CsNet *net, CsBackend *be, guint batch, CsExecFlags flags, guint64 seed,
             GError **error)
{
  g_return_val_if_fail (batch > 0, NULL);
  CsGraph *g = net->graph;
  guint nn = cs_graph_n_nodes (g);
  g_autoptr (CsExec) x = g_new0 (CsExec, 1);
  x->net = net;
  x->g = g;
  x->be = be;
  x->batch = batch;
  x->training = (flags & CS_EXEC_TRAINING) != 0;
  x->keep_gradients = x->training && (flags & CS_EXEC_KEEP_GRADIENTS);
  x->poison = (flags & CS_EXEC_POISON_FRESH) && be->host_memory && be->fresh_gradients;
  x->seed = seed;
  x->order = g_new (guint, nn);
  x->pos = g_new (gint, nn);
  x->value_of = g_new (guint, nn);
  x->run_inplace = g_new0 (gboolean, nn);
  x->folded_into = g_new (gint, nn);
  x->relu_of = g_new (gint, nn);
  x->fold_w = g_new0 (float *, nn);
  x->fold_b = g_new0 (float *, nn);
  x->act_off = g_new (gsize, nn);
  x->grad_off = g_new (gsize, nn);
  x->touched = g_new0 (gboolean, nn);
  float ***ptrs[] = { &x->w, &x->b, &x->dw, &x->db, &x->mw, &x->mb, &x->rm, &x->rv, &x->saved };
  for (guint i = 0; i < G_N_ELEMENTS (ptrs); i++)
    *ptrs[i] = g_new0 (float *, nn);
  x->heads = g_new (guint, nn);

  for (guint i = 0; i < nn; i++)
    {
      const CsNode *n = cs_graph_node (g, i);
      x->act_off[i] = x->grad_off[i] = NONE;
      x->pos[i] = -1;
      if (!runs (x, n))
        continue;
      if (n->op != CS_OP_INPUT && !cs_backend_supports (be, n->op))
        {
          cs_graph_node_error (g, n, error, CS_ERROR_UNSUPPORTED,
                               "the %s backend cannot run %s layers", be->name,
                               cs_layer_class (n->op)->name);
          return NULL;
        }
      x->pos[i] = x->n_order;
      x->order[x->n_order++] = i;
      x->max_inputs = MAX (x->max_inputs, n->n_inputs);
    }
  x->heads[x->n_heads++] = cs_graph_output (g)->id;
  if (x->training)
    for (guint i = 0; i < nn; i++)
      if (cs_graph_node (g, i)->flags & CS_NODE_AUX_OUTPUT)
        x->heads[x->n_heads++] = i;
  x->in_shapes = g_new (CsShape, MAX (x->max_inputs, 1));
  x->in_ptrs = g_new0 (float *, MAX (x->max_inputs, 1));
  x->din_ptrs = g_new0 (float *, MAX (x->max_inputs, 1));
  x->din_fresh = g_new0 (gboolean, MAX (x->max_inputs, 1));

  choose_inplace (x);
  choose_folds (x, !(flags & CS_EXEC_UNFUSED));
  if (!plan_memory (x, error) || !alloc_params (x, error) || !fold_weights (x, error))
    return NULL;

  gsize work = 0;
  for (guint k = 0; k < x->n_order; k++)
    {
      const CsNode *n = cs_graph_node (g, x->order[k]);
      const CsShape *in = input_shapes (x, n);
      gsize s = be->saved_size (be, n, in, batch, x->training);
      if (s)
        {
          if ((x->saved[n->id] = be_alloc (x, s, "saved state", error)) == NULL)
            return NULL;
          x->plan.saved_bytes += s * sizeof (float);
        }
      work = MAX (work, be->workspace_size (be, n, in, batch, x->training));
    }
  if (work && (x->work = be_alloc (x, work, "workspace", error)) == NULL)
    return NULL;
  x->work_len = work;
  x->plan.workspace_bytes = work * sizeof (float);
  x->plan.planned_bytes = x->plan.activation_bytes + x->plan.gradient_bytes
                        + x->plan.saved_bytes + x->plan.workspace_bytes;
  return g_steal_pointer (&x);
}

void
cs_exec_free (CsExec *x)
{
  if (x == NULL)
    return;
  guint nn = cs_graph_n_nodes (x->g);
  for (guint i = 0; x->saved && i < nn; i++)
    if (x->saved[i])
      x->be->release (x->be, x->saved[i]);
  for (guint p = 0; p < P_COUNT; p++)
    if (x->block[p])
      x->be->release (x->be, x->block[p]);
  for (guint i = 0; x->fold_w && i < nn; i++)
    {
      if (x->fold_w[i])
        x->be->release (x->be, x->fold_w[i]);
      if (x->fold_b[i])
        x->be->release (x->be, x->fold_b[i]);
    }
  g_free (x->folded_into), g_free (x->relu_of), g_free (x->fold_w), g_free (x->fold_b);
  float **ptrs[] = { x->w, x->b, x->rm, x->rv, x->dw, x->db, x->mw, x->mb, x->saved };
  for (guint p = 0; p < G_N_ELEMENTS (ptrs); p++)
    g_free (ptrs[p]);
  if (x->arena)
    x->be->release (x->be, x->arena);
  if (x->grad_arena)
    x->be->release (x->be, x->grad_arena);
  if (x->work)
    x->be->release (x->be, x->work);
  g_free (x->order), g_free (x->pos), g_free (x->value_of), g_free (x->run_inplace);
  g_free (x->act_off), g_free (x->grad_off), g_free (x->touched), g_free (x->heads);
  g_free (x->in_shapes), g_free (x->in_ptrs), g_free (x->din_ptrs), g_free (x->din_fresh);
  g_free (x);
}

const CsExecPlan *
cs_exec_plan (const CsExec *x)
{
  return &x->plan;
}

static float *
act (CsExec *x, guint node)
{
  return x->arena + x->act_off[node];
}

static float *
grad (CsExec *x, guint node)
{
  return x->grad_off[node] == NONE ? NULL : x->grad_arena + x->grad_off[node];
}

static void
fill_args (CsExec *x, const CsNode *n, CsKernelArgs *a)
{
  const CsShape *in = input_shapes (x, n);
  for (guint i = 0; i < n->n_inputs; i++)
    x->in_ptrs[i] = act (x, n->inputs[i]);
  *a = (CsKernelArgs) {
    .node = n, .batch = x->n, .training = x->training, .n_in = n->n_inputs, .in_shape = in,
    .in = x->in_ptrs, .out = act (x, n->id),
    .w = x->fold_w[n->id] ? x->fold_w[n->id] : x->w[n->id],
    .b = x->fold_w[n->id] ? x->fold_b[n->id] : x->b[n->id], .relu = x->relu_of[n->id] >= 0,
    .dw = x->dw[n->id], .db = x->db[n->id], .run_mean = x->rm[n->id], .run_var = x->rv[n->id],
    .saved = x->saved[n->id], .work = x->work, .work_len = x->work_len,
    .seed = cs_mix64 (x->seed ^ cs_mix64 ((x->step << 20) ^ n->id)),
  };
}

/* Work launched between mark and unmark is attributed to NODE and PHASE by the tracer. */
static void
mark (CsExec *x, guint node, CsPhase phase)
{
  if (x->tracing)
    x->be->trace_push (x->be, cs_trace_tag (node, phase));
}

static void
unmark (CsExec *x)
{
  if (x->tracing)
    x->be->trace_pop (x->be);
}

/* Runs a node's kernel, its errors named after the node. */
static gboolean
run_kernel (CsExec *x, CsKernelFunc f, const CsKernelArgs *a, const char *what, GError **error)
{
  GError *local = NULL;
  if (f (x->be, a, &local))
    return TRUE;
  cs_graph_node_error (x->g, a->node, error, local->domain == CS_ERROR ? local->code
                       : CS_ERROR_DEVICE, "%s: %s", what, local->message);
  g_error_free (local);
  return FALSE;
}

gboolean
cs_exec_forward (CsExec *x, const float *input, guint n, GError **error)
{
  if (n == 0 || n > x->batch)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "a batch of %u images does not fit the "
                   "plan for %u", n, x->batch);
      return FALSE;
    }
  x->n = n;
  const CsNode *in = cs_graph_node (x->g, 0);
  mark (x, in->id, CS_PHASE_FORWARD);
  gboolean ok = x->be->upload (x->be, act (x, in->id), input, numel (in, n), error);
  unmark (x);
  for (guint k = 0; ok && k < x->n_order; k++)
    {
      const CsNode *node = cs_graph_node (x->g, x->order[k]);
      if (node->op == CS_OP_INPUT || x->folded_into[node->id] >= 0)
        continue;
      CsKernelArgs a;
      fill_args (x, node, &a);
      mark (x, node->id, CS_PHASE_FORWARD);
      ok = run_kernel (x, x->be->forward[node->op], &a, "forward", error);
      unmark (x);
    }
  return ok;
}

gboolean
cs_exec_get_output (CsExec *x, float *out, GError **error)
{
  const CsNode *o = cs_graph_node (x->g, x->heads[0]);
  return x->be->download (x->be, out, act (x, o->id), numel (o, x->n), error);
}

static gsize
tensor_numel (const CsNet *net, gint idx)
{
  CsTensor *t = cs_net_tensor (net, idx);
  return t ? t->numel : 0;
}

/* A node's backward work: its kernel and the zeroing of the gradients it adds to. */
static gboolean
backward_node (CsExec *x, const CsNode *node, GError **error)
{
  /* A node that applies a ReLU starts from the gradient after it. */
  guint out = x->relu_of[node->id] >= 0 ? (guint) x->relu_of[node->id] : node->id;
  if (!x->touched[out])
    {
      /* No loss depends on it this step (a dropped branch): its parameters get no update
       * but momentum, so their gradients must read zero, not last step's. */
      if (x->dw[node->id] && !x->be->zero (x->be, x->dw[node->id],
                                           tensor_numel (x->net, x->net->weight[node->id]),
                                           error))
        return FALSE;
      if (x->db[node->id] && !x->be->zero (x->be, x->db[node->id],
                                           tensor_numel (x->net, x->net->bias[node->id]),
                                           error))
        return FALSE;
      return TRUE;
    }
  if (node->op == CS_OP_SOFTMAX && is_head (x, node->id))
    return TRUE;  /* the loss started from its input */

  CsKernelArgs a;
  fill_args (x, node, &a);
  for (guint i = 0; i < node->n_inputs; i++)
    {
      guint u = node->inputs[i];
      x->din_ptrs[i] = grad (x, u);
      x->din_fresh[i] = FALSE;
      if (x->din_ptrs[i] && !x->touched[u])
        {
          gsize len = numel (cs_graph_node (x->g, u), x->n);
          if (x->be->fresh_gradients)
            x->din_fresh[i] = TRUE;
          else if (!x->be->zero (x->be, x->din_ptrs[i], len, error))
            return FALSE;
          for (gsize j = 0; x->poison && j < len; j++)
            x->din_ptrs[i][j] = NAN;
          x->touched[u] = TRUE;
        }
    }
  a.d_in = x->din_ptrs;
  a.d_in_fresh = x->din_fresh;
  a.d_out = grad (x, out);
  if (a.dw && !x->be->zero (x->be, a.dw, tensor_numel (x->net, x->net->weight[node->id]),
                            error))
    return FALSE;
  if (a.db && !x->be->zero (x->be, a.db, tensor_numel (x->net, x->net->bias[node->id]),
                            error))
    return FALSE;
  return run_kernel (x, x->be->backward[node->op], &a, "backward", error);
}

static gboolean
backward (CsExec *x, GError **error)
{
  for (guint k = x->n_order; k-- > 0;)
    {
      const CsNode *node = cs_graph_node (x->g, x->order[k]);
      if (node->op == CS_OP_INPUT || x->folded_into[node->id] >= 0)
        continue;
      mark (x, node->id, CS_PHASE_BACKWARD);
      gboolean ok = backward_node (x, node, error);
      unmark (x);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

/* The losses of the heads after a forward; gradients of the logits are written as a side effect. */
static gboolean
losses (CsExec *x, const guint *labels, guint n, CsStepResult *res, GError **error)
{
  double loss = 0;
  guint top1 = 0, top5 = 0;
  for (guint h = 0; h < x->n_heads; h++)
    {
      const CsNode *head = cs_graph_node (x->g, x->heads[h]);
      const CsNode *logits = head->op == CS_OP_SOFTMAX
                           ? cs_graph_node (x->g, head->inputs[0]) : head;
      guint classes = logits->shape.c * logits->shape.h * logits->shape.w;
      float scale = h == 0 ? 1.0f : (float) head->loss_weight;
      for (guint i = 0; i < n; i++)
        if (labels[i] >= classes)
          {
            g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "label %u of image %u is out of "
                         "range: the network has %u classes", labels[i], i, classes);
            return FALSE;
          }
      guint t1 = 0, t5 = 0;
      if (!x->be->cross_entropy (x->be, act (x, logits->id), labels, n, classes, scale,
                                 grad (x, logits->id), &loss, &t1, &t5, error))
        return FALSE;
      x->touched[logits->id] = TRUE;
      if (h == 0)
        top1 = t1, top5 = t5;
    }
  *res = (CsStepResult) { loss, top1, top5 };
  return TRUE;
}

gboolean
cs_exec_evaluate_loss (CsExec *x, const float *input, const guint *labels, guint n,
                       CsStepResult *res, GError **error)
{
  g_return_val_if_fail (x->training, FALSE);
  memset (x->touched, 0, cs_graph_n_nodes (x->g) * sizeof (gboolean));
  if (!cs_exec_forward (x, input, n, error))
    return FALSE;
  mark (x, 0, CS_PHASE_LOSS);
  gboolean ok = losses (x, labels, n, res, error);
  unmark (x);
  return ok;
}

gboolean
cs_exec_train_step (CsExec *x, const float *input, const guint *labels, guint n, float lr,
                    float momentum, float decay, CsStepResult *res, GError **error)
{
  g_return_val_if_fail (x->training, FALSE);
  x->step++;
  CsStepResult r;
  if (!cs_exec_evaluate_loss (x, input, labels, n, &r, error))
    return FALSE;
  if (!backward (x, error))
    return FALSE;

  guint nn = cs_graph_n_nodes (x->g);
  gboolean ok = TRUE;
  mark (x, 0, CS_PHASE_UPDATE);
  /* No weight decay on biases and batch-norm shifts, as is usual. */
  if (!x->be->host_memory)
    {
      /* Value, gradient and momentum blocks line up: one call for each set. */
      if (x->block[P_DW])
        ok = x->be->sgd (x->be, x->block[P_W], x->block[P_DW], x->block[P_MW],
                         x->block_len[P_W], lr, momentum, decay, error);
      if (ok && x->block[P_DB])
        ok = x->be->sgd (x->be, x->block[P_B], x->block[P_DB], x->block[P_MB],
                         x->block_len[P_B], lr, momentum, 0.0f, error);
    }
  else
    for (guint i = 0; ok && i < nn; i++)
      {
        CsTensor *tw = cs_net_tensor (x->net, x->net->weight[i]);
        CsTensor *tb = cs_net_tensor (x->net, x->net->bias[i]);
        if (x->dw[i])
          ok = x->be->sgd (x->be, x->w[i], x->dw[i], x->mw[i], tw->numel, lr, momentum, decay,
                           error);
        if (ok && x->db[i])
          ok = x->be->sgd (x->be, x->b[i], x->db[i], x->mb[i], tb->numel, lr, momentum, 0.0f,
                           error);
      }
  unmark (x);
  if (!ok)
    return FALSE;
  if (res)
    *res = r;
  return TRUE;
}

static gboolean
sync (CsExec *x, gboolean to_net, GError **error)
{
  guint nn = cs_graph_n_nodes (x->g);
  const CsNet *net = x->net;
  struct { gint *idx; float **dev; } sets[] = {
    { net->weight, x->w }, { net->bias, x->b }, { net->run_mean, x->rm },
    { net->run_var, x->rv },
  };
  for (guint s = 0; s < G_N_ELEMENTS (sets); s++)
    for (guint i = 0; i < nn; i++)
      {
        CsTensor *t = cs_net_tensor (net, sets[s].idx[i]);
        if (t == NULL || sets[s].dev[i] == NULL)
          continue;
        if (to_net ? !x->be->download (x->be, t->data, sets[s].dev[i], t->numel, error)
                   : !x->be->upload (x->be, sets[s].dev[i], t->data, t->numel, error))
          return FALSE;
      }
  return TRUE;
}

gboolean
cs_exec_sync_to_net (CsExec *x, GError **error)
{
  return sync (x, TRUE, error);
}

gboolean
cs_exec_sync_from_net (CsExec *x, GError **error)
{
  if (!sync (x, FALSE, error))
    return FALSE;
  for (guint i = 0; i < cs_graph_n_nodes (x->g); i++)
    if (x->folded_into[i] >= 0 && cs_graph_node (x->g, i)->op == CS_OP_BN
        && !fold_one (x, cs_graph_node (x->g, x->folded_into[i]), cs_graph_node (x->g, i), error))
      return FALSE;
  return TRUE;
}

void
cs_exec_set_tracing (CsExec *x, gboolean on)
{
  g_return_if_fail (!on || (x->be->trace_push && x->be->trace_pop));
  x->tracing = on;
}

gboolean
cs_exec_get_gradient (CsExec *x, guint node, float *out, GError **error)
{
  float *g = grad (x, node);
  if (g == NULL || !x->touched[node])
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no gradient kept for node %u", node);
      return FALSE;
    }
  return x->be->download (x->be, out, g, numel (cs_graph_node (x->g, node), x->n), error);
}

gboolean
cs_exec_get_param_gradient (CsExec *x, gint tensor, float *out, GError **error)
{
  guint nn = cs_graph_n_nodes (x->g);
  for (guint i = 0; i < nn; i++)
    {
      if (x->net->weight[i] == tensor && x->dw[i])
        return x->be->download (x->be, out, x->dw[i], tensor_numel (x->net, tensor), error);
      if (x->net->bias[i] == tensor && x->db[i])
        return x->be->download (x->be, out, x->db[i], tensor_numel (x->net, tensor), error);
    }
  g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no gradient for tensor %d", tensor);
  return FALSE;
}
