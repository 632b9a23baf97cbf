/* The CUDA backend's tracer: CUPTI's Activity API records every kernel, copy and fill, and the
 * external correlation ids pushed around a node's work say whose it was. CUPTI is process-wide,
 * so there is one trace at a time per process, whichever backend started it. Internal to the
 * module. */
#pragma once

#include "cs-backend.h"

G_BEGIN_DECLS

/* Attaches CUPTI and starts recording; fails with CS_ERROR_DEVICE when a trace already runs or
 * CUPTI refuses (another profiler attached, no driver support). */
G_GNUC_INTERNAL gboolean cs_cupti_start (GError **error);

/* Attributes the work the calling thread launches from now on to TAG, until cs_cupti_pop. Only
 * while a trace runs; TRUE when CUPTI took it (and a cs_cupti_pop is owed). */
G_GNUC_INTERNAL gboolean cs_cupti_push (guint64 tag);
G_GNUC_INTERNAL void     cs_cupti_pop  (void);

/* Ends the trace: the caller has waited for the traced work to finish. Flushes CUPTI's buffers,
 * disables the recording and detaches CUPTI (cuptiFinalize), then returns the CsTraceRecords of
 * the kernels, copies and fills, in no particular order, each with the tag it was launched
 * under (0: none), and sets *DROPPED (may be NULL) to the records CUPTI lost. On a CUPTI error
 * the trace is ended all the same and NULL is returned. */
G_GNUC_INTERNAL GArray  *cs_cupti_stop (guint64 *dropped, GError **error);

G_END_DECLS
