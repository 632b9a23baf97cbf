/* Helpers several tests share: test data from the tests' own generator, a model from text or
 * by name, error codes by name, and failures that let a test report every mismatch before it
 * ends. Header-only, since each test is a program of its own. */
#pragma once

#include "cs-error.h"
#include "cs-net.h"
#include "cs-parser.h"
#include "cs-stats.h"
#include "cs-zoo.h"

#include <stdarg.h>
#include <string.h>

/* Uniform in [-1, 1), from the library's counter-based mixer (as the CPU and CUDA kernels' random
 * draws): test data stay put whatever the order they are drawn in. */
static inline double
unif (guint64 seed, guint64 i)
{
  return (cs_mix64 (seed ^ cs_mix64 (i)) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* A model written in the .cnn language, which must parse. */
static inline CsGraph *
parse (const char *text)
{
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("t.cnn", text, strlen (text), &error);
  g_assert_no_error (error);
  g_assert_nonnull (g);
  return g;
}

/* The statistics of a bundled model at batch 1. */
static inline CsStats *
load (const char *name)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_load_model (name, &error);
  g_assert_no_error (error);
  CsStats *st = cs_stats_compute (g, 1, &error);
  g_assert_no_error (error);
  return st;
}

/* A bundled model, its graph in *G, with its parameters initialised from SEED (He). */
static inline CsNet *
load_net (const char *name, guint64 seed, CsGraph **g)
{
  GError *error = NULL;
  *g = cs_load_model (name, &error);
  g_assert_no_error (error);
  CsNet *net = cs_net_new (*g, &error);
  g_assert_no_error (error);
  cs_net_init (net, seed, FALSE);
  return net;
}

/* CS_ERROR's codes by name, for messages. */
static inline const char *
code_name (gint code)
{
  static const char *const names[] = {
    "PARSE", "NAME", "CYCLE", "SHAPE", "OVERFLOW", "LIMIT", "IO", "UNSUPPORTED",
    "OUT_OF_MEMORY", "DEVICE", "USAGE",
  };
  return code >= 0 && code < (gint) G_N_ELEMENTS (names) ? names[code] : "?";
}

/* Marks the test failed and logs the failure, so that it goes on to report the next one (TAP
 * keeps only the first line of the first failure's message). */
static inline void fail (const char *format, ...) G_GNUC_PRINTF (1, 2);

static inline void
fail (const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_test_message ("FAIL: %s", msg);
  g_test_fail_printf ("%.*s", (int) strcspn (msg, "\n"), msg);
}
