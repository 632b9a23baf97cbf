/* The CS_ERROR domain and the source snippets that error messages quote. */
#include "cs-error.h"

G_DEFINE_QUARK (cs-error-quark, cs_error)

char *
cs_source_snippet (const char *text, gsize len, guint line, guint col)
{
  if (text == NULL || line == 0)
    return g_strdup ("");

  const char *p = text, *end = text + len;
  for (guint l = 1; l < line && p < end; l++)
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

  GString *s = g_string_new ("  ");
  /* Tabs are kept so the caret below lines up with the same tabs. */
  for (gsize i = 0; i < n; i++)
    g_string_append_c (s, (p[i] == '\0') ? ' ' : p[i]);
  g_string_append (s, "\n  ");
  /* Columns count characters, so UTF-8 continuation bytes take no room. */
  guint c = 1;
  for (gsize i = 0; i < n && c < col; i++)
    {
      if (((guchar) p[i] & 0xC0) == 0x80)
        continue;
      g_string_append_c (s, p[i] == '\t' ? '\t' : ' ');
      c++;
    }
  g_string_append_c (s, '^');
  return g_string_free (s, FALSE);
}
