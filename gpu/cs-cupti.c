/* The CUDA backend's tracer, on CUPTI's Activity API. CUPTI hands back buffers of records, on
 * its own thread or on the one that flushes; they are read as they come, under a lock, into
 * compact records and a map of correlation ids to the tags pushed around them, and matched at
 * the end, since a kernel's record and the record naming its tag can come in either order and in
 * different buffers. */
#include "cs-cupti.h"
#include "cs-error.h"

#include <cupti.h>
#include <stdlib.h>
#include <string.h>

/* The record layouts of the CUPTI this is built with (CUDA 13). The library fills in the layouts
 * of its own version, so the module must run with a CUPTI of the same major version. */
typedef CUpti_ActivityKernel10 KernelRecord;
typedef CUpti_ActivityMemcpy6 MemcpyRecord;
typedef CUpti_ActivityMemset4 MemsetRecord;
typedef CUpti_ActivityExternalCorrelation CorrelationRecord;

/* CUPTI recommends buffers of 1 to 10 MB, aligned to 8 bytes. */
#define BUFFER_SIZE ((size_t) 8 << 20)
#define BUFFER_ALIGN 8

/* Tags ride in the pointer-sized values of a hash table: CUDA runs on 64-bit hosts only. */
G_STATIC_ASSERT (sizeof (gpointer) >= sizeof (guint64));

/* The GPU work the trace keeps. The API records (runtime and driver) are enabled only because
 * external correlation records come with them, and are dropped when read. */
static const CUpti_ActivityKind kinds[] = {
  CUPTI_ACTIVITY_KIND_RUNTIME,
  CUPTI_ACTIVITY_KIND_DRIVER,
  CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION,
  CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,   /* KERNEL would serialise the kernels */
  CUPTI_ACTIVITY_KIND_MEMCPY,
  CUPTI_ACTIVITY_KIND_MEMSET,
};

/* A kernel, copy or fill as read from CUPTI. */
typedef struct {
  guint32 corr;                 /* the correlation id of the API call that launched it */
  guint32 runtime_corr;         /* a copy's runtime API call, when its own is the driver's */
  const char *name;             /* interned */
  guint64 start, end;
} Work;

typedef struct {
  GArray *work;                 /* of Work */
  GHashTable *tags;             /* correlation id -> tag pushed around the call (CUSTOM0) */
  GHashTable *names;            /* a kernel's name as CUPTI gives it -> its interned short name */
  guint64 dropped;
} Trace;

/* The running trace, NULL when none: the buffer callbacks add to it under the lock. */
static GMutex trace_lock;
static Trace *trace;

/* ---- errors ------------------------------------------------------------------------------- */

static gboolean
cupti_ok (CUptiResult r, const char *call, const char *file, int line, GError **error)
{
  if (r == CUPTI_SUCCESS)
    return TRUE;
  const char *text = NULL;
  if (cuptiGetResultString (r, &text) != CUPTI_SUCCESS || text == NULL)
    text = "unknown CUPTI error";
  g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "%s failed (%s:%d): %s (%d)", call, file, line,
               text, (int) r);
  return FALSE;
}

#define CUPTI(call, error) cupti_ok ((call), #call, __FILE__, __LINE__, (error))

/* ---- names -------------------------------------------------------------------------------- */

/* libstdc++'s demangler (the module links libstdc++ for cuDNN); the result is malloc'ed. */
extern char *__cxa_demangle (const char *mangled, char *buf, size_t *len, int *status);

static gboolean
is_ident (char c)
{
  return g_ascii_isalnum (c) || c == '_';
}

/* The first of the template arguments that start at ARGS, the text after the '<'. */
static char *
first_argument (const char *args)
{
  int depth = 0;
  const char *p = args;
  for (; *p; p++)
    {
      if (*p == '<' || *p == '(' || *p == '[' || *p == '{')
        depth++;
      else if (depth > 0 && (*p == '>' || *p == ')' || *p == ']' || *p == '}'))
        depth--;
      else if (depth == 0 && (*p == ',' || *p == '>'))
        break;
    }
  return g_strstrip (g_strndup (args, p - args));  /* "A<B<int> >": no space at the end */
}

/* Cutlass's kernels are one template each, named by their argument (cuBLAS and cuDNN run
 * thousands as "cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_16x6_tn_align4>"). */
static gboolean
is_wrapper (const char *name)
{
  const char *last = g_strrstr (name, "::");
  last = last ? last + 2 : name;
  return strcmp (last, "Kernel") == 0 || strcmp (last, "Kernel2") == 0
         || strcmp (last, "device_kernel") == 0;
}

/* A demangled function's qualified name without its return type, template arguments and
 * parameters: "void cudnn::cnn::conv<float, 3>(int, float*)" -> "cudnn::cnn::conv"; but a
 * cutlass kernel keeps its first template argument, shortened alike. */
static char *
short_name (const char *d)
{
  static const char anon[] = "(anonymous namespace)";
  GString *out = g_string_new (NULL);
  const char *args = NULL;      /* the template arguments that end the name, if they do */
  int depth = 0;
  for (const char *p = d; *p; p++)
    {
      char c = *p;
      if (depth == 0 && strncmp (p, anon, sizeof anon - 1) == 0)
        {
          g_string_append (out, anon);
          p += sizeof anon - 2;
          args = NULL;
          continue;
        }
      if (depth == 0 && strncmp (p, "operator", 8) == 0 && !is_ident (p[8])
          && (p == d || !is_ident (p[-1])))
        {
          /* "operator()" or "operator<": the symbols are the name, not brackets. */
          g_string_append (out, "operator");
          p += 8;
          if ((p[0] == '(' && p[1] == ')') || (p[0] == '[' && p[1] == ']'))
            g_string_append_len (out, p, 2), p += 2;
          else
            while (*p && strchr ("<>=!+-*/%^&|~,", *p))
              g_string_append_c (out, *p++);
          p--;
          args = NULL;
          continue;
        }
      if (depth == 0 && c == '(')
        break;                  /* the parameters */
      if (c == '<' || c == '(' || c == '[' || c == '{')
        {
          if (depth++ == 0 && c == '<')
            args = p + 1;
        }
      else if ((c == '>' || c == ')' || c == ']' || c == '}') && depth > 0)
        depth--;
      else if (depth == 0 && c == ' ')
        {
          g_string_truncate (out, 0);  /* what came before was the return type */
          args = NULL;
        }
      else if (depth == 0)
        {
          g_string_append_c (out, c);
          args = NULL;
        }
    }
  if (out->len == 0)
    {
      g_string_free (out, TRUE);
      return g_strdup (d);
    }
  if (args && is_wrapper (out->str))
    {
      g_autofree char *first = first_argument (args);
      g_autofree char *inner = first[0] ? short_name (first) : NULL;
      if (inner)
        g_string_append_printf (out, "<%s>", inner);
    }
  return g_string_free (out, FALSE);
}

/* The interned short name of a kernel: C++ names demangled and shortened, C names as they are.
 * Many records share a kernel, so each name is worked out once per trace. */
static const char *
kernel_name (Trace *t, const char *raw)
{
  if (raw == NULL || raw[0] == '\0')
    return g_intern_static_string ("kernel");
  const char *name = g_hash_table_lookup (t->names, raw);
  if (name)
    return name;
  char *full = NULL;
  int status = -1;
  if (g_str_has_prefix (raw, "_Z"))
    full = __cxa_demangle (raw, NULL, NULL, &status);
  if (full && status == 0)
    {
      char *s = short_name (full);
      name = g_intern_string (s);
      g_free (s);
    }
  else
    name = g_intern_string (raw);
  free (full);
  g_hash_table_insert (t->names, g_strdup (raw), (gpointer) name);
  return name;
}

static const char *
copy_name (guint8 kind)
{
  switch (kind)
    {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "memcpy DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
      return "memcpy HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
      return "memcpy PtoP";
    default:
      return "memcpy";
    }
}

/* ---- reading records ---------------------------------------------------------------------- */

static void
add_work (Trace *t, guint32 corr, guint32 runtime_corr, const char *name, guint64 start,
          guint64 end)
{
  /* Both 0: CUPTI could not time it (no device memory for its timestamps), as good as lost. */
  if (start == 0 && end == 0)
    {
      t->dropped++;
      return;
    }
  Work w = { corr, runtime_corr, name, start, end };
  g_array_append_val (t->work, w);
}

static void
add_record (Trace *t, const CUpti_Activity *rec)
{
  switch (rec->kind)
    {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
      {
        const KernelRecord *k = (const KernelRecord *) rec;
        add_work (t, k->correlationId, 0, kernel_name (t, k->name), k->start, k->end);
        break;
      }
    case CUPTI_ACTIVITY_KIND_MEMCPY:
      {
        const MemcpyRecord *m = (const MemcpyRecord *) rec;
        add_work (t, m->correlationId, m->runtimeCorrelationId,
                  g_intern_static_string (copy_name (m->copyKind)), m->start, m->end);
        break;
      }
    case CUPTI_ACTIVITY_KIND_MEMSET:
      {
        const MemsetRecord *m = (const MemsetRecord *) rec;
        add_work (t, m->correlationId, 0, g_intern_static_string ("memset"), m->start, m->end);
        break;
      }
    case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION:
      {
        const CorrelationRecord *c = (const CorrelationRecord *) rec;
        if (c->externalKind == CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0 && c->externalId != 0)
          g_hash_table_insert (t->tags, GUINT_TO_POINTER (c->correlationId),
                               (gpointer) (guintptr) c->externalId);
        break;
      }
    default:
      break;                    /* the runtime and driver API records */
    }
}

static void CUPTIAPI
buffer_requested (uint8_t **buffer, size_t *size, size_t *max_records)
{
  void *p = NULL;
  /* Declining (NULL) makes CUPTI drop records, which the trace then reports as dropped. */
  if (posix_memalign (&p, BUFFER_ALIGN, BUFFER_SIZE) != 0)
    p = NULL;
  *buffer = p;
  *size = p ? BUFFER_SIZE : 0;
  *max_records = 0;             /* as many as fit */
}

static void CUPTIAPI
buffer_completed (CUcontext context, uint32_t stream, uint8_t *buffer, size_t size,
                  size_t valid)
{
  /* The records CUPTI had no room for since the last buffer (the count restarts when read). */
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords (context, stream, &dropped) != CUPTI_SUCCESS)
    dropped = 0;
  g_mutex_lock (&trace_lock);
  if (trace)
    {
      trace->dropped += dropped;
      CUpti_Activity *rec = NULL;
      while (buffer && valid > 0)
        {
          CUptiResult r = cuptiActivityGetNextRecord (buffer, valid, &rec);
          if (r == CUPTI_ERROR_MAX_LIMIT_REACHED)
            break;              /* the end of the buffer */
          if (r != CUPTI_SUCCESS)
            {
              /* An incomplete or invalid record ends what can be read: at least one is lost. */
              trace->dropped++;
              break;
            }
          add_record (trace, rec);
        }
    }
  g_mutex_unlock (&trace_lock);
  free (buffer);
}

/* ---- the trace ---------------------------------------------------------------------------- */

static Trace *
trace_new (void)
{
  Trace *t = g_new0 (Trace, 1);
  t->work = g_array_sized_new (FALSE, FALSE, sizeof (Work), 4096);
  t->tags = g_hash_table_new (g_direct_hash, g_direct_equal);
  t->names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return t;
}

static void
trace_free (Trace *t)
{
  if (t == NULL)
    return;
  g_array_unref (t->work);
  g_hash_table_destroy (t->tags);
  g_hash_table_destroy (t->names);
  g_free (t);
}

/* Disables the first N kinds, flushes and detaches CUPTI; the first error goes to ERROR. The
 * dropped-record count is read before CUPTI forgets it. */
static void
detach (guint n, guint64 *dropped, GError **error)
{
  GError *first = NULL;
#define NOTE(call) CUPTI (call, first ? NULL : &first)
  /* Forced: also the buffers whose last records are still being written (the caller has waited
   * for the work, so those are complete by now). */
  NOTE (cuptiActivityFlushAll (CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  for (guint i = n; i-- > 0;)
    NOTE (cuptiActivityDisable (kinds[i]));
  /* Whatever came between the flush and the last disable. */
  NOTE (cuptiActivityFlushAll (CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  size_t lost = 0;
  if (NOTE (cuptiActivityGetNumDroppedRecords (NULL, 0, &lost)) && dropped)
    *dropped += lost;
  /* Attached, CUPTI slows all later work (PyTorch saw it slow training), so it is detached,
   * having waited and flushed as cuptiFinalize asks. CNNSCOPE_CUPTI_FINALIZE=0 keeps it
   * attached, should a CUPTI fail to re-attach. */
  const char *env = g_getenv ("CNNSCOPE_CUPTI_FINALIZE");
  if (env == NULL || strcmp (env, "0") != 0)
    NOTE (cuptiFinalize ());
#undef NOTE
  if (first)
    g_propagate_error (error, first);
}

gboolean
cs_cupti_start (GError **error)
{
  g_mutex_lock (&trace_lock);
  if (trace)
    {
      g_mutex_unlock (&trace_lock);
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "a trace is already running");
      return FALSE;
    }
  trace = trace_new ();
  g_mutex_unlock (&trace_lock);

  /* The records are read with this CUPTI's layouts; the soname keeps the major version, and
   * this says so plainly should another CUPTI come first on the library path. */
  guint n = 0;
  uint32_t version = 0;
  if (!CUPTI (cuptiGetVersion (&version), error))
    goto fail;
  if (version / 10000 != CUPTI_API_VERSION / 10000)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "CUPTI API version %u is loaded, but the "
                   "CUDA backend was built for version %u", version, (guint) CUPTI_API_VERSION);
      goto fail;
    }
  /* After a cuptiFinalize the callbacks are gone: they are registered on every start. */
  if (!CUPTI (cuptiActivityRegisterCallbacks (buffer_requested, buffer_completed), error))
    goto fail;
  for (; n < G_N_ELEMENTS (kinds); n++)
    if (!CUPTI (cuptiActivityEnable (kinds[n]), error))
      goto fail;
  /* Calls that are made often and launch nothing make only API records, which the trace drops:
   * best not to make them (as PyTorch's tracer does). A CUPTI that refuses records them all. */
  (void) cuptiActivityEnableRuntimeApi (CUPTI_RUNTIME_TRACE_CBID_cudaGetDevice_v3020, 0);
  (void) cuptiActivityEnableDriverApi (CUPTI_DRIVER_TRACE_CBID_cuCtxGetCurrent, 0);
  (void) cuptiActivityEnableDriverApi (CUPTI_DRIVER_TRACE_CBID_cuDevicePrimaryCtxGetState, 0);
  (void) cuptiActivityEnableDriverApi (CUPTI_DRIVER_TRACE_CBID_cuKernelGetAttribute, 0);
  return TRUE;

fail:
  detach (n, NULL, NULL);
  g_mutex_lock (&trace_lock);
  g_clear_pointer (&trace, trace_free);
  g_mutex_unlock (&trace_lock);
  return FALSE;
}

gboolean
cs_cupti_push (guint64 tag)
{
  return cuptiActivityPushExternalCorrelationId (CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, tag)
         == CUPTI_SUCCESS;
}

void
cs_cupti_pop (void)
{
  guint64 last = 0;
  cuptiActivityPopExternalCorrelationId (CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last);
}

static guint64
tag_of (Trace *t, guint32 corr)
{
  return corr ? (guint64) (guintptr) g_hash_table_lookup (t->tags, GUINT_TO_POINTER (corr)) : 0;
}

GArray *
cs_cupti_stop (guint64 *dropped, GError **error)
{
  guint64 lost = 0;
  if (dropped)
    *dropped = 0;
  g_mutex_lock (&trace_lock);
  gboolean running = trace != NULL;
  g_mutex_unlock (&trace_lock);
  if (!running)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no trace is running");
      return NULL;
    }

  /* The last buffers come through the callback during the flush, on this thread: the lock is
   * not held meanwhile. */
  GError *local = NULL;
  detach (G_N_ELEMENTS (kinds), &lost, &local);
  g_mutex_lock (&trace_lock);
  Trace *t = g_steal_pointer (&trace);
  g_mutex_unlock (&trace_lock);
  if (local)
    {
      trace_free (t);
      g_propagate_error (error, local);
      return NULL;
    }

  GArray *records = g_array_sized_new (FALSE, FALSE, sizeof (CsTraceRecord), t->work->len);
  for (guint i = 0; i < t->work->len; i++)
    {
      const Work *w = &g_array_index (t->work, Work, i);
      guint64 tag = tag_of (t, w->corr);
      if (tag == 0)
        tag = tag_of (t, w->runtime_corr);
      CsTraceRecord r = { tag, w->name, w->start, w->end };
      g_array_append_val (records, r);
    }
  if (dropped)
    *dropped = t->dropped + lost;
  trace_free (t);
  return records;
}
