/* The bundled model zoo (the models folder compiled into the library) and loading by name or path. */
#pragma once

#include "cs-graph.h"

G_BEGIN_DECLS

/* The bundled model names, sorted; free with g_strfreev. */
char   **cs_zoo_list      (void);
/* The text of a bundled model, or NULL. */
GBytes  *cs_zoo_source    (const char *name);
/* A bundled model by name ("vgg16") or a model file by path: .cnn, Caffe .prototxt, or .onnx
 * (the graph only: cs_onnx_load gives its weights too). */
CsGraph *cs_load_model    (const char *name_or_path, GError **error);

G_END_DECLS
