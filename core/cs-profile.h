/* CsProfile: per-layer times of a forward pass or a training step on a backend, backend-neutral
 * (the CPU fills it with wall times, the CUDA backend with its kernels' times), and its report. */
#pragma once

#include "cs-backend.h"
#include "cs-net.h"
#include "cs-report.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  char *model, *device;       /* the graph's name; the backend's description */
  guint batch, iters, warmup;
  gboolean train;
  guint n_nodes;
  double *forward_ms;         /* per node, mean over the timed iterations; 0 when it did not run */
  double *backward_ms;        /* idem, training only */
  double step_ms;             /* mean step without per-layer timing */
  double timed_step_ms;       /* mean step with per-layer timing on */
  double layers_ms;           /* the sum of the per-layer times */
  guint64 planned_bytes, naive_bytes;
} CsProfile;

/* Runs WARMUP untimed steps, ITERS steps with per-layer timing and ITERS without (for the
 * overhead), on random input. */
CsProfile *cs_profile_run    (CsNet *net, CsBackend *be, guint batch, gboolean train,
                              guint iters, guint warmup, GCancellable *cancellable,
                              GError **error);
void       cs_profile_free   (CsProfile *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CsProfile, cs_profile_free)

/* A table in the spirit of `caffe time` (layer, output, MACs, forward ms, backward ms, % of
 * the step, GFLOP/s) with the totals, or the same as one JSON object. */
char      *cs_profile_report (const CsProfile *p, CsGraph *g, CsReportFormat format);

G_END_DECLS
