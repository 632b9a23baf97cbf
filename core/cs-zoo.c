/* The bundled model zoo: .cnn files embedded as GResources, and loading a model by name or path. */
#include "cs-zoo.h"
#include "cs-error.h"
#include "cs-caffe.h"
#include "cs-onnx.h"
#include "cs-parser.h"
#include "cs-models-resources.h"

#define ZOO_PATH "/org/cnnscope/models/"

static GResource *
zoo_resource (void)
{
  /* Registered once; the resource lives as long as the process. */
  static gsize once;
  if (g_once_init_enter (&once))
    g_once_init_leave (&once, (gsize) cs_models_get_resource ());
  return (GResource *) once;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
cs_zoo_list (void)
{
  char **files = g_resource_enumerate_children (zoo_resource (), ZOO_PATH, 0, NULL);
  GPtrArray *names = g_ptr_array_new ();
  for (char **f = files; f && *f; f++)
    if (g_str_has_suffix (*f, ".cnn"))
      g_ptr_array_add (names, g_strndup (*f, strlen (*f) - 4));
  g_strfreev (files);
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

GBytes *
cs_zoo_source (const char *name)
{
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return NULL;
  g_autofree char *path = g_strconcat (ZOO_PATH, name, ".cnn", NULL);
  return g_resource_lookup_data (zoo_resource (), path, 0, NULL);
}

CsGraph *
cs_load_model (const char *name_or_path, GError **error)
{
  if (g_str_has_suffix (name_or_path, ".onnx"))
    return cs_onnx_load (name_or_path, NULL, error);
  gboolean caffe = g_str_has_suffix (name_or_path, ".prototxt");
  gboolean looks_like_path = strchr (name_or_path, '/') != NULL
                          || g_str_has_suffix (name_or_path, ".cnn") || caffe;
  if (looks_like_path || g_file_test (name_or_path, G_FILE_TEST_EXISTS))
    return caffe ? cs_caffe_load_file (name_or_path, error)
                 : cs_parse_model_file (name_or_path, error);

  g_autoptr (GBytes) src = cs_zoo_source (name_or_path);
  if (src == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: no such file, and no bundled model of that name (cnnscope-cli list "
                   "shows them)", name_or_path);
      return NULL;
    }
  g_autofree char *file = g_strconcat (name_or_path, ".cnn", NULL);
  gsize len;
  const char *text = g_bytes_get_data (src, &len);
  return cs_parse_model (file, text, len, error);
}
