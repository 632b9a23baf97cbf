/* The `.cnn` reader: a lexer, a parser to a small syntax tree, and an expander that walks the
 * tree (blocks, repeat, if) and builds the CsGraph. Nothing reaches the caller unless all of it
 * worked. */
#include "cs-parser.h"
#include "cs-error.h"

#include <math.h>
#include <string.h>

#define MAX_DEPTH 64            /* braces, parentheses and block calls */
#define MAX_STEPS 10000000      /* statements executed while expanding */
#define MAX_REPEAT 1000000
#define MAX_OPERATORS 1024

/* ---------------------------------------------------------------------------------------- */
/* Lexer                                                                                     */

typedef enum {
  T_EOF, T_NL, T_SEMI, T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_COMMA, T_COLON, T_ASSIGN,
  T_IDENT, T_NUM, T_SIZE, T_STRING, T_OP,
} TokType;

typedef enum {
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_IDIV, OP_MOD, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
} OpKind;

typedef struct {
  TokType type;
  OpKind op;
  guint line, col;
  const char *start;
  guint len;
  double num;
  double size[3];
  guint n_size;
  const char *str;              /* T_IDENT and T_STRING: NUL-terminated, in the string chunk */
} Token;

typedef struct Stmt Stmt;
typedef struct Expr Expr;

typedef struct {
  Stmt **items;
  guint n;
} Body;

typedef struct {
  char *name;
  const char **params;
  guint n_params;
  Body body;
  guint line, col;
} BlockDef;

typedef struct {
  const char *file;
  const char *text, *end, *p;
  guint line, col;
  guint paren_depth;
  Token look[2];
  guint n_look;
  GStringChunk *strings;
  GPtrArray *allocs;            /* every syntax tree allocation, freed at the end */
  GHashTable *blocks;           /* name -> BlockDef* */
  guint depth;
  CsGraph *g;
  gboolean in_expr;
  guint ops_left;
} Parser;

static gboolean
syntax_error (Parser *ps, guint line, guint col, GError **error, gint code, const char *format,
              ...) G_GNUC_PRINTF (6, 7);

static gboolean
syntax_error (Parser *ps, guint line, guint col, GError **error, gint code, const char *format,
              ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  CsSrcPos pos = { line, col, NULL };
  cs_graph_pos_error (ps->g, &pos, error, code, "%s", msg);
  g_free (msg);
  return FALSE;
}

static void
advance_char (Parser *ps)
{
  if (*ps->p == '\n')
    {
      ps->line++;
      ps->col = 1;
    }
  else if (((guchar) *ps->p & 0xC0) != 0x80)
    ps->col++;
  ps->p++;
}

static gboolean
is_ident_start (char c)
{
  return g_ascii_isalpha (c) || c == '_';
}

static gboolean
is_ident_char (char c)
{
  return g_ascii_isalnum (c) || c == '_';
}

static const char *
token_text (Parser *ps, const Token *t)
{
  static const char *names[] = {
    [T_EOF] = "the end of the file", [T_NL] = "the end of the line",
  };
  if (t->type == T_EOF || t->type == T_NL)
    return names[t->type];
  /* At most 40 bytes, cut at a character boundary, and valid UTF-8 whatever the input. */
  gsize len = MIN (t->len, 40);
  while (len < t->len && len > 0 && ((guchar) t->start[len] & 0xC0) == 0x80)
    len--;
  g_autofree char *valid = g_utf8_make_valid (t->start, len);
  return g_string_chunk_insert (ps->strings, valid);
}

/* Reads digits (and one fraction and exponent when FLOAT_OK) at ps->p into *v. */
static gboolean
lex_number (Parser *ps, double *v, gboolean float_ok)
{
  const char *s = ps->p;
  while (ps->p < ps->end && g_ascii_isdigit (*ps->p))
    advance_char (ps);
  if (float_ok && ps->p < ps->end && *ps->p == '.')
    {
      advance_char (ps);
      while (ps->p < ps->end && g_ascii_isdigit (*ps->p))
        advance_char (ps);
    }
  if (float_ok && ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E'))
    {
      const char *q = ps->p + 1;
      if (q < ps->end && (*q == '+' || *q == '-'))
        q++;
      if (q < ps->end && g_ascii_isdigit (*q))
        {
          while (ps->p < q)
            advance_char (ps);
          while (ps->p < ps->end && g_ascii_isdigit (*ps->p))
            advance_char (ps);
        }
    }
  char buf[64];
  gsize n = ps->p - s;
  if (n == 0 || n >= sizeof buf)
    return FALSE;
  memcpy (buf, s, n);
  buf[n] = '\0';
  *v = g_ascii_strtod (buf, NULL);
  return isfinite (*v);
}

static gboolean
lex (Parser *ps, Token *t, GError **error)
{
  for (;;)
    {
      while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'
                                 || (*ps->p == '\n' && ps->paren_depth > 0)))
        advance_char (ps);
      if (ps->p < ps->end && *ps->p == '#')
        {
          while (ps->p < ps->end && *ps->p != '\n')
            advance_char (ps);
          continue;
        }
      break;
    }

  memset (t, 0, sizeof *t);
  t->line = ps->line;
  t->col = ps->col;
  t->start = ps->p;
  if (ps->p >= ps->end)
    {
      t->type = T_EOF;
      return TRUE;
    }

  char c = *ps->p;
  if (g_ascii_isdigit (c) || (c == '.' && ps->p + 1 < ps->end && g_ascii_isdigit (ps->p[1])))
    {
      const char *s = ps->p;
      gboolean integer = TRUE;
      for (const char *q = s; q < ps->end && (g_ascii_isdigit (*q) || *q == '.'); q++)
        if (*q == '.')
          integer = FALSE;
      if (!lex_number (ps, &t->num, TRUE))
        return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE, "malformed number");
      t->type = T_NUM;
      /* 224x224x3: a size, written with whole numbers only */
      if (integer && ps->p + 1 < ps->end && *ps->p == 'x' && g_ascii_isdigit (ps->p[1])
          && ps->p - s == (gssize) strspn (s, "0123456789"))
        {
          t->type = T_SIZE;
          t->size[0] = t->num;
          t->n_size = 1;
          while (ps->p + 1 < ps->end && *ps->p == 'x' && g_ascii_isdigit (ps->p[1]))
            {
              if (t->n_size == 3)
                return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                                     "a size has at most three parts (HxWxC)");
              advance_char (ps);
              if (!lex_number (ps, &t->size[t->n_size++], FALSE))
                return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                                     "malformed size");
            }
        }
      if (ps->p < ps->end && (is_ident_char (*ps->p) || *ps->p == '.'))
        return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                             "malformed number '%.*s'", (int) MIN (ps->p - s + 1, 40), s);
      t->len = ps->p - s;
      return TRUE;
    }

  if (is_ident_start (c))
    {
      while (ps->p < ps->end && is_ident_char (*ps->p))
        advance_char (ps);
      t->type = T_IDENT;
      t->len = ps->p - t->start;
      if (t->len > 256)
        return syntax_error (ps, t->line, t->col, error, CS_ERROR_LIMIT,
                             "a name is longer than 256 characters");
      t->str = g_string_chunk_insert_len (ps->strings, t->start, t->len);
      return TRUE;
    }

  if (c == '"')
    {
      GString *s = g_string_new (NULL);
      advance_char (ps);
      for (;;)
        {
          if (ps->p >= ps->end || *ps->p == '\n')
            {
              g_string_free (s, TRUE);
              return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                                   "unterminated string");
            }
          if (*ps->p == '"')
            break;
          if (*ps->p == '\\')
            {
              advance_char (ps);
              if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\\' && *ps->p != 'n'))
                {
                  g_string_free (s, TRUE);
                  return syntax_error (ps, ps->line, ps->col, error, CS_ERROR_PARSE,
                                       "unknown escape in a string: use \\\", \\\\ or \\n");
                }
              g_string_append_c (s, *ps->p == 'n' ? '\n' : *ps->p);
            }
          else if (*ps->p == '\0')
            {
              g_string_free (s, TRUE);
              return syntax_error (ps, ps->line, ps->col, error, CS_ERROR_PARSE,
                                   "a NUL byte in a string");
            }
          else
            g_string_append_c (s, *ps->p);
          advance_char (ps);
        }
      advance_char (ps);
      if (!g_utf8_validate (s->str, s->len, NULL))
        {
          g_string_free (s, TRUE);
          return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                               "a string that is not valid UTF-8");
        }
      t->type = T_STRING;
      t->len = ps->p - t->start;
      t->str = g_string_chunk_insert_len (ps->strings, s->str, s->len);
      g_string_free (s, TRUE);
      return TRUE;
    }

  char c2 = ps->p + 1 < ps->end ? ps->p[1] : '\0';
  struct { char a, b; TokType type; OpKind op; } puncts[] = {
    { '/', '/', T_OP, OP_IDIV }, { '=', '=', T_OP, OP_EQ }, { '!', '=', T_OP, OP_NE },
    { '<', '=', T_OP, OP_LE }, { '>', '=', T_OP, OP_GE },
    { '\n', 0, T_NL, 0 }, { ';', 0, T_SEMI, 0 }, { '{', 0, T_LBRACE, 0 },
    { '}', 0, T_RBRACE, 0 }, { '(', 0, T_LPAREN, 0 }, { ')', 0, T_RPAREN, 0 },
    { ',', 0, T_COMMA, 0 }, { ':', 0, T_COLON, 0 }, { '=', 0, T_ASSIGN, 0 },
    { '+', 0, T_OP, OP_ADD }, { '-', 0, T_OP, OP_SUB }, { '*', 0, T_OP, OP_MUL },
    { '/', 0, T_OP, OP_DIV }, { '%', 0, T_OP, OP_MOD }, { '<', 0, T_OP, OP_LT },
    { '>', 0, T_OP, OP_GT },
  };
  for (guint i = 0; i < G_N_ELEMENTS (puncts); i++)
    if (c == puncts[i].a && (puncts[i].b == 0 || c2 == puncts[i].b))
      {
        t->type = puncts[i].type;
        t->op = puncts[i].op;
        advance_char (ps);
        if (puncts[i].b)
          advance_char (ps);
        t->len = ps->p - t->start;
        if (t->type == T_LPAREN)
          ps->paren_depth++;
        else if (t->type == T_RPAREN && ps->paren_depth > 0)
          ps->paren_depth--;
        return TRUE;
      }

  if ((guchar) c >= 0x80)
    {
      const char *q = ps->p;
      gunichar u = g_utf8_get_char_validated (q, ps->end - q);
      if (u == (gunichar) -1 || u == (gunichar) -2)
        return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                             "the file is not valid UTF-8");
      char buf[8] = { 0 };
      g_unichar_to_utf8 (u, buf);
      return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                           "unexpected character '%s' (outside a string or comment)", buf);
    }
  if (g_ascii_isprint (c))
    return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                         "unexpected character '%c'", c);
  return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                       "unexpected byte 0x%02x", (guchar) c);
}

static const Token *
peek_n (Parser *ps, guint i, GError **error)
{
  while (ps->n_look <= i)
    {
      if (!lex (ps, &ps->look[ps->n_look], error))
        return NULL;
      ps->n_look++;
    }
  return &ps->look[i];
}

#define PEEK(ps) peek_n ((ps), 0, error)

static void
consume (Parser *ps)
{
  g_assert (ps->n_look > 0);
  ps->look[0] = ps->look[1];
  ps->n_look--;
}

static gboolean
is_word (const Token *t, const char *w)
{
  return t->type == T_IDENT && strcmp (t->str, w) == 0;
}

static gboolean
expect (Parser *ps, TokType type, const char *what, Token *out, GError **error)
{
  const Token *t = PEEK (ps);
  if (t == NULL)
    return FALSE;
  if (t->type != type)
    return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE, "expected %s, found '%s'",
                         what, token_text (ps, t));
  if (out)
    *out = *t;
  consume (ps);
  return TRUE;
}

/* ---------------------------------------------------------------------------------------- */
/* Syntax tree                                                                               */

typedef enum { E_NUM, E_SIZE, E_VAR, E_BIN, E_NEG } ExprKind;

struct Expr {
  ExprKind kind;
  OpKind op;
  guint line, col;
  double num;
  double size[3];
  guint n_size;
  const char *name;
  Expr *a, *b;
};

typedef struct {
  guint spec;                   /* index into the class's CsParamSpec table */
  Expr *value;                  /* NULL for a flag or `pad same` */
  gboolean same;
  guint line, col;
} Arg;

typedef struct {
  const char *name;
  guint line, col;
} NameRef;

typedef enum {
  S_LAYER, S_CALL, S_REPEAT, S_IF, S_LET, S_INPUT, S_AUX,
} StmtKind;

struct Stmt {
  StmtKind kind;
  guint line, col;
  const char *label;
  CsOp op;                      /* S_LAYER */
  Arg *args;
  guint n_args;
  NameRef *from;                /* S_LAYER, S_CALL */
  guint n_from;
  Body *branches;               /* S_LAYER joins */
  guint n_branches;
  const char *name;             /* S_CALL: block; S_LET: variable; S_REPEAT: counter */
  Expr **call_args;
  guint n_call_args;
  Expr *expr;                   /* S_REPEAT count, S_IF condition, S_LET value, S_AUX weight */
  Body body;                    /* S_REPEAT, S_IF, S_AUX */
  Body else_body;               /* S_IF */
  CsShape shape;                /* S_INPUT */
};

static gpointer
tree_new (Parser *ps, gsize size)
{
  gpointer p = g_malloc0 (size);
  g_ptr_array_add (ps->allocs, p);
  return p;
}

/* A copy of N elements of SIZE bytes in the tree (never NULL, even for none). */
static gpointer
tree_dup (Parser *ps, gconstpointer src, gsize n, gsize size)
{
  gpointer p = tree_new (ps, MAX (n, 1) * size);
  if (n)
    memcpy (p, src, n * size);
  return p;
}

static void
block_def_free (gpointer p)
{
  BlockDef *b = p;
  g_free (b->name);
  g_free (b);
}

static gboolean enter (Parser *ps, const Token *t, GError **error);

static Expr *parse_expr (Parser *ps, GError **error);

static Expr *
parse_primary (Parser *ps, GError **error)
{
  const Token *t = PEEK (ps);
  if (t == NULL)
    return NULL;
  Expr *e = tree_new (ps, sizeof (Expr));
  e->line = t->line;
  e->col = t->col;
  switch (t->type)
    {
    case T_NUM:
      e->kind = E_NUM;
      e->num = t->num;
      consume (ps);
      return e;
    case T_SIZE:
      e->kind = E_SIZE;
      memcpy (e->size, t->size, sizeof e->size);
      e->n_size = t->n_size;
      consume (ps);
      return e;
    case T_IDENT:
      e->kind = E_VAR;
      e->name = t->str;
      consume (ps);
      return e;
    case T_LPAREN:
      {
        if (!enter (ps, t, error))
          return NULL;
        consume (ps);
        Expr *inner = parse_expr (ps, error);
        ps->depth--;
        if (inner == NULL || !expect (ps, T_RPAREN, "')'", NULL, error))
          return NULL;
        return inner;
      }
    default:
      syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE, "expected a value, found '%s'",
                    token_text (ps, t));
      return NULL;
    }
}

static Expr *
parse_unary (Parser *ps, GError **error)
{
  const Token *t = PEEK (ps);
  if (t == NULL)
    return NULL;
  if (t->type == T_OP && t->op == OP_SUB)
    {
      if (!enter (ps, t, error))
        return NULL;
      Expr *e = tree_new (ps, sizeof (Expr));
      e->kind = E_NEG;
      e->line = t->line;
      e->col = t->col;
      consume (ps);
      e->a = parse_unary (ps, error);
      ps->depth--;
      return e->a ? e : NULL;
    }
  return parse_primary (ps, error);
}

static Expr *
parse_binary (Parser *ps, int level, GError **error)
{
  /* level 0: comparisons, 1: + -, 2: * / // % */
  static const OpKind ops[3][6] = {
    { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE },
    { OP_ADD, OP_SUB, OP_SUB, OP_SUB, OP_SUB, OP_SUB },
    { OP_MUL, OP_DIV, OP_IDIV, OP_MOD, OP_MOD, OP_MOD },
  };
  Expr *lhs = level == 2 ? parse_unary (ps, error) : parse_binary (ps, level + 1, error);
  while (lhs)
    {
      const Token *t = PEEK (ps);
      if (t == NULL)
        return NULL;
      gboolean match = FALSE;
      for (guint i = 0; i < 6 && t->type == T_OP; i++)
        if (ops[level][i] == t->op)
          match = TRUE;
      if (!match)
        break;
      if (ps->ops_left-- == 0)
        {
          syntax_error (ps, t->line, t->col, error, CS_ERROR_LIMIT,
                        "an expression has more than %d operators", MAX_OPERATORS);
          return NULL;
        }
      Expr *e = tree_new (ps, sizeof (Expr));
      e->kind = E_BIN;
      e->op = t->op;
      e->line = t->line;
      e->col = t->col;
      consume (ps);
      e->a = lhs;
      e->b = level == 2 ? parse_unary (ps, error) : parse_binary (ps, level + 1, error);
      if (e->b == NULL)
        return NULL;
      lhs = e;
      if (level == 0)
        break;  /* comparisons do not chain */
    }
  return lhs;
}

/* A whole expression may hold at most MAX_OPERATORS operators, which bounds the recursion of
 * evaluating it; parenthesised parts share their expression's budget. */
static Expr *
parse_expr (Parser *ps, GError **error)
{
  if (ps->in_expr)
    return parse_binary (ps, 0, error);
  ps->in_expr = TRUE;
  ps->ops_left = MAX_OPERATORS;
  Expr *e = parse_binary (ps, 0, error);
  ps->in_expr = FALSE;
  return e;
}

static gboolean
enter (Parser *ps, const Token *t, GError **error)
{
  if (++ps->depth > MAX_DEPTH)
    return syntax_error (ps, t->line, t->col, error, CS_ERROR_LIMIT,
                         "nested more than %d deep", MAX_DEPTH);
  return TRUE;
}

static gboolean
at_statement_end (const Token *t)
{
  return t->type == T_NL || t->type == T_SEMI || t->type == T_RBRACE || t->type == T_EOF;
}

static gboolean parse_body (Parser *ps, Body *body, gboolean top, GError **error);

static gboolean
parse_braced_body (Parser *ps, Body *body, GError **error)
{
  Token open;
  if (!expect (ps, T_LBRACE, "'{'", &open, error) || !enter (ps, &open, error))
    return FALSE;
  if (!parse_body (ps, body, FALSE, error))
    return FALSE;
  ps->depth--;
  return expect (ps, T_RBRACE, "'}'", NULL, error);
}

static gboolean
parse_from (Parser *ps, Stmt *s, GError **error)
{
  GArray *names = g_array_new (FALSE, FALSE, sizeof (NameRef));
  consume (ps);  /* from */
  for (;;)
    {
      Token t;
      if (!expect (ps, T_IDENT, "a layer name after 'from'", &t, error))
        {
          g_array_free (names, TRUE);
          return FALSE;
        }
      NameRef r = { t.str, t.line, t.col };
      g_array_append_val (names, r);
      const Token *n = PEEK (ps);
      if (n == NULL)
        {
          g_array_free (names, TRUE);
          return FALSE;
        }
      if (n->type != T_COMMA)
        break;
      consume (ps);
    }
  s->n_from = names->len;
  s->from = tree_dup (ps, names->data, names->len, sizeof (NameRef));
  g_array_free (names, TRUE);
  return TRUE;
}

static gboolean
parse_layer (Parser *ps, Stmt *s, const CsLayerClass *klass, GError **error)
{
  GArray *args = g_array_new (FALSE, FALSE, sizeof (Arg));
  guint next_positional = 0;
  gboolean ok = FALSE;

  for (;;)
    {
      const Token *t = PEEK (ps);
      if (t == NULL)
        goto out;
      if (at_statement_end (t) || t->type == T_LBRACE || is_word (t, "from"))
        break;

      Arg a = { .line = t->line, .col = t->col };
      gboolean keyword = FALSE;
      if (t->type == T_IDENT)
        for (guint i = 0; i < klass->n_params; i++)
          if (!klass->params[i].positional && strcmp (klass->params[i].name, t->str) == 0)
            {
              a.spec = i;
              keyword = TRUE;
            }
      if (keyword)
        {
          for (guint i = 0; i < args->len; i++)
            if (g_array_index (args, Arg, i).spec == a.spec)
              {
                syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                              "'%s' is given twice", t->str);
                goto out;
              }
          const CsParamSpec *spec = &klass->params[a.spec];
          consume (ps);
          if (spec->type != CS_PARAM_FLAG)
            {
              const Token *v = PEEK (ps);
              if (v == NULL)
                goto out;
              if (spec->type == CS_PARAM_PAD && is_word (v, "same"))
                {
                  a.same = TRUE;
                  consume (ps);
                }
              else if (at_statement_end (v))
                {
                  syntax_error (ps, v->line, v->col, error, CS_ERROR_PARSE,
                                "'%s' needs a value (%s)", spec->name, spec->help);
                  goto out;
                }
              else if ((a.value = parse_expr (ps, error)) == NULL)
                goto out;
            }
        }
      else
        {
          guint i = 0, seen = 0;
          for (i = 0; i < klass->n_params; i++)
            if (klass->params[i].positional && seen++ == next_positional)
              break;
          if (i == klass->n_params)
            {
              GString *usage = g_string_new (NULL);
              for (guint j = 0; j < klass->n_params; j++)
                g_string_append_printf (usage, "%s%s%s", usage->len ? ", " : "",
                                        klass->params[j].name,
                                        klass->params[j].positional ? "" : " ...");
              syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                            "unexpected '%s': %s takes %s", token_text (ps, t), klass->name,
                            usage->len ? usage->str : "no arguments");
              g_string_free (usage, TRUE);
              goto out;
            }
          a.spec = i;
          next_positional++;
          if ((a.value = parse_expr (ps, error)) == NULL)
            goto out;
        }
      g_array_append_val (args, a);
    }

  s->n_args = args->len;
  s->args = tree_dup (ps, args->data, args->len, sizeof (Arg));

  const Token *t = PEEK (ps);
  if (t == NULL)
    goto out;
  if (is_word (t, "from") && !parse_from (ps, s, error))
    goto out;
  t = PEEK (ps);
  if (t == NULL)
    goto out;
  if (t->type == T_LBRACE)
    {
      if (!(klass->flags & CS_LAYER_JOIN))
        {
          syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                        "only concat, add and mean take branches in braces");
          goto out;
        }
      if (s->n_from > 0)
        {
          syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                        "a join takes either 'from' or branches, not both");
          goto out;
        }
      Token open = *t;
      if (!enter (ps, &open, error))
        goto out;
      consume (ps);
      GArray *branches = g_array_new (FALSE, TRUE, sizeof (Body));
      for (;;)
        {
          const Token *b = PEEK (ps);
          if (b == NULL)
            {
              g_array_free (branches, TRUE);
              goto out;
            }
          if (b->type == T_NL || b->type == T_SEMI)
            {
              consume (ps);
              continue;
            }
          if (b->type == T_RBRACE)
            {
              consume (ps);
              break;
            }
          if (b->type != T_LBRACE)
            {
              syntax_error (ps, b->line, b->col, error, CS_ERROR_PARSE,
                            "expected '{' to start a branch, found '%s'", token_text (ps, b));
              g_array_free (branches, TRUE);
              goto out;
            }
          Body body = { 0 };
          if (!parse_braced_body (ps, &body, error))
            {
              g_array_free (branches, TRUE);
              goto out;
            }
          g_array_append_val (branches, body);
        }
      ps->depth--;
      s->n_branches = branches->len;
      s->branches = tree_dup (ps, branches->data, branches->len, sizeof (Body));
      g_array_free (branches, TRUE);
      if (s->n_branches < klass->min_inputs)
        {
          syntax_error (ps, open.line, open.col, error, CS_ERROR_PARSE,
                        "%s needs at least %u branches", klass->name, klass->min_inputs);
          goto out;
        }
    }
  else if ((klass->flags & CS_LAYER_JOIN) && s->n_from == 0)
    {
      syntax_error (ps, s->line, s->col, error, CS_ERROR_PARSE,
                    "%s needs branches in braces or inputs with 'from'", klass->name);
      goto out;
    }
  ok = TRUE;
out:
  g_array_free (args, TRUE);
  return ok;
}

static gboolean
parse_call (Parser *ps, Stmt *s, GError **error)
{
  Token open;
  if (!expect (ps, T_LPAREN, "'('", &open, error))
    return FALSE;
  GPtrArray *args = g_ptr_array_new ();
  const Token *t = PEEK (ps);
  gboolean ok = FALSE;
  if (t == NULL)
    goto out;
  if (t->type != T_RPAREN)
    for (;;)
      {
        Expr *e = parse_expr (ps, error);
        if (e == NULL)
          goto out;
        g_ptr_array_add (args, e);
        if ((t = PEEK (ps)) == NULL)
          goto out;
        if (t->type == T_RPAREN)
          break;
        if (!expect (ps, T_COMMA, "',' or ')'", NULL, error))
          goto out;
      }
  consume (ps);  /* ) */
  s->n_call_args = args->len;
  s->call_args = tree_dup (ps, args->pdata, args->len, sizeof (Expr *));
  if ((t = PEEK (ps)) == NULL)
    goto out;
  if (is_word (t, "from"))
    {
      if (!parse_from (ps, s, error))
        goto out;
      if (s->n_from != 1)
        {
          syntax_error (ps, s->from[1].line, s->from[1].col, error, CS_ERROR_PARSE,
                        "a block call takes one input");
          goto out;
        }
    }
  ok = TRUE;
out:
  g_ptr_array_free (args, TRUE);
  return ok;
}

static gboolean
parse_string_arg (Parser *ps, const char *what, char **out, GError **error)
{
  Token t;
  if (!expect (ps, T_STRING, what, &t, error))
    return FALSE;
  g_free (*out);
  *out = g_strdup (t.str);
  return TRUE;
}

static gboolean
parse_number_arg (Parser *ps, const char *what, double min, double max, gboolean integer,
                  double *out, GError **error)
{
  Token t;
  if (!expect (ps, T_NUM, what, &t, error))
    return FALSE;
  if (t.num < min || t.num > max || (integer && t.num != floor (t.num)))
    return syntax_error (ps, t.line, t.col, error, CS_ERROR_PARSE, "%s must be %s from %g to %g",
                         what, integer ? "a whole number" : "a number", min, max);
  *out = t.num;
  return TRUE;
}

static gboolean
parse_accuracy (Parser *ps, GError **error)
{
  for (;;)
    {
      const Token *t = PEEK (ps);
      if (t == NULL)
        return FALSE;
      if (at_statement_end (t))
        return TRUE;
      if (is_word (t, "top1") || is_word (t, "top5"))
        {
          double *dst = is_word (t, "top1") ? &ps->g->top1 : &ps->g->top5;
          consume (ps);
          if (!parse_number_arg (ps, "an accuracy in percent", 0, 100, FALSE, dst, error))
            return FALSE;
        }
      else if (is_word (t, "source"))
        {
          consume (ps);
          if (!parse_string_arg (ps, "a quoted source", &ps->g->accuracy_source, error))
            return FALSE;
        }
      else
        return syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                             "unexpected '%s': accuracy takes top1, top5 and source",
                             token_text (ps, t));
    }
}

static gboolean
parse_train (Parser *ps, GError **error)
{
  CsTrainPreset *tp = &ps->g->train;
  for (;;)
    {
      const Token *t = PEEK (ps);
      if (t == NULL)
        return FALSE;
      if (at_statement_end (t))
        return TRUE;
      Token key = *t;
      consume (ps);
      double v;
      if (is_word (&key, "batch"))
        {
          if (!parse_number_arg (ps, "a batch size", 1, 1 << 20, TRUE, &v, error))
            return FALSE;
          tp->batch = v;
        }
      else if (is_word (&key, "epochs"))
        {
          if (!parse_number_arg (ps, "a number of epochs", 1, 100000, TRUE, &v, error))
            return FALSE;
          tp->epochs = v;
        }
      else if (is_word (&key, "lr") || is_word (&key, "momentum") || is_word (&key, "decay")
               || is_word (&key, "dropout"))
        {
          double *dst = is_word (&key, "lr") ? &tp->lr : is_word (&key, "momentum")
                        ? &tp->momentum : is_word (&key, "decay") ? &tp->decay : &tp->dropout;
          if (!parse_number_arg (ps, key.str, 0, is_word (&key, "lr") ? 100 : 1, FALSE, dst,
                                 error))
            return FALSE;
        }
      else if (is_word (&key, "init"))
        {
          Token w;
          if (!expect (ps, T_IDENT, "he or xavier", &w, error))
            return FALSE;
          if (!is_word (&w, "he") && !is_word (&w, "xavier"))
            return syntax_error (ps, w.line, w.col, error, CS_ERROR_PARSE,
                                 "unknown init '%s': use he or xavier", w.str);
          tp->xavier = is_word (&w, "xavier");
        }
      else if (is_word (&key, "schedule"))
        {
          Token w;
          if (!expect (ps, T_IDENT, "constant, step or plateau", &w, error))
            return FALSE;
          if (is_word (&w, "constant"))
            tp->schedule = CS_SCHEDULE_CONSTANT;
          else if (is_word (&w, "plateau"))
            tp->schedule = CS_SCHEDULE_PLATEAU;
          else if (is_word (&w, "step"))
            {
              tp->schedule = CS_SCHEDULE_STEP;
              tp->n_steps = 0;
              while ((t = PEEK (ps)) != NULL && t->type == T_NUM)
                {
                  if (tp->n_steps == G_N_ELEMENTS (tp->steps))
                    return syntax_error (ps, t->line, t->col, error, CS_ERROR_LIMIT,
                                         "at most %u steps", (guint) G_N_ELEMENTS (tp->steps));
                  if (!parse_number_arg (ps, "an epoch", 1, 100000, TRUE, &v, error))
                    return FALSE;
                  tp->steps[tp->n_steps++] = v;
                }
              if (t == NULL)
                return FALSE;
              if (tp->n_steps == 0)
                return syntax_error (ps, w.line, w.col, error, CS_ERROR_PARSE,
                                     "schedule step needs the epochs to divide at");
            }
          else
            return syntax_error (ps, w.line, w.col, error, CS_ERROR_PARSE,
                                 "unknown schedule '%s': use constant, step or plateau", w.str);
        }
      else
        return syntax_error (ps, key.line, key.col, error, CS_ERROR_PARSE,
                             "unknown training setting '%s': use batch, lr, momentum, decay, "
                             "dropout, epochs, init or schedule", token_text (ps, &key));
    }
}

/* Statements that describe the network rather than build it. Returns TRUE if T was one. */
static gboolean
parse_meta (Parser *ps, const Token *t, gboolean top, gboolean *handled, GError **error)
{
  static const char *words[] = { "network", "paper", "year", "family", "note", "accuracy",
                                 "train" };
  *handled = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (words); i++)
    if (is_word (t, words[i]))
      *handled = TRUE;
  if (!*handled)
    return TRUE;
  Token key = *t;
  if (!top)
    return syntax_error (ps, key.line, key.col, error, CS_ERROR_PARSE,
                         "'%s' belongs at the top of the file, not inside braces", key.str);
  consume (ps);
  CsGraph *g = ps->g;
  if (is_word (&key, "network"))
    {
      Token n;
      if (!expect (ps, T_IDENT, "the network's name", &n, error))
        return FALSE;
      g_free (g->name);
      g->name = g_strdup (n.str);
      const Token *s = PEEK (ps);
      if (s == NULL)
        return FALSE;
      if (s->type == T_STRING)
        return parse_string_arg (ps, "a title", &g->title, error);
      return TRUE;
    }
  if (is_word (&key, "paper"))
    return parse_string_arg (ps, "a quoted citation", &g->paper, error);
  if (is_word (&key, "note"))
    {
      char *note = NULL;
      if (!parse_string_arg (ps, "a quoted note", &note, error))
        return FALSE;
      char *all = g->note ? g_strconcat (g->note, "\n", note, NULL) : g_strdup (note);
      g_free (g->note), g_free (note);
      g->note = all;
      return TRUE;
    }
  if (is_word (&key, "year"))
    {
      double y;
      if (!parse_number_arg (ps, "a year", 1900, 2200, TRUE, &y, error))
        return FALSE;
      g->year = y;
      return TRUE;
    }
  if (is_word (&key, "family"))
    {
      const Token *f = PEEK (ps);
      if (f == NULL)
        return FALSE;
      if (f->type != T_IDENT && f->type != T_STRING)
        return syntax_error (ps, f->line, f->col, error, CS_ERROR_PARSE,
                             "expected a family name");
      g_free (g->family);
      g->family = g_strdup (f->str);
      consume (ps);
      return TRUE;
    }
  if (is_word (&key, "accuracy"))
    return parse_accuracy (ps, error);
  return parse_train (ps, error);
}

static gboolean
parse_block_def (Parser *ps, gboolean top, GError **error)
{
  const Token *t = PEEK (ps);
  if (t == NULL)
    return FALSE;
  Token kw = *t;
  if (!top)
    return syntax_error (ps, kw.line, kw.col, error, CS_ERROR_PARSE,
                         "blocks are defined at the top level only");
  consume (ps);
  Token name;
  if (!expect (ps, T_IDENT, "a block name", &name, error))
    return FALSE;
  static const char *reserved[] = { "network", "paper", "year", "family", "note", "accuracy",
                                    "train", "block", "let", "repeat", "if", "else", "aux",
                                    "input", "from", "as", "same" };
  for (guint i = 0; i < G_N_ELEMENTS (reserved); i++)
    if (is_word (&name, reserved[i]))
      return syntax_error (ps, name.line, name.col, error, CS_ERROR_NAME,
                           "'%s' is a keyword and cannot name a block", name.str);
  if (cs_layer_class_lookup (name.str, NULL))
    return syntax_error (ps, name.line, name.col, error, CS_ERROR_NAME,
                         "'%s' is a layer kind and cannot name a block", name.str);
  BlockDef *prev = g_hash_table_lookup (ps->blocks, name.str);
  if (prev)
    return syntax_error (ps, name.line, name.col, error, CS_ERROR_NAME,
                         "block '%s' is already defined at line %u", name.str, prev->line);

  if (!expect (ps, T_LPAREN, "'(' and the block's parameters", NULL, error))
    return FALSE;
  GPtrArray *params = g_ptr_array_new ();
  const Token *p = PEEK (ps);
  gboolean ok = FALSE;
  BlockDef *def = NULL;
  if (p == NULL)
    goto out;
  if (p->type != T_RPAREN)
    for (;;)
      {
        Token pn;
        if (!expect (ps, T_IDENT, "a parameter name", &pn, error))
          goto out;
        for (guint i = 0; i < params->len; i++)
          if (strcmp (params->pdata[i], pn.str) == 0)
            {
              syntax_error (ps, pn.line, pn.col, error, CS_ERROR_NAME,
                            "parameter '%s' is named twice", pn.str);
              goto out;
            }
        g_ptr_array_add (params, (gpointer) pn.str);
        if ((p = PEEK (ps)) == NULL)
          goto out;
        if (p->type == T_RPAREN)
          break;
        if (!expect (ps, T_COMMA, "',' or ')'", NULL, error))
          goto out;
      }
  consume (ps);
  def = g_new0 (BlockDef, 1);
  def->name = g_strdup (name.str);
  def->line = name.line;
  def->col = name.col;
  def->n_params = params->len;
  def->params = tree_dup (ps, params->pdata, params->len, sizeof (char *));
  /* Registered before its body is read, so that it may call itself. */
  g_hash_table_insert (ps->blocks, def->name, def);
  ok = parse_braced_body (ps, &def->body, error);
out:
  g_ptr_array_free (params, TRUE);
  return ok;
}

static gboolean
parse_input (Parser *ps, Stmt *s, gboolean top, GError **error)
{
  if (!top)
    return syntax_error (ps, s->line, s->col, error, CS_ERROR_PARSE,
                         "'input' belongs at the top level");
  consume (ps);
  Token t;
  if (!expect (ps, T_SIZE, "the input volume as HxWxC", &t, error))
    return FALSE;
  if (t.n_size != 3)
    return syntax_error (ps, t.line, t.col, error, CS_ERROR_PARSE,
                         "the input volume needs three sizes, HxWxC");
  for (guint i = 0; i < 3; i++)
    if (t.size[i] < 1 || t.size[i] > 1048576)
      return syntax_error (ps, t.line, t.col, error, CS_ERROR_SHAPE,
                           "each input size must be from 1 to 1048576");
  s->kind = S_INPUT;
  s->shape = (CsShape) { t.size[2], t.size[0], t.size[1] };
  return TRUE;
}

static Stmt *
parse_statement (Parser *ps, gboolean top, GError **error)
{
  const Token *t = PEEK (ps);
  if (t == NULL)
    return NULL;
  Stmt *s = tree_new (ps, sizeof (Stmt));
  s->line = t->line;
  s->col = t->col;

  if (t->type != T_IDENT)
    {
      syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                    "expected a layer, a block call or a statement, found '%s'",
                    token_text (ps, t));
      return NULL;
    }

  const Token *t2 = peek_n (ps, 1, error);
  if (t2 == NULL)
    return NULL;
  if (t2->type == T_COLON)
    {
      s->label = t->str;
      consume (ps);
      consume (ps);
      if ((t = PEEK (ps)) == NULL)
        return NULL;
      if (t->type != T_IDENT)
        {
          syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                        "expected a layer or block call after the label '%s:'", s->label);
          return NULL;
        }
      if ((t2 = peek_n (ps, 1, error)) == NULL)
        return NULL;
    }

  CsOp op;
  const CsLayerClass *klass;
  Token kw = *t;
  if (is_word (&kw, "input"))
    return parse_input (ps, s, top, error) ? s : NULL;
  if (s->label == NULL)
    {
      gboolean handled;
      if (!parse_meta (ps, &kw, top, &handled, error))
        return NULL;
      if (handled)
        return (Stmt *) ps;  /* a marker: nothing to execute */
      if (is_word (&kw, "block"))
        return parse_block_def (ps, top, error) ? (Stmt *) ps : NULL;
      if (is_word (&kw, "let"))
        {
          consume (ps);
          Token name;
          if (!expect (ps, T_IDENT, "a variable name", &name, error)
              || !expect (ps, T_ASSIGN, "'='", NULL, error)
              || (s->expr = parse_expr (ps, error)) == NULL)
            return NULL;
          s->kind = S_LET;
          s->name = name.str;
          return s;
        }
      if (is_word (&kw, "repeat"))
        {
          consume (ps);
          s->kind = S_REPEAT;
          if ((s->expr = parse_expr (ps, error)) == NULL || (t = PEEK (ps)) == NULL)
            return NULL;
          if (is_word (t, "as"))
            {
              consume (ps);
              Token v;
              if (!expect (ps, T_IDENT, "a counter name after 'as'", &v, error))
                return NULL;
              s->name = v.str;
            }
          return parse_braced_body (ps, &s->body, error) ? s : NULL;
        }
      if (is_word (&kw, "if"))
        {
          consume (ps);
          s->kind = S_IF;
          if ((s->expr = parse_expr (ps, error)) == NULL
              || !parse_braced_body (ps, &s->body, error) || (t = PEEK (ps)) == NULL)
            return NULL;
          if (is_word (t, "else"))
            {
              consume (ps);
              if ((t = PEEK (ps)) == NULL)
                return NULL;
              if (is_word (t, "if"))
                {
                  if (!enter (ps, t, error))
                    return NULL;
                  Stmt *nested = parse_statement (ps, FALSE, error);
                  ps->depth--;
                  if (nested == NULL)
                    return NULL;
                  s->else_body.n = 1;
                  s->else_body.items = tree_new (ps, sizeof (Stmt *));
                  s->else_body.items[0] = nested;
                }
              else if (!parse_braced_body (ps, &s->else_body, error))
                return NULL;
            }
          return s;
        }
      if (is_word (&kw, "aux"))
        {
          consume (ps);
          s->kind = S_AUX;
          if ((t = PEEK (ps)) == NULL)
            return NULL;
          if (is_word (t, "weight"))
            {
              consume (ps);
              if ((s->expr = parse_expr (ps, error)) == NULL)
                return NULL;
            }
          return parse_braced_body (ps, &s->body, error) ? s : NULL;
        }
    }

  /* A layer kind is never a block name, so `conv (2*c) 3x3` is a layer, not a call. */
  if (t2->type == T_LPAREN && cs_layer_class_lookup (kw.str, NULL) == NULL)
    {
      consume (ps);
      s->kind = S_CALL;
      s->name = kw.str;
      return parse_call (ps, s, error) ? s : NULL;
    }

  klass = cs_layer_class_lookup (kw.str, &op);
  if (klass == NULL || op == CS_OP_INPUT)
    {
      syntax_error (ps, kw.line, kw.col, error, CS_ERROR_PARSE,
                    "unknown layer kind '%s'%s", kw.str,
                    g_hash_table_contains (ps->blocks, kw.str) ? " (to call the block, add "
                    "its arguments in parentheses)" : "");
      return NULL;
    }
  consume (ps);
  s->kind = S_LAYER;
  s->op = op;
  return parse_layer (ps, s, klass, error) ? s : NULL;
}

static gboolean
parse_body (Parser *ps, Body *body, gboolean top, GError **error)
{
  GPtrArray *items = g_ptr_array_new ();
  gboolean ok = FALSE;
  for (;;)
    {
      const Token *t = PEEK (ps);
      if (t == NULL)
        goto out;
      if (t->type == T_NL || t->type == T_SEMI)
        {
          consume (ps);
          continue;
        }
      if (t->type == T_EOF || t->type == T_RBRACE)
        {
          if (top && t->type == T_RBRACE)
            {
              syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                            "'}' without a matching '{'");
              goto out;
            }
          if (!top && t->type == T_EOF)
            {
              syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                            "the file ends inside braces: a '}' is missing");
              goto out;
            }
          break;
        }
      Stmt *s = parse_statement (ps, top, error);
      if (s == NULL)
        goto out;
      if (s != (Stmt *) ps)
        g_ptr_array_add (items, s);
      if ((t = PEEK (ps)) == NULL)
        goto out;
      if (!at_statement_end (t))
        {
          syntax_error (ps, t->line, t->col, error, CS_ERROR_PARSE,
                        "unexpected '%s': a statement ends with a new line or ';'",
                        token_text (ps, t));
          goto out;
        }
    }
  body->n = items->len;
  body->items = tree_dup (ps, items->pdata, items->len, sizeof (Stmt *));
  ok = TRUE;
out:
  g_ptr_array_free (items, TRUE);
  return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Expansion                                                                                 */

typedef struct Env Env;
struct Env {
  GHashTable *vars;             /* name -> double* */
  Env *parent;
};

typedef struct {
  guint node, slot;
  const char *name;
  char *module;
  guint line, col;
  const CsFrame *frame;
} Ref;

typedef struct {
  Parser *ps;
  CsGraph *g;
  GHashTable *counters;         /* "module\x1fkind" -> count */
  GHashTable *aliases;          /* module path -> node id of its output */
  GArray *refs;                 /* Ref */
  GArray *marks;                /* guint8 MARK_* per node */
  guint64 steps, passes;
  guint depth;
  const CsFrame *frame;
  gboolean train_only;
  Env *globals;
} Exec;

enum { MARK_DEAD = 1, MARK_LABELLED = 2 };

typedef struct {
  double v[3];
  guint n;                      /* 1: a number; 2 or 3: a size */
} Value;

static Env *
env_new (Env *parent)
{
  Env *e = g_new0 (Env, 1);
  e->vars = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  e->parent = parent;
  return e;
}

static void
env_free (Env *e)
{
  g_hash_table_unref (e->vars);
  g_free (e);
}

static void
env_set (Env *e, const char *name, double v)
{
  double *p = g_new (double, 1);
  *p = v;
  g_hash_table_insert (e->vars, (gpointer) name, p);
}

static gboolean
exec_error (Exec *x, guint line, guint col, GError **error, gint code, const char *format, ...)
  G_GNUC_PRINTF (6, 7);

static gboolean
exec_error (Exec *x, guint line, guint col, GError **error, gint code, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  CsSrcPos pos = { line, col, x->frame };
  cs_graph_pos_error (x->g, &pos, error, code, "%s", msg);
  g_free (msg);
  return FALSE;
}

static gboolean
eval (Exec *x, const Expr *e, Env *env, Value *out, GError **error)
{
  Value a, b;
  switch (e->kind)
    {
    case E_NUM:
      *out = (Value) { { e->num }, 1 };
      return TRUE;
    case E_SIZE:
      out->n = e->n_size;
      memcpy (out->v, e->size, sizeof out->v);
      if (out->n == 1)
        out->v[1] = out->v[0];
      return TRUE;
    case E_VAR:
      for (Env *s = env; s; s = s->parent)
        {
          double *v = g_hash_table_lookup (s->vars, e->name);
          if (v)
            {
              *out = (Value) { { *v }, 1 };
              return TRUE;
            }
        }
      return exec_error (x, e->line, e->col, error, CS_ERROR_NAME, "unknown variable '%s'",
                         e->name);
    case E_NEG:
      if (!eval (x, e->a, env, &a, error))
        return FALSE;
      if (a.n != 1)
        return exec_error (x, e->line, e->col, error, CS_ERROR_PARSE,
                           "a size cannot be negated");
      *out = (Value) { { -a.v[0] }, 1 };
      return TRUE;
    case E_BIN:
      if (!eval (x, e->a, env, &a, error) || !eval (x, e->b, env, &b, error))
        return FALSE;
      if (a.n != 1 || b.n != 1)
        return exec_error (x, e->line, e->col, error, CS_ERROR_PARSE,
                           "arithmetic takes numbers, not sizes");
      double l = a.v[0], r = b.v[0], v = 0;
      if ((e->op == OP_DIV || e->op == OP_IDIV || e->op == OP_MOD) && r == 0)
        return exec_error (x, e->line, e->col, error, CS_ERROR_PARSE, "division by zero");
      switch (e->op)
        {
        case OP_ADD: v = l + r; break;
        case OP_SUB: v = l - r; break;
        case OP_MUL: v = l * r; break;
        case OP_DIV: v = l / r; break;
        case OP_IDIV: v = floor (l / r); break;
        case OP_MOD: v = l - r * floor (l / r); break;
        case OP_EQ: v = l == r; break;
        case OP_NE: v = l != r; break;
        case OP_LT: v = l < r; break;
        case OP_LE: v = l <= r; break;
        case OP_GT: v = l > r; break;
        case OP_GE: v = l >= r; break;
        }
      if (!isfinite (v))
        return exec_error (x, e->line, e->col, error, CS_ERROR_OVERFLOW,
                           "the value is too large");
      *out = (Value) { { v }, 1 };
      return TRUE;
    }
  g_assert_not_reached ();
}

static gboolean
set_param (Exec *x, CsNode *n, const CsParamSpec *spec, const Arg *a, Env *env, GError **error)
{
  guint8 *base = (guint8 *) &n->p;
  if (spec->type == CS_PARAM_FLAG)
    {
      *(gboolean *) (base + spec->offset) = TRUE;
      return TRUE;
    }
  if (a->same)
    {
      n->p.pad_same = TRUE;
      return TRUE;
    }
  Value v;
  if (!eval (x, a->value, env, &v, error))
    return FALSE;
  if (spec->type == CS_PARAM_SIZE || spec->type == CS_PARAM_PAD)
    {
      if (v.n == 3)
        return exec_error (x, a->line, a->col, error, CS_ERROR_PARSE,
                           "%s takes K or HxW, not three sizes", spec->name);
      if (v.n == 1)
        v.v[1] = v.v[0];
      for (guint i = 0; i < 2; i++)
        if (v.v[i] != floor (v.v[i]) || v.v[i] < spec->min || v.v[i] > spec->max)
          return exec_error (x, a->line, a->col, error, CS_ERROR_SHAPE,
                             "%s must be whole numbers from %.0f to %.0f, not %.15g", spec->name,
                             spec->min, spec->max, v.v[i]);
      guint32 *f = (guint32 *) (base + spec->offset);
      f[0] = v.v[0];
      f[1] = v.v[1];
      return TRUE;
    }
  if (v.n != 1)
    return exec_error (x, a->line, a->col, error, CS_ERROR_PARSE,
                       "%s takes a number, not a size", spec->name);
  if (spec->type == CS_PARAM_FLOAT)
    {
      if (v.v[0] < spec->min || v.v[0] > spec->max)
        return exec_error (x, a->line, a->col, error, CS_ERROR_SHAPE,
                           "%s must be from %g to %g, not %g", spec->name, spec->min, spec->max,
                           v.v[0]);
      *(double *) (base + spec->offset) = v.v[0];
      return TRUE;
    }
  if (v.v[0] != floor (v.v[0]) || v.v[0] < spec->min || v.v[0] > spec->max)
    return exec_error (x, a->line, a->col, error, CS_ERROR_SHAPE,
                       "%s must be a whole number from %.0f to %.0f, not %.15g", spec->name,
                       spec->min, spec->max, v.v[0]);
  if (spec->width == sizeof (guint64))
    *(guint64 *) (base + spec->offset) = v.v[0];
  else
    *(guint32 *) (base + spec->offset) = v.v[0];
  return TRUE;
}

static char *
auto_name (Exec *x, const char *module, const char *base)
{
  char *key = g_strconcat (module, "\x1f", base, NULL);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (x->counters, key)) + 1;
  g_hash_table_replace (x->counters, key, GUINT_TO_POINTER (n));
  return g_strdup_printf ("%s%u", base, n);
}

static char *
join_path (const char *module, const char *name)
{
  return *module ? g_strconcat (module, "/", name, NULL) : g_strdup (name);
}

static CsNode *
new_node (Exec *x, CsOp op, const char *module, const char *label, guint n_inputs, guint line,
          guint col, GError **error)
{
  g_autofree char *short_name = label ? g_strdup (label)
                                      : auto_name (x, module, cs_layer_class (op)->name);
  g_autofree char *name = join_path (module, short_name);
  CsSrcPos pos = { line, col, x->frame };
  CsNode *n = cs_graph_add_node (x->g, op, module, name, n_inputs, &pos, error);
  if (n == NULL)
    return NULL;
  if (x->train_only)
    n->flags |= CS_NODE_TRAIN_ONLY;
  guint8 mark = label ? MARK_LABELLED : 0;
  g_array_append_val (x->marks, mark);
  return n;
}

static gboolean exec_body (Exec *x, const Body *body, Env *env, const char *module, gint *cur,
                           GError **error);

static gboolean
need_current (Exec *x, const Stmt *s, gint cur, GError **error)
{
  if (cur >= 0)
    return TRUE;
  return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                     "this layer has no input: declare 'input HxWxC' before the first layer");
}

/* Whether some inputs of NODE are names not yet resolved (written with `from`). */
static gboolean
has_pending_inputs (const Exec *x, guint node)
{
  for (guint r = 0; r < x->refs->len; r++)
    if (g_array_index (x->refs, Ref, r).node == node)
      return TRUE;
  return FALSE;
}

static gboolean
exec_layer (Exec *x, const Stmt *s, Env *env, const char *module, gint *cur, GError **error)
{
  const CsLayerClass *klass = cs_layer_class (s->op);
  guint n_in = s->n_from ? s->n_from : s->n_branches ? s->n_branches : 1;
  if (s->n_from == 0 && !need_current (x, s, *cur, error))
    return FALSE;

  /* Branches first: the join is created after the layers it joins. */
  g_autofree guint *ends = g_new0 (guint, MAX (n_in, 1));
  gboolean merge = FALSE;
  for (guint b = 0; b < s->n_branches; b++)
    {
      gint end = *cur;
      guint first = cs_graph_n_nodes (x->g);
      if (!exec_body (x, &s->branches[b], env, module, &end, error))
        return FALSE;
      ends[b] = end;
      /* A mean that ends a branch of a mean, made in that branch and not named by the user:
       * fold its columns into this one, so all columns are averaged at once. */
      CsNode *e = cs_graph_node (x->g, end);
      if (s->op == CS_OP_MEAN && e->op == CS_OP_MEAN && e->id >= first
          && g_array_index (x->marks, guint8, e->id) == 0 && !has_pending_inputs (x, e->id))
        {
          g_array_index (x->marks, guint8, e->id) = MARK_DEAD;
          merge = TRUE;
        }
    }
  if (merge)
    {
      GArray *all = g_array_new (FALSE, FALSE, sizeof (guint));
      for (guint b = 0; b < s->n_branches; b++)
        {
          CsNode *e = cs_graph_node (x->g, ends[b]);
          if (g_array_index (x->marks, guint8, ends[b]) & MARK_DEAD)
            g_array_append_vals (all, e->inputs, e->n_inputs);
          else
            g_array_append_val (all, ends[b]);
        }
      n_in = all->len;
      g_free (ends);
      ends = (guint *) g_array_free (all, FALSE);
    }

  CsNode *n = new_node (x, s->op, module, s->label, n_in, s->line, s->col, error);
  if (n == NULL)
    return FALSE;
  for (guint i = 0; i < s->n_args; i++)
    if (!set_param (x, n, &klass->params[s->args[i].spec], &s->args[i], env, error))
      return FALSE;
  if (s->n_from)
    for (guint i = 0; i < s->n_from; i++)
      {
        Ref r = { n->id, i, s->from[i].name, g_strdup (module), s->from[i].line,
                  s->from[i].col, x->frame };
        g_array_append_val (x->refs, r);
      }
  else if (s->n_branches)
    memcpy (n->inputs, ends, n_in * sizeof (guint));
  else
    n->inputs[0] = *cur;
  *cur = n->id;
  return TRUE;
}

/* Looks NAME up from MODULE outwards: nodes first, then the outputs of named block calls. */
static gint
resolve (Exec *x, const char *module, const char *name)
{
  g_autofree char *scope = g_strdup (module);
  for (;;)
    {
      g_autofree char *full = join_path (scope, name);
      CsNode *n = cs_graph_lookup (x->g, full);
      if (n && !(g_array_index (x->marks, guint8, n->id) & MARK_DEAD))
        return n->id;
      gpointer id;
      if (g_hash_table_lookup_extended (x->aliases, full, NULL, &id))
        return GPOINTER_TO_INT (id);
      if (*scope == '\0')
        return -1;
      char *slash = strrchr (scope, '/');
      if (slash)
        *slash = '\0';
      else
        *scope = '\0';
    }
}

static gboolean
exec_call (Exec *x, const Stmt *s, Env *env, const char *module, gint *cur, GError **error)
{
  BlockDef *def = g_hash_table_lookup (x->ps->blocks, s->name);
  if (def == NULL)
    return exec_error (x, s->line, s->col, error, CS_ERROR_NAME, "unknown block '%s'",
                       s->name);
  if (def->n_params != s->n_call_args)
    return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                       "block '%s' takes %u argument%s, not %u", s->name, def->n_params,
                       def->n_params == 1 ? "" : "s", s->n_call_args);
  if (x->depth >= MAX_DEPTH)
    return exec_error (x, s->line, s->col, error, CS_ERROR_LIMIT,
                       "blocks call each other more than %d deep", MAX_DEPTH);
  if (s->n_from)
    {
      gint id = resolve (x, module, s->from[0].name);
      if (id < 0)
        return exec_error (x, s->from[0].line, s->from[0].col, error, CS_ERROR_NAME,
                           "unknown layer '%s' (a block's input must be defined before the "
                           "call)", s->from[0].name);
      *cur = id;
    }

  Env *local = env_new (x->globals);
  for (guint i = 0; i < def->n_params; i++)
    {
      Value v;
      if (!eval (x, s->call_args[i], env, &v, error))
        {
          env_free (local);
          return FALSE;
        }
      if (v.n != 1)
        {
          env_free (local);
          return exec_error (x, s->call_args[i]->line, s->call_args[i]->col, error,
                             CS_ERROR_PARSE, "block arguments are numbers, not sizes");
        }
      env_set (local, def->params[i], v.v[0]);
    }

  g_autofree char *short_name = s->label ? g_strdup (s->label) : auto_name (x, module, s->name);
  g_autofree char *path = join_path (module, short_name);
  if (g_hash_table_contains (x->aliases, path))
    {
      env_free (local);
      return exec_error (x, s->line, s->col, error, CS_ERROR_NAME,
                         "the name '%s' is already used by another block call", path);
    }
  const CsFrame *saved = x->frame;
  x->frame = cs_graph_add_frame (x->g, s->name, s->line, s->col, saved);
  x->depth++;
  gboolean ok = exec_body (x, &def->body, local, path, cur, error);
  x->depth--;
  x->frame = saved;
  env_free (local);
  if (ok)
    g_hash_table_insert (x->aliases, g_strdup (path), GINT_TO_POINTER (*cur));
  return ok;
}

static gboolean
exec_stmt (Exec *x, const Stmt *s, Env *env, const char *module, gint *cur, GError **error)
{
  if (++x->steps > MAX_STEPS)
    return exec_error (x, s->line, s->col, error, CS_ERROR_LIMIT,
                       "expanding the file takes more than %d statements", MAX_STEPS);
  switch (s->kind)
    {
    case S_LAYER:
      return exec_layer (x, s, env, module, cur, error);
    case S_CALL:
      return exec_call (x, s, env, module, cur, error);
    case S_INPUT:
      {
        if (*cur >= 0 || cs_graph_n_nodes (x->g) > 0)
          return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                             "'input' must come once, before the first layer");
        CsNode *n = new_node (x, CS_OP_INPUT, module, s->label ? s->label : "input", 0, s->line,
                              s->col, error);
        if (n == NULL)
          return FALSE;
        n->p.shape = s->shape;
        *cur = n->id;
        return TRUE;
      }
    case S_LET:
      {
        Value v;
        if (!eval (x, s->expr, env, &v, error))
          return FALSE;
        if (v.n != 1)
          return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                             "variables hold numbers, not sizes");
        env_set (env, s->name, v.v[0]);
        return TRUE;
      }
    case S_REPEAT:
      {
        Value v;
        if (!eval (x, s->expr, env, &v, error))
          return FALSE;
        if (v.n != 1 || v.v[0] != floor (v.v[0]) || v.v[0] < 0)
          return exec_error (x, s->expr->line, s->expr->col, error, CS_ERROR_PARSE,
                             "a repeat count must be a whole number, not %.15g", v.v[0]);
        if (v.v[0] > MAX_REPEAT)
          return exec_error (x, s->expr->line, s->expr->col, error, CS_ERROR_LIMIT,
                             "repeat %.15g is over the limit of %d", v.v[0], MAX_REPEAT);
        guint64 count = (guint64) v.v[0];
        for (guint64 i = 0; i < count; i++)
          {
            /* Passes count too, so that nested repeats of nothing cannot spin forever. */
            if (++x->passes > MAX_STEPS)
              return exec_error (x, s->line, s->col, error, CS_ERROR_LIMIT,
                                 "expanding the file takes more than %d repeat passes",
                                 MAX_STEPS);
            Env *local = env_new (env);
            if (s->name)
              env_set (local, s->name, i);
            gboolean ok = exec_body (x, &s->body, local, module, cur, error);
            env_free (local);
            if (!ok)
              return FALSE;
          }
        return TRUE;
      }
    case S_IF:
      {
        Value v;
        if (!eval (x, s->expr, env, &v, error))
          return FALSE;
        if (v.n != 1)
          return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                             "a condition must be a number");
        Env *local = env_new (env);
        gboolean ok = exec_body (x, v.v[0] != 0 ? &s->body : &s->else_body, local, module, cur,
                                 error);
        env_free (local);
        return ok;
      }
    case S_AUX:
      {
        if (!need_current (x, s, *cur, error))
          return FALSE;
        double weight = 0.3;
        if (s->expr)
          {
            Value v;
            if (!eval (x, s->expr, env, &v, error))
              return FALSE;
            if (v.n != 1 || v.v[0] < 0 || v.v[0] > 1000)
              return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                                 "an auxiliary loss weight is a number from 0 to 1000");
            weight = v.v[0];
          }
        gint end = *cur;
        gboolean saved = x->train_only;
        x->train_only = TRUE;
        Env *local = env_new (env);
        gboolean ok = exec_body (x, &s->body, local, module, &end, error);
        env_free (local);
        x->train_only = saved;
        if (!ok)
          return FALSE;
        if (end == *cur)
          return exec_error (x, s->line, s->col, error, CS_ERROR_PARSE,
                             "an auxiliary branch needs at least one layer");
        CsNode *out = cs_graph_node (x->g, end);
        out->flags |= CS_NODE_AUX_OUTPUT;
        out->loss_weight = weight;
        return TRUE;
      }
    }
  g_assert_not_reached ();
}

static gboolean
exec_body (Exec *x, const Body *body, Env *env, const char *module, gint *cur, GError **error)
{
  for (guint i = 0; i < body->n; i++)
    if (!exec_stmt (x, body->items[i], env, module, cur, error))
      return FALSE;
  return TRUE;
}

/* Drops the nodes merged into other joins, renumbering the rest and the pending references. */
static void
drop_dead (Exec *x)
{
  CsGraph *g = x->g;
  guint n = cs_graph_n_nodes (g), kept = 0;
  g_autofree guint *new_id = g_new0 (guint, n);
  for (guint i = 0; i < n; i++)
    {
      CsNode *node = g->nodes->pdata[i];
      if (g_array_index (x->marks, guint8, i) & MARK_DEAD)
        {
          g_hash_table_remove (g->by_name, node->name);
          g_free (node->name), g_free (node->module), g_free (node->inputs);
          g_free (node);
          continue;
        }
      new_id[i] = kept;
      node->id = kept;
      g->nodes->pdata[kept++] = node;
    }
  if (kept == n)
    return;
  g_ptr_array_set_size (g->nodes, kept);
  for (guint i = 0; i < kept; i++)
    {
      CsNode *node = g->nodes->pdata[i];
      for (guint j = 0; j < node->n_inputs; j++)
        node->inputs[j] = new_id[node->inputs[j]];
    }
  for (guint r = 0; r < x->refs->len; r++)
    {
      Ref *ref = &g_array_index (x->refs, Ref, r);
      ref->node = new_id[ref->node];
    }
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, x->aliases);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      guint id = GPOINTER_TO_UINT (value);
      if (g_array_index (x->marks, guint8, id) & MARK_DEAD)
        g_hash_table_iter_remove (&it);
      else
        g_hash_table_iter_replace (&it, GUINT_TO_POINTER (new_id[id]));
    }
  g_array_set_size (x->marks, kept);
  memset (x->marks->data, 0, kept);
}

static void
ref_clear (gpointer p)
{
  g_free (((Ref *) p)->module);
}

CsGraph *
cs_parse_model (const char *file, const char *text, gsize len, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_autoptr (CsGraph) g = cs_graph_new (file);
  if (!cs_graph_set_source (g, text, len, CS_PARSER_MAX_BYTES, "models", error))
    return NULL;

  Parser ps = {
    .file = g->file, .text = g->text, .end = g->text + len, .p = g->text,
    .line = 1, .col = 1, .g = g,
    .strings = g_string_chunk_new (4096),
    .allocs = g_ptr_array_new_with_free_func (g_free),
    .blocks = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, block_def_free),
  };
  Exec x = {
    .ps = &ps, .g = g,
    .counters = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
    .aliases = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
    .refs = g_array_new (FALSE, FALSE, sizeof (Ref)),
    .marks = g_array_new (FALSE, FALSE, sizeof (guint8)),
    .globals = env_new (NULL),
  };
  g_array_set_clear_func (x.refs, ref_clear);

  Body top = { 0 };
  gint cur = -1;
  gboolean ok = parse_body (&ps, &top, TRUE, error)
             && exec_body (&x, &top, x.globals, "", &cur, error);
  if (ok && cur < 0)
    {
      cs_graph_pos_error (g, NULL, error, CS_ERROR_PARSE,
                          "the file defines no layers: it needs 'input HxWxC' and layers");
      ok = FALSE;
    }
  if (ok)
    {
      drop_dead (&x);
      for (guint r = 0; r < x.refs->len && ok; r++)
        {
          Ref *ref = &g_array_index (x.refs, Ref, r);
          gint id = resolve (&x, ref->module, ref->name);
          if (id < 0)
            {
              CsSrcPos pos = { ref->line, ref->col, ref->frame };
              cs_graph_pos_error (g, &pos, error, CS_ERROR_NAME, "unknown layer '%s'",
                                  ref->name);
              ok = FALSE;
            }
          else
            cs_graph_node (g, ref->node)->inputs[ref->slot] = id;
        }
    }
  if (ok && g->name == NULL)
    {
      g_autofree char *base = g_path_get_basename (file ? file : "model");
      char *dot = strrchr (base, '.');
      if (dot && dot != base)
        *dot = '\0';
      g->name = g_strdup (base);
    }
  if (ok && g->title == NULL)
    g->title = g_strdup (g->name);
  ok = ok && cs_graph_finalize (g, error);

  env_free (x.globals);
  g_hash_table_unref (x.counters);
  g_hash_table_unref (x.aliases);
  g_array_free (x.refs, TRUE);
  g_array_free (x.marks, TRUE);
  g_hash_table_unref (ps.blocks);
  g_ptr_array_unref (ps.allocs);
  g_string_chunk_free (ps.strings);
  return ok ? g_steal_pointer (&g) : NULL;
}

CsGraph *
cs_parse_model_file (const char *path, GError **error)
{
  return cs_graph_read_file (path, cs_parse_model, error);
}
