/* OpenBLAS kernel choice: older OpenBLAS releases do not know recent CPUs and fall back to
 * their slowest kernels (Prescott); cs_blas_init picks the right ones for what the CPU has. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Call first in main(). When OPENBLAS_CORETYPE is unset, OpenBLAS chose its generic kernels and
 * the CPU has AVX-512 (or AVX2 and FMA), sets OPENBLAS_CORETYPE to SkylakeX (or Haswell) and
 * executes the program again, since OpenBLAS reads it only when it loads. Does nothing when
 * CNNSCOPE_BLAS_AUTO=0 or the variable is already set. */
void        cs_blas_init (char **argv);

/* Whether OpenBLAS runs the generic kernels it falls back to for a CPU it does not know. */
gboolean    cs_blas_generic (void);

/* "OpenBLAS SkylakeX kernels, 2 OpenMP threads" */
const char *cs_blas_describe (void);

G_END_DECLS
