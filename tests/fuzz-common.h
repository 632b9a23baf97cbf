/* What every model-reader fuzz target checks once a reader has run: a failure says what went
 * wrong in the CS_ERROR domain; a graph survives statistics and every report. */
#pragma once

#include "cs-error.h"
#include "cs-report.h"
#include "cs-stats.h"

static inline int
fuzz_check_graph (CsGraph *g, GError *error)
{
  if (g == NULL)
    {
      /* Every failure must say what went wrong, in the CS_ERROR domain. */
      if (error == NULL || error->domain != CS_ERROR || error->message == NULL)
        __builtin_trap ();
      g_error_free (error);
      return 0;
    }
  if (error != NULL)
    __builtin_trap ();

  /* A small batch and the largest one, so the batch totals' overflow checks run too. */
  static const guint64 batches[] = { 1, 1048576 };
  for (guint b = 0; b < G_N_ELEMENTS (batches); b++)
    {
      CsStats *st = cs_stats_compute (g, batches[b], &error);
      if (st == NULL)
        {
          if (error == NULL || error->domain != CS_ERROR)
            __builtin_trap ();
          g_clear_error (&error);
          continue;
        }
      for (int f = CS_REPORT_TABLE; f <= CS_REPORT_JSON; f++)
        for (int unfold = 0; unfold <= 1; unfold++)
          {
            char *out = cs_report (st, (CsReportFormat) f, unfold);
            if (out == NULL)
              __builtin_trap ();
            g_free (out);
          }
      for (guint i = 0; i < cs_graph_n_nodes (g); i++)
        {
          g_free (cs_stats_output_formula (st, i));
          g_free (cs_stats_params_formula (st, i));
          g_free (cs_stats_memory_formula (st, i));
        }
      cs_stats_free (st);
    }
  cs_graph_unref (g);
  return 0;
}
