/* A pooling window's geometry as every backend's kernels take it. Plain C, without GLib, so that
 * the CUDA kernels (gpu/cs-cuda-kernels.cu) take it too; cs_kernel_pool_geom (cs-backend.h)
 * fills it from a node. */
#pragma once

typedef struct {
  int h, w;                     /* input plane */
  int kh, kw, sh, sw, ph, pw;   /* window, stride, padding */
  int oh, ow;                   /* output plane */
} CsPoolGeom;
