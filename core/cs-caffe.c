/* The Caffe importer: a protobuf text format reader to a small field tree, and a walk over the
 * NetParameter it holds that builds the CsGraph. Nothing reaches the caller unless all of it
 * worked. */
#include "cs-caffe.h"
#include "cs-error.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MAX_DEPTH 64                /* nested messages */
#define MAX_TOKENS 4000000
#define MAX_FIELDS 1000000          /* each costs a tree node: bounds the memory */
#define MAX_WORD 1024               /* field names, enum words */
#define MAX_NAME 1024               /* layer and blob names */
#define MAX_DIM 1048576             /* the .cnn bounds on sizes and channels */
#define MAX_CH 16777216
#define MAX_JOIN 4096               /* inputs of a concat or add, as the layer table allows */
#define FIELDS_PER_SLAB 1024

/* ---------------------------------------------------------------------------------------- */
/* Protobuf text format                                                                      */

typedef enum { PB_MSG, PB_STRING, PB_NUMBER, PB_WORD } PbKind;

typedef struct PbField PbField;
struct PbField {
  const char *name;
  PbKind kind;
  guint line, col;              /* the field's name */
  guint vline, vcol;            /* its value: a scalar's first character, or the '{' */
  const char *str;              /* STRING: decoded; WORD: the word; NUMBER: as written */
  double num;                   /* NUMBER */
  guint64 u;                    /* NUMBER written as an integer: its magnitude, exactly */
  gboolean integral, negative;
  PbField *child, *last;        /* MSG: its fields in written order */
  PbField *next;
};

typedef enum { T_EOF, T_WORD, T_NUM, T_STRING, T_PUNCT } TokType;

typedef struct {
  TokType type;
  guint line, col;
  const char *start;
  gsize len;
  char punct;
  const char *str;              /* WORD and STRING: NUL-terminated, in the string chunk */
  double num;
  guint64 u;
  gboolean integral;
} Token;

typedef struct {
  CsGraph *g;                   /* for positioned errors: its file and text */
  const char *p, *end;
  guint line, col;
  Token look;
  gboolean have_look;
  guint n_tokens, n_fields, depth;
  GStringChunk *strings;
  GPtrArray *slabs;             /* arrays of FIELDS_PER_SLAB fields, freed at the end */
  guint slab_used;
} Pb;

static gboolean
pos_error (CsGraph *g, guint line, guint col, GError **error, gint code, const char *format, ...)
  G_GNUC_PRINTF (6, 7);

static gboolean
pos_error (CsGraph *g, guint line, guint col, GError **error, gint code, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  CsSrcPos pos = { line, col, NULL };
  cs_graph_pos_error (g, line ? &pos : NULL, error, code, "%s", msg);
  return FALSE;
}

static void
advance (Pb *pb)
{
  if (*pb->p == '\n')
    {
      pb->line++;
      pb->col = 1;
    }
  else if (((guchar) *pb->p & 0xC0) != 0x80)
    pb->col++;  /* columns count characters, as the snippets do */
  pb->p++;
}

static gboolean
is_word_start (char c)
{
  return g_ascii_isalpha (c) || c == '_';
}

static gboolean
is_word_char (char c)
{
  return g_ascii_isalnum (c) || c == '_';
}

/* A token as written, for messages: at most 40 bytes, valid UTF-8. */
static const char *
token_text (Pb *pb, const Token *t)
{
  if (t->type == T_EOF)
    return "the end of the file";
  gsize len = MIN (t->len, 40);
  while (len < t->len && len > 0 && ((guchar) t->start[len] & 0xC0) == 0x80)
    len--;
  g_autofree char *valid = g_utf8_make_valid (t->start, len);
  return g_string_chunk_insert (pb->strings, valid);
}

static gboolean
lex_number (Pb *pb, Token *t, GError **error)
{
  const char *s = pb->p;
  gboolean hex = FALSE, integral = TRUE;
  if (*s == '0' && s + 1 < pb->end && (s[1] == 'x' || s[1] == 'X'))
    {
      hex = TRUE;
      advance (pb), advance (pb);
      while (pb->p < pb->end && g_ascii_isxdigit (*pb->p))
        advance (pb);
      if (pb->p == s + 2)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "malformed number: no digits after '0x'");
    }
  else
    {
      while (pb->p < pb->end && g_ascii_isdigit (*pb->p))
        advance (pb);
      if (pb->p < pb->end && *pb->p == '.')
        {
          integral = FALSE;
          advance (pb);
          while (pb->p < pb->end && g_ascii_isdigit (*pb->p))
            advance (pb);
        }
      if (pb->p < pb->end && (*pb->p == 'e' || *pb->p == 'E'))
        {
          const char *q = pb->p + 1;
          if (q < pb->end && (*q == '+' || *q == '-'))
            q++;
          if (q < pb->end && g_ascii_isdigit (*q))
            {
              integral = FALSE;
              while (pb->p < q)
                advance (pb);
              while (pb->p < pb->end && g_ascii_isdigit (*pb->p))
                advance (pb);
            }
        }
    }
  gsize n = pb->p - s;
  /* 1.5f: the float suffix protobuf allows */
  if (!hex && pb->p < pb->end && (*pb->p == 'f' || *pb->p == 'F'))
    {
      integral = FALSE;
      advance (pb);
    }
  if (pb->p < pb->end && (is_word_char (*pb->p) || *pb->p == '.'))
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE, "malformed number '%.*s'",
                      (int) MIN (pb->p - s + 1, 40), s);
  char buf[72];
  if (n >= sizeof buf)
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                      "a number longer than %d characters", (int) sizeof buf - 1);
  memcpy (buf, s, n);
  buf[n] = '\0';
  t->type = T_NUM;
  t->integral = integral;
  t->len = pb->p - s;
  if (integral)
    {
      /* Protobuf reads a leading 0 as octal, as C does. */
      guint base = hex ? 16 : (n > 1 && buf[0] == '0') ? 8 : 10;
      const char *digits = hex ? buf + 2 : buf;
      for (const char *q = digits; *q; q++)
        if (base == 8 && (*q < '0' || *q > '7'))
          return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                            "malformed octal number '%s' (a leading 0 means octal)", buf);
      char *endp = NULL;
      errno = 0;
      t->u = g_ascii_strtoull (digits, &endp, base);
      if (errno == ERANGE)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "the number %s does not fit in 64 bits", buf);
      t->num = (double) t->u;
      return TRUE;
    }
  t->num = g_ascii_strtod (buf, NULL);
  if (!isfinite (t->num))
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                      "the number %s is out of range", buf);
  return TRUE;
}

static int
hex_value (char c)
{
  return g_ascii_isdigit (c) ? c - '0' : g_ascii_tolower (c) - 'a' + 10;
}

/* A quoted string at pb->p, with C escapes; it ends on the same line. */
static gboolean
lex_string (Pb *pb, Token *t, GError **error)
{
  char quote = *pb->p;
  g_autoptr (GString) s = g_string_new (NULL);
  advance (pb);
  for (;;)
    {
      if (pb->p >= pb->end || *pb->p == '\n')
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "unterminated string: it must end on the same line");
      char c = *pb->p;
      if (c == quote)
        break;
      if (c == '\0')
        return pos_error (pb->g, pb->line, pb->col, error, CS_ERROR_PARSE,
                          "a NUL byte in a string");
      if (c != '\\')
        {
          g_string_append_c (s, c);
          advance (pb);
          continue;
        }
      guint eline = pb->line, ecol = pb->col;
      advance (pb);
      if (pb->p >= pb->end)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE, "unterminated string");
      c = *pb->p;
      static const char simple_in[] = "abfnrtv\\'\"?", simple_out[] = "\a\b\f\n\r\t\v\\'\"?";
      const char *hit = c ? strchr (simple_in, c) : NULL;
      if (hit)
        {
          g_string_append_c (s, simple_out[hit - simple_in]);
          advance (pb);
        }
      else if (c >= '0' && c <= '7')
        {
          guint v = 0;
          for (guint i = 0; i < 3 && pb->p < pb->end && *pb->p >= '0' && *pb->p <= '7'; i++)
            {
              v = v * 8 + (*pb->p - '0');
              advance (pb);
            }
          if (v == 0 || v > 0xFF)
            return pos_error (pb->g, eline, ecol, error, CS_ERROR_PARSE,
                              v == 0 ? "a NUL byte in a string" : "an octal escape over \\377");
          g_string_append_c (s, (char) v);
        }
      else if (c == 'x' || c == 'X')
        {
          advance (pb);
          guint v = 0, n = 0;
          for (; n < 2 && pb->p < pb->end && g_ascii_isxdigit (*pb->p); n++)
            {
              v = v * 16 + hex_value (*pb->p);
              advance (pb);
            }
          if (n == 0 || v == 0)
            return pos_error (pb->g, eline, ecol, error, CS_ERROR_PARSE,
                              n == 0 ? "'\\x' needs hexadecimal digits" : "a NUL byte in a string");
          g_string_append_c (s, (char) v);
        }
      else if (c == 'u' || c == 'U')
        {
          guint want = c == 'u' ? 4 : 8, n = 0;
          gunichar v = 0;
          advance (pb);
          for (; n < want && pb->p < pb->end && g_ascii_isxdigit (*pb->p); n++)
            {
              v = v * 16 + hex_value (*pb->p);
              advance (pb);
            }
          if (n < want || v == 0 || !g_unichar_validate (v))
            return pos_error (pb->g, eline, ecol, error, CS_ERROR_PARSE,
                              "'\\%c' needs %u hexadecimal digits of a character other than NUL",
                              c, want);
          g_string_append_unichar (s, v);
        }
      else
        return pos_error (pb->g, eline, ecol, error, CS_ERROR_PARSE,
                          "unknown escape in a string: use \\n, \\t, \\\\, \\\", \\', octal "
                          "or \\x");
    }
  advance (pb);
  if (!g_utf8_validate (s->str, s->len, NULL))
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                      "a string that is not valid UTF-8");
  t->type = T_STRING;
  t->len = pb->p - t->start;
  t->str = g_string_chunk_insert_len (pb->strings, s->str, s->len);
  return TRUE;
}

static gboolean
lex (Pb *pb, Token *t, GError **error)
{
  for (;;)
    {
      while (pb->p < pb->end && (*pb->p == ' ' || *pb->p == '\t' || *pb->p == '\r'
                                 || *pb->p == '\n' || *pb->p == '\v' || *pb->p == '\f'))
        advance (pb);
      if (pb->p < pb->end && *pb->p == '#')
        {
          while (pb->p < pb->end && *pb->p != '\n')
            advance (pb);
          continue;
        }
      break;
    }
  memset (t, 0, sizeof *t);
  t->line = pb->line;
  t->col = pb->col;
  t->start = pb->p;
  if (pb->p >= pb->end)
    {
      t->type = T_EOF;
      return TRUE;
    }
  if (++pb->n_tokens > MAX_TOKENS)
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_LIMIT,
                      "the file has more than %d tokens", MAX_TOKENS);

  char c = *pb->p;
  if (g_ascii_isdigit (c) || (c == '.' && pb->p + 1 < pb->end && g_ascii_isdigit (pb->p[1])))
    return lex_number (pb, t, error);
  if (is_word_start (c))
    {
      while (pb->p < pb->end && is_word_char (*pb->p))
        advance (pb);
      t->type = T_WORD;
      t->len = pb->p - t->start;
      if (t->len > MAX_WORD)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_LIMIT,
                          "a word longer than %d characters", MAX_WORD);
      t->str = g_string_chunk_insert_len (pb->strings, t->start, t->len);
      return TRUE;
    }
  if (c == '"' || c == '\'')
    return lex_string (pb, t, error);
  if (strchr ("{}<>[]:,;-", c) && c != '\0')
    {
      t->type = T_PUNCT;
      t->punct = c;
      t->len = 1;
      advance (pb);
      return TRUE;
    }
  if ((guchar) c >= 0x80)
    {
      gunichar u = g_utf8_get_char_validated (pb->p, pb->end - pb->p);
      if (u == (gunichar) -1 || u == (gunichar) -2)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "the file is not valid UTF-8");
      char buf[8] = { 0 };
      g_unichar_to_utf8 (u, buf);
      return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                        "unexpected character '%s' (outside a string or comment)", buf);
    }
  if (g_ascii_isprint (c))
    return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                      "unexpected character '%c'", c);
  return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE, "unexpected byte 0x%02x",
                    (guchar) c);
}

static const Token *
peek (Pb *pb, GError **error)
{
  if (!pb->have_look)
    {
      if (!lex (pb, &pb->look, error))
        return NULL;
      pb->have_look = TRUE;
    }
  return &pb->look;
}

static void
consume (Pb *pb)
{
  pb->have_look = FALSE;
}

static gboolean
is_punct (const Token *t, char c)
{
  return t->type == T_PUNCT && t->punct == c;
}

static PbField *
field_new (Pb *pb, PbField *parent, const char *name, guint line, guint col, GError **error)
{
  if (++pb->n_fields > MAX_FIELDS)
    {
      pos_error (pb->g, line, col, error, CS_ERROR_LIMIT, "the file has more than %d fields",
                 MAX_FIELDS);
      return NULL;
    }
  if (pb->slabs->len == 0 || pb->slab_used == FIELDS_PER_SLAB)
    {
      g_ptr_array_add (pb->slabs, g_new0 (PbField, FIELDS_PER_SLAB));
      pb->slab_used = 0;
    }
  PbField *f = (PbField *) pb->slabs->pdata[pb->slabs->len - 1] + pb->slab_used++;
  f->name = name;
  f->line = line;
  f->col = col;
  if (parent->last)
    parent->last->next = f;
  else
    parent->child = f;
  parent->last = f;
  return f;
}

static gboolean parse_fields (Pb *pb, PbField *msg, const Token *open, GError **error);

/* A message body: '{' or '<' (already peeked), fields, and the matching close. */
static gboolean
parse_message (Pb *pb, PbField *f, GError **error)
{
  g_assert (pb->have_look);
  Token open = pb->look;
  consume (pb);
  if (++pb->depth > MAX_DEPTH)
    return pos_error (pb->g, open.line, open.col, error, CS_ERROR_LIMIT,
                      "messages nested more than %d deep", MAX_DEPTH);
  f->kind = PB_MSG;
  f->vline = open.line;
  f->vcol = open.col;
  if (!parse_fields (pb, f, &open, error))
    return FALSE;
  pb->depth--;
  return TRUE;
}

/* A scalar value: a number (maybe negative), a word, or strings, which are concatenated. */
static gboolean
parse_scalar (Pb *pb, PbField *f, GError **error)
{
  const Token *t = peek (pb, error);
  if (t == NULL)
    return FALSE;
  f->vline = t->line;
  f->vcol = t->col;
  gboolean negative = FALSE;
  if (is_punct (t, '-'))
    {
      negative = TRUE;
      consume (pb);
      if ((t = peek (pb, error)) == NULL)
        return FALSE;
      if (t->type != T_NUM)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "expected a number after '-', found '%s'", token_text (pb, t));
    }
  switch (t->type)
    {
    case T_NUM:
      f->kind = PB_NUMBER;
      f->str = g_string_chunk_insert_len (pb->strings, t->start, t->len);
      f->num = negative ? -t->num : t->num;
      f->u = t->u;
      f->integral = t->integral;
      f->negative = negative && t->num != 0;
      consume (pb);
      return TRUE;
    case T_WORD:
      f->kind = PB_WORD;
      f->str = t->str;
      consume (pb);
      return TRUE;
    case T_STRING:
      {
        f->kind = PB_STRING;
        f->str = t->str;
        consume (pb);
        /* "a" "b" is "ab"; joined once at the end, so that many pieces cost linear time. */
        GString *joined = NULL;
        while ((t = peek (pb, error)) != NULL && t->type == T_STRING)
          {
            if (joined == NULL)
              joined = g_string_new (f->str);
            g_string_append (joined, t->str);
            consume (pb);
          }
        if (joined)
          {
            f->str = g_string_chunk_insert_len (pb->strings, joined->str, joined->len);
            g_string_free (joined, TRUE);
          }
        return t != NULL;
      }
    default:
      return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                        "expected a value for '%s', found '%s'", f->name, token_text (pb, t));
    }
}

/* NAME: [v1, v2, ...]: a repeated field written as a list; each element becomes a field. */
static gboolean
parse_list (Pb *pb, PbField *parent, PbField *first, GError **error)
{
  g_assert (pb->have_look);
  Token open = pb->look;
  consume (pb);
  const Token *t = peek (pb, error);
  if (t == NULL)
    return FALSE;
  PbField *f = first;
  if (is_punct (t, ']'))
    {
      /* An empty list sets nothing: the field made for it becomes an empty message that
       * nothing reads as a value. */
      f->kind = PB_MSG;
      f->vline = open.line;
      f->vcol = open.col;
      f->name = g_string_chunk_insert_const (pb->strings, "");
      consume (pb);
      return TRUE;
    }
  for (;;)
    {
      if ((t = peek (pb, error)) == NULL)
        return FALSE;
      if (is_punct (t, '{') || is_punct (t, '<'))
        {
          if (!parse_message (pb, f, error))
            return FALSE;
        }
      else if (!parse_scalar (pb, f, error))
        return FALSE;
      if ((t = peek (pb, error)) == NULL)
        return FALSE;
      if (is_punct (t, ']'))
        {
          consume (pb);
          return TRUE;
        }
      if (!is_punct (t, ','))
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          t->type == T_EOF
                          ? "unexpected end of the file in the list of '%s' opened at line %u, "
                            "column %u"
                          : "expected ',' or ']' in the list of '%s' opened at line %u, "
                            "column %u", first->name, open.line, open.col);
      consume (pb);
      if ((f = field_new (pb, parent, first->name, first->line, first->col, error)) == NULL)
        return FALSE;
    }
}

/* Fields up to the close of OPEN, or to the end of the file at the top (OPEN NULL). */
static gboolean
parse_fields (Pb *pb, PbField *msg, const Token *open, GError **error)
{
  char close = open == NULL ? 0 : open->punct == '{' ? '}' : '>';
  for (;;)
    {
      const Token *t = peek (pb, error);
      if (t == NULL)
        return FALSE;
      if (t->type == T_EOF)
        {
          if (open == NULL)
            return TRUE;
          return pos_error (pb->g, open->line, open->col, error, CS_ERROR_PARSE,
                            "the '%c' of '%s' is never closed: the file ends at line %u",
                            open->punct, msg->name, t->line);
        }
      if (close && is_punct (t, close))
        {
          consume (pb);
          return TRUE;
        }
      if (is_punct (t, '}') || is_punct (t, '>'))
        {
          if (open == NULL)
            return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                              "unexpected '%c': no message is open here", t->punct);
          return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                            "expected '%c' to close '%s' (opened at line %u, column %u), "
                            "found '%c'", close, msg->name, open->line, open->col, t->punct);
        }
      if (is_punct (t, '['))
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_UNSUPPORTED,
                          "extension fields ([name]) are not supported");
      if (t->type != T_WORD)
        return pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                          "expected a field name, found '%s'", token_text (pb, t));
      PbField *f = field_new (pb, msg, g_string_chunk_insert_const (pb->strings, t->str),
                              t->line, t->col, error);
      if (f == NULL)
        return FALSE;
      consume (pb);
      if ((t = peek (pb, error)) == NULL)
        return FALSE;
      gboolean colon = is_punct (t, ':');
      if (colon)
        {
          consume (pb);
          if ((t = peek (pb, error)) == NULL)
            return FALSE;
        }
      gboolean ok;
      if (is_punct (t, '{') || is_punct (t, '<'))
        ok = parse_message (pb, f, error);
      else if (colon && is_punct (t, '['))
        ok = parse_list (pb, msg, f, error);
      else if (colon)
        ok = parse_scalar (pb, f, error);
      else
        ok = pos_error (pb->g, t->line, t->col, error, CS_ERROR_PARSE,
                        "expected ':' or '{' after '%s', found '%s'", f->name,
                        token_text (pb, t));
      if (!ok)
        return FALSE;
      /* Fields may be separated by ',' or ';'. */
      if ((t = peek (pb, error)) == NULL)
        return FALSE;
      if (is_punct (t, ',') || is_punct (t, ';'))
        consume (pb);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Reading fields                                                                            */

typedef struct {
  const char *word;
  gint value;
} EnumValue;

typedef struct {
  CsGraph *g;
  GHashTable *blobs;            /* blob name -> Blob*, the blob's latest producer */
  GArray *info;                 /* NodeInfo per node */
  GHashTable *written_names;    /* layer names in the file, which made-up names avoid */
  GHashTable *next_suffix;      /* made-up name base -> the suffix to try next */
  GPtrArray *stages;            /* NetState stages (const char *) */
  gint64 level;
  guint64 batch;
  gboolean v1;
} Imp;

typedef struct {
  guint node;
  const char *stale;            /* set: the output of a BatchNorm before this Scale merged it */
} Blob;

typedef struct {
  guint uses;                   /* bottoms that named the node's output so far */
  gboolean bare_bn;             /* a BatchNorm not merged with a Scale yet */
} NodeInfo;

static gboolean
field_error (Imp *im, const PbField *f, GError **error, gint code, const char *format, ...)
  G_GNUC_PRINTF (5, 6);

/* An error at the value of F. */
static gboolean
field_error (Imp *im, const PbField *f, GError **error, gint code, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  return pos_error (im->g, f->vline, f->vcol, error, code, "%s", msg);
}

/* The field NAME of MSG (which may be NULL), or NULL when absent; twice is an error, as for
 * protobuf's non-repeated fields. */
static gboolean
get_one (Imp *im, const PbField *msg, const char *name, const PbField **out, GError **error)
{
  *out = NULL;
  for (const PbField *f = msg ? msg->child : NULL; f; f = f->next)
    if (strcmp (f->name, name) == 0)
      {
        if (*out)
          return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                            "'%s' is given twice (first at line %u)", name, (*out)->line);
        *out = f;
      }
  return TRUE;
}

/* Every field NAME of MSG, in order. */
static GPtrArray *
get_all (const PbField *msg, const char *name)
{
  GPtrArray *all = g_ptr_array_new ();
  for (const PbField *f = msg ? msg->child : NULL; f; f = f->next)
    if (strcmp (f->name, name) == 0)
      g_ptr_array_add (all, (gpointer) f);
  return all;
}

static gboolean
check_uint (Imp *im, const PbField *f, guint64 min, guint64 max, guint64 *out, GError **error)
{
  if (f->kind != PB_NUMBER || !f->integral || (f->negative && f->u != 0) || f->u < min
      || f->u > max)
    return field_error (im, f, error, CS_ERROR_PARSE,
                        "'%s' must be a whole number from %" G_GUINT64_FORMAT " to %"
                        G_GUINT64_FORMAT, f->name, min, max);
  *out = f->u;
  return TRUE;
}

/* An optional unsigned field: *OUT keeps its default when absent; *GIVEN says which. */
static gboolean
get_uint (Imp *im, const PbField *msg, const char *name, guint64 min, guint64 max, guint64 *out,
          gboolean *given, GError **error)
{
  const PbField *f;
  if (given)
    *given = FALSE;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (f == NULL)
    return TRUE;
  if (given)
    *given = TRUE;
  return check_uint (im, f, min, max, out, error);
}

static gboolean
get_int (Imp *im, const PbField *msg, const char *name, gint64 min, gint64 max, gint64 *out,
         GError **error)
{
  const PbField *f;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (f == NULL)
    return TRUE;
  gint64 v = f->u <= G_MAXINT64 ? (f->negative ? -(gint64) f->u : (gint64) f->u) : G_MAXINT64;
  if (f->kind != PB_NUMBER || !f->integral || f->u > G_MAXINT64 || v < min || v > max)
    return field_error (im, f, error, CS_ERROR_PARSE,
                        "'%s' must be a whole number from %" G_GINT64_FORMAT " to %"
                        G_GINT64_FORMAT, name, min, max);
  *out = v;
  return TRUE;
}

static gboolean
get_float (Imp *im, const PbField *msg, const char *name, double min, double max, double *out,
           GError **error)
{
  const PbField *f;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (f == NULL)
    return TRUE;
  if (f->kind != PB_NUMBER || !(f->num >= min && f->num <= max))
    return field_error (im, f, error, CS_ERROR_PARSE, "'%s' must be a number from %g to %g",
                        name, min, max);
  *out = f->num;
  return TRUE;
}

static gboolean
get_bool (Imp *im, const PbField *msg, const char *name, gboolean *out, GError **error)
{
  const PbField *f;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (f == NULL)
    return TRUE;
  static const char *yes[] = { "true", "True", "t" }, *no[] = { "false", "False", "f" };
  if (f->kind == PB_WORD)
    for (guint i = 0; i < G_N_ELEMENTS (yes); i++)
      if (strcmp (f->str, yes[i]) == 0 || strcmp (f->str, no[i]) == 0)
        {
          *out = strcmp (f->str, yes[i]) == 0;
          return TRUE;
        }
  if (f->kind == PB_NUMBER && f->integral && !f->negative && f->u <= 1)
    {
      *out = f->u == 1;
      return TRUE;
    }
  return field_error (im, f, error, CS_ERROR_PARSE, "'%s' must be true or false", name);
}

/* An enum field, written as its word or its number; *F is the field, NULL when absent. */
static gboolean
get_enum (Imp *im, const PbField *msg, const char *name, const EnumValue *values, guint n,
          gint *out, const PbField **where, GError **error)
{
  const PbField *f;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (where)
    *where = f;
  if (f == NULL)
    return TRUE;
  for (guint i = 0; i < n; i++)
    if ((f->kind == PB_WORD && strcmp (f->str, values[i].word) == 0)
        || (f->kind == PB_NUMBER && f->integral && !f->negative
            && f->u == (guint64) values[i].value))
      {
        *out = values[i].value;
        return TRUE;
      }
  g_autoptr (GString) choices = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (choices, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                            values[i].word);
  return field_error (im, f, error, CS_ERROR_PARSE, "unknown %s '%s': use %s", name,
                      f->kind == PB_MSG ? "{...}" : f->str, choices->str);
}

static gboolean
check_string (Imp *im, const PbField *f, gboolean nonempty, GError **error)
{
  if (f->kind != PB_STRING)
    return field_error (im, f, error, CS_ERROR_PARSE, "'%s' takes a quoted string", f->name);
  if (nonempty && f->str[0] == '\0')
    return field_error (im, f, error, CS_ERROR_PARSE, "'%s' must not be empty", f->name);
  if (strlen (f->str) > MAX_NAME)
    return field_error (im, f, error, CS_ERROR_LIMIT, "'%s' is longer than %d bytes", f->name,
                        MAX_NAME);
  return TRUE;
}

static gboolean
get_string (Imp *im, const PbField *msg, const char *name, const char **out, GError **error)
{
  const PbField *f;
  if (!get_one (im, msg, name, &f, error))
    return FALSE;
  if (f && !check_string (im, f, FALSE, error))
    return FALSE;
  if (f)
    *out = f->str;
  return TRUE;
}

static gboolean
get_message (Imp *im, const PbField *msg, const char *name, const PbField **out, GError **error)
{
  if (!get_one (im, msg, name, out, error))
    return FALSE;
  if (*out && (*out)->kind != PB_MSG)
    return field_error (im, *out, error, CS_ERROR_PARSE, "'%s' takes a message in braces",
                        name);
  return TRUE;
}

/* ---------------------------------------------------------------------------------------- */
/* Layers                                                                                    */

typedef enum {
  K_OTHER, K_DATA, K_LOSS, K_INPUT, K_CONV, K_POOL, K_LRN, K_RELU, K_SIGMOID, K_TANH,
  K_DROPOUT, K_IP, K_SOFTMAX, K_CONCAT, K_ELTWISE, K_BN, K_SCALE, K_FLATTEN, K_SPLIT,
} Kind;

/* Caffe's layer types: the V2 name, the V1 enum word and number, and what cnnscope makes. */
static const struct {
  const char *v2, *v1;
  gint v1_number;
  Kind kind;
} layer_types[] = {
  { "AbsVal", "ABSVAL", 35, K_OTHER },
  { "Accuracy", "ACCURACY", 1, K_LOSS },
  { "ArgMax", "ARGMAX", 30, K_OTHER },
  { "BNLL", "BNLL", 2, K_OTHER },
  { "Concat", "CONCAT", 3, K_CONCAT },
  { "ContrastiveLoss", "CONTRASTIVE_LOSS", 37, K_LOSS },
  { "Convolution", "CONVOLUTION", 4, K_CONV },
  { "Data", "DATA", 5, K_DATA },
  { "Deconvolution", "DECONVOLUTION", 39, K_OTHER },
  { "Dropout", "DROPOUT", 6, K_DROPOUT },
  { "DummyData", "DUMMY_DATA", 32, K_DATA },
  { "EuclideanLoss", "EUCLIDEAN_LOSS", 7, K_LOSS },
  { "Eltwise", "ELTWISE", 25, K_ELTWISE },
  { "Exp", "EXP", 38, K_OTHER },
  { "Flatten", "FLATTEN", 8, K_FLATTEN },
  { "HDF5Data", "HDF5_DATA", 9, K_DATA },
  { "HDF5Output", "HDF5_OUTPUT", 10, K_OTHER },
  { "HingeLoss", "HINGE_LOSS", 28, K_LOSS },
  { "Im2col", "IM2COL", 11, K_OTHER },
  { "ImageData", "IMAGE_DATA", 12, K_DATA },
  { "InfogainLoss", "INFOGAIN_LOSS", 13, K_LOSS },
  { "InnerProduct", "INNER_PRODUCT", 14, K_IP },
  { "LRN", "LRN", 15, K_LRN },
  { "MemoryData", "MEMORY_DATA", 29, K_DATA },
  { "MultinomialLogisticLoss", "MULTINOMIAL_LOGISTIC_LOSS", 16, K_LOSS },
  { "MVN", "MVN", 34, K_OTHER },
  { "Pooling", "POOLING", 17, K_POOL },
  { "Power", "POWER", 26, K_OTHER },
  { "ReLU", "RELU", 18, K_RELU },
  { "Sigmoid", "SIGMOID", 19, K_SIGMOID },
  { "SigmoidCrossEntropyLoss", "SIGMOID_CROSS_ENTROPY_LOSS", 27, K_LOSS },
  { "Silence", "SILENCE", 36, K_OTHER },
  { "Softmax", "SOFTMAX", 20, K_SOFTMAX },
  { "SoftmaxWithLoss", "SOFTMAX_LOSS", 21, K_LOSS },
  { "Split", "SPLIT", 22, K_SPLIT },
  { "Slice", "SLICE", 33, K_OTHER },
  { "TanH", "TANH", 23, K_TANH },
  { "WindowData", "WINDOW_DATA", 24, K_DATA },
  { "Threshold", "THRESHOLD", 31, K_OTHER },
  /* V2 only */
  { "Input", NULL, -1, K_INPUT },
  { "BatchNorm", NULL, -1, K_BN },
  { "Scale", NULL, -1, K_SCALE },
  { "AnnotatedData", NULL, -1, K_DATA },
  { "VideoData", NULL, -1, K_DATA },
};

#define SUPPORTED_TYPES "Input, Convolution, Pooling, LRN, ReLU, Sigmoid, TanH, Dropout, " \
  "InnerProduct, Softmax, Concat, Eltwise (SUM), BatchNorm, Scale (after BatchNorm), Flatten " \
  "and Split"

typedef struct {
  const PbField *f;             /* the layer message */
  const char *name;             /* written, or made up when the file gives none */
  CsSrcPos pos;                 /* the name field, or the layer keyword */
  const PbField *type_f;
  const char *type;             /* as written, for messages */
  Kind kind;
  gboolean known;               /* a type Caffe has, supported or not */
  GPtrArray *bottoms, *tops;    /* const PbField* */
  gboolean skip;                /* excluded from the TEST net by include/exclude rules */
  guint *in;                    /* the bottoms' nodes, once resolved */
} Layer;

static const EnumValue phase_values[] = { { "TRAIN", 0 }, { "TEST", 1 } };

/* Caffe's NetStateRule against the state of a deploy net: phase TEST, the file's level and
 * stages. */
static gboolean
rule_met (Imp *im, const PbField *rule, gboolean *met, GError **error)
{
  gint phase = 1;
  const PbField *phase_f;
  gint64 min_level = G_MININT64, max_level = G_MAXINT64;
  if (rule->kind != PB_MSG)
    return field_error (im, rule, error, CS_ERROR_PARSE, "'%s' takes a message in braces",
                        rule->name);
  if (!get_enum (im, rule, "phase", phase_values, G_N_ELEMENTS (phase_values), &phase, &phase_f,
                 error)
      || !get_int (im, rule, "min_level", G_MININT32, G_MAXINT32, &min_level, error)
      || !get_int (im, rule, "max_level", G_MININT32, G_MAXINT32, &max_level, error))
    return FALSE;
  *met = phase == 1 && im->level >= min_level && im->level <= max_level;
  for (const PbField *f = rule->child; f; f = f->next)
    {
      gboolean stage = strcmp (f->name, "stage") == 0;
      if (!stage && strcmp (f->name, "not_stage") != 0)
        continue;
      if (!check_string (im, f, FALSE, error))
        return FALSE;
      gboolean have = FALSE;
      for (guint i = 0; i < im->stages->len; i++)
        if (strcmp (im->stages->pdata[i], f->str) == 0)
          have = TRUE;
      if (have != stage)
        *met = FALSE;
    }
  return TRUE;
}

/* The fields every layer has, its type and whether the deploy net includes it. */
static gboolean
read_layer (Imp *im, const PbField *f, Layer *l, GError **error)
{
  l->f = f;
  l->pos = (CsSrcPos) { f->line, f->col, NULL };
  if (f->kind != PB_MSG)
    return field_error (im, f, error, CS_ERROR_PARSE, "'%s' takes a message in braces",
                        f->name);
  const PbField *v0, *name_f;
  if (!get_one (im, f, "layer", &v0, error) || !get_one (im, f, "name", &name_f, error))
    return FALSE;
  if (v0)
    return pos_error (im->g, v0->line, v0->col, error, CS_ERROR_UNSUPPORTED,
                      "the V0 format (layers { layer { ... } }) is not supported: upgrade the "
                      "file with Caffe's upgrade_net_proto_text");
  if (name_f)
    {
      if (!check_string (im, name_f, FALSE, error))
        return FALSE;
      if (name_f->str[0])
        {
          l->name = name_f->str;
          l->pos = (CsSrcPos) { name_f->line, name_f->col, NULL };
        }
    }

  if (!get_one (im, f, "type", &l->type_f, error))
    return FALSE;
  const PbField *t = l->type_f;
  if (t == NULL)
    return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE, "the layer has no type");
  if (t->kind == PB_MSG)
    return field_error (im, t, error, CS_ERROR_PARSE,
                        "'type' takes a quoted name (or a V1 word such as CONVOLUTION)");
  l->type = t->str;
  l->kind = K_OTHER;
  for (guint i = 0; i < G_N_ELEMENTS (layer_types); i++)
    {
      gboolean hit;
      if (t->kind == PB_STRING)
        hit = strcmp (t->str, layer_types[i].v2) == 0;
      else if (t->kind == PB_WORD)
        hit = layer_types[i].v1 && strcmp (t->str, layer_types[i].v1) == 0;
      else
        hit = t->integral && !t->negative && t->u == (guint64) layer_types[i].v1_number;
      if (hit)
        {
          l->kind = layer_types[i].kind;
          l->known = TRUE;
          /* Messages name the type as Caffe's current files do. */
          if (t->kind == PB_NUMBER)
            l->type = layer_types[i].v1;
          break;
        }
    }

  l->bottoms = get_all (f, "bottom");
  l->tops = get_all (f, "top");
  for (guint i = 0; i < l->bottoms->len; i++)
    if (!check_string (im, l->bottoms->pdata[i], TRUE, error))
      return FALSE;
  for (guint i = 0; i < l->tops->len; i++)
    if (!check_string (im, l->tops->pdata[i], TRUE, error))
      return FALSE;

  g_autoptr (GPtrArray) include = get_all (f, "include");
  g_autoptr (GPtrArray) exclude = get_all (f, "exclude");
  if (include->len && exclude->len)
    {
      const PbField *e = exclude->pdata[0];
      return pos_error (im->g, e->line, e->col, error, CS_ERROR_PARSE,
                        "a layer takes include rules or exclude rules, not both");
    }
  /* Included when an include rule is met (or there is none), unless an exclude rule is. */
  gboolean in = include->len == 0;
  for (guint i = 0; i < include->len; i++)
    {
      gboolean met;
      if (!rule_met (im, include->pdata[i], &met, error))
        return FALSE;
      in = in || met;
    }
  for (guint i = 0; i < exclude->len; i++)
    {
      gboolean met;
      if (!rule_met (im, exclude->pdata[i], &met, error))
        return FALSE;
      in = in && !met;
    }
  l->skip = !in;
  return TRUE;
}

static void
layer_clear (Layer *l)
{
  if (l->bottoms)
    g_ptr_array_unref (l->bottoms);
  if (l->tops)
    g_ptr_array_unref (l->tops);
  g_free (l->in);
}

/* "inception_3a/1x1" belongs to the module "inception_3a"; names without a '/' (or with an
 * empty part around the last one) to none. */
static char *
module_of (const char *name)
{
  const char *slash = strrchr (name, '/');
  if (slash == NULL || slash == name || slash[1] == '\0' || name[0] == '/')
    return g_strdup ("");
  char *m = g_strndup (name, slash - name);
  if (strstr (m, "//"))
    {
      g_free (m);
      return g_strdup ("");
    }
  return m;
}

/* A name for a layer the file leaves unnamed: its top, or its type, made unique. */
static char *
made_up_name (Imp *im, const Layer *l)
{
  const char *base = l->tops->len ? ((const PbField *) l->tops->pdata[0])->str : l->type;
  /* Each base remembers where its suffixes got to: a chain of unnamed in-place layers on one
   * blob costs linear time. */
  guint i = GPOINTER_TO_UINT (g_hash_table_lookup (im->next_suffix, base));
  char *name = i ? g_strdup_printf ("%s_%u", base, i) : g_strdup (base);
  while (g_hash_table_contains (im->written_names, name) || cs_graph_lookup (im->g, name))
    {
      g_free (name);
      i = MAX (i + 1, 2);
      name = g_strdup_printf ("%s_%u", base, i);
    }
  g_hash_table_insert (im->next_suffix, (gpointer) base, GUINT_TO_POINTER (MAX (i + 1, 2)));
  return name;
}

static CsNode *
add_node (Imp *im, const Layer *l, CsOp op, guint n_inputs, GError **error)
{
  g_autofree char *made = l->name ? NULL : made_up_name (im, l);
  const char *name = l->name ? l->name : made;
  g_autofree char *module = module_of (name);
  CsNode *n = cs_graph_add_node (im->g, op, module, name, n_inputs, &l->pos, error);
  if (n == NULL)
    return NULL;
  if (n_inputs)
    memcpy (n->inputs, l->in, n_inputs * sizeof (guint));
  NodeInfo info = { 0 };
  g_array_append_val (im->info, info);
  return n;
}

/* Points each top of L at NODE. A blob may have a second producer only in place. */
static gboolean
set_tops (Imp *im, const Layer *l, guint node, GError **error)
{
  for (guint i = 0; i < l->tops->len; i++)
    {
      const PbField *top = l->tops->pdata[i];
      Blob *b = g_hash_table_lookup (im->blobs, top->str);
      if (b)
        {
          gboolean in_place = FALSE;
          for (guint j = 0; j < l->bottoms->len; j++)
            if (strcmp (((const PbField *) l->bottoms->pdata[j])->str, top->str) == 0)
              in_place = TRUE;
          if (!in_place)
            {
              const CsNode *prev = cs_graph_node (im->g, b->node);
              return field_error (im, top, error, CS_ERROR_NAME,
                                  "the blob '%s' already comes from layer '%s' (line %u): a "
                                  "layer may reuse a blob name only in place, as its bottom too",
                                  top->str, prev->name, prev->pos.line);
            }
        }
      else
        {
          b = g_new0 (Blob, 1);
          g_hash_table_insert (im->blobs, (gpointer) top->str, b);
        }
      b->node = node;
      b->stale = NULL;
    }
  return TRUE;
}

static gboolean
unsupported (Imp *im, const PbField *at, const Layer *l, GError **error, const char *format, ...)
  G_GNUC_PRINTF (5, 6);

static gboolean
unsupported (Imp *im, const PbField *at, const Layer *l, GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_autofree char *who = l->name ? g_strdup_printf ("layer '%s': ", l->name) : g_strdup ("");
  return pos_error (im->g, at ? at->vline : l->pos.line, at ? at->vcol : l->pos.col, error,
                    CS_ERROR_UNSUPPORTED, "%s%s", who, msg);
}

/* Checks the number of bottoms and tops of L against its kind, then finds the bottoms' nodes. */
static gboolean
resolve_bottoms (Imp *im, Layer *l, guint min_bottoms, guint max_bottoms, gboolean any_tops,
                 GError **error)
{
  guint nb = l->bottoms->len, nt = l->tops->len;
  if (nb < min_bottoms)
    return pos_error (im->g, l->pos.line, l->pos.col, error, CS_ERROR_PARSE,
                      "the %s layer needs %s%u bottom%s, not %u", l->type,
                      min_bottoms == max_bottoms ? "" : "at least ", min_bottoms,
                      min_bottoms == 1 ? "" : "s", nb);
  if (nb > max_bottoms)
    {
      const PbField *extra = l->bottoms->pdata[max_bottoms];
      return unsupported (im, extra, l, error, "the %s layer has %u bottoms: cnnscope takes %s%u",
                          l->type, nb, min_bottoms == max_bottoms ? "" : "at most ",
                          max_bottoms);
    }
  if (nt == 0)
    return pos_error (im->g, l->pos.line, l->pos.col, error, CS_ERROR_PARSE,
                      "the %s layer has no top", l->type);
  if (nt > 1 && !any_tops)
    return unsupported (im, l->tops->pdata[1], l, error,
                        "the %s layer has %u tops: cnnscope's layers have one output", l->type,
                        nt);
  l->in = g_new0 (guint, MAX (nb, 1));
  for (guint i = 0; i < nb; i++)
    {
      const PbField *bottom = l->bottoms->pdata[i];
      Blob *b = g_hash_table_lookup (im->blobs, bottom->str);
      if (b == NULL)
        return field_error (im, bottom, error, CS_ERROR_NAME,
                            "unknown blob '%s': no layer before this one has it as a top",
                            bottom->str);
      if (b->stale)
        return unsupported (im, bottom, l, error,
                            "the blob '%s' is the output of a BatchNorm before Scale '%s', "
                            "which cnnscope merges into it: only the scaled output exists",
                            bottom->str, b->stale);
      l->in[i] = b->node;
      g_array_index (im->info, NodeInfo, b->node).uses++;
    }
  return TRUE;
}

/* A size given as NAME (when REPEATED: one value for both axes, or height then width) or as the
 * pair PAIR_h and PAIR_w. */
static gboolean
get_size (Imp *im, const PbField *msg, const char *name, const char *pair, gboolean repeated,
          guint64 min, guint64 max, guint64 hw[2], gboolean *given, GError **error)
{
  g_autoptr (GPtrArray) all = get_all (msg, name);
  g_autofree char *hname = g_strconcat (pair, "_h", NULL);
  g_autofree char *wname = g_strconcat (pair, "_w", NULL);
  gboolean has_h, has_w;
  guint64 h = hw[0], w = hw[1];
  if (!get_uint (im, msg, hname, min, max, &h, &has_h, error)
      || !get_uint (im, msg, wname, min, max, &w, &has_w, error))
    return FALSE;
  *given = all->len > 0 || has_h || has_w;
  if (has_h != has_w)
    return pos_error (im->g, msg->vline, msg->vcol, error, CS_ERROR_PARSE,
                      "'%s' and '%s' come as a pair", hname, wname);
  if (has_h && all->len)
    {
      const PbField *f = all->pdata[0];
      return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                        "give '%s' or '%s' and '%s', not both", name, hname, wname);
    }
  if (has_h)
    {
      hw[0] = h, hw[1] = w;
      return TRUE;
    }
  if (all->len > (repeated ? 2u : 1u))
    {
      const PbField *f = all->pdata[repeated ? 2 : 1];
      if (!repeated)
        return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                          "'%s' is given twice", name);
      return pos_error (im->g, f->line, f->col, error, CS_ERROR_UNSUPPORTED,
                        "'%s' has %u values: cnnscope's layers are two-dimensional", name,
                        all->len);
    }
  for (guint i = 0; i < all->len; i++)
    if (!check_uint (im, all->pdata[i], min, max, &hw[i], error))
      return FALSE;
  if (all->len == 1)
    hw[1] = hw[0];
  return TRUE;
}

static gboolean
check_axis (Imp *im, const Layer *l, const PbField *msg, const char *name, gint64 want,
            GError **error)
{
  gint64 axis = want;
  if (!get_int (im, msg, name, G_MININT32, G_MAXINT32, &axis, error))
    return FALSE;
  if (axis != want)
    {
      const PbField *f;
      get_one (im, msg, name, &f, NULL);
      return unsupported (im, f, l, error, "%s %s: %" G_GINT64_FORMAT ": cnnscope supports only "
                          "%s %" G_GINT64_FORMAT, l->type, name, axis, name, want);
    }
  return TRUE;
}

static gboolean
import_conv (Imp *im, Layer *l, GError **error)
{
  const PbField *cp;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "convolution_param", &cp, error))
    return FALSE;
  if (cp == NULL)
    return pos_error (im->g, l->pos.line, l->pos.col, error, CS_ERROR_PARSE,
                      "a Convolution layer needs convolution_param with num_output and "
                      "kernel_size");
  guint64 out = 0, groups = 1, k[2] = { 0, 0 }, s[2] = { 1, 1 }, pad[2] = { 0, 0 };
  guint64 dil[2] = { 1, 1 };
  gboolean has_out, has_k, given, bias = TRUE;
  if (!get_uint (im, cp, "num_output", 1, MAX_CH, &out, &has_out, error)
      || !get_size (im, cp, "kernel_size", "kernel", TRUE, 1, MAX_DIM, k, &has_k, error)
      || !get_size (im, cp, "stride", "stride", TRUE, 1, MAX_DIM, s, &given, error)
      || !get_size (im, cp, "pad", "pad", TRUE, 0, MAX_DIM, pad, &given, error)
      || !get_size (im, cp, "dilation", "dilation", TRUE, 1, MAX_DIM, dil, &given, error)
      || !get_uint (im, cp, "group", 1, MAX_CH, &groups, NULL, error)
      || !get_bool (im, cp, "bias_term", &bias, error)
      || !check_axis (im, l, cp, "axis", 1, error))
    return FALSE;
  if (!has_out)
    return pos_error (im->g, cp->vline, cp->vcol, error, CS_ERROR_PARSE,
                      "convolution_param needs num_output");
  if (!has_k)
    return pos_error (im->g, cp->vline, cp->vcol, error, CS_ERROR_PARSE,
                      "convolution_param needs kernel_size (or kernel_h and kernel_w)");
  CsNode *n = add_node (im, l, CS_OP_CONV, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.out = out;
  n->p.kh = k[0], n->p.kw = k[1];
  n->p.sh = s[0], n->p.sw = s[1];
  n->p.ph = pad[0], n->p.pw = pad[1];
  n->p.dh = dil[0], n->p.dw = dil[1];
  n->p.groups = groups;
  n->p.nobias = !bias;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_pool (Imp *im, Layer *l, GError **error)
{
  static const EnumValue methods[] = { { "MAX", 0 }, { "AVE", 1 }, { "STOCHASTIC", 2 } };
  static const EnumValue rounds[] = { { "CEIL", 0 }, { "FLOOR", 1 } };
  const PbField *pp, *method_f, *round_f, *ceil_f;
  gint method = 0, round = 0;
  guint64 k[2] = { 0, 0 }, s[2] = { 1, 1 }, pad[2] = { 0, 0 };
  gboolean has_k, has_s, has_pad, global = FALSE, ceil_mode = TRUE;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "pooling_param", &pp, error))
    return FALSE;
  if (pp == NULL)
    return pos_error (im->g, l->pos.line, l->pos.col, error, CS_ERROR_PARSE,
                      "a Pooling layer needs pooling_param with kernel_size or global_pooling");
  if (!get_enum (im, pp, "pool", methods, G_N_ELEMENTS (methods), &method, &method_f, error)
      || !get_size (im, pp, "kernel_size", "kernel", FALSE, 1, MAX_DIM, k, &has_k, error)
      || !get_size (im, pp, "stride", "stride", FALSE, 1, MAX_DIM, s, &has_s, error)
      || !get_size (im, pp, "pad", "pad", FALSE, 0, MAX_DIM, pad, &has_pad, error)
      || !get_bool (im, pp, "global_pooling", &global, error)
      || !get_enum (im, pp, "round_mode", rounds, G_N_ELEMENTS (rounds), &round, &round_f,
                    error)
      || !get_one (im, pp, "ceil_mode", &ceil_f, error)
      || !get_bool (im, pp, "ceil_mode", &ceil_mode, error))
    return FALSE;
  if (round_f && ceil_f)
    return pos_error (im->g, ceil_f->line, ceil_f->col, error, CS_ERROR_PARSE,
                      "give round_mode or ceil_mode, not both");
  if (method == 2)
    return unsupported (im, method_f, l, error, "stochastic pooling is not supported");
  if (global && (has_k || (has_s && (s[0] != 1 || s[1] != 1))
                 || (has_pad && (pad[0] || pad[1]))))
    return pos_error (im->g, pp->vline, pp->vcol, error, CS_ERROR_PARSE,
                      "global_pooling takes no kernel_size, and only stride 1 and pad 0");
  if (!global && !has_k)
    return pos_error (im->g, pp->vline, pp->vcol, error, CS_ERROR_PARSE,
                      "pooling_param needs kernel_size (or kernel_h and kernel_w) or "
                      "global_pooling: true");
  CsNode *n = add_node (im, l, method == 0 ? CS_OP_MAXPOOL : CS_OP_AVGPOOL, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.global = global;
  n->p.kh = k[0], n->p.kw = k[1];
  /* Caffe's stride defaults to 1, not to the kernel as cnnscope's does. */
  n->p.sh = s[0], n->p.sw = s[1];
  n->p.ph = pad[0], n->p.pw = pad[1];
  n->p.ceil = round_f ? round == 0 : ceil_mode;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_lrn (Imp *im, Layer *l, GError **error)
{
  static const EnumValue regions[] = { { "ACROSS_CHANNELS", 0 }, { "WITHIN_CHANNEL", 1 } };
  const PbField *lp, *region_f;
  guint64 size = 5;
  double alpha = 1, beta = 0.75, k = 1;   /* Caffe's defaults, which are not cnnscope's */
  gint region = 0;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "lrn_param", &lp, error)
      || !get_uint (im, lp, "local_size", 1, 1024, &size, NULL, error)
      || !get_float (im, lp, "alpha", 0, 1e6, &alpha, error)
      || !get_float (im, lp, "beta", 0, 1e6, &beta, error)
      || !get_float (im, lp, "k", 0, 1e6, &k, error)
      || !get_enum (im, lp, "norm_region", regions, G_N_ELEMENTS (regions), &region, &region_f,
                    error))
    return FALSE;
  if (region == 1)
    return unsupported (im, region_f, l, error,
                        "LRN norm_region WITHIN_CHANNEL is not supported: cnnscope's lrn "
                        "normalises across channels");
  CsNode *n = add_node (im, l, CS_OP_LRN, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.size = size;
  n->p.alpha = alpha;   /* both divide alpha by the window size */
  n->p.beta = beta;
  n->p.k = k;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_pointwise (Imp *im, Layer *l, GError **error)
{
  double slope = 0, ratio = 0.5;
  const PbField *pm = NULL;
  CsOp op;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error))
    return FALSE;
  switch (l->kind)
    {
    case K_RELU:
      if (!get_message (im, l->f, "relu_param", &pm, error)
          || !get_float (im, pm, "negative_slope", -1e6, 1e6, &slope, error))
        return FALSE;
      if (slope < 0 || slope > 1)
        {
          const PbField *f;
          get_one (im, pm, "negative_slope", &f, NULL);
          return unsupported (im, f, l, error,
                              "a ReLU negative_slope of %g: cnnscope's leaky ReLU takes slopes "
                              "from 0 to 1", slope);
        }
      op = slope == 0 ? CS_OP_RELU : CS_OP_LEAKYRELU;
      break;
    case K_SIGMOID:
      op = CS_OP_SIGMOID;
      break;
    case K_TANH:
      op = CS_OP_TANH;
      break;
    case K_DROPOUT:
      if (!get_message (im, l->f, "dropout_param", &pm, error)
          || !get_float (im, pm, "dropout_ratio", 0, 0.999999, &ratio, error))
        return FALSE;
      op = CS_OP_DROPOUT;
      break;
    case K_SOFTMAX:
      if (!get_message (im, l->f, "softmax_param", &pm, error)
          || !check_axis (im, l, pm, "axis", 1, error))
        return FALSE;
      op = CS_OP_SOFTMAX;
      break;
    case K_FLATTEN:
      if (!get_message (im, l->f, "flatten_param", &pm, error)
          || !check_axis (im, l, pm, "axis", 1, error)
          || !check_axis (im, l, pm, "end_axis", -1, error))
        return FALSE;
      op = CS_OP_FLATTEN;
      break;
    default:
      g_assert_not_reached ();
    }
  CsNode *n = add_node (im, l, op, 1, error);
  if (n == NULL)
    return FALSE;
  if (op == CS_OP_LEAKYRELU)
    n->p.p = slope;
  else if (op == CS_OP_DROPOUT)
    n->p.p = ratio;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_ip (Imp *im, Layer *l, GError **error)
{
  const PbField *ip;
  guint64 out = 0;
  gboolean has_out, bias = TRUE;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "inner_product_param", &ip, error)
      || !get_uint (im, ip, "num_output", 1, MAX_CH, &out, &has_out, error)
      || !get_bool (im, ip, "bias_term", &bias, error)
      || !check_axis (im, l, ip, "axis", 1, error))
    return FALSE;
  if (!has_out)
    return pos_error (im->g, ip ? ip->vline : l->pos.line, ip ? ip->vcol : l->pos.col, error,
                      CS_ERROR_PARSE, "an InnerProduct layer needs inner_product_param with "
                      "num_output");
  CsNode *n = add_node (im, l, CS_OP_FC, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.out = out;
  n->p.nobias = !bias;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_concat (Imp *im, Layer *l, GError **error)
{
  const PbField *cp;
  if (!resolve_bottoms (im, l, 1, MAX_JOIN, FALSE, error)
      || !get_message (im, l->f, "concat_param", &cp, error)
      || !check_axis (im, l, cp, "axis", 1, error)
      || !check_axis (im, l, cp, "concat_dim", 1, error))  /* V1's name for the axis */
    return FALSE;
  /* Caffe copies a single bottom through. */
  guint nb = l->bottoms->len;
  CsNode *n = add_node (im, l, nb == 1 ? CS_OP_IDENTITY : CS_OP_CONCAT, nb, error);
  return n && set_tops (im, l, n->id, error);
}

static gboolean
import_eltwise (Imp *im, Layer *l, GError **error)
{
  static const EnumValue ops[] = { { "PROD", 0 }, { "SUM", 1 }, { "MAX", 2 } };
  const PbField *ep, *op_f;
  gint op = 1;
  if (!resolve_bottoms (im, l, 2, MAX_JOIN, FALSE, error)
      || !get_message (im, l->f, "eltwise_param", &ep, error)
      || !get_enum (im, ep, "operation", ops, G_N_ELEMENTS (ops), &op, &op_f, error))
    return FALSE;
  if (op == 0)
    return unsupported (im, op_f, l, error, "Eltwise operation PROD (an elementwise product) "
                        "is not supported: cnnscope has no such layer kind");
  if (op == 2)
    return unsupported (im, op_f, l, error, "Eltwise operation MAX (an elementwise maximum) "
                        "is not supported: cnnscope has no such layer kind");
  g_autoptr (GPtrArray) coeffs = get_all (ep, "coeff");
  if (coeffs->len && coeffs->len != l->bottoms->len)
    return pos_error (im->g, ((PbField *) coeffs->pdata[0])->line,
                      ((PbField *) coeffs->pdata[0])->col, error, CS_ERROR_PARSE,
                      "Eltwise has %u coeff values for %u bottoms", coeffs->len,
                      l->bottoms->len);
  for (guint i = 0; i < coeffs->len; i++)
    {
      const PbField *c = coeffs->pdata[i];
      if (c->kind != PB_NUMBER)
        return field_error (im, c, error, CS_ERROR_PARSE, "'coeff' must be a number");
      if (c->num != 1)
        return unsupported (im, c, l, error, "an Eltwise sum weighted by coeff %g: cnnscope's "
                            "add has coefficients of 1", c->num);
    }
  CsNode *n = add_node (im, l, CS_OP_ADD, l->bottoms->len, error);
  return n && set_tops (im, l, n->id, error);
}

static gboolean
import_bn (Imp *im, Layer *l, GError **error)
{
  const PbField *bp;
  double eps = 1e-5, fraction = 0.999;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "batch_norm_param", &bp, error)
      || !get_float (im, bp, "eps", 0, 1, &eps, error)
      || !get_float (im, bp, "moving_average_fraction", 0, 1, &fraction, error))
    return FALSE;
  /* Caffe's BatchNorm has no scale and shift: a Scale layer after it adds them. */
  CsNode *n = add_node (im, l, CS_OP_BN, 1, error);
  if (n == NULL)
    return FALSE;
  n->p.noaffine = TRUE;
  n->p.eps = eps;
  n->p.momentum = 1 - fraction;
  g_array_index (im->info, NodeInfo, n->id).bare_bn = TRUE;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_scale (Imp *im, Layer *l, GError **error)
{
  const PbField *sp;
  gboolean bias = FALSE;
  gint64 axis = 1, num_axes = 1;
  if (!resolve_bottoms (im, l, 1, 1, FALSE, error)
      || !get_message (im, l->f, "scale_param", &sp, error)
      || !get_bool (im, sp, "bias_term", &bias, error)
      || !get_int (im, sp, "axis", G_MININT32, G_MAXINT32, &axis, error)
      || !get_int (im, sp, "num_axes", G_MININT32, G_MAXINT32, &num_axes, error))
    return FALSE;
  guint id = l->in[0];
  NodeInfo *info = &g_array_index (im->info, NodeInfo, id);
  const CsNode *bn = cs_graph_node (im->g, id);
  if (!info->bare_bn || info->uses != 1)
    return unsupported (im, l->bottoms->pdata[0], l, error,
                        "a Scale layer is supported only right after a BatchNorm, as its only "
                        "reader (the pair becomes one batch norm with a learned scale and "
                        "shift); '%s' is not such a BatchNorm output",
                        ((const PbField *) l->bottoms->pdata[0])->str);
  if (!bias || axis != 1 || num_axes != 1)
    return unsupported (im, sp, l, error, "a Scale after BatchNorm '%s' needs bias_term: true "
                        "(and the default axis and num_axes): cnnscope's batch norm learns a "
                        "scale and a shift per channel", bn->name);
  info->bare_bn = FALSE;
  cs_graph_node (im->g, id)->p.noaffine = FALSE;
  /* Out of place, the BatchNorm's own top would still name its unscaled output. */
  const PbField *bottom = l->bottoms->pdata[0];
  gboolean in_place = FALSE;
  for (guint i = 0; i < l->tops->len; i++)
    if (strcmp (((const PbField *) l->tops->pdata[i])->str, bottom->str) == 0)
      in_place = TRUE;
  if (!set_tops (im, l, id, error))
    return FALSE;
  if (!in_place)
    ((Blob *) g_hash_table_lookup (im->blobs, bottom->str))->stale =
      l->name ? l->name : "(unnamed)";
  return TRUE;
}

static gboolean
import_split (Imp *im, Layer *l, GError **error)
{
  /* Every top is the bottom itself: no node. */
  return resolve_bottoms (im, l, 1, 1, TRUE, error) && set_tops (im, l, l->in[0], error);
}

/* An input shape from its dims: N, C, H, W, or N, C for a vector. N, the batch, is kept aside. */
static gboolean
dims_to_shape (Imp *im, GPtrArray *dims, guint line, guint col, CsShape *shape, GError **error)
{
  guint n = dims->len;
  if (n != 4 && n != 2)
    return pos_error (im->g, line, col, error, n == 0 ? CS_ERROR_PARSE : CS_ERROR_UNSUPPORTED,
                      "an input of %u dimension%s: cnnscope takes N, C, H, W (or N, C)", n,
                      n == 1 ? "" : "s");
  static const guint64 max[4] = { G_MAXINT32, MAX_CH, MAX_DIM, MAX_DIM };
  guint64 v[4] = { 1, 1, 1, 1 };
  for (guint i = 0; i < n; i++)
    if (!check_uint (im, dims->pdata[i], 1, max[i], &v[i], error))
      return FALSE;
  im->batch = v[0];
  *shape = (CsShape) { v[1], n == 4 ? v[2] : 1, n == 4 ? v[3] : 1 };
  return TRUE;
}

static gboolean
add_input (Imp *im, Layer *l, const CsShape *shape, GError **error)
{
  CsNode *n = add_node (im, l, CS_OP_INPUT, 0, error);
  if (n == NULL)
    return FALSE;
  n->p.shape = *shape;
  return set_tops (im, l, n->id, error);
}

static gboolean
import_input (Imp *im, Layer *l, GError **error)
{
  if (l->bottoms->len)
    return field_error (im, l->bottoms->pdata[0], error, CS_ERROR_PARSE,
                        "an Input layer takes no bottom");
  if (l->tops->len != 1)
    return pos_error (im->g, l->pos.line, l->pos.col, error,
                      l->tops->len ? CS_ERROR_UNSUPPORTED : CS_ERROR_PARSE,
                      "the Input layer has %u tops: cnnscope networks take one input",
                      l->tops->len);
  const PbField *ip;
  if (!get_message (im, l->f, "input_param", &ip, error))
    return FALSE;
  g_autoptr (GPtrArray) shapes = get_all (ip, "shape");
  if (shapes->len != 1)
    {
      const PbField *at = shapes->len ? shapes->pdata[1] : ip ? ip : l->f;
      return pos_error (im->g, at->line, at->col, error, CS_ERROR_PARSE,
                        "an Input layer needs one input_param { shape { dim: N dim: C dim: H "
                        "dim: W } }");
    }
  const PbField *sh = shapes->pdata[0];
  if (sh->kind != PB_MSG)
    return field_error (im, sh, error, CS_ERROR_PARSE, "'shape' takes a message in braces");
  g_autoptr (GPtrArray) dims = get_all (sh, "dim");
  CsShape shape;
  return dims_to_shape (im, dims, sh->vline, sh->vcol, &shape, error)
      && add_input (im, l, &shape, error);
}

/* The older declaration at the top of the file: input: "data" with input_shape { dim ... } or
 * four input_dim lines. */
static gboolean
import_top_input (Imp *im, const PbField *root, const PbField *input, GError **error)
{
  g_autoptr (GPtrArray) shapes = get_all (root, "input_shape");
  g_autoptr (GPtrArray) dims = get_all (root, "input_dim");
  if (!check_string (im, input, TRUE, error))
    return FALSE;
  if (shapes->len && dims->len)
    {
      const PbField *f = dims->pdata[0];
      return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                        "give input_shape or input_dim, not both");
    }
  CsShape shape;
  if (shapes->len)
    {
      const PbField *sh = shapes->pdata[0];
      if (shapes->len > 1)
        {
          const PbField *f = shapes->pdata[1];
          return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                            "one input_shape per input: %u for one input", shapes->len);
        }
      if (sh->kind != PB_MSG)
        return field_error (im, sh, error, CS_ERROR_PARSE,
                            "'input_shape' takes a message in braces");
      g_autoptr (GPtrArray) shape_dims = get_all (sh, "dim");
      if (!dims_to_shape (im, shape_dims, sh->vline, sh->vcol, &shape, error))
        return FALSE;
    }
  else if (dims->len)
    {
      if (dims->len != 4)
        {
          const PbField *f = dims->pdata[0];
          return pos_error (im->g, f->line, f->col, error, CS_ERROR_PARSE,
                            "four input_dim values (N, C, H, W) per input, not %u", dims->len);
        }
      if (!dims_to_shape (im, dims, input->line, input->col, &shape, error))
        return FALSE;
    }
  else
    return pos_error (im->g, input->line, input->col, error, CS_ERROR_PARSE,
                      "the input '%s' has no shape: add input_shape { dim: N dim: C dim: H "
                      "dim: W } or four input_dim lines", input->str);

  g_autoptr (GPtrArray) tops = g_ptr_array_new ();
  g_autoptr (GPtrArray) bottoms = g_ptr_array_new ();
  g_ptr_array_add (tops, (gpointer) input);
  Layer l = {
    .f = input, .name = input->str, .pos = { input->vline, input->vcol, NULL },
    .type = "Input", .kind = K_INPUT, .bottoms = bottoms, .tops = tops,
  };
  return add_input (im, &l, &shape, error);
}

static gboolean
import_layer (Imp *im, Layer *l, GError **error)
{
  switch (l->kind)
    {
    case K_INPUT:
      return import_input (im, l, error);
    case K_CONV:
      return import_conv (im, l, error);
    case K_POOL:
      return import_pool (im, l, error);
    case K_LRN:
      return import_lrn (im, l, error);
    case K_RELU:
    case K_SIGMOID:
    case K_TANH:
    case K_DROPOUT:
    case K_SOFTMAX:
    case K_FLATTEN:
      return import_pointwise (im, l, error);
    case K_IP:
      return import_ip (im, l, error);
    case K_CONCAT:
      return import_concat (im, l, error);
    case K_ELTWISE:
      return import_eltwise (im, l, error);
    case K_BN:
      return import_bn (im, l, error);
    case K_SCALE:
      return import_scale (im, l, error);
    case K_SPLIT:
      return import_split (im, l, error);
    case K_DATA:
      return unsupported (im, l->type_f, l, error,
                          "unsupported layer type '%s': cnnscope reads deploy files, not data "
                          "layers; declare the input with an Input layer or input_shape",
                          l->type);
    case K_LOSS:
      return unsupported (im, l->type_f, l, error,
                          "unsupported layer type '%s': loss and accuracy layers belong to "
                          "training files; import the deploy file", l->type);
    case K_OTHER:
      break;
    }
  for (guint i = 0; i < G_N_ELEMENTS (layer_types); i++)
    if (l->type_f->kind == PB_STRING && g_ascii_strcasecmp (l->type, layer_types[i].v2) == 0)
      return unsupported (im, l->type_f, l, error, "unknown layer type '%s': Caffe writes '%s'",
                          l->type, layer_types[i].v2);
  if (l->type_f->kind == PB_NUMBER && !l->known)
    return unsupported (im, l->type_f, l, error, "unknown V1 layer type number %s", l->type);
  return unsupported (im, l->type_f, l, error,
                      "unsupported layer type '%s' (cnnscope imports " SUPPORTED_TYPES ")",
                      l->type);
}

static gboolean
import_net (Imp *im, const PbField *root, Layer **layers_out, guint *n_layers, GError **error)
{
  const char *name = NULL;
  const PbField *state;
  if (!get_string (im, root, "name", &name, error)
      || !get_message (im, root, "state", &state, error)
      || !get_int (im, state, "level", G_MININT32, G_MAXINT32, &im->level, error))
    return FALSE;
  g_autoptr (GPtrArray) stages = get_all (state, "stage");
  for (guint i = 0; i < stages->len; i++)
    {
      const PbField *f = stages->pdata[i];
      if (!check_string (im, f, FALSE, error))
        return FALSE;
      g_ptr_array_add (im->stages, (gpointer) f->str);
    }
  if (name && name[0])
    im->g->name = g_strdup (name);

  g_autoptr (GPtrArray) v2 = get_all (root, "layer");
  g_autoptr (GPtrArray) v1 = get_all (root, "layers");
  if (v2->len && v1->len)
    {
      const PbField *a = v1->pdata[0], *b = v2->pdata[0];
      const PbField *later = a->line > b->line || (a->line == b->line && a->col > b->col) ? a : b;
      return pos_error (im->g, later->line, later->col, error, CS_ERROR_PARSE,
                        "the file mixes 'layer' (V2) and 'layers' (V1): use one format");
    }
  im->v1 = v1->len > 0;
  GPtrArray *list = im->v1 ? v1 : v2;
  Layer *ls = g_new0 (Layer, list->len);
  *layers_out = ls;
  *n_layers = list->len;

  /* First every layer's header: the names made up for unnamed layers avoid all written ones,
   * and the inputs are counted before anything is built. */
  guint n_input_layers = 0;
  const Layer *input_layers[2] = { NULL, NULL };
  for (guint i = 0; i < list->len; i++)
    {
      if (!read_layer (im, list->pdata[i], &ls[i], error))
        return FALSE;
      if (ls[i].name)
        g_hash_table_add (im->written_names, (gpointer) ls[i].name);
      if (!ls[i].skip && ls[i].kind == K_INPUT && n_input_layers++ < 2)
        input_layers[n_input_layers - 1] = &ls[i];
    }
  g_autoptr (GPtrArray) inputs = get_all (root, "input");
  guint n_inputs = inputs->len + n_input_layers;
  if (n_inputs == 0)
    {
      g_autoptr (GPtrArray) shapes = get_all (root, "input_shape");
      g_autoptr (GPtrArray) dims = get_all (root, "input_dim");
      const PbField *orphan = shapes->len ? shapes->pdata[0] : dims->len ? dims->pdata[0] : NULL;
      if (orphan)
        return pos_error (im->g, orphan->line, orphan->col, error, CS_ERROR_PARSE,
                          "'%s' without an input name: add input: \"data\"", orphan->name);
      return pos_error (im->g, 0, 0, error, CS_ERROR_PARSE,
                        "the file declares no input: cnnscope needs an Input layer, or "
                        "input: \"data\" with input_shape or four input_dim lines");
    }
  if (n_inputs > 1)
    {
      /* At the second declaration: top-level ones come first, as Caffe makes them first. */
      const PbField *second = inputs->len > 1 ? inputs->pdata[1] : NULL;
      CsSrcPos at = second ? (CsSrcPos) { second->line, second->col, NULL }
                  : input_layers[inputs->len ? 0 : 1]->pos;
      return pos_error (im->g, at.line, at.col, error, CS_ERROR_UNSUPPORTED,
                        "the file declares %u inputs: cnnscope networks take one", n_inputs);
    }
  /* Caffe creates the top-level input before any layer. */
  if (inputs->len && !import_top_input (im, root, inputs->pdata[0], error))
    return FALSE;
  for (guint i = 0; i < list->len; i++)
    if (!ls[i].skip && !import_layer (im, &ls[i], error))
      return FALSE;
  return TRUE;
}

CsGraph *
cs_caffe_load (const char *file, const char *text, gsize len, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_autoptr (CsGraph) g = cs_graph_new (file);
  if (!cs_graph_set_source (g, text, len, CS_CAFFE_MAX_BYTES, "Caffe files", error))
    return NULL;

  Pb pb = {
    .g = g, .p = g->text, .end = g->text + len, .line = 1, .col = 1,
    .strings = g_string_chunk_new (16384),
    .slabs = g_ptr_array_new_with_free_func (g_free),
  };
  /* A UTF-8 byte order mark: a character the snippets count, but no token. */
  if (len >= 3 && memcmp (g->text, "\xEF\xBB\xBF", 3) == 0)
    {
      pb.p += 3;
      pb.col = 2;
    }
  PbField root = { .name = "", .kind = PB_MSG };
  Imp im = {
    .g = g,
    .blobs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free),
    .info = g_array_new (FALSE, TRUE, sizeof (NodeInfo)),
    .written_names = g_hash_table_new (g_str_hash, g_str_equal),
    .next_suffix = g_hash_table_new (g_str_hash, g_str_equal),
    .stages = g_ptr_array_new (),
  };
  Layer *layers = NULL;
  guint n_layers = 0;
  gboolean ok = parse_fields (&pb, &root, NULL, error)
             && import_net (&im, &root, &layers, &n_layers, error);
  if (ok && g->name == NULL)
    {
      g_autofree char *base = g_path_get_basename (file ? file : "model");
      char *dot = strrchr (base, '.');
      if (dot && dot != base)
        *dot = '\0';
      g->name = g_strdup (base);
    }
  if (ok)
    {
      g->title = g_strdup (g->name);
      g->note = g_strdup_printf ("Imported from a Caffe prototxt (%s format). The file's batch "
                                 "of %" G_GUINT64_FORMAT " is not part of the model: cnnscope "
                                 "counts per image.", im.v1 ? "V1 'layers'" : "V2 'layer'",
                                 im.batch);
    }
  ok = ok && cs_graph_finalize (g, error);

  for (guint i = 0; i < n_layers; i++)
    layer_clear (&layers[i]);
  g_free (layers);
  g_hash_table_unref (im.blobs);
  g_array_free (im.info, TRUE);
  g_hash_table_unref (im.written_names);
  g_hash_table_unref (im.next_suffix);
  g_ptr_array_unref (im.stages);
  g_ptr_array_unref (pb.slabs);
  g_string_chunk_free (pb.strings);
  return ok ? g_steal_pointer (&g) : NULL;
}

CsGraph *
cs_caffe_load_file (const char *path, GError **error)
{
  return cs_graph_read_file (path, cs_caffe_load, error);
}
