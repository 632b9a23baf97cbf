/* The CS_ERROR domain: every failure the core reports to a user. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CS_ERROR (cs_error_quark ())

typedef enum {
  CS_ERROR_PARSE,         /* the text is not valid model language */
  CS_ERROR_NAME,          /* an unknown, duplicate or misused name */
  CS_ERROR_CYCLE,         /* the layers form a cycle */
  CS_ERROR_SHAPE,         /* shapes that do not fit a layer */
  CS_ERROR_OVERFLOW,      /* a size or count that does not fit in 64 bits */
  CS_ERROR_LIMIT,         /* a file over one of the parser's limits */
  CS_ERROR_IO,            /* a file that cannot be read or written */
  CS_ERROR_UNSUPPORTED,   /* something valid that cnnscope does not do */
  CS_ERROR_OUT_OF_MEMORY, /* an allocation that failed */
  CS_ERROR_DEVICE,        /* a GPU or driver failure */
  CS_ERROR_USAGE,         /* a bad option or argument */
} CsErrorCode;

GQuark cs_error_quark (void);

/* The line of TEXT numbered LINE (from 1), followed by a caret under column COL; "" when the line
 * does not exist. */
char *cs_source_snippet (const char *text, gsize len, guint line, guint col);

G_END_DECLS
