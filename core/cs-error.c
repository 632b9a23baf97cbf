/* The CS_ERROR domain and the source snippets that error messages quote. */
#include "cs-error.h"

G_DEFINE_QUARK (cs-error-quark, cs_error)

char *
cs_source_snippet (const char *text, gsize len, guint line, guint col)
{
  if (text == NULL || line == 0)
    return g_strdup ("");

  const char *p = text, *end = text + len;
  for (guint l = 1; l < line; l++)
    {
      const char *nl = memchr (p, '\n', end - p);
      if (nl == NULL)
        return g_strdup ("");
      p = nl + 1;
    }
  const char *eol = memchr (p, '\n', end - p);
  gsize n = (eol ? eol : end) - p;
  if (n > 0 && p[n - 1] == '\r')
    n--;

  /* Messages are UTF-8 whatever the file holds: NUL bytes show as spaces and invalid bytes
   * as U+FFFD. Tabs are kept so the caret lines up under the same tabs. */
  g_autofree char *raw = g_strndup (p, n);
  for (gsize i = 0; i < n; i++)
    if (raw[i] == '\0')
      raw[i] = ' ';
  g_autofree char *valid = g_utf8_make_valid (raw, n);
  /* A long line is quoted around the column only, so a one-line file cannot make a message of
   * megabytes. */
  const glong window = 60;
  glong chars = g_utf8_strlen (valid, -1), first = 0, last = chars;
  if (chars > 2 * window + 20)
    {
      first = MAX (0, (glong) col - 1 - window);
      last = MIN (chars, first + 2 * window);
    }
  const char *from = g_utf8_offset_to_pointer (valid, first);
  const char *to = g_utf8_offset_to_pointer (valid, last);
  GString *s = g_string_new ("  ");
  if (first > 0)
    g_string_append (s, "…");
  g_string_append_len (s, from, to - from);
  if (last < chars)
    g_string_append (s, "…");
  g_string_append (s, "\n  ");
  if (first > 0)
    g_string_append_c (s, ' ');
  /* Columns count characters. */
  guint c = first + 1;
  for (const char *q = from; *q && q < to && c < col; q = g_utf8_next_char (q), c++)
    g_string_append_c (s, *q == '\t' ? '\t' : ' ');
  g_string_append_c (s, '^');
  return g_string_free (s, FALSE);
}
