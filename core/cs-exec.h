/* The executor: runs a graph on a backend for a batch, inference or training, with one memory
 * plan made up front. */
#pragma once

#include "cs-backend.h"
#include "cs-net.h"

G_BEGIN_DECLS

typedef struct _CsExec CsExec;

typedef struct {
  double loss;                  /* the main loss plus the weighted auxiliary losses */
  guint top1, top5;             /* hits of the main output */
} CsStepResult;

typedef struct {
  guint64 planned_bytes;        /* activations, gradients, scratch and workspace as planned */
  guint64 naive_bytes;          /* every node's output (and gradient) in its own buffer */
  guint64 activation_bytes, gradient_bytes, saved_bytes, workspace_bytes, param_bytes;
  guint n_inplace;              /* nodes run in place */
  guint n_folded;               /* batch norms folded into the convolution before them */
  guint n_fused_relus;          /* ReLUs applied by the layer before them */
} CsExecPlan;

/* Plans and allocates everything for batches of up to BATCH images. In training mode the
 * auxiliary branches run and everything backward needs is kept. Fails with
 * CS_ERROR_UNSUPPORTED when the backend lacks a kind, CS_ERROR_OUT_OF_MEMORY when memory runs
 * out (saying how much was asked). */
typedef enum {
  CS_EXEC_INFERENCE      = 0,
  CS_EXEC_TRAINING       = 1 << 0,
  CS_EXEC_KEEP_GRADIENTS = 1 << 1,  /* keep every node's output gradient to the step's end */
  /* Run every layer as written. Otherwise, at inference, a batch norm right after a convolution
   * (its only reader) is folded into the convolution's weights and bias, and a ReLU right after
   * a layer is applied by it where the backend can (CsBackend.applies_relu), in training too
   * (not with KEEP_GRADIENTS). The folded layers are skipped. */
  CS_EXEC_UNFUSED        = 1 << 2,
  /* For tests, on a host-memory backend with fresh_gradients: fill each gradient with NaN
   * before its first writer, so that a kernel that adds where it should set shows. */
  CS_EXEC_POISON_FRESH   = 1 << 3,
} CsExecFlags;

CsExec  *cs_exec_new   (CsNet *net, CsBackend *be, guint batch, CsExecFlags flags,
                        guint64 seed, GError **error);
void     cs_exec_free  (CsExec *x);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsExec, cs_exec_free)

const CsExecPlan *cs_exec_plan (const CsExec *x);

/* INPUT: N images, float32 NCHW on the host. */
gboolean cs_exec_forward    (CsExec *x, const float *input, guint n, GError **error);
/* The main output of the last forward (N x its volume), copied to the host. */
gboolean cs_exec_get_output (CsExec *x, float *out, GError **error);
/* One SGD step: forward, softmax cross-entropy (plus auxiliary losses), backward, update. */
gboolean cs_exec_train_step (CsExec *x, const float *input, const guint *labels, guint n,
                             float lr, float momentum, float decay, CsStepResult *res,
                             GError **error);
/* Forward in training mode and the loss, with the same random draws (dropout, drop-path) as the
 * last training step: for finite-difference checks of the gradients it computed. Like every
 * training forward, it moves the batch-norm running statistics. */
gboolean cs_exec_evaluate_loss (CsExec *x, const float *input, const guint *labels, guint n,
                                CsStepResult *res, GError **error);
/* Copies the backend's parameters and buffers back into the CsNet's tensors. */
gboolean cs_exec_sync_to_net (CsExec *x, GError **error);
/* Copies the CsNet's tensors to the backend and folds the batch norms again: call it after
 * changing them, also on a host-memory backend whose parameters are used where they are. */
gboolean cs_exec_sync_from_net (CsExec *x, GError **error);

/* With tracing on, every piece of work is launched under a trace tag (cs-backend.h) naming its
 * node and phase: the input's upload and each node's forward, each node's backward (with the
 * zeroing of the gradients it adds to), the loss, the update. The backend's tracer must be
 * running (CsProfile does this). */
void     cs_exec_set_tracing (CsExec *x, gboolean on);

/* The gradient of a node's output after the last training step; the executor must have been
 * made with CS_EXEC_KEEP_GRADIENTS, since gradient buffers are otherwise reused. */
gboolean cs_exec_get_gradient (CsExec *x, guint node, float *out, GError **error);
gboolean cs_exec_get_param_gradient (CsExec *x, gint tensor, float *out, GError **error);

G_END_DECLS
