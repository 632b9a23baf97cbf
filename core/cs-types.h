/* Forward declarations of the types shared across cnnscope's core. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CsGraph      CsGraph;
typedef struct _CsNode       CsNode;
typedef struct _CsFrame      CsFrame;
typedef struct _CsStats      CsStats;
typedef struct _CsLayerClass CsLayerClass;

/* A volume of one image, in the lecture's H x W x C; vectors are C x 1 x 1. */
typedef struct {
  guint64 c, h, w;
} CsShape;

/* Where a node was written: a line and column of the graph's source file, and the chain of block
 * calls that expanded to it (NULL at top level or for imported graphs). */
typedef struct {
  guint line, col;
  const CsFrame *frame;
} CsSrcPos;

struct _CsFrame {
  const char *block;
  guint line, col;
  const CsFrame *parent;
};

G_END_DECLS
