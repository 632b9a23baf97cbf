/* What every backend shares. */
#include "cs-backend.h"

void
cs_backend_free (CsBackend *be)
{
  if (be)
    be->destroy (be);
}
