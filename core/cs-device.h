/* Choosing a backend: the CPU, or the CUDA backend loaded at run time when it was built and a
 * GPU is there, so that one build serves machines with and without CUDA. */
#pragma once

#include "cs-backend.h"

G_BEGIN_DECLS

typedef enum {
  CS_MATH_FP32,   /* strict float32 */
  CS_MATH_TF32,   /* tensor cores for convolutions and matrix products (the GPU default) */
  CS_MATH_BF16,   /* bf16 compute, float32 master weights */
} CsMath;

gboolean    cs_math_from_string (const char *s, CsMath *out);
const char *cs_math_to_string   (CsMath math);

/* DEVICE is "cpu", "cuda" or "auto" (NULL: auto). "cuda" fails with CS_ERROR_DEVICE saying why
 * (not built, no driver, no GPU, a driver too old); "auto" falls back to the CPU and, when it
 * does, sets *NOTE to the reason (free it). The CPU computes in fp32 only: other math modes are a
 * CS_ERROR_UNSUPPORTED error there. */
CsBackend  *cs_backend_open     (const char *device, CsMath math, char **note, GError **error);

/* The peak arithmetic rate of an NVIDIA GPU of compute capability MAJOR.MINOR with SMS
 * multiprocessors at CLOCK_KHZ, in TFLOP/s (a multiply-add counts 2) for MATH: the CUDA cores'
 * fp32 rate, or the dense tensor-core rate for tf32 and bf16. 0 for an architecture it does not
 * know. (core/cs-peak.c) */
double      cs_gpu_peak_tflops  (int major, int minor, int sms, int clock_khz, CsMath math);

/* The entry point a CUDA backend module exports. */
typedef CsBackend *(*CsCudaBackendNew) (CsMath math, GError **error);
#define CS_CUDA_MODULE_SYMBOL "cs_cuda_backend_new"

G_END_DECLS
