/* OpenBLAS kernel choice for CPUs newer than the OpenBLAS release knows. */
#include "cs-blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <unistd.h>

static const char *
kernels_for_cpu (void)
{
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw")
      && __builtin_cpu_supports ("avx512vl") && __builtin_cpu_supports ("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    return "Haswell";
#endif
  return NULL;
}

gboolean
cs_blas_generic (void)
{
  const char *core = openblas_get_corename ();
  return core && (g_ascii_strcasecmp (core, "Prescott") == 0
                  || g_ascii_strcasecmp (core, "Core2") == 0
                  || g_ascii_strcasecmp (core, "Nehalem") == 0);
}

void
cs_blas_init (char **argv)
{
  const char *automatic = g_getenv ("CNNSCOPE_BLAS_AUTO");
  if (g_getenv ("OPENBLAS_CORETYPE") || (automatic && g_str_equal (automatic, "0")))
    return;
  /* Only the generic fallbacks are replaced; a core OpenBLAS recognised is left alone. */
  if (!cs_blas_generic ())
    return;
  const char *want = kernels_for_cpu ();
  if (want == NULL)
    return;
  g_setenv ("OPENBLAS_CORETYPE", want, TRUE);
  execv ("/proc/self/exe", argv);
  /* If that failed, go on with the kernels there are. */
  g_unsetenv ("OPENBLAS_CORETYPE");
}

const char *
cs_blas_describe (void)
{
  static char text[128];
  int parallel = openblas_get_parallel ();
  g_snprintf (text, sizeof text, "OpenBLAS %s kernels, %d %sthreads", openblas_get_corename (),
              openblas_get_num_threads (), parallel == 2 ? "OpenMP " : parallel == 1
              ? "POSIX " : "");
  return text;
}
