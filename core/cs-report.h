/* Text renderings of statistics: the terminal table, Markdown, CSV and JSON. */
#pragma once

#include "cs-stats.h"

G_BEGIN_DECLS

typedef enum {
  CS_REPORT_TABLE,
  CS_REPORT_MARKDOWN,
  CS_REPORT_CSV,
  CS_REPORT_JSON,
} CsReportFormat;

gboolean cs_report_format_from_string (const char *s, CsReportFormat *out);

/* The rows of the lecture view (in-place layers folded) or of every node when UNFOLD. */
char *cs_report (const CsStats *st, CsReportFormat format, gboolean unfold);

G_END_DECLS
