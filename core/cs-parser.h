/* Reading `.cnn` model files (the language of models/README.md) into a CsGraph. */
#pragma once

#include "cs-graph.h"

G_BEGIN_DECLS

#define CS_PARSER_MAX_BYTES (1024 * 1024)

/* Parses TEXT (LEN bytes, not necessarily NUL-terminated) named FILE in messages. Returns a
 * finalized graph, or NULL with ERROR set to "FILE:LINE:COL: message" and the source line. */
CsGraph *cs_parse_model (const char *file, const char *text, gsize len, GError **error);

/* Reads and parses a file. */
CsGraph *cs_parse_model_file (const char *path, GError **error);

G_END_DECLS
