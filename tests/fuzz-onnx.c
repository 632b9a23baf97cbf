/* libFuzzer target: import arbitrary bytes as an ONNX model with its weights, then export it again. */
#include "cs-error.h"
#include "cs-onnx.h"

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <glib/gstdio.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CsNet *net = NULL;
  CsGraph *g = cs_onnx_load_data (data, size, "fuzz.onnx", &net, &error);
  if (g == NULL)
    {
      /* Every failure must say what went wrong, in the CS_ERROR domain, and leave no net. */
      if (error == NULL || error->domain != CS_ERROR || error->message == NULL || net != NULL)
        __builtin_trap ();
      g_error_free (error);
      return 0;
    }
  if (error != NULL || net == NULL || net->graph != g)
    __builtin_trap ();

  /* What was imported must export; the file goes to a private temporary folder. */
  static char *dir;
  if (dir == NULL)
    dir = g_dir_make_tmp ("fuzz-onnx-XXXXXX", NULL);
  if (dir)
    {
      char *path = g_build_filename (dir, "out.onnx", NULL);
      if (!cs_onnx_save (net, path, &error))
        {
          if (error == NULL || error->domain != CS_ERROR)
            __builtin_trap ();
          g_clear_error (&error);
        }
      g_unlink (path);
      g_free (path);
    }
  cs_net_free (net);
  cs_graph_unref (g);
  return 0;
}
