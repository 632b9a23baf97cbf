/* Importing Caffe deploy files (`.prototxt`, protobuf text format, V2 and V1 layers) as a CsGraph. */
#pragma once

#include "cs-graph.h"

G_BEGIN_DECLS

#define CS_CAFFE_MAX_BYTES (8 * 1024 * 1024)

/* Reads TEXT (LEN bytes, not necessarily NUL-terminated) named FILE in messages. Returns a
 * finalized graph whose nodes carry the Caffe layer names, or NULL with ERROR set to
 * "FILE:LINE:COL: message" and the source line. The input's batch size, which is not part of a
 * cnnscope model, is mentioned in the graph's note. */
CsGraph *cs_caffe_load      (const char *file, const char *text, gsize len, GError **error);

/* Reads and imports a file. */
CsGraph *cs_caffe_load_file (const char *path, GError **error);

G_END_DECLS
