/* Backend choice and the run-time loading of the CUDA backend module. */
#include "cs-device.h"
#include "cs-error.h"

#include <gmodule.h>

gboolean
cs_math_from_string (const char *s, CsMath *out)
{
  static const char *names[] = { "fp32", "tf32", "bf16" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (s, names[i]))
      {
        *out = i;
        return TRUE;
      }
  return FALSE;
}

const char *
cs_math_to_string (CsMath math)
{
  return math == CS_MATH_TF32 ? "tf32" : math == CS_MATH_BF16 ? "bf16" : "fp32";
}

/* The module is looked for beside the program (a build tree), then where it is installed. */
static GModule *
open_cuda_module (GError **error)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = exe ? g_path_get_dirname (exe) : g_strdup (".");
  const char *env = g_getenv ("CNNSCOPE_CUDA_MODULE");
  g_autofree char *build = g_build_filename (dir, "..", "gpu", "libcnnscope-cuda.so", NULL);
  g_autofree char *here = g_build_filename (dir, "libcnnscope-cuda.so", NULL);
  g_autofree char *installed = g_build_filename (CS_LIBDIR, "cnnscope", "libcnnscope-cuda.so",
                                                 NULL);
  const char *candidates[] = { env, build, here, installed };
  GString *tried = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      if (candidates[i] == NULL || !g_file_test (candidates[i], G_FILE_TEST_EXISTS))
        continue;
      GModule *m = g_module_open (candidates[i], G_MODULE_BIND_LOCAL);
      if (m)
        {
          g_string_free (tried, TRUE);
          return m;
        }
      g_string_append_printf (tried, "\n  %s: %s", candidates[i], g_module_error ());
    }
  if (tried->len)
    g_set_error (error, CS_ERROR, CS_ERROR_DEVICE,
                 "the CUDA backend could not be loaded (are the CUDA, cuDNN and CUPTI libraries "
                 "installed?):%s", tried->str);
  else
    g_set_error (error, CS_ERROR, CS_ERROR_DEVICE,
                 "this build of cnnscope has no CUDA backend (configure with -Dcuda=enabled "
                 "where the CUDA toolkit, cuDNN and CUPTI are installed)");
  g_string_free (tried, TRUE);
  return NULL;
}

static CsBackend *
open_cuda (CsMath math, GError **error)
{
  static GModule *module;
  if (module == NULL && (module = open_cuda_module (error)) == NULL)
    return NULL;
  gpointer sym = NULL;
  if (!g_module_symbol (module, CS_CUDA_MODULE_SYMBOL, &sym) || sym == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_DEVICE, "the CUDA backend module lacks %s",
                   CS_CUDA_MODULE_SYMBOL);
      return NULL;
    }
  return ((CsCudaBackendNew) sym) (math, error);
}

CsBackend *
cs_backend_open (const char *device, CsMath math, char **note, GError **error)
{
  if (note)
    *note = NULL;
  if (device == NULL)
    device = "auto";
  if (g_str_equal (device, "cpu"))
    {
      if (math != CS_MATH_FP32)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                       "the CPU computes in fp32 only, not %s", cs_math_to_string (math));
          return NULL;
        }
      return cs_cpu_backend_new ();
    }
  if (g_str_equal (device, "cuda"))
    return open_cuda (math, error);
  if (!g_str_equal (device, "auto"))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE,
                   "the device is cpu, cuda or auto, not '%s'", device);
      return NULL;
    }
  GError *local = NULL;
  CsBackend *be = open_cuda (math, &local);
  if (be)
    return be;
  if (note)
    *note = g_strdup_printf ("running on the CPU: %s", local->message);
  g_error_free (local);
  return cs_cpu_backend_new ();
}
