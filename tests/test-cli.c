/* cnnscope-cli as a user runs it: output formats, exit codes and messages. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sys/wait.h>

typedef struct {
  int status;
  char *out, *err;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static void
run_cli (Run *r, ...)
{
  const char *cli = g_getenv ("CNNSCOPE_CLI");
  g_assert_nonnull (cli);
  GPtrArray *argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) cli);
  va_list ap;
  va_start (ap, r);
  for (const char *a; (a = va_arg (ap, const char *)) != NULL;)
    g_ptr_array_add (argv, (char *) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  GError *error = NULL;
  int wait_status;
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &r->out, &r->err,
                &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  r->status = WEXITSTATUS (wait_status);
  g_ptr_array_free (argv, TRUE);
}

static void
test_list (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "list", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.err, ==, "");
  g_auto (GStrv) lines = g_strsplit (r.out, "\n", -1);
  /* One line per bundled model, and the last line is empty. */
  g_assert_cmpuint (g_strv_length (lines), ==, 26 + 1);
  g_assert_true (g_str_has_prefix (r.out, "alexnet "));
  g_assert_nonnull (strstr (r.out, "\nvgg16 "));
  g_assert_nonnull (strstr (r.out, "\nresnet1202_cifar "));
}

static JsonObject *
parse_json (const char *text, JsonParser **parser)
{
  GError *error = NULL;
  *parser = json_parser_new ();
  json_parser_load_from_data (*parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_get_object (json_parser_get_root (*parser));
}

static void
test_json (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", "vgg16", "--format", "json", "--batch", "2", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (r.out, &parser);
  g_assert_cmpstr (json_object_get_string_member (o, "model"), ==, "vgg16");
  g_assert_cmpint (json_object_get_int_member (o, "batch"), ==, 2);
  JsonArray *input = json_object_get_array_member (o, "input");
  g_assert_cmpint (json_array_get_int_element (input, 0), ==, 3);
  g_assert_cmpint (json_array_get_int_element (input, 1), ==, 224);
  JsonArray *layers = json_object_get_array_member (o, "layers");
  g_assert_cmpuint (json_array_get_length (layers), ==, 22);
  JsonObject *conv = json_array_get_object_element (layers, 1);
  g_assert_cmpstr (json_object_get_string_member (conv, "kind"), ==, "conv");
  g_assert_cmpint (json_object_get_int_member (conv, "weights"), ==, 1728);
  g_assert_cmpint (json_object_get_int_member (conv, "biases"), ==, 64);
  g_assert_cmpint (json_object_get_int_member (conv, "activations"), ==, 2 * 3211264);
  JsonArray *rf = json_object_get_array_member (conv, "rf");
  g_assert_cmpint (json_array_get_int_element (rf, 0), ==, 3);
  g_assert_cmpint (json_array_get_int_element (rf, 1), ==, 1);
  JsonObject *f = json_object_get_object_member (conv, "formulas");
  g_assert_cmpstr (json_object_get_string_member (f, "output"), ==, "(224-3+2*1)/1+1 = 224");
  g_assert_cmpstr (json_object_get_string_member (f, "params"), ==, "(3*3*3)*64 = 1,728");
  g_assert_cmpstr (json_object_get_string_member (f, "memory"), ==, "224*224*64 = 3,211,264");
  g_assert_cmpfloat (json_object_get_double_member (conv, "rf_start"), ==, 0.0);
  JsonArray *out = json_object_get_array_member (conv, "output");
  g_assert_cmpint (json_array_get_int_element (out, 0), ==, 64);
  JsonObject *t = json_object_get_object_member (o, "totals");
  g_assert_cmpint (json_object_get_int_member (t, "params"), ==, 138357544);
  g_assert_cmpint (json_object_get_int_member (t, "weights"), ==, 138344128);
  g_assert_cmpint (json_object_get_int_member (t, "biases"), ==, 13416);
  g_assert_cmpint (json_object_get_int_member (t, "buffers"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (t, "activations"), ==, 2 * 15237608);
  g_assert_cmpint (json_object_get_int_member (t, "macs"), ==, 2 * 15470264320);
  g_assert_cmpint (json_object_get_int_member (t, "flops"), ==, 4 * 15470264320);
}

static void
test_unfold (void)
{
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", "vgg16", "--format", "json", "--unfold", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = NULL;
  JsonObject *o = parse_json (r.out, &parser);
  /* 22 rows plus 15 ReLUs, 2 dropouts and the softmax. */
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "layers")), ==, 40);
  g_assert_cmpstr (json_object_get_string_member (o, "view"), ==, "unfolded");
}

static void
test_table_and_csv (void)
{
  g_auto (Run) t = { 0 };
  run_cli (&t, "summary", "alexnet", NULL);
  g_assert_cmpint (t.status, ==, 0);
  g_assert_nonnull (strstr (t.out, "(11*11*3)*96 = 34,848"));
  g_assert_nonnull (strstr (t.out, "62,378,344 = 62,367,776 weights + 10,568 biases"));
  g_auto (GStrv) lines = g_strsplit (t.out, "\n", -1);
  for (char **l = lines; *l; l++)
    if (!g_str_has_prefix (*l, "AlexNet") && !g_str_has_prefix (*l, "input ")
        && !g_str_has_prefix (*l, "  "))
      g_assert_cmpint (g_utf8_strlen (*l, -1), <=, 100);

  g_auto (Run) c = { 0 };
  run_cli (&c, "summary", "alexnet", "--format", "csv", NULL);
  g_assert_cmpint (c.status, ==, 0);
  g_auto (GStrv) rows = g_strsplit (c.out, "\n", -1);
  g_assert_cmpuint (g_strv_length (rows), ==, 1 + 14 + 1);
  g_assert_true (g_str_has_prefix (rows[2], "conv1,conv,,55,55,96,290400,34848,96,"));

  g_auto (Run) m = { 0 };
  run_cli (&m, "summary", "alexnet", "--format", "markdown", NULL);
  g_assert_cmpint (m.status, ==, 0);
  g_assert_nonnull (strstr (m.out, "| conv1 | conv | 55x55x96 | 290,400 |"));
}

static void
test_exit_codes (void)
{
  struct { const char *args[4]; int status; const char *err; } cases[] = {
    { { "summary", "no-such-model" }, 1, "no such file, and no bundled model" },
    { { "summary", "/nonexistent/x.cnn" }, 1, "/nonexistent/x.cnn" },
    { { "summary" }, 2, "summary takes one MODEL" },
    { { "summary", "vgg16", "--format", "yaml" }, 2, "--format takes" },
    { { "summary", "vgg16", "--batch", "0" }, 2, "--batch takes" },
    { { "summary", "vgg16", "--bogus" }, 2, "Unknown option" },
    { { "frobnicate" }, 2, "unknown command 'frobnicate'" },
    { { NULL }, 2, "Usage: cnnscope-cli" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto (Run) r = { 0 };
      const char **a = cases[i].args;
      run_cli (&r, a[0], a[1], a[2], a[3], NULL);
      g_assert_cmpint (r.status, ==, cases[i].status);
      g_assert_cmpstr (r.out, ==, "");
      g_assert_nonnull (strstr (r.err, cases[i].err));
    }
}

static void
test_bad_file (void)
{
  g_autofree char *dir = g_dir_make_tmp ("cnnscope-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "bad.cnn", NULL);
  g_assert_true (g_file_set_contents (path, "input 32x32x3\nconv 16 3x3\nadd { { conv 8 1 } { } }\n",
                                      -1, NULL));
  g_auto (Run) r = { 0 };
  run_cli (&r, "summary", path, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_cmpstr (r.out, ==, "");
  g_autofree char *where = g_strdup_printf ("%s:3:1: layer 'add1': input 2 is 30x30x16 but "
                                            "input 1 is 30x30x8", path);
  g_assert_nonnull (strstr (r.err, where));
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/list", test_list);
  g_test_add_func ("/cli/summary/json", test_json);
  g_test_add_func ("/cli/summary/unfold", test_unfold);
  g_test_add_func ("/cli/summary/table-csv-markdown", test_table_and_csv);
  g_test_add_func ("/cli/exit-codes", test_exit_codes);
  g_test_add_func ("/cli/bad-file", test_bad_file);
  return g_test_run ();
}
