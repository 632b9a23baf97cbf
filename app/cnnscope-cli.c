/* cnnscope-cli: the headless front end (list the zoo, print a model's per-layer statistics). */
#include "cs-error.h"
#include "cs-report.h"
#include "cs-stats.h"
#include "cs-zoo.h"

#include <locale.h>
#include <stdio.h>

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

static int
usage_error (GOptionContext *ctx, const char *msg)
{
  g_printerr ("cnnscope-cli: %s\n", msg);
  if (ctx)
    {
      g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
      g_printerr ("\n%s", help);
    }
  return EXIT_USAGE;
}

static int
cmd_list (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the bundled models");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      int r = usage_error (ctx, error->message);
      g_error_free (error);
      return r;
    }
  if (argc > 1)
    return usage_error (ctx, "list takes no arguments");

  g_auto (GStrv) names = cs_zoo_list ();
  for (char **n = names; *n; n++)
    {
      g_autoptr (CsGraph) g = cs_load_model (*n, &error);
      if (g == NULL)
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          continue;
        }
      g_autoptr (CsStats) st = cs_stats_compute (g, 1, &error);
      if (st == NULL)
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          continue;
        }
      g_autofree char *params = cs_format_si (st->folded_totals.params);
      g_autofree char *macs = cs_format_si (st->folded_totals.macs);
      g_autofree char *year = g->year ? g_strdup_printf ("%u", g->year) : g_strdup ("");
      g_print ("%-28s %-28s %-12s %4s  %6s params %6s MACs\n", g->name, g->title,
               g->family ? g->family : "", year, params, macs);
    }
  return EXIT_SUCCESS;
}

static int
cmd_summary (int argc, char **argv)
{
  gint64 batch = 1;
  gboolean unfold = FALSE;
  g_autofree char *format_name = NULL;
  GOptionEntry entries[] = {
    { "batch", 'b', 0, G_OPTION_ARG_INT64, &batch, "Batch size (default 1)", "N" },
    { "unfold", 'u', 0, G_OPTION_ARG_NONE, &unfold,
      "List every layer instead of folding in-place layers into the one before", NULL },
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format_name,
      "table (default), markdown, csv or json", "FORMAT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("MODEL - per-layer statistics of a bundled model or a .cnn file");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      int r = usage_error (ctx, error->message);
      g_error_free (error);
      return r;
    }
  if (argc != 2)
    return usage_error (ctx, "summary takes one MODEL: a bundled name (see 'list') or a file");
  CsReportFormat format = CS_REPORT_TABLE;
  if (format_name && !cs_report_format_from_string (format_name, &format))
    return usage_error (ctx, "--format takes table, markdown, csv or json");
  if (batch < 1 || batch > 1048576)
    return usage_error (ctx, "--batch takes a number from 1 to 1048576");

  g_autoptr (CsGraph) g = cs_load_model (argv[1], &error);
  g_autoptr (CsStats) st = g ? cs_stats_compute (g, batch, &error) : NULL;
  if (st == NULL)
    {
      g_printerr ("%s\n", error->message);
      g_error_free (error);
      return EXIT_MODEL;
    }
  g_autofree char *text = cs_report (st, format, unfold);
  fputs (text, stdout);
  return fflush (stdout) == 0 ? EXIT_SUCCESS : EXIT_MODEL;
}

static const struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *help;
} commands[] = {
  { "list", cmd_list, "list the bundled models" },
  { "summary", cmd_summary, "print a model's per-layer table and totals" },
};

static int
main_usage (FILE *f)
{
  fprintf (f, "Usage: cnnscope-cli COMMAND [OPTIONS...]\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf (f, "\n'cnnscope-cli COMMAND --help' describes a command's options.\n");
  return f == stdout ? EXIT_SUCCESS : EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc < 2)
    return main_usage (stderr);
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h")
      || g_str_equal (argv[1], "help"))
    return main_usage (stdout);
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      {
        g_autofree char *prog = g_strdup_printf ("cnnscope-cli %s", argv[1]);
        g_set_prgname (prog);
        return commands[i].run (argc - 1, argv + 1);
      }
  g_printerr ("cnnscope-cli: unknown command '%s'\n\n", argv[1]);
  return main_usage (stderr);
}
