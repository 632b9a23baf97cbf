/* The backend interface: memory, per-kind forward and backward kernels, loss and SGD. The CPU
 * backend (core/cpu) and the CUDA backend (gpu/) implement it; the executor drives it. */
#pragma once

#include "cs-graph.h"
#include "cs-pool-geom.h"

G_BEGIN_DECLS

typedef struct _CsBackend CsBackend;

/* What a kernel sees of one node for one batch. Pointers are the backend's memory. */
typedef struct {
  const CsNode *node;
  guint batch;                  /* images in this call */
  gboolean training;
  guint n_in;
  const CsShape *in_shape;      /* per image */
  float *const *in;             /* activations of the inputs; in[0] == out when run in place */
  float *out;
  float *const *d_in;           /* input gradients, added to; an entry is NULL when not needed */
  /* Per input, or NULL: TRUE where d_in[i] holds nothing yet this step (on a backend with
   * fresh_gradients), so that the kernel sets every value of it instead of adding to it. When
   * one input comes twice, its first place is the fresh one; kernels go in input order. */
  const gboolean *d_in_fresh;
  const float *d_out;
  float *w, *b, *dw, *db;       /* conv, fc and batch norm parameters and their gradients */
  /* Apply a ReLU to the output, for the kinds the backend's applies_relu names. In training the
   * backward then takes d_out as the gradient after the ReLU and masks it by the output, as the
   * ReLU's backward would. */
  gboolean relu;
  float *run_mean, *run_var;    /* batch norm buffers */
  float *saved;                 /* this node's scratch, kept from forward to backward */
  float *work;                  /* workspace shared by all nodes */
  gsize work_len;
  guint64 seed;                 /* dropout and drop-path draw from it, forward and backward alike */
} CsKernelArgs;

typedef gboolean (*CsKernelFunc) (CsBackend *be, const CsKernelArgs *a, GError **error);

/* What a piece of work was launched for: a node's forward or backward pass, the loss, the
 * parameter update, or the set-up (planning, warm-up steps) that a profile leaves out. */
typedef enum {
  CS_PHASE_FORWARD,
  CS_PHASE_BACKWARD,
  CS_PHASE_LOSS,
  CS_PHASE_UPDATE,
  CS_PHASE_SETUP,
  CS_PHASE_COUNT,
} CsPhase;

/* A trace tag names a node and a phase in one nonzero number, the phase in the high half; the
 * node is meaningless for the loss, the update and the set-up. */
static inline guint64
cs_trace_tag (guint node, CsPhase phase)
{
  return ((guint64) phase + 1) << 32 | node;
}

static inline CsPhase
cs_trace_tag_phase (guint64 tag)
{
  return (CsPhase) ((tag >> 32) - 1);
}

static inline guint
cs_trace_tag_node (guint64 tag)
{
  return (guint) tag;
}

/* One kernel or memory operation a tracer saw: the tag it was launched under (0: none), its
 * name (an interned string) and when it ran, in ns on the tracer's clock. */
typedef struct {
  guint64 tag;
  const char *name;
  guint64 start_ns, end_ns;
} CsTraceRecord;

struct _CsBackend {
  const char *name;             /* "cpu", "cuda" */
  gboolean host_memory;         /* works on host memory: parameters are used where they are */
  /* [training][kind]: the kinds whose kernels apply CsKernelArgs.relu, at inference and in
   * training. */
  gboolean applies_relu[2][CS_OP_COUNT];
  /* Its backward kernels honour CsKernelArgs.d_in_fresh: the executor leaves a gradient's first
   * writer to set it. Otherwise it zeroes each gradient before the first adds to it. */
  gboolean fresh_gradients;
  char *description;            /* for people: the device, the library versions */
  float   *(*alloc)     (CsBackend *be, gsize n, GError **error);   /* n floats, zeroed */
  void     (*release)   (CsBackend *be, float *p);
  gboolean (*upload)    (CsBackend *be, float *dst, const float *src, gsize n, GError **error);
  gboolean (*download)  (CsBackend *be, float *dst, const float *src, gsize n, GError **error);
  gboolean (*zero)      (CsBackend *be, float *p, gsize n, GError **error);
  /* Floats of scratch a node keeps from forward to backward, and of shared workspace (for its
   * forward alone, or also its backward when TRAINING). */
  gsize    (*saved_size)     (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                              gboolean training);
  gsize    (*workspace_size) (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                              gboolean training);
  CsKernelFunc forward[CS_OP_COUNT];
  CsKernelFunc backward[CS_OP_COUNT];
  /* Softmax cross-entropy over the rows of LOGITS (n x classes): adds SCALE * the mean loss to
   * *LOSS, writes SCALE * its gradient to D_LOGITS, and counts top-1 and top-5 hits. */
  gboolean (*cross_entropy) (CsBackend *be, const float *logits, const guint *labels, guint n,
                             guint classes, float scale, float *d_logits, double *loss,
                             guint *top1, guint *top5, GError **error);
  /* w -= lr * (m = momentum * m + g + decay * w), over n values. */
  gboolean (*sgd) (CsBackend *be, float *w, const float *g, float *m, gsize n, float lr,
                   float momentum, float decay, GError **error);
  gboolean (*synchronize) (CsBackend *be, GError **error);
  void     (*destroy)     (CsBackend *be);

  /* Tracing, for profiles. Between trace_start and trace_stop the backend records the work it
   * runs; what is launched between trace_push (TAG) and trace_pop is attributed to TAG (pushes
   * do not nest). trace_stop ends the recording and returns its CsTraceRecords, in no particular
   * order, with the number of records the tracer had to drop. */
  gboolean (*trace_start) (CsBackend *be, GError **error);
  void     (*trace_push)  (CsBackend *be, guint64 tag);
  void     (*trace_pop)   (CsBackend *be);
  GArray  *(*trace_stop)  (CsBackend *be, guint64 *dropped, GError **error);

  /* Optional. The device's own clock for a stretch of work (CUDA events): clock_stop waits for
   * the work and gives the ms since clock_start. Without it, the host's clock after
   * synchronize. */
  gboolean (*clock_start) (CsBackend *be, GError **error);
  gboolean (*clock_stop)  (CsBackend *be, double *ms, GError **error);
  /* Optional. What the backend runs a node with (for a convolution, cuDNN's algorithms and
   * their workspace), for people; NULL when there is nothing to say. Free the string. */
  char    *(*describe)    (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                           gboolean training);
  /* Optional. Device memory: the most this backend has had allocated at once, and what the
   * whole device has in use now (other processes, the CUDA context and libraries included). */
  void     (*memory)      (CsBackend *be, guint64 *peak_allocated, guint64 *device_in_use);
  /* The device's peak arithmetic rate in the backend's math mode, TFLOP/s; 0 when unknown. */
  double peak_tflops;
};

/* Fills BE's kernel tables from the functions every backend names alike (conv_forward,
 * conv_backward, ...), so that which functions run which kind is written once. */
#define CS_BACKEND_KERNEL(be, op, name) \
  ((be)->forward[op] = name##_forward, (be)->backward[op] = name##_backward)
#define CS_BACKEND_SET_KERNELS(be) \
  do { \
    CS_BACKEND_KERNEL (be, CS_OP_CONV, conv); \
    CS_BACKEND_KERNEL (be, CS_OP_FC, fc); \
    CS_BACKEND_KERNEL (be, CS_OP_MAXPOOL, maxpool); \
    CS_BACKEND_KERNEL (be, CS_OP_AVGPOOL, avgpool); \
    CS_BACKEND_KERNEL (be, CS_OP_LRN, lrn); \
    CS_BACKEND_KERNEL (be, CS_OP_BN, bn); \
    CS_BACKEND_KERNEL (be, CS_OP_RELU, relu); \
    CS_BACKEND_KERNEL (be, CS_OP_LEAKYRELU, relu); \
    CS_BACKEND_KERNEL (be, CS_OP_SIGMOID, sigmoid); \
    CS_BACKEND_KERNEL (be, CS_OP_TANH, tanh); \
    CS_BACKEND_KERNEL (be, CS_OP_DROPOUT, dropout); \
    CS_BACKEND_KERNEL (be, CS_OP_DROPPATH, droppath); \
    CS_BACKEND_KERNEL (be, CS_OP_IDENTITY, copy); \
    CS_BACKEND_KERNEL (be, CS_OP_FLATTEN, copy); \
    CS_BACKEND_KERNEL (be, CS_OP_SOFTMAX, softmax); \
    CS_BACKEND_KERNEL (be, CS_OP_CONCAT, concat); \
    CS_BACKEND_KERNEL (be, CS_OP_ADD, sum); \
    CS_BACKEND_KERNEL (be, CS_OP_MEAN, sum); \
  } while (0)

static inline gboolean
cs_backend_supports (const CsBackend *be, CsOp op)
{
  return be->forward[op] != NULL && be->backward[op] != NULL;
}

/* The random draws every backend makes the same way, so that they agree to rounding. A
 * drop-path gate's factor for the batch: 1 at inference, else 1/p when the branch is kept and 0
 * when it is dropped. */
float cs_kernel_droppath_factor (const CsKernelArgs *a);
/* Which inputs of an add or mean join take part (KEPT, n_in entries) and how many: all, or in
 * training with a mean's local drop-path each with probability 1-p, and at least one. */
guint cs_kernel_join_kept       (const CsKernelArgs *a, gboolean *kept);
/* The window of pooling node N over an input of shape IN. */
CsPoolGeom cs_kernel_pool_geom  (const CsNode *n, const CsShape *in);

void cs_backend_free (CsBackend *be);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsBackend, cs_backend_free)

/* The CPU backend: float32 NCHW, OpenBLAS for matrix products. */
CsBackend *cs_cpu_backend_new (void);

G_END_DECLS
