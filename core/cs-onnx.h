/* ONNX import (graph and weights) and export of a CsNet, read and written with protobuf-c. */
#pragma once

#include "cs-net.h"

G_BEGIN_DECLS

/* Reads the ONNX model at PATH into a finalized graph: one float NCHW (or N x features) input,
 * one output, opset 7 or later, and operators cnnscope has kinds for (Conv, Gemm, MatMul + Add,
 * MaxPool, AveragePool, global pools, Relu, LeakyRelu, Sigmoid, Tanh, BatchNormalization, LRN,
 * Dropout, Concat, Add, Sum, Mean, Flatten, Reshape to N x features, Softmax, Identity, and the
 * Shape/Gather/Unsqueeze/Concat chains exporters write to compute a reshape's target). When NET
 * is not NULL it also receives the parameters from the initializers. Malformed files and unsafe
 * external data are CS_ERROR_IO errors; valid models cnnscope cannot run are
 * CS_ERROR_UNSUPPORTED errors naming the node and its operator. */
CsGraph *cs_onnx_load      (const char *path, CsNet **net, GError **error);

/* The same from memory; NAME is used in messages and for the graph's name. Tensors stored in
 * external files are refused, since there is no folder to find them in. */
CsGraph *cs_onnx_load_data (const guint8 *data, gsize len, const char *name, CsNet **net,
                            GError **error);

/* Writes NET's graph and parameters to PATH as an ONNX model (IR version 7, opset 13),
 * atomically. Training-only branches are left out and drop-path gates become Identity, which is
 * what they are at inference. */
gboolean cs_onnx_save      (CsNet *net, const char *path, GError **error);

G_END_DECLS
