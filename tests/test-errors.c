/* Every kind of bad model input: the CS_ERROR code, "FILE:LINE:COL:" position, words and caret. */
#include "cs-error.h"
#include "cs-parser.h"
#include "cs-stats.h"
#include "test-util.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

/* Line LINE (from 1) of TEXT without its "\n" or "\r\n"; NULL when there is no such line. */
static char *
source_line (const char *text, gsize len, guint line)
{
  const char *p = text, *end = text + len;
  for (guint l = 1; l < line; l++)
    {
      const char *nl = memchr (p, '\n', end - p);
      if (nl == NULL)
        return NULL;
      p = nl + 1;
    }
  const char *eol = memchr (p, '\n', end - p);
  gsize n = (eol ? eol : end) - p;
  if (n > 0 && p[n - 1] == '\r')
    n--;
  g_autofree char *s = g_strndup (p, n);
  /* A NUL byte in the line is shown as a space, and invalid UTF-8 as U+FFFD. */
  for (gsize i = 0; i < n; i++)
    if (s[i] == '\0')
      s[i] = ' ';
  return g_utf8_make_valid (s, n);
}

/* The caret line under LINE: one space (or the same tab) per character before COL. */
static char *
caret_line (const char *line, guint col)
{
  GString *s = g_string_new ("  ");
  guint c = 1;
  for (const char *p = line; *p && c < col; p++)
    {
      if (((guchar) *p & 0xC0) == 0x80)
        continue;  /* a UTF-8 continuation byte: same character */
      g_string_append_c (s, *p == '\t' ? '\t' : ' ');
      c++;
    }
  g_string_append_c (s, '^');
  return g_string_free (s, FALSE);
}

/* Checks ERROR against what a user must be told; reports every mismatch with the test's source
 * line WHERE. LINE 0 means an error about the whole file: "FILE: message". */
static void
check_error_full (int where, const char *file, const char *text, gsize len, const GError *error,
                  gint code, guint line, guint col, const char *const *words)
{
  if (error == NULL)
    {
      fail ("line %d: expected CS_ERROR_%s at %u:%u, but there is no error",
                          where, code_name (code), line, col);
      return;
    }
  const char *msg = error->message;
  if (error->domain != CS_ERROR)
    {
      fail ("line %d: domain %s, not CS_ERROR: %s", where,
                          g_quark_to_string (error->domain), msg);
      return;
    }
  if (error->code != code)
    fail ("line %d: code CS_ERROR_%s, expected CS_ERROR_%s: %s", where,
                        code_name (error->code), code_name (code), msg);

  g_autofree char *prefix = line ? g_strdup_printf ("%s:%u:%u: ", file, line, col)
                                 : g_strdup_printf ("%s: ", file);
  if (!g_str_has_prefix (msg, prefix))
    fail ("line %d: message does not start with \"%s\": %s", where, prefix, msg);
  for (guint i = 0; words && words[i]; i++)
    if (strstr (msg, words[i]) == NULL)
      fail ("line %d: message lacks \"%s\": %s", where, words[i], msg);

  /* The offending line and a caret under the column follow the first line. */
  g_auto (GStrv) lines = g_strsplit (msg, "\n", -1);
  g_autofree char *src = line && text ? source_line (text, len, line) : NULL;
  if (src && g_utf8_strlen (src, -1) > 140)
    {
      /* A long line is quoted around the column only: the text just before the column must be
       * there, with the caret under the column's character. */
      glong start = MAX (0, (glong) col - 1 - 10);
      const char *a = g_utf8_offset_to_pointer (src, start);
      const char *b = g_utf8_offset_to_pointer (src, MIN ((glong) col, g_utf8_strlen (src, -1)));
      g_autofree char *around = g_strndup (a, b - a);
      /* The caret stands under the last character of an occurrence of AROUND (a repetitive
       * line has several), the column's. */
      gboolean found = FALSE;
      glong caret = g_strv_length (lines) >= 3 ? g_utf8_strlen (lines[2], -1) - 1 : -1;
      for (const char *hit = caret >= 0 ? strstr (lines[1], around) : NULL; hit && !found;
           hit = strstr (hit + 1, around))
        found = g_utf8_pointer_to_offset (lines[1], hit) + g_utf8_strlen (around, -1) - 1
                == caret;
      if (!found || !g_str_has_suffix (lines[2], "^") || g_utf8_strlen (lines[1], -1) > 130)
        fail ("line %d: a long line's snippet lacks \"%s\" or its caret\nin: %s", where, around,
              msg);
    }
  else if (src)
    {
      g_autofree char *want_src = g_strconcat ("  ", src, NULL);
      g_autofree char *want_caret = caret_line (src, col);
      if (g_strv_length (lines) < 3 || strcmp (lines[1], want_src) != 0
          || strcmp (lines[2], want_caret) != 0)
        fail ("line %d: message lacks the source line and caret\n%s\n%s\n"
                            "in: %s", where, want_src, want_caret, msg);
    }
  else if (lines[1] && !g_str_has_prefix (lines[1], "  in block '"))
    fail ("line %d: a source snippet for a position that has none: %s", where,
                        msg);
}

/* Parses TEXT (LEN bytes) as "t.cnn" and expects it to fail as described. */
static void
expect_parse_error (int where, const char *text, gsize len, gint code, guint line, guint col,
                    const char *const *words)
{
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("t.cnn", text, len, &error);
  if (g != NULL)
    {
      fail ("line %d: expected CS_ERROR_%s at %u:%u, but the model parsed",
                          where, code_name (code), line, col);
      cs_graph_unref (g);
      g_clear_error (&error);
      return;
    }
  check_error_full (where, "t.cnn", text, len, error, code, line, col, words);
  g_clear_error (&error);
}

#define WORDS(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define EXPECT(text, code, line, col, ...) \
  expect_parse_error (__LINE__, (text), strlen (text), (code), (line), (col), WORDS (__VA_ARGS__))
#define EXPECT_LEN(text, len, code, line, col, ...) \
  expect_parse_error (__LINE__, (text), (len), (code), (line), (col), WORDS (__VA_ARGS__))

/* Parses TEXT, which must be valid, and expects cs_stats_compute at BATCH to fail. */
static void
expect_stats_error (int where, const char *text, guint64 batch, gint code, guint line, guint col,
                    const char *const *words)
{
  GError *error = NULL;
  g_autoptr (CsGraph) g = cs_parse_model ("t.cnn", text, strlen (text), &error);
  if (g == NULL)
    {
      fail ("line %d: the model should parse: %s", where, error->message);
      g_clear_error (&error);
      return;
    }
  CsStats *st = cs_stats_compute (g, batch, &error);
  if (st != NULL)
    {
      fail ("line %d: expected CS_ERROR_%s from the stats, but they worked", where,
                          code_name (code));
      cs_stats_free (st);
      return;
    }
  check_error_full (where, "t.cnn", text, strlen (text), error, code, line, col, words);
  g_clear_error (&error);
}

#define EXPECT_STATS(text, batch, code, line, col, ...) \
  expect_stats_error (__LINE__, (text), (batch), (code), (line), (col), WORDS (__VA_ARGS__))

static CsGraph *
parse_ok (int where, const char *text, gsize len)
{
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("t.cnn", text, len, &error);
  if (g == NULL)
    {
      fail ("line %d: the model should parse: %s", where, error->message);
      g_clear_error (&error);
    }
  return g;
}

#define PARSE_OK(text) parse_ok (__LINE__, (text), strlen (text))

/* ---------------------------------------------------------------------------------------- */
/* Lexing                                                                                    */

static void
test_lex_bad_character (void)
{
  EXPECT ("input 8x8x3\nconv 8 3x3 @\n", CS_ERROR_PARSE, 2, 12, "unexpected character '@'");
  EXPECT ("input 8x8x3\n$relu\n", CS_ERROR_PARSE, 2, 1, "unexpected character '$'");
  EXPECT ("input 8x8x3\nrelu \x01\n", CS_ERROR_PARSE, 2, 6, "unexpected byte 0x01");
  /* A valid character that the language does not use outside strings. */
  EXPECT ("input 8x8x3\nrelu é\n", CS_ERROR_PARSE, 2, 6, "unexpected character 'é'",
          "outside a string");
}

static void
test_lex_unterminated_string (void)
{
  EXPECT ("network a \"ABC\ninput 8x8x3\nrelu\n", CS_ERROR_PARSE, 1, 11, "unterminated string");
  EXPECT ("input 8x8x3\nrelu\nnote \"no end", CS_ERROR_PARSE, 3, 6, "unterminated string");
  EXPECT ("note \"a\\q\"\n", CS_ERROR_PARSE, 1, 9, "unknown escape");
}

static void
test_lex_malformed_number (void)
{
  EXPECT ("input 8x8x3\nconv 8a 3x3\n", CS_ERROR_PARSE, 2, 6, "malformed number", "8a");
  EXPECT ("input 8x8x3\ndropout 0.5.1\n", CS_ERROR_PARSE, 2, 9, "malformed number");
  EXPECT ("input 8x8x3\nconv 8 3x\n", CS_ERROR_PARSE, 2, 8, "malformed number", "3x");
  EXPECT ("input 8x8x3\nconv 8 3x3x3x3\n", CS_ERROR_PARSE, 2, 8, "at most three parts");
  EXPECT ("input 8x8x3\nconv 8 3.5x3\n", CS_ERROR_PARSE, 2, 8, "malformed number");
  EXPECT ("input 8x8x3\ndropout 1e999\n", CS_ERROR_PARSE, 2, 9, "malformed number");
  /* A name right after a number. */
  EXPECT ("input 224x224x3y\n", CS_ERROR_PARSE, 1, 7, "malformed number");
}

static void
test_lex_invalid_utf8 (void)
{
  EXPECT ("input 8x8x3\nrelu \xff\n", CS_ERROR_PARSE, 2, 6, "not valid UTF-8");
  EXPECT ("input 8x8x3\nrelu \xc3\n", CS_ERROR_PARSE, 2, 6, "not valid UTF-8");
  /* Inside a string: the position of the string. */
  EXPECT ("input 8x8x3\nnote \"ab\xc3(\"\n", CS_ERROR_PARSE, 2, 6, "not valid UTF-8");
}

static void
test_lex_nul_byte (void)
{
  static const char text[] = "input 8x8x3\nrelu\0\nrelu\n";
  EXPECT_LEN (text, sizeof text - 1, CS_ERROR_PARSE, 2, 5, "unexpected byte 0x00");
  static const char str[] = "input 8x8x3\nnote \"a\0b\"\n";
  EXPECT_LEN (str, sizeof str - 1, CS_ERROR_PARSE, 2, 8, "NUL byte");
  /* Text after a NUL byte is still read: a comment ends at its line. */
  static const char comment[] = "# a\0b\ninput 8x8x3\nrelu\n";
  GError *error = NULL;
  CsGraph *c = cs_parse_model ("t.cnn", comment, sizeof comment - 1, &error);
  if (c)
    g_assert_cmpuint (cs_graph_n_nodes (c), ==, 2);
  else
    check_error_full (__LINE__, "t.cnn", comment, sizeof comment - 1, error, CS_ERROR_PARSE, 1,
                      4, WORDS ("0x00"));
  g_clear_error (&error);
  g_clear_pointer (&c, cs_graph_unref);
  /* Nothing after LEN is read. */
  CsGraph *g = parse_ok (__LINE__, "input 8x8x3\nrelu @", 16);
  g_clear_pointer (&g, cs_graph_unref);
}

static void
test_lex_long_name (void)
{
  g_autofree char *name = g_strnfill (257, 'a');
  g_autofree char *text = g_strdup_printf ("input 8x8x3\n%s: relu\n", name);
  EXPECT (text, CS_ERROR_LIMIT, 2, 1, "longer than 256");
}

/* ---------------------------------------------------------------------------------------- */
/* Syntax                                                                                    */

static void
test_syntax_unknown_kind (void)
{
  EXPECT ("input 8x8x3\n  convv 8 3x3\n", CS_ERROR_PARSE, 2, 3, "unknown layer kind 'convv'");
  EXPECT ("input 8x8x3\nx: foo 3\n", CS_ERROR_PARSE, 2, 4, "unknown layer kind 'foo'");
  EXPECT ("input 8x8x3\nrelu; pool 2\n", CS_ERROR_PARSE, 2, 7, "unknown layer kind 'pool'");
  /* A block named without its parentheses. */
  EXPECT ("input 8x8x3\nblock b() { relu }\nb\n", CS_ERROR_PARSE, 3, 1,
          "unknown layer kind 'b'", "add its arguments in parentheses");
  EXPECT ("input 8x8x3\n42\n", CS_ERROR_PARSE, 2, 1, "expected a layer", "'42'");
}

static void
test_syntax_missing_brace (void)
{
  EXPECT ("input 8x8x3\nrepeat 2 {\n  relu\n", CS_ERROR_PARSE, 4, 1, "'}' is missing");
  EXPECT ("input 8x8x3\nadd { { relu } { }", CS_ERROR_PARSE, 2, 19, "the end of the file");
  EXPECT ("input 8x8x3\nrepeat 2 relu\n", CS_ERROR_PARSE, 2, 10, "expected '{'", "'relu'");
  EXPECT ("input 8x8x3\nfc 4 * (4 + 4\n", CS_ERROR_PARSE, 3, 1, "expected ')'");
}

static void
test_syntax_stray_brace (void)
{
  EXPECT ("input 8x8x3\nrelu }\n", CS_ERROR_PARSE, 2, 6, "'}' without a matching '{'");
  EXPECT ("}\n", CS_ERROR_PARSE, 1, 1, "'}' without a matching '{'");
  EXPECT ("input 8x8x3\nrepeat 2 { relu } }\n", CS_ERROR_PARSE, 2, 19, "without a matching");
  EXPECT ("input 8x8x3\nfc 4)\n", CS_ERROR_PARSE, 2, 5, "unexpected ')'");
}

static void
test_syntax_missing_value (void)
{
  EXPECT ("input 8x8x3\nconv 8 3x3 stride\n", CS_ERROR_PARSE, 2, 18, "'stride' needs a value");
  EXPECT ("input 8x8x3\nconv 8 3x3 pad; relu\n", CS_ERROR_PARSE, 2, 15, "'pad' needs a value");
  EXPECT ("input 8x8x3\nconv 8 3x3 dilation", CS_ERROR_PARSE, 2, 20, "'dilation' needs a value");
  EXPECT ("input 8x8x3\nrepeat 2 { bn eps }\n", CS_ERROR_PARSE, 2, 19, "'eps' needs a value");
  EXPECT ("input 8x8x3\nlet x =\n", CS_ERROR_PARSE, 2, 8, "expected a value");
  EXPECT ("year\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 5, "a year");
  EXPECT ("train batch\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 12, "a batch size");
}

static void
test_syntax_too_many_positional (void)
{
  EXPECT ("input 8x8x3\nconv 8 3x3 5\n", CS_ERROR_PARSE, 2, 12, "unexpected '5'", "conv takes");
  EXPECT ("input 8x8x3\nrelu 2\n", CS_ERROR_PARSE, 2, 6, "unexpected '2'",
          "relu takes no arguments");
  EXPECT ("input 8x8x3\nfc 10 20\n", CS_ERROR_PARSE, 2, 7, "unexpected '20'", "fc takes");
  EXPECT ("input 8x8x3\nmaxpool 2 stride 2 3\n", CS_ERROR_PARSE, 2, 20, "unexpected '3'");
}

static void
test_syntax_keyword_twice (void)
{
  EXPECT ("input 8x8x3\nconv 8 3x3 stride 1 stride 2\n", CS_ERROR_PARSE, 2, 21,
          "'stride' is given twice");
  EXPECT ("input 8x8x3\nconv 8 3x3 nobias nobias\n", CS_ERROR_PARSE, 2, 19,
          "'nobias' is given twice");
  EXPECT ("input 8x8x3\nmaxpool 3 pad 1 ceil pad 1\n", CS_ERROR_PARSE, 2, 22,
          "'pad' is given twice");
}

static void
test_syntax_label_alone (void)
{
  EXPECT ("input 8x8x3\nx:\nrelu\n", CS_ERROR_PARSE, 2, 3, "after the label 'x:'");
  EXPECT ("input 8x8x3\nx: 5\n", CS_ERROR_PARSE, 2, 4, "after the label 'x:'");
  EXPECT ("input 8x8x3\nx: ; relu\n", CS_ERROR_PARSE, 2, 4, "after the label 'x:'");
  EXPECT ("input 8x8x3\nrelu\nx:", CS_ERROR_PARSE, 3, 3, "after the label 'x:'");
}

static void
test_syntax_join_without_branches (void)
{
  EXPECT ("input 8x8x3\nadd\n", CS_ERROR_PARSE, 2, 1, "add needs branches",
          "or inputs with 'from'");
  EXPECT ("input 8x8x3\nrelu\n  concat; relu\n", CS_ERROR_PARSE, 3, 3, "concat needs branches");
  EXPECT ("input 8x8x3\nx: mean droppath 0.1\n", CS_ERROR_PARSE, 2, 1, "mean needs branches");
  EXPECT ("input 8x8x3\nadd { { relu } }\n", CS_ERROR_PARSE, 2, 5, "at least 2 branches");
  EXPECT ("input 8x8x3\nadd { }\n", CS_ERROR_PARSE, 2, 5, "at least 2 branches");
  EXPECT ("input 8x8x3\nadd { relu }\n", CS_ERROR_PARSE, 2, 7, "expected '{' to start a branch");
  EXPECT ("input 8x8x3\na: relu\nadd from a { } { }\n", CS_ERROR_PARSE, 3, 12,
          "either 'from' or branches");
}

static void
test_syntax_branches_on_non_join (void)
{
  EXPECT ("input 8x8x3\nrelu { { } { } }\n", CS_ERROR_PARSE, 2, 6,
          "only concat, add and mean take branches");
  EXPECT ("input 8x8x3\nconv 8 3x3 { { } { } }\n", CS_ERROR_PARSE, 2, 12,
          "only concat, add and mean take branches");
}

static void
test_syntax_meta_in_braces (void)
{
  EXPECT ("input 8x8x3\nrepeat 1 { year 2000 }\n", CS_ERROR_PARSE, 2, 12,
          "'year' belongs at the top of the file");
  EXPECT ("input 8x8x3\nblock b() {\n  network x\n}\n", CS_ERROR_PARSE, 3, 3,
          "'network' belongs at the top of the file");
  EXPECT ("input 8x8x3\nadd { { note \"x\" } { } }\n", CS_ERROR_PARSE, 2, 9,
          "'note' belongs at the top");
  EXPECT ("repeat 1 { input 8x8x3 }\n", CS_ERROR_PARSE, 1, 12, "'input' belongs at the top level");
  EXPECT ("input 8x8x3\nrepeat 1 {\n  block b() { relu }\n}\n", CS_ERROR_PARSE, 3, 3,
          "blocks are defined at the top level only");
}

static void
test_syntax_misc (void)
{
  /* Statements run together on one line. */
  EXPECT ("input 8x8x3\nrelu relu\n", CS_ERROR_PARSE, 2, 6, "unexpected 'relu'");
  EXPECT ("input 8x8x3 relu\n", CS_ERROR_PARSE, 1, 13, "unexpected 'relu'",
          "a statement ends with a new line or ';'");
  EXPECT ("input 8x8\n", CS_ERROR_PARSE, 1, 7, "three sizes");
  EXPECT ("input 8\n", CS_ERROR_PARSE, 1, 7, "HxWxC");
  EXPECT ("input 8x8x3\nlet 3 = 4\n", CS_ERROR_PARSE, 2, 5, "a variable name");
  EXPECT ("input 8x8x3\nlet x 4\n", CS_ERROR_PARSE, 2, 7, "expected '='");
  EXPECT ("input 8x8x3\nrelu from\n", CS_ERROR_PARSE, 2, 10, "a layer name after 'from'");
  EXPECT ("input 8x8x3\nif 1 { relu } else relu\n", CS_ERROR_PARSE, 2, 20, "expected '{'");
  EXPECT ("input 8x8x3\nblock b(n { relu }\n", CS_ERROR_PARSE, 2, 11, "',' or ')'");
  EXPECT ("input 8x8x3\nblock b(1) { relu }\n", CS_ERROR_PARSE, 2, 9, "a parameter name");
  EXPECT ("input 8x8x3\nblock b() { relu }\nb(1 2)\n", CS_ERROR_PARSE, 3, 5, "',' or ')'");
  EXPECT ("input 8x8x3\nblock b() { relu }\na: relu\nc: relu\nb() from a, c\n",
          CS_ERROR_PARSE, 5, 13, "a block call takes one input");
  EXPECT ("train speed 3\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 7, "unknown training setting");
  EXPECT ("train init zero\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 12, "unknown init 'zero'");
  EXPECT ("train schedule step\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 16, "needs the epochs");
  EXPECT ("train schedule step 1 2 3 4 5 6 7 8 9\ninput 8x8x3\n", CS_ERROR_LIMIT, 1, 37,
          "at most 8 steps");
  EXPECT ("accuracy top1 101\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 15, "from 0 to 100");
  EXPECT ("accuracy top3 50\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 10, "unexpected 'top3'");
  EXPECT ("year 1899\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 6, "from 1900 to 2200");
  EXPECT ("network \"x\"\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 9, "the network's name");
  EXPECT ("family 3\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 8, "a family name");
  EXPECT ("input 8x8x3\nconv 8 3x3 stride 2x2x2\n", CS_ERROR_PARSE, 2, 12, "not three sizes");
  EXPECT ("input 8x8x3\nconv 8x8 3x3\n", CS_ERROR_PARSE, 2, 6, "a number, not a size");
  EXPECT ("input 8x8x3\nlet x = 3x3 + 1\n", CS_ERROR_PARSE, 2, 13, "numbers, not sizes");
  EXPECT ("input 8x8x3\nlet x = 4 // (2 - 2)\n", CS_ERROR_PARSE, 2, 11, "division by zero");
  EXPECT ("input 8x8x3\nlet x = 4 % 0\n", CS_ERROR_PARSE, 2, 11, "division by zero");
  EXPECT ("input 8x8x3\naux { }\n", CS_ERROR_PARSE, 2, 1, "at least one layer");
  EXPECT ("input 8x8x3\naux weight -1 { relu }\n", CS_ERROR_PARSE, 2, 1, "loss weight");
}

/* A parenthesised first argument is an expression, not a block call: layer kinds name no
 * blocks. */
static void
test_syntax_paren_argument (void)
{
  CsGraph *g = PARSE_OK ("input 8x8x3\nlet c = 4\nfc (c + 4)\n");
  if (g)
    g_assert_cmpuint (cs_graph_node (g, 1)->shape.c, ==, 8);
  g_clear_pointer (&g, cs_graph_unref);
  g = PARSE_OK ("input 8x8x3\nconv (2 * 4) 3x3 pad 1\n");
  if (g)
    g_assert_cmpuint (cs_graph_node (g, 1)->shape.c, ==, 8);
  g_clear_pointer (&g, cs_graph_unref);
}

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                     */

static void
test_names_unknown_from (void)
{
  EXPECT ("input 8x8x3\nrelu\nrelu from nope\n", CS_ERROR_NAME, 3, 11, "unknown layer 'nope'");
  EXPECT ("input 8x8x3\na: relu\nconcat from a, nope, a\n", CS_ERROR_NAME, 3, 16,
          "unknown layer 'nope'");
  /* A module's layers are not visible from the top level by their short name. */
  EXPECT ("input 8x8x3\nblock b() { inner: relu }\nb()\nrelu from inner\n", CS_ERROR_NAME, 4,
          11, "unknown layer 'inner'");
  EXPECT ("input 8x8x3\nblock b() { relu }\nb() from nope\n", CS_ERROR_NAME, 3, 10,
          "unknown layer 'nope'", "before the call");
}

static void
test_names_duplicate_label (void)
{
  EXPECT ("input 8x8x3\nx: relu\nx: relu\n", CS_ERROR_NAME, 3, 1, "'x' is already used",
          "line 2, column 1");
  EXPECT ("input 8x8x3\nrepeat 2 { y: relu }\n", CS_ERROR_NAME, 2, 12, "'y' is already used");
  EXPECT ("input 8x8x3\nblock b() { relu }\nm: b()\nm: b()\n", CS_ERROR_NAME, 4, 1,
          "'m' is already used");
  EXPECT ("input 8x8x3\nblock b(n, n) { relu }\n", CS_ERROR_NAME, 2, 12,
          "parameter 'n' is named twice");
  EXPECT ("input 8x8x3\nblock b() { relu }\nblock b() { bn }\n", CS_ERROR_NAME, 3, 7,
          "block 'b' is already defined at line 2");
}

static void
test_names_unknown_block (void)
{
  EXPECT ("input 8x8x3\nrelu\nstage(2, 64)\n", CS_ERROR_NAME, 3, 1, "unknown block 'stage'");
  EXPECT ("input 8x8x3\nblock b() { nope() }\nb()\n", CS_ERROR_NAME, 2, 13,
          "unknown block 'nope'", "in block 'b' called at t.cnn:3:1");
}

static void
test_names_block_arg_count (void)
{
  EXPECT ("input 8x8x3\nblock b(n) { conv n 1x1 }\nb(1, 2)\n", CS_ERROR_PARSE, 3, 1,
          "block 'b' takes 1 argument, not 2");
  EXPECT ("input 8x8x3\nblock b(n, m) { conv n 1x1 }\nb()\n", CS_ERROR_PARSE, 3, 1,
          "block 'b' takes 2 arguments, not 0");
  EXPECT ("input 8x8x3\nblock b(n) { relu }\nb(3x3)\n", CS_ERROR_PARSE, 3, 3,
          "numbers, not sizes");
}

static void
test_names_unknown_variable (void)
{
  EXPECT ("input 8x8x3\nconv c 3x3\n", CS_ERROR_NAME, 2, 6, "unknown variable 'c'");
  EXPECT ("input 8x8x3\nrepeat n { relu }\n", CS_ERROR_NAME, 2, 8, "unknown variable 'n'");
  EXPECT ("input 8x8x3\nlet a = 2\nconv a * b 3x3\n", CS_ERROR_NAME, 3, 10,
          "unknown variable 'b'");
  /* A block sees its parameters and the globals, not the caller's locals. */
  EXPECT ("input 8x8x3\nblock b() { conv i 1x1 }\nrepeat 2 as i { b() }\n", CS_ERROR_NAME, 2,
          18, "unknown variable 'i'", "in block 'b' called at t.cnn:3:17");
  /* The counter of a repeat is gone after it. */
  EXPECT ("input 8x8x3\nrepeat 2 as i { relu }\nconv i + 1 1x1\n", CS_ERROR_NAME, 3, 6,
          "unknown variable 'i'");
}

static void
test_names_block_keyword (void)
{
  EXPECT ("input 8x8x3\nblock repeat(n) { relu }\n", CS_ERROR_NAME, 2, 7,
          "'repeat' is a keyword");
  EXPECT ("input 8x8x3\nblock input() { relu }\n", CS_ERROR_NAME, 2, 7, "'input' is a keyword");
  EXPECT ("input 8x8x3\nblock from() { relu }\n", CS_ERROR_NAME, 2, 7, "'from' is a keyword");
  EXPECT ("input 8x8x3\nblock conv() { relu }\n", CS_ERROR_NAME, 2, 7, "'conv' is a layer kind");
  EXPECT ("input 8x8x3\nblock mean() { relu }\n", CS_ERROR_NAME, 2, 7, "'mean' is a layer kind");
}

/* ---------------------------------------------------------------------------------------- */
/* Cycles                                                                                    */

static void
test_cycle (void)
{
  EXPECT ("input 8x8x3\na: relu from b\nb: relu from a\n", CS_ERROR_CYCLE, 3, 1, "layer 'b'",
          "cycle", "'a'");
  EXPECT ("input 8x8x3\na: relu from a\n", CS_ERROR_CYCLE, 2, 1, "layer 'a'", "cycle");
  EXPECT ("input 8x8x3\nrelu\nx: add { { relu from y } { } }\ny: relu from x\n",
          CS_ERROR_CYCLE, 3, 1, "layer 'x'", "cycle", "'relu2'");
}

/* ---------------------------------------------------------------------------------------- */
/* Shapes                                                                                    */

static void
test_shape_add_channels (void)
{
  EXPECT ("input 8x8x3\nadd { { conv 4 1x1 } { conv 5 1x1 } }\n", CS_ERROR_SHAPE, 2, 1,
          "layer 'add1'", "8x8x5", "8x8x4", "the channels differ");
  EXPECT ("input 8x8x3\nconv 8 1x1\nadd { { conv 16 1x1 } { } }\n", CS_ERROR_SHAPE, 3, 1,
          "layer 'add1'", "add needs equal shapes");
  EXPECT ("input 8x8x3\nmean { { maxpool 2 } { } }\n", CS_ERROR_SHAPE, 2, 1, "layer 'mean1'",
          "mean needs equal shapes");
}

static void
test_shape_concat_spatial (void)
{
  EXPECT ("input 8x8x3\nconcat { { maxpool 2 } { } }\n", CS_ERROR_SHAPE, 2, 1,
          "layer 'concat1'", "spatial sizes differ", "4x4", "8x8");
  EXPECT ("input 8x8x3\na: conv 4 3x3\nb: conv 4 1x1 from input\nc: concat from a, b\n", CS_ERROR_SHAPE,
          4, 1, "layer 'c'", "spatial sizes differ");
}

static void
test_shape_kernel_too_large (void)
{
  EXPECT ("input 4x4x3\nconv 8 5x5\n", CS_ERROR_SHAPE, 2, 1, "layer 'conv1'", "kernel 5",
          "larger than its padded input");
  EXPECT ("input 4x4x3\nconv 8 7x7 pad 1\n", CS_ERROR_SHAPE, 2, 1, "kernel 7", "4 + 2*1");
  EXPECT ("input 8x8x3\nconv 8 3x3 dilation 5\n", CS_ERROR_SHAPE, 2, 1, "spanning 11");
  EXPECT ("input 8x4x3\nmaxpool 1x5\n", CS_ERROR_SHAPE, 2, 1, "layer 'maxpool1'", "width");
  /* After an fc the volume is 1x1. */
  EXPECT ("input 8x8x3\nfc 10\nconv 8 3x3\n", CS_ERROR_SHAPE, 3, 1, "layer 'conv1'",
          "larger than its padded input");
}

static void
test_shape_groups (void)
{
  EXPECT ("input 8x8x3\nconv 8 3x3 groups 2\n", CS_ERROR_SHAPE, 2, 1, "layer 'conv1'",
          "3 input channels cannot be split into 2 groups");
  EXPECT ("input 8x8x4\nconv 6 3x3 groups 4\n", CS_ERROR_SHAPE, 2, 1,
          "6 output channels cannot be split into 4 groups");
  /* A keyword's bad value is reported at the keyword. */
  EXPECT ("input 8x8x4\nconv 8 3x3 groups 0\n", CS_ERROR_SHAPE, 2, 12, "groups");
}

static void
test_shape_bad_channels (void)
{
  EXPECT ("input 8x8x3\nconv 0 3x3\n", CS_ERROR_SHAPE, 2, 6, "channels", "from 1 to 16777216",
          "not 0");
  EXPECT ("input 8x8x3\nconv -4 3x3\n", CS_ERROR_SHAPE, 2, 6, "channels", "not -4");
  EXPECT ("input 8x8x3\nconv 2.5 3x3\n", CS_ERROR_SHAPE, 2, 6, "channels", "whole number");
  EXPECT ("input 8x8x3\nlet c = 4\nconv c - 4 3x3\n", CS_ERROR_SHAPE, 3, 6, "channels");
  EXPECT ("input 8x8x3\nfc 0\n", CS_ERROR_SHAPE, 2, 4, "outputs");
  EXPECT ("input 8x8x3\nconv 8 0x3\n", CS_ERROR_SHAPE, 2, 8, "kernel");
  EXPECT ("input 8x8x3\nconv 8 3x3 stride 0\n", CS_ERROR_SHAPE, 2, 12, "stride");
  EXPECT ("input 8x8x3\ndropout 1\n", CS_ERROR_SHAPE, 2, 9, "p must be");
  EXPECT ("input 8x8x3\nlrn 4\n", CS_ERROR_SHAPE, 2, 1, "LRN window must be odd");
  EXPECT ("input 0x8x3\nrelu\n", CS_ERROR_SHAPE, 1, 7, "from 1 to 1048576");
  EXPECT ("input 8x1048577x3\nrelu\n", CS_ERROR_SHAPE, 1, 7, "from 1 to 1048576");
}

static void
test_shape_pad_same_even (void)
{
  EXPECT ("input 8x8x3\nconv 8 2x2 pad same\n", CS_ERROR_SHAPE, 2, 1, "layer 'conv1'",
          "pad same needs an odd kernel", "2x2");
  EXPECT ("input 8x8x3\nconv 8 3x4 pad same\n", CS_ERROR_SHAPE, 2, 1, "odd kernel", "3x4");
}

static void
test_shape_pool_pad (void)
{
  EXPECT ("input 8x8x3\nmaxpool 2 pad 2\n", CS_ERROR_SHAPE, 2, 1, "layer 'maxpool1'",
          "padding 2 must be smaller than the window 2");
  EXPECT ("input 8x8x3\navgpool 3 stride 1 pad 3\n", CS_ERROR_SHAPE, 2, 1, "layer 'avgpool1'",
          "padding 3");
  EXPECT ("input 8x8x3\nmaxpool 3x2 pad 1x2\n", CS_ERROR_SHAPE, 2, 1, "padding 2", "window 2");
}

static void
test_shape_no_input (void)
{
  EXPECT ("relu\n", CS_ERROR_PARSE, 1, 1, "no input", "input HxWxC");
  EXPECT ("network x\n\n  conv 8 3x3\n", CS_ERROR_PARSE, 3, 3, "no input");
  EXPECT ("network x \"X\"\nyear 2012\n", CS_ERROR_PARSE, 0, 0, "no layers");
  EXPECT ("# only a comment\n", CS_ERROR_PARSE, 0, 0, "no layers");
  /* Layers that only take named inputs, and no input anywhere. */
  EXPECT ("a: relu from b\nb: relu from a\n", CS_ERROR_PARSE, 0, 0, "no input");
}

static void
test_shape_layer_before_input (void)
{
  EXPECT ("relu\ninput 8x8x3\n", CS_ERROR_PARSE, 1, 1, "no input");
  EXPECT ("a: relu from a\ninput 8x8x3\n", CS_ERROR_PARSE, 2, 1, "'input' must come once");
  EXPECT ("input 8x8x3\nrelu\ninput 8x8x3\n", CS_ERROR_PARSE, 3, 1, "'input' must come once");
  EXPECT ("input 8x8x3\ninput 4x4x3\n", CS_ERROR_PARSE, 2, 1, "'input' must come once");
}

/* ---------------------------------------------------------------------------------------- */
/* Overflow                                                                                  */

static void
test_overflow_shape (void)
{
  /* 2^40 positions times 2^24 channels is 2^64. */
  EXPECT ("input 1048576x1048576x1\nconv 16777216 1x1\n", CS_ERROR_OVERFLOW, 2, 1,
          "layer 'conv1'", "too large");
  EXPECT ("input 1048576x1048576x1048576\n", CS_ERROR_OVERFLOW, 1, 1, "layer 'input'",
          "too large");
  EXPECT ("input 8x8x3\nlet x = 1e300 * 1e300\n", CS_ERROR_OVERFLOW, 2, 15, "too large");
  EXPECT ("input 8x8x3\nconv 8 3x3 stride 1e30\n", CS_ERROR_SHAPE, 2, 12, "stride");
}

static void
test_overflow_fc (void)
{
  /* The flatten holds 2^43 values; an fc of 2^24 outputs has 2^67 weights. */
  EXPECT_STATS ("input 1048576x1048576x8\nflatten\nfc 16777216\n", 1, CS_ERROR_OVERFLOW, 3, 1,
                "layer 'fc1'", "64 bits");
  EXPECT_STATS ("input 1048576x1048576x8\nfc 16777216\n", 1, CS_ERROR_OVERFLOW, 2, 1,
                "layer 'fc1'", "64 bits");
}

static void
test_overflow_batch (void)
{
  /* 2^44 values per image fit; times a batch of 2^20 they do not. */
  static const char text[] = "input 1048576x1048576x8\nrelu\n";
  g_autoptr (CsGraph) g = PARSE_OK (text);
  if (g)
    {
      GError *error = NULL;
      CsStats *st = cs_stats_compute (g, 1, &error);
      g_assert_no_error (error);
      cs_stats_free (st);
    }
  EXPECT_STATS (text, 1048576, CS_ERROR_OVERFLOW, 0, 0, "batch of 1048576", "64 bits");
  /* A batch out of range is a usage error. */
  if (g)
    {
      GError *error = NULL;
      g_assert_null (cs_stats_compute (g, 0, &error));
      g_assert_error (error, CS_ERROR, CS_ERROR_USAGE);
      g_clear_error (&error);
      g_assert_null (cs_stats_compute (g, 1048577, &error));
      g_assert_error (error, CS_ERROR, CS_ERROR_USAGE);
      g_clear_error (&error);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Limits                                                                                    */

static void
test_limit_file_size (void)
{
  gsize len = CS_PARSER_MAX_BYTES + 1;
  char *text = g_malloc (len);
  memset (text, '\n', len);
  memcpy (text, "input 8x8x3", 11);
  EXPECT_LEN (text, len, CS_ERROR_LIMIT, 0, 0, "1048577 bytes", "limited to 1048576");
  g_free (text);

  /* Exactly at the limit is fine. */
  text = g_malloc (CS_PARSER_MAX_BYTES);
  memset (text, '\n', CS_PARSER_MAX_BYTES);
  memcpy (text, "input 8x8x3", 11);
  CsGraph *g = parse_ok (__LINE__, text, CS_PARSER_MAX_BYTES);
  g_clear_pointer (&g, cs_graph_unref);
  g_free (text);
}

static char *
repeat_str (const char *s, guint n)
{
  GString *out = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append (out, s);
  return g_string_free (out, FALSE);
}

static void
test_limit_nesting (void)
{
  /* 64 nested braces are fine, 65 are not: the error is at the 65th '{'. */
  g_autofree char *open64 = repeat_str ("repeat 1 { ", 64);
  g_autofree char *close64 = repeat_str ("} ", 64);
  g_autofree char *ok = g_strdup_printf ("input 8x8x3\n%srelu %s\n", open64, close64);
  CsGraph *g = PARSE_OK (ok);
  g_clear_pointer (&g, cs_graph_unref);

  g_autofree char *open65 = repeat_str ("repeat 1 { ", 65);
  g_autofree char *close65 = repeat_str ("} ", 65);
  g_autofree char *deep = g_strdup_printf ("input 8x8x3\n%srelu %s\n", open65, close65);
  EXPECT (deep, CS_ERROR_LIMIT, 2, 11 * 64 + 10, "nested more than 64 deep");

  /* Parentheses count too. */
  g_autofree char *po = repeat_str ("(", 65), *pc = repeat_str (")", 65);
  g_autofree char *parens = g_strdup_printf ("input 8x8x3\nlet x = %s1%s\n", po, pc);
  EXPECT (parens, CS_ERROR_LIMIT, 2, 8 + 65, "nested more than 64 deep");
  g_autofree char *po64 = repeat_str ("(", 64), *pc64 = repeat_str (")", 64);
  g_autofree char *parens_ok = g_strdup_printf ("input 8x8x3\nlet x = %s1%s\nfc x\n", po64,
                                                pc64);
  g = PARSE_OK (parens_ok);
  g_clear_pointer (&g, cs_graph_unref);

  /* Join branches and unary minus nest as well. */
  g_autofree char *bo = repeat_str ("add { { } { ", 33), *bc = repeat_str ("} } ", 33);
  g_autofree char *branches = g_strdup_printf ("input 8x8x3\n%s%s\n", bo, bc);
  /* The 33rd join's '{' is the 65th level: 32 joins with one open branch each. */
  EXPECT (branches, CS_ERROR_LIMIT, 2, 12 * 32 + 5, "nested more than 64 deep");
  g_autofree char *minus = repeat_str ("-", 65);
  g_autofree char *neg = g_strdup_printf ("input 8x8x3\nlet x = %s1\n", minus);
  EXPECT (neg, CS_ERROR_LIMIT, 2, 8 + 65, "nested more than 64 deep");
  g_autofree char *elif = repeat_str ("else if 0 { } ", 65);
  g_autofree char *chain = g_strdup_printf ("input 8x8x3\nif 0 { } %s\n", elif);
  /* 64 chained 'else if' plus the brace of the last one. */
  EXPECT (chain, CS_ERROR_LIMIT, 2, 10 + 14 * 63 + 10, "nested more than 64 deep");
}

static void
test_limit_recursion (void)
{
  /* Unbounded recursion stops at 64 calls, at the call that goes too deep. */
  static const char text[] = "input 8x8x3\nblock b(n) { relu; b(n) }\nb(1)\n";
  EXPECT (text, CS_ERROR_LIMIT, 2, 20, "more than 64 deep", "in block 'b' called at t.cnn:3:1",
          "in block 'b' called at t.cnn:2:20");

  /* 64 nested calls are fine, 65 are not. */
  static const char counted[] =
    "input 8x8x3\nblock b(n) { relu; if n > 1 { b(n - 1) } }\nb(%d)\n";
  g_autofree char *ok = g_strdup_printf (counted, 64);
  CsGraph *g = PARSE_OK (ok);
  if (g)
    g_assert_cmpuint (cs_graph_n_nodes (g), ==, 65);
  g_clear_pointer (&g, cs_graph_unref);
  g_autofree char *deep = g_strdup_printf (counted, 65);
  EXPECT (deep, CS_ERROR_LIMIT, 2, 31, "more than 64 deep");

  /* Mutual recursion. */
  EXPECT ("input 8x8x3\nblock a() { b() }\nblock b() { a() }\na()\n", CS_ERROR_LIMIT, 3, 13,
          "more than 64 deep");
}

static void
test_limit_repeat (void)
{
  EXPECT ("input 8x8x3\nrepeat 1000001 { }\n", CS_ERROR_LIMIT, 2, 8, "1000000", "1000001");
  EXPECT ("input 8x8x3\nrepeat 1e9 { relu }\n", CS_ERROR_LIMIT, 2, 8, "1000000");
  /* A count at the limit runs (and is stopped by the layer limit here). */
  EXPECT ("input 8x8x3\nrepeat 1000000 { relu }\n", CS_ERROR_LIMIT, 2, 18, "200000 layers");
}

static void
test_limit_layers (void)
{
  /* The input and 199,999 layers fit; one more does not. */
  CsGraph *g = PARSE_OK ("input 8x8x3\nrepeat 199999 { relu }\n");
  if (g)
    g_assert_cmpuint (cs_graph_n_nodes (g), ==, 200000);
  g_clear_pointer (&g, cs_graph_unref);
  EXPECT ("input 8x8x3\nrepeat 200000 { relu }\n", CS_ERROR_LIMIT, 2, 17,
          "more than 200000 layers");
  EXPECT ("input 8x8x3\nblock b() { repeat 1000 { relu } }\nrepeat 1000 { b() }\n",
          CS_ERROR_LIMIT, 2, 27, "more than 200000 layers", "in block 'b' called at t.cnn:3:15");
}

static void
test_limit_statements (void)
{
  /* 2 + 11 * 1,000,000 statements (input, repeat, the lets): the 10,000,001st is the 9th 'let'
   * of pass 909,091. */
  GString *s = g_string_new ("input 8x8x3\nrepeat 1000000 {\n");
  for (guint i = 0; i < 11; i++)
    g_string_append_printf (s, "  let a%u = %u\n", i, i);
  g_string_append (s, "}\nrelu\n");
  /* Line 1 input, 2 repeat, 3..13 the lets: the 9th is on line 11. */
  EXPECT (s->str, CS_ERROR_LIMIT, 11, 3, "more than 10000000 statements");
  g_string_free (s, TRUE);
}

/* Runs the current test's body in a subprocess, so that a hang or a crash fails only it. */
static gboolean
in_subprocess (guint64 timeout_s)
{
  if (g_test_subprocess ())
    return TRUE;
  g_test_trap_subprocess (NULL, timeout_s * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  if (!g_test_trap_has_passed ())
    fail ("the subprocess %s (a hang, a crash or a failed check; see above)",
                        g_test_trap_reached_timeout () ? "timed out" : "failed");
  return FALSE;
}

/* In a subprocess: abort on the first failure, with a message. The error may be at LINE:COL or
 * at LINE:COL2. */
static void
subprocess_expect_limit (const char *text, guint line, guint col, guint col2, const char *word)
{
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("t.cnn", text, strlen (text), &error);
  if (g != NULL)
    {
      fprintf (stderr, "expected CS_ERROR_LIMIT, but the model parsed\n");
      abort ();
    }
  g_autofree char *prefix = g_strdup_printf ("t.cnn:%u:%u: ", line, col);
  g_autofree char *prefix2 = g_strdup_printf ("t.cnn:%u:%u: ", line, col2);
  if (error->domain != CS_ERROR || error->code != CS_ERROR_LIMIT
      || !(g_str_has_prefix (error->message, prefix) || g_str_has_prefix (error->message, prefix2))
      || !strstr (error->message, word))
    {
      fprintf (stderr, "expected CS_ERROR_LIMIT at %s with \"%s\", got code %d: %s\n", prefix,
               word, error->code, error->message);
      abort ();
    }
  g_error_free (error);
}

static void
test_limit_empty_loops (void)
{
  /* Loops with nothing in them still take time: 10^12 passes must hit the statement limit
   * rather than run for hours. The outer or the inner repeat may be blamed. */
  if (!in_subprocess (20))
    return;
  subprocess_expect_limit ("input 8x8x3\nrepeat 1000000 { repeat 1000000 { } }\nrelu\n", 2, 1,
                           18, "10000000");
}

static void
test_limit_long_expression (void)
{
  /* An expression holds at most 1024 operators, which bounds the recursion of its evaluation;
   * a flat sum of 400,000 terms is refused at its 1025th '+', and quickly. */
  if (!in_subprocess (30))
    return;
  GString *s = g_string_new ("input 8x8x3\nlet x = 1");
  for (guint i = 1; i < 400000; i++)
    g_string_append (s, "+1");
  g_string_append (s, "\nfc x / 1000\n");
  /* 'let x = 1' is columns 1 to 9; the k-th '+' is at column 10 + 2 (k - 1). */
  EXPECT (s->str, CS_ERROR_LIMIT, 2, 10 + 2 * 1024, "more than 1024 operators");
  g_string_free (s, TRUE);

  GString *ok = g_string_new ("input 8x8x3\nlet x = 1");
  for (guint i = 0; i < 1024; i++)
    g_string_append (ok, "+1");
  g_string_append (ok, "\nfc x\n");
  CsGraph *g = PARSE_OK (ok->str);
  g_string_free (ok, TRUE);
  if (g == NULL || cs_graph_node (g, 1)->shape.c != 1025)
    abort ();
  cs_graph_unref (g);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors inside blocks name the call                                                        */

static void
test_block_call_site (void)
{
  static const char text[] =
    "input 8x8x3\n"             /* 1 */
    "block b(c) {\n"            /* 2 */
    "  conv c 3x3 pad 1\n"      /* 3 */
    "}\n"                       /* 4 */
    "b(8)\n"                    /* 5 */
    "b(0)\n";                   /* 6 */
  EXPECT (text, CS_ERROR_SHAPE, 3, 8, "channels", "not 0", "in block 'b' called at t.cnn:6:1");

  static const char nested[] =
    "input 8x8x3\n"                 /* 1 */
    "block inner(c) {\n"            /* 2 */
    "  conv c 3x3 pad 1\n"          /* 3 */
    "}\n"                           /* 4 */
    "block outer(c) {\n"            /* 5 */
    "  add { { inner(c) } { } }\n"  /* 6 */
    "}\n"                           /* 7 */
    "outer(3)\n"                    /* 8 */
    "%s\n";                         /* 9 */
  /* A shape error of a layer made by the outer block names its call. */
  g_autofree char *shape = g_strdup_printf (nested, "outer(4)");
  EXPECT (shape, CS_ERROR_SHAPE, 6, 3, "layer 'outer2/add1'", "the channels differ",
          "in block 'outer' called at t.cnn:9:1");
  /* An error two calls deep names both calls, innermost first. */
  g_autofree char *deep = g_strdup_printf (nested, "outer(0)");
  EXPECT (deep, CS_ERROR_SHAPE, 3, 8, "channels",
          "\n  in block 'inner' called at t.cnn:6:11\n  in block 'outer' called at t.cnn:9:1");
  /* A cycle and an unknown name inside a block. */
  EXPECT ("input 8x8x3\nblock b() {\n  relu from nope\n}\nb()\n", CS_ERROR_NAME, 3, 13,
          "unknown layer 'nope'", "in block 'b' called at t.cnn:5:1");
  EXPECT ("input 8x8x3\nblock b() {\n  x: relu from y\n  y: relu from x\n}\nm: b()\n",
          CS_ERROR_CYCLE, 4, 3, "layer 'm/y'", "cycle", "in block 'b' called at t.cnn:6:1");
  /* A kernel too large in a block called from a repeat. */
  EXPECT ("input 8x8x3\nblock p() { maxpool 2 }\nrepeat 4 { p() }\n", CS_ERROR_SHAPE, 2, 13,
          "layer 'p4/maxpool1'", "larger than its padded input",
          "in block 'p' called at t.cnn:3:12");
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                     */

static void
test_io_missing (void)
{
  GError *error = NULL;
  const char *path = "/nonexistent-cnnscope-dir/missing.cnn";
  g_assert_null (cs_parse_model_file (path, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);
}

static void
test_io_directory (void)
{
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-errors-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_null (cs_parse_model_file (dir, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, dir));
  g_assert_nonnull (strstr (error->message, "folder"));
  g_clear_error (&error);
  g_rmdir (dir);
}

static void
test_io_files (void)
{
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-errors-XXXXXX", &error);
  g_assert_no_error (error);

  /* An empty file: an error about the file, no position. */
  g_autofree char *empty = g_build_filename (dir, "empty.cnn", NULL);
  g_assert_true (g_file_set_contents (empty, "", 0, &error));
  g_assert_null (cs_parse_model_file (empty, &error));
  check_error_full (__LINE__, empty, "", 0, error, CS_ERROR_PARSE, 0, 0,
                    WORDS ("no layers"));
  g_clear_error (&error);

  /* A mistake in a file is reported with the file's path. */
  static const char bad[] = "input 8x8x3\nconv 8 3x3 @\n";
  g_autofree char *path = g_build_filename (dir, "bad.cnn", NULL);
  g_assert_true (g_file_set_contents (path, bad, -1, &error));
  g_assert_null (cs_parse_model_file (path, &error));
  check_error_full (__LINE__, path, bad, strlen (bad), error, CS_ERROR_PARSE, 2, 12,
                    WORDS ("unexpected character '@'"));
  g_clear_error (&error);

  /* Over the size limit on disk. */
  g_autofree char *big = g_build_filename (dir, "big.cnn", NULL);
  g_autofree char *blank = g_strnfill (CS_PARSER_MAX_BYTES + 10, '\n');
  g_assert_true (g_file_set_contents (big, blank, -1, &error));
  g_assert_null (cs_parse_model_file (big, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_LIMIT);
  g_clear_error (&error);

  g_unlink (empty), g_unlink (path), g_unlink (big);
  g_rmdir (dir);

  /* Empty text in memory, with and without a buffer. */
  EXPECT_LEN ("", 0, CS_ERROR_PARSE, 0, 0, "no layers");
  EXPECT_LEN (NULL, 0, CS_ERROR_PARSE, 0, 0, "no layers");
  EXPECT ("\n\n   \n", CS_ERROR_PARSE, 0, 0, "no layers");
}

/* ---------------------------------------------------------------------------------------- */
/* The snippet: the source line and a caret under the column                                 */

static void
assert_message (const char *text, const char *want)
{
  GError *error = NULL;
  g_assert_null (cs_parse_model ("t.cnn", text, strlen (text), &error));
  g_assert_nonnull (error);
  g_assert_cmpstr (error->message, ==, want);
  g_clear_error (&error);
}

static void
test_snippet (void)
{
  assert_message ("input 8x8x3\nconv 8 3x3 @\n",
                  "t.cnn:2:12: unexpected character '@'\n"
                  "  conv 8 3x3 @\n"
                  "             ^");
  /* Tabs are kept under the line so the caret lines up. */
  assert_message ("input 8x8x3\n\tconv 8 3x3 @\n",
                  "t.cnn:2:13: unexpected character '@'\n"
                  "  \tconv 8 3x3 @\n"
                  "  \t           ^");
  /* Columns count characters, not bytes. */
  assert_message ("note \"ééé\" @\n",
                  "t.cnn:1:12: unexpected character '@'\n"
                  "  note \"ééé\" @\n"
                  "             ^");
  /* CRLF line ends are not part of the line. */
  assert_message ("input 8x8x3\r\nconv 8 3x3 @\r\nrelu\r\n",
                  "t.cnn:2:12: unexpected character '@'\n"
                  "  conv 8 3x3 @\n"
                  "             ^");
  /* The last line, without a final newline. */
  assert_message ("input 8x8x3\nrelu\nconv 0 3x3",
                  "t.cnn:3:6: channels must be a whole number from 1 to 16777216, not 0\n"
                  "  conv 0 3x3\n"
                  "       ^");
  /* A layer's error names it, then its line. */
  assert_message ("input 8x8x3\n  a: conv 8 9x9\n",
                  "t.cnn:2:3: layer 'a': kernel 9 (spanning 9) is larger than its padded input "
                  "height 8 (8 + 2*0)\n"
                  "    a: conv 8 9x9\n"
                  "    ^");
  /* A block call's frame follows the snippet. */
  assert_message ("input 8x8x3\nblock b() { relu 1 }\nb()\n",
                  "t.cnn:2:18: unexpected '1': relu takes no arguments\n"
                  "  block b() { relu 1 }\n"
                  "                   ^");

  g_autofree char *none = cs_source_snippet ("a\nb\n", 4, 5, 1);
  g_assert_cmpstr (none, ==, "");
  g_autofree char *first = cs_source_snippet ("abc", 3, 1, 3);
  g_assert_cmpstr (first, ==, "  abc\n    ^");
}

/* Messages are shown in a GUI: they must be valid UTF-8 even when the input is not. */
static void
test_messages_utf8 (void)
{
  static const char *texts[] = {
    /* A token quoted in the message, cut inside a two-byte character. */
    "input 8x8x3\nrelu \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\"\n",
    /* The snippet of a line that is not valid UTF-8. */
    "input 8x8x3\nrelu \xff\n",
    "input 8x8x3\nconv 8 3x3 @ \xe2\x82\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      GError *error = NULL;
      g_assert_null (cs_parse_model ("t.cnn", texts[i], strlen (texts[i]), &error));
      g_assert_nonnull (error);
      if (!g_utf8_validate (error->message, -1, NULL))
        {
          g_autofree char *escaped = g_strescape (error->message, NULL);
          fail ("text %u: the message is not valid UTF-8: %s", i, escaped);
        }
      g_clear_error (&error);
    }
}

/* A mean that ends a branch of a mean is merged into it, even when it takes named inputs. */
static void
test_mean_merge_from (void)
{
  if (!in_subprocess (30))
    return;
  static const char text[] =
    "input 8x8x3\n"
    "a: conv 4 1x1\n"
    "b: conv 4 1x1 from input\n"
    "c: conv 4 1x1 from input\n"
    "mean { { mean from a, b } { } }\n";
  GError *error = NULL;
  CsGraph *g = cs_parse_model ("t.cnn", text, strlen (text), &error);
  if (g == NULL)
    {
      fprintf (stderr, "a valid model failed: %s\n", error->message);
      abort ();
    }
  /* 'a' is averaged, whether or not the means are merged; the input is not. */
  const CsNode *a = cs_graph_lookup (g, "a");
  if (a == NULL || g->n_consumers[a->id] == 0)
    {
      fprintf (stderr, "layer 'a' is not an input of the mean\n");
      abort ();
    }
  cs_graph_unref (g);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();

  g_test_add_func ("/core/errors/lex/bad-character", test_lex_bad_character);
  g_test_add_func ("/core/errors/lex/unterminated-string", test_lex_unterminated_string);
  g_test_add_func ("/core/errors/lex/malformed-number", test_lex_malformed_number);
  g_test_add_func ("/core/errors/lex/invalid-utf8", test_lex_invalid_utf8);
  g_test_add_func ("/core/errors/lex/nul-byte", test_lex_nul_byte);
  g_test_add_func ("/core/errors/lex/long-name", test_lex_long_name);

  g_test_add_func ("/core/errors/syntax/unknown-kind", test_syntax_unknown_kind);
  g_test_add_func ("/core/errors/syntax/missing-brace", test_syntax_missing_brace);
  g_test_add_func ("/core/errors/syntax/stray-brace", test_syntax_stray_brace);
  g_test_add_func ("/core/errors/syntax/missing-value", test_syntax_missing_value);
  g_test_add_func ("/core/errors/syntax/too-many-positional", test_syntax_too_many_positional);
  g_test_add_func ("/core/errors/syntax/keyword-twice", test_syntax_keyword_twice);
  g_test_add_func ("/core/errors/syntax/label-alone", test_syntax_label_alone);
  g_test_add_func ("/core/errors/syntax/join-without-branches", test_syntax_join_without_branches);
  g_test_add_func ("/core/errors/syntax/branches-on-non-join", test_syntax_branches_on_non_join);
  g_test_add_func ("/core/errors/syntax/meta-in-braces", test_syntax_meta_in_braces);
  g_test_add_func ("/core/errors/syntax/misc", test_syntax_misc);
  g_test_add_func ("/core/errors/syntax/paren-argument", test_syntax_paren_argument);

  g_test_add_func ("/core/errors/names/unknown-from", test_names_unknown_from);
  g_test_add_func ("/core/errors/names/duplicate-label", test_names_duplicate_label);
  g_test_add_func ("/core/errors/names/unknown-block", test_names_unknown_block);
  g_test_add_func ("/core/errors/names/block-arg-count", test_names_block_arg_count);
  g_test_add_func ("/core/errors/names/unknown-variable", test_names_unknown_variable);
  g_test_add_func ("/core/errors/names/block-keyword", test_names_block_keyword);

  g_test_add_func ("/core/errors/cycle", test_cycle);

  g_test_add_func ("/core/errors/shape/add-channels", test_shape_add_channels);
  g_test_add_func ("/core/errors/shape/concat-spatial", test_shape_concat_spatial);
  g_test_add_func ("/core/errors/shape/kernel-too-large", test_shape_kernel_too_large);
  g_test_add_func ("/core/errors/shape/groups", test_shape_groups);
  g_test_add_func ("/core/errors/shape/bad-channels", test_shape_bad_channels);
  g_test_add_func ("/core/errors/shape/pad-same-even", test_shape_pad_same_even);
  g_test_add_func ("/core/errors/shape/pool-pad", test_shape_pool_pad);
  g_test_add_func ("/core/errors/shape/no-input", test_shape_no_input);
  g_test_add_func ("/core/errors/shape/layer-before-input", test_shape_layer_before_input);

  g_test_add_func ("/core/errors/overflow/shape", test_overflow_shape);
  g_test_add_func ("/core/errors/overflow/fc", test_overflow_fc);
  g_test_add_func ("/core/errors/overflow/batch", test_overflow_batch);

  g_test_add_func ("/core/errors/limits/file-size", test_limit_file_size);
  g_test_add_func ("/core/errors/limits/nesting", test_limit_nesting);
  g_test_add_func ("/core/errors/limits/recursion", test_limit_recursion);
  g_test_add_func ("/core/errors/limits/repeat", test_limit_repeat);
  g_test_add_func ("/core/errors/limits/layers", test_limit_layers);
  g_test_add_func ("/core/errors/limits/statements", test_limit_statements);
  g_test_add_func ("/core/errors/limits/empty-loops", test_limit_empty_loops);
  g_test_add_func ("/core/errors/limits/long-expression", test_limit_long_expression);

  g_test_add_func ("/core/errors/block-call-site", test_block_call_site);

  g_test_add_func ("/core/errors/io/missing", test_io_missing);
  g_test_add_func ("/core/errors/io/directory", test_io_directory);
  g_test_add_func ("/core/errors/io/files", test_io_files);

  g_test_add_func ("/core/errors/snippet", test_snippet);
  g_test_add_func ("/core/errors/messages-utf8", test_messages_utf8);
  g_test_add_func ("/core/errors/mean-merge-from", test_mean_merge_from);

  return g_test_run ();
}
