/* CsProfile: per-layer times of a forward pass or a training step on a backend, backend-neutral
 * (the CPU fills it with wall times, the CUDA backend with its kernels' times), and its report. */
#pragma once

#include "cs-backend.h"
#include "cs-exec.h"
#include "cs-net.h"
#include "cs-report.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  char *model, *device;       /* the graph's name; the backend's description */
  guint batch, iters, warmup;
  gboolean train;
  guint n_nodes;
  /* Per node, per step (means over the timed steps): the time of its forward and backward work
   * (the sum of its kernels' durations on a GPU, wall time on the CPU), 0 when it did not run;
   * how many kernels and memory operations that took; their distinct names, one per line, NULL
   * when none; and what the backend ran it with (cuDNN's algorithms), NULL when nothing. */
  double *forward_ms, *backward_ms;
  double *forward_kernels, *backward_kernels;
  char **kernel_names;
  char **algorithms;
  /* Per step: the loss, the parameter update, and work no layer launched (should be 0). */
  double loss_ms, update_ms, unattributed_ms;
  double layers_ms;           /* the sum of all the above */
  guint64 records, dropped;   /* trace records of the timed steps; records the tracer lost */
  double step_ms;             /* mean step with tracing off */
  double step_median_ms;      /* median of the same */
  double timed_step_ms;       /* mean step with tracing on */
  double peak_tflops;         /* the device's peak in the math mode, 0 when unknown */
  guint64 planned_bytes, naive_bytes;
  guint n_folded, n_fused_relus;   /* batch norms and ReLUs folded into the layers before them */
  guint64 peak_allocated_bytes, device_in_use_bytes;   /* 0 when the backend does not say */
} CsProfile;


/* Runs WARMUP untimed steps, ITERS steps traced and ITERS steps not (for the tracer's
 * overhead), on random input: training steps with CS_EXEC_TRAINING in FLAGS, forward passes
 * otherwise (CS_EXEC_UNFUSED: every layer as written). The backend's tracer starts before
 * anything runs (the executor's planning included) and stops before the untraced steps. */
CsProfile *cs_profile_run    (CsNet *net, CsBackend *be, guint batch, CsExecFlags flags,
                              guint iters, guint warmup, GCancellable *cancellable,
                              GError **error);
void       cs_profile_free   (CsProfile *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsProfile, cs_profile_free)

/* Adds the records of STEPS traced steps to P (as cs_profile_run makes it): per node the
 * forward and backward times, kernel counts and names, and the loss, update and unattributed
 * time; records of the set-up phase are left out. Times and counts are per step. */
void       cs_profile_add_trace (CsProfile *p, const CsTraceRecord *records, guint n_records,
                                 guint steps);

/* The rate NODE achieved, TFLOP/s, from its MACS per image: the multiply-adds (x2) of the batch,
 * three times over in a training step (forward, data and weight gradients), in its forward plus
 * backward time; 0 when it has no time or no multiply-adds. */
double     cs_profile_layer_tflops (const CsProfile *p, guint64 macs, guint node);

/* A table in the spirit of `caffe time` (layer, output, MACs, forward ms, backward ms, % of
 * the step, TFLOP/s, kernels) with the totals, or the same as one JSON object (with the kernel
 * names and algorithms). */
char      *cs_profile_report (const CsProfile *p, CsGraph *g, CsReportFormat format);

G_END_DECLS
