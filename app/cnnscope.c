/* cnnscope: the desktop application (GTK 4 + libadwaita). */
#include "cs-blas.h"
#include "cs-window.h"

#include <locale.h>

char *cs_window_last_model (void);

typedef struct {
  char *screenshot;
  int status;
} AppState;

static void
screenshot_done (gpointer data)
{
  GApplication *app = data;
  g_application_quit (app);
}

static int
on_command_line (GApplication *app, GApplicationCommandLine *cmdline, AppState *state)
{
  int argc;
  g_auto (GStrv) argv = g_application_command_line_get_arguments (cmdline, &argc);
  g_autofree char *screenshot = NULL;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "screenshot", 0, 0, G_OPTION_ARG_FILENAME, &screenshot,
      "Save a PNG of the window on MODEL once it is drawn, then quit", "FILE.png" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[MODEL|FILE.cnn] - explore a CNN");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  char **args = argv;
  if (!g_option_context_parse (ctx, &argc, &args, &error))
    {
      g_application_command_line_printerr (cmdline, "cnnscope: %s\n", error->message);
      g_error_free (error);
      return 2;
    }
  if (version)
    {
      g_application_command_line_print (cmdline, "cnnscope 0.1.0\n");
      return 0;
    }
  if (argc > 2)
    {
      g_application_command_line_printerr (cmdline, "cnnscope: one model at a time\n");
      return 2;
    }
  g_autofree char *last = argc < 2 ? cs_window_last_model () : NULL;
  const char *model = argc == 2 ? args[1] : last ? last : "vgg16";

  CsWindow *win = cs_window_new (GTK_APPLICATION (app));
  cs_window_open (win, model);
  if (screenshot)
    cs_window_screenshot (win, screenshot, G_CALLBACK (screenshot_done), app);
  gtk_window_present (GTK_WINDOW (win));
  return 0;
}

static void
on_about (GSimpleAction *action, GVariant *param, gpointer app)
{
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (app));
  adw_show_about_window (parent,
                         "application-name", "cnnscope",
                         "application-icon", "org.cnnscope.Cnnscope",
                         "version", "0.1.0",
                         "comments", "Explore convolutional network architectures: every "
                                     "layer's volume, parameters, memory, multiply-adds and "
                                     "receptive field, as the CS231n lecture computes them.",
                         "license-type", GTK_LICENSE_GPL_3_0,
                         NULL);
}

static void
on_quit (GSimpleAction *action, GVariant *param, gpointer app)
{
  g_application_quit (G_APPLICATION (app));
}

static void
on_startup (GApplication *app)
{
  const GActionEntry actions[] = {
    { "about", on_about, NULL, NULL, NULL, { 0 } },
    { "quit", on_quit, NULL, NULL, NULL, { 0 } },
  };
  g_action_map_add_action_entries (G_ACTION_MAP (app), actions, G_N_ELEMENTS (actions), app);
  const char *quit[] = { "<Control>q", NULL };
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit);
  gtk_icon_theme_add_resource_path (gtk_icon_theme_get_for_display (gdk_display_get_default ()),
                                    "/org/cnnscope/Cnnscope/icons");
}

int
main (int argc, char **argv)
{
  cs_blas_init (argv);
  setlocale (LC_ALL, "");
  AppState state = { 0 };
  /* Not unique: each run opens its own window, so screenshots and tests need no session bus. */
  g_autoptr (AdwApplication) app =
    adw_application_new ("org.cnnscope.Cnnscope",
                         G_APPLICATION_HANDLES_COMMAND_LINE | G_APPLICATION_NON_UNIQUE);
  g_signal_connect (app, "startup", G_CALLBACK (on_startup), NULL);
  g_signal_connect (app, "command-line", G_CALLBACK (on_command_line), &state);
  return g_application_run (G_APPLICATION (app), argc, argv);
}
