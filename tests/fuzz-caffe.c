/* libFuzzer target: read arbitrary bytes as a Caffe prototxt, then compute stats and every report. */
#include "cs-caffe.h"
#include "fuzz-common.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CsGraph *g = cs_caffe_load ("fuzz.prototxt", (const char *) data, size, &error);
  return fuzz_check_graph (g, error);
}
