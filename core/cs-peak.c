/* Peak arithmetic rates of NVIDIA GPUs, from their multiply-adds per multiprocessor and clock
 * (the architecture white papers' per-SM figures). Kept apart from cs-device.c so that the CUDA
 * module can link it alone. */
#include "cs-device.h"

typedef struct {
  int major, minor;
  int fp32, tf32, bf16;   /* dense multiply-adds per SM per clock */
} Rates;

static const Rates rates[] = {
  { 7, 0,  64,    0,    0 },   /* V100: no tf32 or bf16 tensor cores */
  { 7, 5,  64,    0,    0 },   /* Turing */
  { 8, 0,  64,  512, 1024 },   /* A100 */
  { 8, 6, 128,  128,  256 },   /* GA10x */
  { 8, 7, 128,  128,  256 },   /* Orin */
  { 8, 9, 128,  128,  256 },   /* Ada */
  { 9, 0, 128, 1024, 2048 },   /* H100, H200 */
};

double
cs_gpu_peak_tflops (int major, int minor, int sms, int clock_khz, CsMath math)
{
  for (guint i = 0; i < G_N_ELEMENTS (rates); i++)
    {
      const Rates *r = &rates[i];
      if (r->major != major || r->minor != minor)
        continue;
      /* Without tensor cores for the mode, the work runs on the CUDA cores. */
      int fma = math == CS_MATH_TF32 && r->tf32 ? r->tf32
              : math == CS_MATH_BF16 && r->bf16 ? r->bf16 : r->fp32;
      return 2.0 * fma * sms * (clock_khz * 1e3) / 1e12;
    }
  return 0;
}
