/* libFuzzer target: parse arbitrary bytes as a .cnn model, then compute stats and every report. */
#include "cs-parser.h"
#include "fuzz-common.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("fuzz.cnn", (const char *) data, size, &error);
  return fuzz_check_graph (g, error);
}
