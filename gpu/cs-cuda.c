/* The CUDA backend: cuDNN convolutions and batch norm, cuBLAS fully connected layers, and the
 * module's own kernels (gpu/cs-cuda-kernels.cu) for everything else; loaded at run time by
 * core/cs-device.c through cs_cuda_backend_new. Status codes become GErrors naming the call. */
#include "cs-backend.h"
#include "cs-device.h"   /* CsMath; cs-device.c itself is not linked in */
#include "cs-error.h"
#include "cs-net.h"
#include "cs-cuda-kernels.h"
#include "cs-cupti.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <gmodule.h>

/* cuDNN's legacy convolution and batch-norm calls are deprecated in cuDNN 9 but still supported;
 * they say plainly what is run, which is what this first backend wants. */

#define WORKSPACE_LIMIT ((size_t) 512 << 20)   /* bytes a convolution algorithm may use */

typedef struct {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
  cudnnMathType_t fwd_math, data_math, filter_math;
  size_t fwd_ws, data_ws, filter_ws;        /* bytes */
  gboolean unfused;             /* cuDNN refused convolution, bias and ReLU in one call */
} ConvPlan;

typedef struct {
  CsBackend base;
  CsMath math;
  int device;
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  GHashTable *plans;            /* shape key -> ConvPlan* */
  size_t ws_limit;
  cudnnTensorDescriptor_t bn_x, bn_param;
  cudnnTensorDescriptor_t bias;             /* 1 x C x 1 x 1, for fused convolutions */
  cudnnActivationDescriptor_t relu;
  float *ones, *zeros;          /* batch norm without affine parameters */
  size_t ones_len, zeros_len;
  float *scratch;               /* gradients nobody reads */
  size_t scratch_len;
  float *labels;                /* unsigned int labels, in a float-sized buffer */
  size_t labels_len;
  CsCuLossSums *sums;
  GHashTable *allocs;           /* every device allocation of the backend's -> its bytes */
  guint64 allocated, peak_allocated;
  cudaEvent_t clock_begin, clock_end;
  gboolean tracing;             /* this backend started the process's CUPTI trace */
  gboolean pushed;              /* a tag is pushed and owes a pop */
} CsCuda;

static inline CsCuda *
CUDA (CsBackend *be)
{
  return (CsCuda *) be;
}

/* ---- errors ------------------------------------------------------------------------------- */

static gboolean
cuda_ok (cudaError_t e, const char *call, const char *file, int line, GError **error)
{
  if (e == cudaSuccess)
    return TRUE;
  cudaGetLastError ();  /* clear a non-sticky error so that the backend stays usable */
  g_set_error (error, CS_ERROR,
               e == cudaErrorMemoryAllocation ? CS_ERROR_OUT_OF_MEMORY : CS_ERROR_DEVICE,
               "%s failed (%s:%d): %s: %s", call, file, line, cudaGetErrorName (e),
               cudaGetErrorString (e));
  return FALSE;
}

static gboolean
cudnn_ok (cudnnStatus_t s, const char *call, const char *file, int line, GError **error)
{
  if (s == CUDNN_STATUS_SUCCESS)
    return TRUE;
  char detail[256] = "";
  cudnnGetLastErrorString (detail, sizeof detail);
  /* cuDNN 9 tells a failed device allocation (its own, inside a call) from a host one. */
  gboolean device_oom = s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
  gboolean oom = device_oom || s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
  g_autofree char *room = NULL;
  size_t free_b = 0, total_b = 0;
  if (device_oom && cudaMemGetInfo (&free_b, &total_b) == cudaSuccess)
    {
      g_autofree char *free_s = g_format_size (free_b), *total_s = g_format_size (total_b);
      room = g_strdup_printf (" (GPU memory: %s free of %s)", free_s, total_s);
    }
  cudaGetLastError ();  /* a failed allocation inside cuDNN must not be reported by a launch */
  g_set_error (error, CS_ERROR, oom ? CS_ERROR_OUT_OF_MEMORY : CS_ERROR_DEVICE,
               "%s failed (%s:%d): %s%s%s%s", call, file, line, cudnnGetErrorString (s),
               detail[0] ? ": " : "", detail, room ? room : "");
  return FALSE;
}

static gboolean
cublas_ok (cublasStatus_t s, const char *call, const char *file, int line, GError **error)
{
  if (s == CUBLAS_STATUS_SUCCESS)
    return TRUE;
  g_set_error (error, CS_ERROR,
               s == CUBLAS_STATUS_ALLOC_FAILED ? CS_ERROR_OUT_OF_MEMORY : CS_ERROR_DEVICE,
               "%s failed (%s:%d): %s", call, file, line, cublasGetStatusString (s));
  return FALSE;
}

#define CU(call) do { if (!cuda_ok ((call), #call, __FILE__, __LINE__, error)) return FALSE; } while (0)
#define DNN(call) do { if (!cudnn_ok ((call), #call, __FILE__, __LINE__, error)) return FALSE; } while (0)
#define BLAS(call) do { if (!cublas_ok ((call), #call, __FILE__, __LINE__, error)) return FALSE; } while (0)

/* ---- memory ------------------------------------------------------------------------------- */

/* Device memory, counted: what the backend has allocated at once at most is part of a profile. */
static void *
device_alloc (CsCuda *cu, size_t bytes, GError **error)
{
  void *p = NULL;
  size_t size = MAX (bytes, 4);
  cudaError_t e = cudaMalloc (&p, size);
  if (e == cudaSuccess)
    {
      g_hash_table_insert (cu->allocs, p, GSIZE_TO_POINTER (size));
      cu->allocated += size;
      cu->peak_allocated = MAX (cu->peak_allocated, cu->allocated);
      return p;
    }
  cudaGetLastError ();
  if (e == cudaErrorMemoryAllocation)
    {
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo (&free_b, &total_b) != cudaSuccess)
        cudaGetLastError ();
      g_autofree char *asked = g_format_size (bytes), *free_s = g_format_size (free_b);
      g_autofree char *total_s = g_format_size (total_b);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY,
                   "out of GPU memory: asked for %s, %s free of %s", asked, free_s, total_s);
    }
  else
    g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "cudaMalloc of %" G_GSIZE_FORMAT " bytes "
                 "failed (%s:%d): %s: %s", bytes, __FILE__, __LINE__, cudaGetErrorName (e),
                 cudaGetErrorString (e));
  return NULL;
}

static void
device_free (CsCuda *cu, void *p)
{
  if (p == NULL)
    return;
  gpointer size;
  if (g_hash_table_steal_extended (cu->allocs, p, NULL, &size))
    cu->allocated -= GPOINTER_TO_SIZE (size);
  /* An error left set here would be reported by the next kernel launch (the launch wrappers
   * return cudaGetLastError), as that kernel's. */
  if (cudaFree (p) != cudaSuccess)
    cudaGetLastError ();
}

static float *
cuda_alloc (CsBackend *be, gsize n, GError **error)
{
  if (n > G_MAXSIZE / sizeof (float))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "out of GPU memory: %" G_GSIZE_FORMAT
                   " floats do not fit in memory", n);
      return NULL;
    }
  float *p = device_alloc (CUDA (be), n * sizeof (float), error);
  if (p && !cuda_ok (cudaMemsetAsync (p, 0, n * sizeof (float), CUDA (be)->stream),
                     "cudaMemsetAsync", __FILE__, __LINE__, error))
    {
      device_free (CUDA (be), p);
      return NULL;
    }
  return p;
}

static void
cuda_release (CsBackend *be, float *p)
{
  device_free (CUDA (be), p);
}

static gboolean
cuda_upload (CsBackend *be, float *dst, const float *src, gsize n, GError **error)
{
  CsCuda *cu = CUDA (be);
  CU (cudaMemcpyAsync (dst, src, n * sizeof (float), cudaMemcpyHostToDevice, cu->stream));
  CU (cudaStreamSynchronize (cu->stream));
  return TRUE;
}

static gboolean
cuda_download (CsBackend *be, float *dst, const float *src, gsize n, GError **error)
{
  CsCuda *cu = CUDA (be);
  CU (cudaMemcpyAsync (dst, src, n * sizeof (float), cudaMemcpyDeviceToHost, cu->stream));
  CU (cudaStreamSynchronize (cu->stream));
  return TRUE;
}

static gboolean
cuda_zero (CsBackend *be, float *p, gsize n, GError **error)
{
  CU (cudaMemsetAsync (p, 0, n * sizeof (float), CUDA (be)->stream));
  return TRUE;
}

static gboolean
cuda_synchronize (CsBackend *be, GError **error)
{
  CU (cudaStreamSynchronize (CUDA (be)->stream));
  return TRUE;
}

/* A buffer of the backend's own that grows to at least N floats; its old contents are lost. */
static float *
grow (CsCuda *cu, float **buf, size_t *len, size_t n, GError **error)
{
  if (*len >= n && *buf)
    return *buf;
  if (*buf)
    {
      if (cudaStreamSynchronize (cu->stream) != cudaSuccess)
        cudaGetLastError ();    /* as in device_free */
      device_free (cu, *buf);
      *buf = NULL;
      *len = 0;
    }
  if ((*buf = device_alloc (cu, n * sizeof (float), error)) == NULL)
    return NULL;
  *len = n;
  return *buf;
}

/* Scale 1 and shift 0 for C channels. */
static gboolean
ones_and_zeros (CsCuda *cu, size_t c, GError **error)
{
  if (cu->ones_len >= c && cu->ones && cu->zeros_len >= c && cu->zeros)
    return TRUE;
  if (!grow (cu, &cu->ones, &cu->ones_len, c, error)
      || !grow (cu, &cu->zeros, &cu->zeros_len, c, error))
    return FALSE;
  if (cuda_ok (cs_cu_fill (cu->stream, cu->ones, c, 1.0f), "cs_cu_fill", __FILE__, __LINE__,
               error)
      && cuda_ok (cs_cu_fill (cu->stream, cu->zeros, c, 0.0f), "cs_cu_fill", __FILE__,
                  __LINE__, error))
    return TRUE;
  /* Unfilled: the next call must fill them rather than take them as they are. */
  cu->ones_len = cu->zeros_len = 0;
  return FALSE;
}

/* ---- shapes ------------------------------------------------------------------------------- */

static gsize
vol (const CsShape *s)
{
  return (gsize) s->c * s->h * s->w;
}

static gsize
out_numel (const CsKernelArgs *a)
{
  return vol (&a->node->shape) * a->batch;
}

static gboolean
fits_int (const CsShape *s, guint batch, GError **error)
{
  if ((guint64) batch * s->c * s->h * s->w > G_MAXINT)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "a tensor of more than 2^31 values is too large for cuDNN");
      return FALSE;
    }
  return TRUE;
}

/* ---- convolution -------------------------------------------------------------------------- */

static void
conv_plan_free (gpointer data)
{
  ConvPlan *p = data;
  if (p->x) cudnnDestroyTensorDescriptor (p->x);
  if (p->y) cudnnDestroyTensorDescriptor (p->y);
  if (p->w) cudnnDestroyFilterDescriptor (p->w);
  if (p->conv) cudnnDestroyConvolutionDescriptor (p->conv);
  g_free (p);
}

/* Inference plans and training plans are apart: inference measures no backward algorithm and
 * sizes no workspace for one. */
static char *
conv_key (const CsNode *n, const CsShape *in, guint batch, gboolean training)
{
  guint64 k[2], s[2], pad[2], d[2];
  cs_layer_window (n, in, k, s, pad, d);
  return g_strdup_printf ("%s %u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                          " %" G_GUINT64_FORMAT " %u k%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT
                          " s%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT " p%" G_GUINT64_FORMAT
                          "x%" G_GUINT64_FORMAT " d%" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT,
                          training ? "train" : "infer", batch, in->c, in->h, in->w, n->p.out, n->p.groups, k[0], k[1], s[0],
                          s[1], pad[0], pad[1], d[0], d[1]);
}

/* In strict fp32 only plain FMA algorithms are taken; in tf32 whatever cuDNN measures fastest,
 * but none that converts the data to fp16. */
static gboolean
math_allowed (const CsCuda *cu, cudnnMathType_t m)
{
  return cu->math == CS_MATH_FP32 ? m == CUDNN_FMA_MATH
                                   : m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;  /* no fp16 */
}

/* Descriptors and the fastest algorithms (measured by cudnnFind*) for one convolution shape,
 * each within LIMIT bytes of workspace. */
static ConvPlan *
conv_plan_new (CsCuda *cu, const CsNode *n, const CsShape *in, guint batch, gboolean training,
               size_t limit, GError **error)
{
  guint64 k[2], s[2], pad[2], d[2];
  cs_layer_window (n, in, k, s, pad, d);
  g_autoptr (GError) local = NULL;
  ConvPlan *p = g_new0 (ConvPlan, 1);
  int groups = (int) n->p.groups, on, oc, oh, ow;
  /* As many results as cuDNN may give (one per algorithm and math type). */
  cudnnConvolutionFwdAlgoPerf_t *fp = NULL;
  cudnnConvolutionBwdDataAlgoPerf_t *dp = NULL;
  cudnnConvolutionBwdFilterAlgoPerf_t *wp = NULL;
  int max_f = 0, max_d = 0, max_w = 0;
  cudnnMathType_t base_math = cu->math == CS_MATH_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
#define TRY(call) do { if (!cudnn_ok ((call), #call, __FILE__, __LINE__, error)) goto fail; } while (0)
  TRY (cudnnCreateTensorDescriptor (&p->x));
  TRY (cudnnCreateTensorDescriptor (&p->y));
  TRY (cudnnCreateFilterDescriptor (&p->w));
  TRY (cudnnCreateConvolutionDescriptor (&p->conv));
  TRY (cudnnSetTensor4dDescriptor (p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int) batch,
                                   (int) in->c, (int) in->h, (int) in->w));
  TRY (cudnnSetFilter4dDescriptor (p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int) n->p.out,
                                   (int) (in->c / groups), (int) k[0], (int) k[1]));
  TRY (cudnnSetConvolution2dDescriptor (p->conv, (int) pad[0], (int) pad[1], (int) s[0],
                                        (int) s[1], (int) d[0], (int) d[1],
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  TRY (cudnnSetConvolutionGroupCount (p->conv, groups));
  TRY (cudnnSetConvolutionMathType (p->conv, base_math));
  TRY (cudnnGetConvolution2dForwardOutputDim (p->conv, p->x, p->w, &on, &oc, &oh, &ow));
  if (on != (int) batch || oc != (int) n->shape.c || oh != (int) n->shape.h
      || ow != (int) n->shape.w)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "cuDNN computes an output of "
                   "%dx%dx%d where cnnscope expects %" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT
                   "x%" G_GUINT64_FORMAT, oh, ow, oc, n->shape.h, n->shape.w, n->shape.c);
      goto fail;
    }
  TRY (cudnnSetTensor4dDescriptor (p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));

  /* Fallbacks that need no workspace, should no measured algorithm qualify. */
  p->fwd = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  p->bwd_data = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  p->bwd_filter = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
  p->fwd_math = p->data_math = p->filter_math = base_math;

  TRY (cudnnGetConvolutionForwardAlgorithmMaxCount (cu->dnn, &max_f));
  TRY (cudnnGetConvolutionBackwardDataAlgorithmMaxCount (cu->dnn, &max_d));
  TRY (cudnnGetConvolutionBackwardFilterAlgorithmMaxCount (cu->dnn, &max_w));
  /* The counts are of algorithms, but Find tries each with the descriptor's math type and with
   * CUDNN_DEFAULT_MATH (as cuDNN documents) and may list both, fastest first: asked for no
   * more than the count, it could list default-math (TF32) entries only, which fp32 refuses. */
  max_f *= 2, max_d *= 2, max_w *= 2;
  fp = g_new0 (cudnnConvolutionFwdAlgoPerf_t, MAX (max_f, 1));
  dp = g_new0 (cudnnConvolutionBwdDataAlgoPerf_t, MAX (max_d, 1));
  wp = g_new0 (cudnnConvolutionBwdFilterAlgoPerf_t, MAX (max_w, 1));
  int got = 0;
  /* Timing the algorithms allocates their workspaces and buffers of its own: where that fails
   * (short of memory once the activations are allocated), cuDNN's heuristics choose instead,
   * which allocate nothing, rather than the layer failing. */
  cudnnStatus_t found = cudnnFindConvolutionForwardAlgorithm (cu->dnn, p->x, p->w, p->conv, p->y,
                                                              MAX (max_f, 1), &got, fp);
  if (found != CUDNN_STATUS_SUCCESS)
    found = cudnnGetConvolutionForwardAlgorithm_v7 (cu->dnn, p->x, p->w, p->conv, p->y,
                                                    MAX (max_f, 1), &got, fp);
  TRY (found);
  for (int i = 0; i < got; i++)
    if (fp[i].status == CUDNN_STATUS_SUCCESS && fp[i].memory <= limit
        && math_allowed (cu, fp[i].mathType))
      {
        p->fwd = fp[i].algo, p->fwd_math = fp[i].mathType;
        break;
      }
  if (!training)
    goto sizes;
  found = cudnnFindConvolutionBackwardDataAlgorithm (cu->dnn, p->w, p->y, p->conv, p->x,
                                                     MAX (max_d, 1), &got, dp);
  if (found != CUDNN_STATUS_SUCCESS)
    found = cudnnGetConvolutionBackwardDataAlgorithm_v7 (cu->dnn, p->w, p->y, p->conv, p->x,
                                                         MAX (max_d, 1), &got, dp);
  TRY (found);
  for (int i = 0; i < got; i++)
    if (dp[i].status == CUDNN_STATUS_SUCCESS && dp[i].memory <= limit
        && math_allowed (cu, dp[i].mathType))
      {
        p->bwd_data = dp[i].algo, p->data_math = dp[i].mathType;
        break;
      }
  found = cudnnFindConvolutionBackwardFilterAlgorithm (cu->dnn, p->x, p->y, p->conv, p->w,
                                                       MAX (max_w, 1), &got, wp);
  if (found != CUDNN_STATUS_SUCCESS)
    found = cudnnGetConvolutionBackwardFilterAlgorithm_v7 (cu->dnn, p->x, p->y, p->conv, p->w,
                                                           MAX (max_w, 1), &got, wp);
  TRY (found);
  for (int i = 0; i < got; i++)
    if (wp[i].status == CUDNN_STATUS_SUCCESS && wp[i].memory <= limit
        && math_allowed (cu, wp[i].mathType))
      {
        p->bwd_filter = wp[i].algo, p->filter_math = wp[i].mathType;
        break;
      }
sizes:
  /* The workspace each algorithm needs, asked with the math type it will run with. */
  TRY (cudnnSetConvolutionMathType (p->conv, p->fwd_math));
  TRY (cudnnGetConvolutionForwardWorkspaceSize (cu->dnn, p->x, p->w, p->conv, p->y, p->fwd,
                                                &p->fwd_ws));
  if (!training)
    goto done;
  TRY (cudnnSetConvolutionMathType (p->conv, p->data_math));
  TRY (cudnnGetConvolutionBackwardDataWorkspaceSize (cu->dnn, p->w, p->y, p->conv, p->x,
                                                     p->bwd_data, &p->data_ws));
  TRY (cudnnSetConvolutionMathType (p->conv, p->filter_math));
  TRY (cudnnGetConvolutionBackwardFilterWorkspaceSize (cu->dnn, p->x, p->y, p->conv, p->w,
                                                       p->bwd_filter, &p->filter_ws));
#undef TRY
done:
  g_free (fp), g_free (dp), g_free (wp);
  return p;

fail:
  g_free (fp), g_free (dp), g_free (wp);
  conv_plan_free (p);
  return NULL;
}

static size_t
conv_plan_ws (const ConvPlan *p)
{
  return MAX (p->fwd_ws, MAX (p->data_ws, p->filter_ws));
}

/* The plan for this shape, made once, whose workspace fits in CAPACITY bytes: G_MAXSIZE while
 * the executor sizes its workspace (which then holds what the plan needs, even a fallback's over
 * the search limit), the workspace's size when a kernel runs (which then finds the same plan). */
static ConvPlan *
conv_plan (CsCuda *cu, const CsNode *n, const CsShape *in, guint batch, gboolean training,
           size_t capacity, GError **error)
{
  char *key = conv_key (n, in, batch, training);
  ConvPlan *p = g_hash_table_lookup (cu->plans, key);
  if (p && conv_plan_ws (p) <= capacity)
    {
      g_free (key);
      return p;
    }
  if ((p = conv_plan_new (cu, n, in, batch, training, MIN (cu->ws_limit, capacity), error))
      == NULL)
    {
      g_free (key);
      return NULL;
    }
  if (conv_plan_ws (p) > capacity)
    {
      g_autofree char *need = g_format_size (conv_plan_ws (p)), *have = g_format_size (capacity);
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "cuDNN needs %s of workspace for this "
                   "convolution, more than the %s planned", need, have);
      conv_plan_free (p);
      g_free (key);
      return NULL;
    }
  g_hash_table_replace (cu->plans, key, p);
  return p;
}

static gboolean
conv_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  const CsNode *n = a->node;
  if (!fits_int (&a->in_shape[0], a->batch, error) || !fits_int (&n->shape, a->batch, error))
    return FALSE;
  ConvPlan *p = conv_plan (cu, n, &a->in_shape[0], a->batch, a->training,
                           a->work_len * sizeof (float), error);
  if (p == NULL)
    return FALSE;
  const float one = 1.0f, zero = 0.0f;
  DNN (cudnnSetConvolutionMathType (p->conv, p->fwd_math));
  if (a->relu && !p->unfused)
    {
      /* Inference: the convolution, its bias and the ReLU after it in one pass over the output
       * (y = relu (conv (x) + 0 * y + b)); a layer without bias adds zeros. */
      int C = (int) n->shape.c;
      if (a->b == NULL && !ones_and_zeros (cu, C, error))
        return FALSE;
      DNN (cudnnSetTensor4dDescriptor (cu->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, C, 1, 1));
      cudnnStatus_t st = cudnnConvolutionBiasActivationForward (
          cu->dnn, &one, p->x, a->in[0], p->w, a->w, p->conv, p->fwd, a->work, p->fwd_ws, &zero,
          p->y, a->out, cu->bias, a->b ? a->b : cu->zeros, cu->relu, p->y, a->out);
      if (st == CUDNN_STATUS_SUCCESS)
        return TRUE;
      /* Not every algorithm takes the fused form: this shape runs the three steps from now on. */
      if (CUDNN_STATUS_CATEGORY (st) != CUDNN_STATUS_NOT_SUPPORTED
          && CUDNN_STATUS_CATEGORY (st) != CUDNN_STATUS_BAD_PARAM)
        return cudnn_ok (st, "cudnnConvolutionBiasActivationForward", __FILE__, __LINE__, error);
      p->unfused = TRUE;
    }
  DNN (cudnnConvolutionForward (cu->dnn, &one, p->x, a->in[0], p->w, a->w, p->conv, p->fwd,
                                a->work, p->fwd_ws, &zero, p->y, a->out));
  if (a->b)
    CU (cs_cu_bias_forward (cu->stream, a->out, a->b, a->batch, (int) n->shape.c,
                            (size_t) n->shape.h * n->shape.w));
  if (a->relu)
    CU (cs_cu_relu_forward (cu->stream, a->out, a->out, out_numel (a), 0.0f));
  return TRUE;
}

static gboolean
conv_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  const CsNode *n = a->node;
  ConvPlan *p = conv_plan (cu, n, &a->in_shape[0], a->batch, TRUE, a->work_len * sizeof (float),
                           error);
  if (p == NULL)
    return FALSE;
  const float one = 1.0f;
  /* beta 1: the gradients are added to, as the interface asks. */
  if (a->d_in[0])
    {
      DNN (cudnnSetConvolutionMathType (p->conv, p->data_math));
      DNN (cudnnConvolutionBackwardData (cu->dnn, &one, p->w, a->w, p->y, a->d_out, p->conv,
                                         p->bwd_data, a->work, p->data_ws, &one, p->x,
                                         a->d_in[0]));
    }
  if (a->dw)
    {
      DNN (cudnnSetConvolutionMathType (p->conv, p->filter_math));
      DNN (cudnnConvolutionBackwardFilter (cu->dnn, &one, p->x, a->in[0], p->y, a->d_out,
                                           p->conv, p->bwd_filter, a->work, p->filter_ws, &one,
                                           p->w, a->dw));
    }
  if (a->db)
    CU (cs_cu_bias_backward (cu->stream, a->d_out, a->db, a->batch, (int) n->shape.c,
                             (size_t) n->shape.h * n->shape.w));
  return TRUE;
}

/* ---- fully connected: cuBLAS is column-major, so the row-major products are transposed --- */

static gboolean
fc_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  int in = (int) vol (&a->in_shape[0]), out = (int) a->node->p.out, n = (int) a->batch;
  const float one = 1.0f, zero = 0.0f;
  /* Y[n, out] = X[n, in] W[out, in]^T, i.e. Y^T = W X^T in column-major terms. */
  BLAS (cublasSgemm (cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, a->w, in, a->in[0],
                     in, &zero, a->out, out));
  if (a->b)
    CU (cs_cu_bias_forward (cu->stream, a->out, a->b, a->batch, out, 1));
  return TRUE;
}

static gboolean
fc_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  int in = (int) vol (&a->in_shape[0]), out = (int) a->node->p.out, n = (int) a->batch;
  const float one = 1.0f;
  /* dX[n, in] += dY[n, out] W[out, in]: dX^T += W^T dY^T. */
  if (a->d_in[0])
    BLAS (cublasSgemm (cu->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, a->w, in,
                       a->d_out, out, &one, a->d_in[0], in));
  /* dW[out, in] += dY^T X: dW^T += X^T dY. */
  if (a->dw)
    BLAS (cublasSgemm (cu->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, a->in[0], in,
                       a->d_out, out, &one, a->dw, in));
  if (a->db)
    CU (cs_cu_bias_backward (cu->stream, a->d_out, a->db, a->batch, out, 1));
  return TRUE;
}

/* ---- pooling (own kernels: cuDNN's ceil mode and clipped averages differ from cnnscope's) -- */

static CsPoolGeom
pool_geom (const CsKernelArgs *a)
{
  return cs_kernel_pool_geom (a->node, &a->in_shape[0]);
}

static gboolean
maxpool_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CU (cs_cu_maxpool_forward (CUDA (be)->stream, a->in[0], a->out,
                             (size_t) a->batch * a->in_shape[0].c, pool_geom (a)));
  return TRUE;
}

static gboolean
maxpool_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_maxpool_backward (CUDA (be)->stream, a->in[0], a->out, a->d_out, a->d_in[0],
                                (size_t) a->batch * a->in_shape[0].c, pool_geom (a)));
  return TRUE;
}

static gboolean
avgpool_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CU (cs_cu_avgpool_forward (CUDA (be)->stream, a->in[0], a->out,
                             (size_t) a->batch * a->in_shape[0].c, pool_geom (a)));
  return TRUE;
}

static gboolean
avgpool_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_avgpool_backward (CUDA (be)->stream, a->d_out, a->d_in[0],
                                (size_t) a->batch * a->in_shape[0].c, pool_geom (a)));
  return TRUE;
}

/* ---- LRN (own kernels: the window of an even size is the CPU's, c-size/2..c+size/2) ------- */

static gboolean
lrn_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsLayerParams *p = &a->node->p;
  CU (cs_cu_lrn_forward (CUDA (be)->stream, a->in[0], a->out, a->batch, (int) a->in_shape[0].c,
                         (size_t) a->in_shape[0].h * a->in_shape[0].w, (int) p->size,
                         (float) (p->alpha / p->size), (float) p->beta, (float) p->k));
  return TRUE;
}

static gboolean
lrn_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsLayerParams *p = &a->node->p;
  if (a->d_in[0])
    CU (cs_cu_lrn_backward (CUDA (be)->stream, a->in[0], a->out, a->d_out, a->d_in[0], a->batch,
                            (int) a->in_shape[0].c, (size_t) a->in_shape[0].h * a->in_shape[0].w,
                            (int) p->size, (float) (p->alpha / p->size),
                            (float) (2.0 * p->alpha * p->beta / p->size), (float) p->beta,
                            (float) p->k));
  return TRUE;
}

/* ---- batch norm --------------------------------------------------------------------------- */

/* cuDNN in training: batch statistics, the biased variance to normalise, the unbiased one in the
 * running variance, exponential average factor = momentum; it saves the mean and 1/sqrt(var+eps)
 * as the CPU backend does. Inference is the CPU's formula in an own (in-place safe) kernel. */
static gboolean
bn_descriptors (CsCuda *cu, const CsKernelArgs *a, GError **error)
{
  const CsShape *s = &a->in_shape[0];
  if (!fits_int (s, a->batch, error))
    return FALSE;
  DNN (cudnnSetTensor4dDescriptor (cu->bn_x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int) a->batch,
                                   (int) s->c, (int) s->h, (int) s->w));
  DNN (cudnnDeriveBNTensorDescriptor (cu->bn_param, cu->bn_x, CUDNN_BATCHNORM_SPATIAL));
  return TRUE;
}

static gboolean
bn_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  const CsLayerParams *p = &a->node->p;
  int C = (int) a->in_shape[0].c;
  size_t hw = (size_t) a->in_shape[0].h * a->in_shape[0].w;
  if (!a->training)
    {
      CU (cs_cu_bn_inference (cu->stream, a->in[0], a->out, a->w, a->b, a->run_mean, a->run_var,
                              p->eps, a->relu, a->batch, C, hw));
      return TRUE;
    }
  if (a->out == a->in[0])
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "batch norm cannot train in place on the GPU");
      return FALSE;
    }
  if ((guint64) a->batch * hw < 2)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "batch norm needs more than one value per channel to train");
      return FALSE;
    }
  if (!bn_descriptors (cu, a, error) || ((!a->w || !a->b) && !ones_and_zeros (cu, C, error)))
    return FALSE;
  const float one = 1.0f, zero = 0.0f;
  DNN (cudnnBatchNormalizationForwardTraining (cu->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                               cu->bn_x, a->in[0], cu->bn_x, a->out,
                                               cu->bn_param, a->w ? a->w : cu->ones,
                                               a->b ? a->b : cu->zeros, p->momentum,
                                               a->run_mean, a->run_var, p->eps, a->saved,
                                               a->saved + C));
  return TRUE;
}

static gboolean
bn_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CsCuda *cu = CUDA (be);
  const CsLayerParams *p = &a->node->p;
  if (!a->training)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "batch norm backward runs in training mode only");
      return FALSE;
    }
  int C = (int) a->in_shape[0].c;
  size_t n = out_numel (a);
  if (!bn_descriptors (cu, a, error) || (!a->w && !ones_and_zeros (cu, C, error)))
    return FALSE;
  /* cuDNN writes every gradient: those nobody reads go to scratch. */
  float *dx = a->d_in[0], *dscale = a->dw, *dbias = a->db;
  if (!dx || !dscale || !dbias)
    {
      /* An activation's room only where the input gradient itself is not needed. */
      float *s = grow (cu, &cu->scratch, &cu->scratch_len, 2 * (size_t) C + (dx ? 0 : n), error);
      if (s == NULL)
        return FALSE;
      dx = dx ? dx : s + 2 * (size_t) C;
      dscale = dscale ? dscale : s;
      dbias = dbias ? dbias : s + C;
    }
  const float one = 1.0f, zero = 0.0f;
  DNN (cudnnBatchNormalizationBackward (cu->dnn, CUDNN_BATCHNORM_SPATIAL,
                                        &one, a->d_in[0] ? &one : &zero, &one, &one,
                                        cu->bn_x, a->in[0], cu->bn_x, a->d_out, cu->bn_x, dx,
                                        cu->bn_param, a->w ? a->w : cu->ones, dscale, dbias,
                                        p->eps, a->saved, a->saved + C));
  return TRUE;
}

/* ---- pointwise ---------------------------------------------------------------------------- */

static float
relu_slope (const CsKernelArgs *a)
{
  return a->node->op == CS_OP_LEAKYRELU ? (float) a->node->p.p : 0.0f;
}

static gboolean
relu_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CU (cs_cu_relu_forward (CUDA (be)->stream, a->in[0], a->out, out_numel (a), relu_slope (a)));
  return TRUE;
}

static gboolean
relu_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_relu_backward (CUDA (be)->stream, a->out, a->d_out, a->d_in[0], out_numel (a),
                             relu_slope (a)));
  return TRUE;
}

static gboolean
sigmoid_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CU (cs_cu_sigmoid_forward (CUDA (be)->stream, a->in[0], a->out, out_numel (a)));
  return TRUE;
}

static gboolean
sigmoid_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_sigmoid_backward (CUDA (be)->stream, a->out, a->d_out, a->d_in[0],
                                out_numel (a)));
  return TRUE;
}

static gboolean
tanh_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  CU (cs_cu_tanh_forward (CUDA (be)->stream, a->in[0], a->out, out_numel (a)));
  return TRUE;
}

static gboolean
tanh_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_tanh_backward (CUDA (be)->stream, a->out, a->d_out, a->d_in[0], out_numel (a)));
  return TRUE;
}

static gboolean
copy_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->out != a->in[0])
    CU (cudaMemcpyAsync (a->out, a->in[0], out_numel (a) * sizeof (float),
                         cudaMemcpyDeviceToDevice, CUDA (be)->stream));
  return TRUE;
}

static gboolean
copy_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  if (a->d_in[0])
    CU (cs_cu_axpy (CUDA (be)->stream, a->d_out, a->d_in[0], out_numel (a), 1.0f));
  return TRUE;
}

static gboolean
dropout_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float p = (float) a->node->p.p;
  if (!a->training || p == 0)
    return copy_forward (be, a, error);
  CU (cs_cu_dropout_forward (CUDA (be)->stream, a->in[0], a->out, out_numel (a), a->seed, p));
  return TRUE;
}

static gboolean
dropout_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float p = (float) a->node->p.p;
  if (a->d_in[0] == NULL)
    return TRUE;
  if (p == 0)
    return copy_backward (be, a, error);
  CU (cs_cu_dropout_backward (CUDA (be)->stream, a->d_out, a->d_in[0], out_numel (a), a->seed,
                              p));
  return TRUE;
}

static gboolean
droppath_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float s = cs_kernel_droppath_factor (a);
  if (s == 1.0f)
    return copy_forward (be, a, error);
  CU (cs_cu_scale (CUDA (be)->stream, a->in[0], a->out, out_numel (a), s));
  return TRUE;
}

static gboolean
droppath_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  float s = cs_kernel_droppath_factor (a);
  if (a->d_in[0] && s != 0)
    CU (cs_cu_axpy (CUDA (be)->stream, a->d_out, a->d_in[0], out_numel (a), s));
  return TRUE;
}

static gboolean
softmax_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsShape *s = &a->node->shape;
  CU (cs_cu_softmax_forward (CUDA (be)->stream, a->in[0], a->out, a->batch, (int) s->c,
                             (size_t) s->h * s->w));
  return TRUE;
}

static gboolean
softmax_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  const CsShape *s = &a->node->shape;
  if (a->d_in[0])
    CU (cs_cu_softmax_backward (CUDA (be)->stream, a->out, a->d_out, a->d_in[0], a->batch,
                                (int) s->c, (size_t) s->h * s->w));
  return TRUE;
}

/* ---- joins -------------------------------------------------------------------------------- */

static gboolean
concat_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize ov = vol (&a->node->shape), off = 0;
  for (guint i = 0; i < a->n_in; i++)
    {
      gsize iv = vol (&a->in_shape[i]);
      CU (cs_cu_concat_forward (CUDA (be)->stream, a->in[i], a->out, a->batch, iv, ov, off));
      off += iv;
    }
  return TRUE;
}

static gboolean
concat_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  gsize ov = vol (&a->node->shape), off = 0;
  for (guint i = 0; i < a->n_in; i++)
    {
      gsize iv = vol (&a->in_shape[i]);
      if (a->d_in[i])
        CU (cs_cu_concat_backward (CUDA (be)->stream, a->d_out, a->d_in[i], a->batch, iv, ov,
                                   off));
      off += iv;
    }
  return TRUE;
}

/* A sum or mean (with drop-path, only the kept inputs), and the ReLU folded into it: one pass
 * over the output for up to four inputs, and one over the gradients. */
static gboolean
sum_forward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  g_autofree gboolean *kept = g_new0 (gboolean, a->n_in);
  guint k = cs_kernel_join_kept (a, kept);
  g_autofree const float **x = g_new (const float *, k);
  for (guint i = 0, j = 0; i < a->n_in; i++)
    if (kept[i])
      x[j++] = a->in[i];
  float scale = a->node->op == CS_OP_MEAN ? 1.0f / k : 1.0f;
  CU (cs_cu_join_forward (CUDA (be)->stream, x, k, a->out, out_numel (a), scale, a->relu));
  return TRUE;
}

static gboolean
sum_backward (CsBackend *be, const CsKernelArgs *a, GError **error)
{
  g_autofree gboolean *kept = g_new0 (gboolean, a->n_in);
  guint k = cs_kernel_join_kept (a, kept), m = 0;
  g_autofree float **dx = g_new (float *, a->n_in);
  for (guint i = 0; i < a->n_in; i++)
    if (kept[i] && a->d_in[i])
      dx[m++] = a->d_in[i];
  float scale = a->node->op == CS_OP_MEAN ? 1.0f / k : 1.0f;
  CU (cs_cu_join_backward (CUDA (be)->stream, a->d_out, a->out, dx, m, out_numel (a), scale,
                           a->relu));
  return TRUE;
}

/* ---- loss and update ---------------------------------------------------------------------- */

static gboolean
cuda_cross_entropy (CsBackend *be, const float *logits, const guint *labels, guint n,
                    guint classes, float scale, float *d, double *loss, guint *top1,
                    guint *top5, GError **error)
{
  CsCuda *cu = CUDA (be);
  G_STATIC_ASSERT (sizeof (guint) == sizeof (unsigned int));
  G_STATIC_ASSERT (sizeof (unsigned int) <= sizeof (float));
  if (n == 0)
    return TRUE;
  if (!grow (cu, &cu->labels, &cu->labels_len, n, error))
    return FALSE;
  unsigned int *dev_labels = (unsigned int *) cu->labels;
  CsCuLossSums sums = { 0 };
  CU (cudaMemcpyAsync (dev_labels, labels, n * sizeof (guint), cudaMemcpyHostToDevice,
                       cu->stream));
  CU (cudaMemsetAsync (cu->sums, 0, sizeof *cu->sums, cu->stream));
  CU (cs_cu_cross_entropy (cu->stream, logits, dev_labels, n, classes, scale, d, cu->sums));
  CU (cudaMemcpyAsync (&sums, cu->sums, sizeof sums, cudaMemcpyDeviceToHost, cu->stream));
  CU (cudaStreamSynchronize (cu->stream));
  *loss += scale * sums.loss / n;
  *top1 += sums.top1;
  *top5 += sums.top5;
  return TRUE;
}

static gboolean
cuda_sgd (CsBackend *be, float *w, const float *g, float *m, gsize n, float lr, float momentum,
          float decay, GError **error)
{
  CU (cs_cu_sgd (CUDA (be)->stream, w, g, m, n, lr, momentum, decay));
  return TRUE;
}

/* ---- sizes -------------------------------------------------------------------------------- */

static gsize
cuda_saved_size (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                 gboolean training)
{
  return n->op == CS_OP_BN ? 2 * (gsize) in[0].c : 0;
}

/* A convolution's algorithms are measured here, on the planned shape, so that the executor's
 * workspace fits them; a failure here is reported again by the kernel that needs the plan. */
static gsize
cuda_workspace_size (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
                     gboolean training)
{
  if (n->op != CS_OP_CONV)
    return 0;
  CsCuda *cu = CUDA (be);
  g_autoptr (GError) error = NULL;
  ConvPlan *p = conv_plan (cu, n, &in[0], batch, training, G_MAXSIZE, &error);
  return p ? (conv_plan_ws (p) + sizeof (float) - 1) / sizeof (float) : 0;
}

/* ---- tracing and the device's clock ------------------------------------------------------ */

static gboolean
cuda_trace_start (CsBackend *be, GError **error)
{
  CsCuda *cu = CUDA (be);
  if (cu->tracing)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "a trace is already running");
      return FALSE;
    }
  /* Work queued before is not the trace's. */
  CU (cudaStreamSynchronize (cu->stream));
  if (!cs_cupti_start (error))
    return FALSE;
  cu->tracing = TRUE;
  cu->pushed = FALSE;
  return TRUE;
}

/* Called around every node's work: nothing but CUPTI's own push and pop while a trace runs. */
static void
cuda_trace_push (CsBackend *be, guint64 tag)
{
  CsCuda *cu = CUDA (be);
  if (!cu->tracing)
    return;
  if (cu->pushed)
    cs_cupti_pop ();            /* pushes do not nest: a new one replaces the last */
  cu->pushed = cs_cupti_push (tag);
}

static void
cuda_trace_pop (CsBackend *be)
{
  CsCuda *cu = CUDA (be);
  if (!cu->tracing || !cu->pushed)
    return;
  cs_cupti_pop ();
  cu->pushed = FALSE;
}

static GArray *
cuda_trace_stop (CsBackend *be, guint64 *dropped, GError **error)
{
  CsCuda *cu = CUDA (be);
  if (dropped)
    *dropped = 0;
  if (!cu->tracing)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "no trace is running");
      return NULL;
    }
  cuda_trace_pop (be);
  /* The traced work must be done, its records complete, before CUPTI is flushed and detached.
   * The whole device: the tracer records every stream, not only the backend's. The trace ends
   * even when this fails. */
  GError *sync_error = NULL;
  cuda_ok (cudaDeviceSynchronize (), "cudaDeviceSynchronize", __FILE__, __LINE__, &sync_error);
  cu->tracing = FALSE;
  GArray *records = cs_cupti_stop (dropped, sync_error ? NULL : error);
  if (sync_error)
    {
      g_clear_pointer (&records, g_array_unref);
      g_propagate_error (error, sync_error);
    }
  return records;
}

static gboolean
cuda_clock_start (CsBackend *be, GError **error)
{
  CsCuda *cu = CUDA (be);
  CU (cudaEventRecord (cu->clock_begin, cu->stream));
  return TRUE;
}

static gboolean
cuda_clock_stop (CsBackend *be, double *ms, GError **error)
{
  CsCuda *cu = CUDA (be);
  float elapsed = 0;
  CU (cudaEventRecord (cu->clock_end, cu->stream));
  CU (cudaEventSynchronize (cu->clock_end));
  CU (cudaEventElapsedTime (&elapsed, cu->clock_begin, cu->clock_end));
  *ms = elapsed;
  return TRUE;
}

/* ---- descriptions ------------------------------------------------------------------------- */

static const char *const fwd_algo_names[] = {
  [CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM] = "IMPLICIT_GEMM",
  [CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM] = "IMPLICIT_PRECOMP_GEMM",
  [CUDNN_CONVOLUTION_FWD_ALGO_GEMM] = "GEMM",
  [CUDNN_CONVOLUTION_FWD_ALGO_DIRECT] = "DIRECT",
  [CUDNN_CONVOLUTION_FWD_ALGO_FFT] = "FFT",
  [CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING] = "FFT_TILING",
  [CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD] = "WINOGRAD",
  [CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED] = "WINOGRAD_NONFUSED",
};

static const char *const data_algo_names[] = {
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_0] = "ALGO_0",
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_1] = "ALGO_1",
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT] = "FFT",
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING] = "FFT_TILING",
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD] = "WINOGRAD",
  [CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED] = "WINOGRAD_NONFUSED",
};

static const char *const filter_algo_names[] = {
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0] = "ALGO_0",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1] = "ALGO_1",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT] = "FFT",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3] = "ALGO_3",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD] = "WINOGRAD",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED] = "WINOGRAD_NONFUSED",
  [CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING] = "FFT_TILING",
};

static const char *const math_names[] = {
  [CUDNN_DEFAULT_MATH] = "default math",
  [CUDNN_TENSOR_OP_MATH] = "tensor ops",
  [CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION] = "tensor ops with conversion",
  [CUDNN_FMA_MATH] = "FMA",
};

static const char *
enum_name (const char *const *names, guint n, int value)
{
  return value >= 0 && (guint) value < n && names[value] ? names[value] : "unknown";
}

#define ENUM_NAME(names, value) enum_name ((names), G_N_ELEMENTS (names), (int) (value))

/* One algorithm of a plan: "ALGO_1 (FMA, 1.2 MB)". */
static char *
algo_text (const char *algo, cudnnMathType_t math, size_t ws)
{
  g_autofree char *size = g_format_size (ws);
  return g_strdup_printf ("%s (%s, %s)", algo, ENUM_NAME (math_names, math), size);
}

/* A convolution's plan is the one its kernels ran with when there is one (planned by the
 * executor), else made now with the largest workspace the backend allows. */
static char *
cuda_describe (CsBackend *be, const CsNode *n, const CsShape *in, guint batch,
               gboolean training)
{
  CsCuda *cu = CUDA (be);
  switch (n->op)
    {
    case CS_OP_CONV:
      {
        g_autoptr (GError) error = NULL;
        ConvPlan *p = NULL;
        if (fits_int (&in[0], batch, &error) && fits_int (&n->shape, batch, &error))
          p = conv_plan (cu, n, &in[0], batch, training, G_MAXSIZE, &error);
        if (p == NULL)
          return g_strdup_printf ("no cuDNN plan: %s", error->message);
        g_autofree char *fwd = algo_text (ENUM_NAME (fwd_algo_names, p->fwd), p->fwd_math,
                                          p->fwd_ws);
        if (!training)
          return g_strdup_printf ("fwd %s", fwd);
        g_autofree char *data = algo_text (ENUM_NAME (data_algo_names, p->bwd_data),
                                           p->data_math, p->data_ws);
        g_autofree char *filter = algo_text (ENUM_NAME (filter_algo_names, p->bwd_filter),
                                             p->filter_math, p->filter_ws);
        return g_strdup_printf ("fwd %s, bwd data %s, bwd filter %s", fwd, data, filter);
      }
    case CS_OP_FC:
      return g_strdup (cu->math == CS_MATH_TF32 ? "cuBLAS sgemm (TF32 tensor ops)"
                                                : "cuBLAS sgemm (fp32)");
    case CS_OP_BN:
      return g_strdup ("cuDNN batch norm (spatial)");
    default:
      return NULL;
    }
}

static void
cuda_memory (CsBackend *be, guint64 *peak_allocated, guint64 *device_in_use)
{
  CsCuda *cu = CUDA (be);
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo (&free_b, &total_b) != cudaSuccess)
    {
      cudaGetLastError ();
      free_b = total_b = 0;
    }
  if (peak_allocated)
    *peak_allocated = cu->peak_allocated;
  if (device_in_use)
    *device_in_use = total_b - MIN (free_b, total_b);
}

/* ---- the backend -------------------------------------------------------------------------- */

static void
cuda_destroy (CsBackend *be)
{
  CsCuda *cu = CUDA (be);
  if (cu->tracing)
    {
      /* A trace left running ends with the backend, so that another can start. */
      GArray *records = cuda_trace_stop (be, NULL, NULL);
      if (records)
        g_array_unref (records);
    }
  if (cu->stream)
    cudaStreamSynchronize (cu->stream);
  g_clear_pointer (&cu->plans, g_hash_table_destroy);
  float *bufs[] = { cu->ones, cu->zeros, cu->scratch, cu->labels, (float *) cu->sums };
  for (guint i = 0; i < G_N_ELEMENTS (bufs); i++)
    device_free (cu, bufs[i]);
  g_clear_pointer (&cu->allocs, g_hash_table_destroy);
  if (cu->clock_begin)
    cudaEventDestroy (cu->clock_begin);
  if (cu->clock_end)
    cudaEventDestroy (cu->clock_end);
  if (cu->bn_x)
    cudnnDestroyTensorDescriptor (cu->bn_x);
  if (cu->bn_param)
    cudnnDestroyTensorDescriptor (cu->bn_param);
  if (cu->bias)
    cudnnDestroyTensorDescriptor (cu->bias);
  if (cu->relu)
    cudnnDestroyActivationDescriptor (cu->relu);
  if (cu->blas)
    cublasDestroy (cu->blas);
  if (cu->dnn)
    cudnnDestroy (cu->dnn);
  if (cu->stream)
    cudaStreamDestroy (cu->stream);
  g_free (be->description);
  g_free (cu);
}

static gboolean
cuda_setup (CsCuda *cu, GError **error)
{
  CU (cudaSetDevice (cu->device));
  CU (cudaStreamCreateWithFlags (&cu->stream, cudaStreamNonBlocking));
  DNN (cudnnCreate (&cu->dnn));
  DNN (cudnnSetStream (cu->dnn, cu->stream));
  BLAS (cublasCreate (&cu->blas));
  BLAS (cublasSetStream (cu->blas, cu->stream));
  /* Strict fp32 is cuBLAS's default mode, which keeps fp32's precision (as PyTorch's strict
   * fp32 does); the pedantic mode is meant for testing and may be slower. */
  BLAS (cublasSetMathMode (cu->blas, cu->math == CS_MATH_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                              : CUBLAS_DEFAULT_MATH));
  DNN (cudnnCreateTensorDescriptor (&cu->bn_x));
  DNN (cudnnCreateTensorDescriptor (&cu->bn_param));
  DNN (cudnnCreateTensorDescriptor (&cu->bias));
  DNN (cudnnCreateActivationDescriptor (&cu->relu));
  DNN (cudnnSetActivationDescriptor (cu->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  CU (cudaEventCreate (&cu->clock_begin));
  CU (cudaEventCreate (&cu->clock_end));
  if ((cu->sums = device_alloc (cu, sizeof *cu->sums, error)) == NULL)
    return FALSE;
  size_t free_b = 0, total_b = 0;
  CU (cudaMemGetInfo (&free_b, &total_b));
  cu->ws_limit = MIN (WORKSPACE_LIMIT, free_b / 8);

  struct cudaDeviceProp prop;
  CU (cudaGetDeviceProperties (&prop, cu->device));
  /* The clock left cudaDeviceProp in CUDA 13; without it the peak is unknown (0). */
  int clock_khz = 0;
  if (cudaDeviceGetAttribute (&clock_khz, cudaDevAttrClockRate, cu->device) != cudaSuccess)
    {
      cudaGetLastError ();
      clock_khz = 0;
    }
  cu->base.peak_tflops = cs_gpu_peak_tflops (prop.major, prop.minor, prop.multiProcessorCount,
                                             clock_khz, cu->math);
  int driver = 0, runtime = 0, blas_version = 0;
  CU (cudaDriverGetVersion (&driver));
  CU (cudaRuntimeGetVersion (&runtime));
  BLAS (cublasGetVersion (cu->blas, &blas_version));
  size_t dnn = cudnnGetVersion ();
  g_autofree char *mem = g_format_size (total_b);
  cu->base.description = g_strdup_printf (
      "%s (sm_%d%d, %s), driver %d.%d, CUDA runtime %d.%d, cuDNN %zu.%zu.%zu, cuBLAS %d.%d.%d, "
      "%s math", prop.name, prop.major, prop.minor, mem, driver / 1000, driver % 1000 / 10,
      runtime / 1000, runtime % 1000 / 10, dnn / 10000, dnn % 10000 / 100, dnn % 100,
      blas_version / 10000, blas_version % 10000 / 100, blas_version % 100,
      cu->math == CS_MATH_TF32 ? "tf32" : "fp32");
  return TRUE;
}

/* The module's entry point (CS_CUDA_MODULE_SYMBOL). */
G_MODULE_EXPORT CsBackend *cs_cuda_backend_new (CsMath math, GError **error);

CsBackend *
cs_cuda_backend_new (CsMath math, GError **error)
{
  if (math == CS_MATH_BF16)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED, "bf16 is not implemented yet");
      return NULL;
    }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount (&count);
  if (e != cudaSuccess || count == 0)
    {
      cudaGetLastError ();
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "no CUDA backend: no usable CUDA device: %s",
                   e != cudaSuccess ? cudaGetErrorString (e) : "no device found");
      return NULL;
    }
  CsCuda *cu = g_new0 (CsCuda, 1);
  CsBackend *be = &cu->base;
  cu->math = math;
  cu->device = 0;
  cu->plans = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, conv_plan_free);
  cu->allocs = g_hash_table_new (g_direct_hash, g_direct_equal);
  be->name = "cuda";
  be->host_memory = FALSE;
  /* At inference, cuDNN's fused convolution and our batch norm kernel apply the ReLU after them;
   * cuDNN's training batch norm takes none in NCHW float32. Our sum and mean kernels apply it in
   * both modes (a residual block's add and ReLU in one pass). */
  be->applies_relu[FALSE][CS_OP_CONV] = be->applies_relu[FALSE][CS_OP_BN] = TRUE;
  for (int training = 0; training < 2; training++)
    be->applies_relu[training][CS_OP_ADD] = be->applies_relu[training][CS_OP_MEAN] = TRUE;
  be->alloc = cuda_alloc;
  be->release = cuda_release;
  be->upload = cuda_upload;
  be->download = cuda_download;
  be->zero = cuda_zero;
  be->saved_size = cuda_saved_size;
  be->workspace_size = cuda_workspace_size;
  be->cross_entropy = cuda_cross_entropy;
  be->sgd = cuda_sgd;
  be->synchronize = cuda_synchronize;
  be->destroy = cuda_destroy;
  be->trace_start = cuda_trace_start;
  be->trace_push = cuda_trace_push;
  be->trace_pop = cuda_trace_pop;
  be->trace_stop = cuda_trace_stop;
  be->clock_start = cuda_clock_start;
  be->clock_stop = cuda_clock_stop;
  be->describe = cuda_describe;
  be->memory = cuda_memory;
  CS_BACKEND_SET_KERNELS (be);
  if (!cuda_setup (cu, error))
    {
      cuda_destroy (be);
      return NULL;
    }
  return be;
}
