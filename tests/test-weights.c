/* safetensors and .npy files: round trips, byte-exact agreement with the formats' specs, and
 * every way a file can be malformed or fail to match. */
#include "cs-error.h"
#include "cs-weights.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#ifdef G_OS_UNIX
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

/* ---- Helpers ----------------------------------------------------------------------------- */

static char *
make_tmpdir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("cs-weights-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

static void
remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_chmod (path, 0700);
      GDir *d = g_dir_open (path, 0, NULL);
      g_assert_nonnull (d);
      for (const char *name; (name = g_dir_read_name (d)) != NULL;)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
        }
      g_dir_close (d);
      g_assert_cmpint (g_rmdir (path), ==, 0);
    }
  else
    g_assert_cmpint (g_unlink (path), ==, 0);
}

static guint
count_entries (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  guint n = 0;
  while (g_dir_read_name (d) != NULL)
    n++;
  g_dir_close (d);
  return n;
}

static void
write_bytes (const char *path, const void *data, gsize len)
{
  GError *error = NULL;
  g_file_set_contents (path, data, (gssize) len, &error);
  g_assert_no_error (error);
}

static GBytes *
read_bytes (const char *path)
{
  GError *error = NULL;
  char *data;
  gsize len;
  g_file_get_contents (path, &data, &len, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (data, len);
}

static CsTensor *
tensor (const char *name, guint rank, guint64 d0, guint64 d1, guint64 d2, guint64 d3)
{
  GError *error = NULL;
  guint64 shape[] = { d0, d1, d2, d3 };
  CsTensor *t = cs_tensor_new (name, rank, shape, TRUE, &error);
  g_assert_no_error (error);
  return t;
}

static void
fill (CsTensor *t, float start)
{
  for (gsize i = 0; i < t->numel; i++)
    t->data[i] = start + (float) i * 0.25f;
}

static guint32
float_bits (float f)
{
  guint32 u;
  memcpy (&u, &f, sizeof u);
  return u;
}

static float
bits_float (guint32 u)
{
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

/* A safetensors file assembled from a header and a data buffer, with the length prefix
 * written out byte by byte as the spec describes it. */
static GByteArray *
safetensors_bytes (const char *header, gsize header_len, const void *data, gsize data_len)
{
  GByteArray *a = g_byte_array_new ();
  guint8 len[8];
  for (guint i = 0; i < 8; i++)
    len[i] = (guint8) ((guint64) header_len >> (8 * i));
  g_byte_array_append (a, len, 8);
  g_byte_array_append (a, (const guint8 *) header, header_len);
  if (data_len)
    g_byte_array_append (a, data, data_len);
  return a;
}

static void
assert_message_has (const GError *error, const char *part)
{
  if (strstr (error->message, part) == NULL)
    g_error ("message “%s” lacks “%s”", error->message, part);
}

/* ---- safetensors: round trips and bytes -------------------------------------------------- */

static void
test_st_round_trip (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  GError *error = NULL;

  CsTensor *src[] = {
    tensor ("conv1.weight", 4, 4, 3, 3, 3), tensor ("conv1.bias", 1, 4, 0, 0, 0),
    tensor ("fc.weight", 2, 10, 7, 0, 0), tensor ("bn1.running_mean", 1, 5, 0, 0, 0),
    tensor ("empty", 2, 0, 3, 0, 0), tensor ("scale", 0, 0, 0, 0, 0),
  };
  for (guint i = 0; i < G_N_ELEMENTS (src); i++)
    fill (src[i], (float) i * 100.0f - 3.0f);
  /* Values whose bits a careless conversion would change. */
  src[1]->data[0] = -0.0f;
  src[1]->data[1] = bits_float (0x7fc12345); /* NaN with a payload */
  src[1]->data[2] = -INFINITY;
  src[1]->data[3] = bits_float (0x00000001); /* smallest subnormal */
  src[5]->data[0] = 6.5f;

  g_assert_true (cs_safetensors_save (path, src, G_N_ELEMENTS (src), &error));
  g_assert_no_error (error);
  /* Only the file itself: no temporary left behind. */
  g_assert_cmpuint (count_entries (dir), ==, 1);

  /* Loaded in another order, into tensors that start out different. */
  CsTensor *dst[G_N_ELEMENTS (src)];
  for (guint i = 0; i < G_N_ELEMENTS (src); i++)
    {
      const CsTensor *s = src[G_N_ELEMENTS (src) - 1 - i];
      dst[i] = tensor (s->name, s->rank, s->shape[0], s->shape[1], s->shape[2], s->shape[3]);
      fill (dst[i], 12345.0f);
    }
  g_assert_true (cs_safetensors_load (path, dst, G_N_ELEMENTS (dst), &error));
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (src); i++)
    {
      const CsTensor *s = src[G_N_ELEMENTS (src) - 1 - i];
      g_assert_cmpstr (dst[i]->name, ==, s->name);
      g_assert_cmpuint (dst[i]->numel, ==, s->numel);
      if (s->numel)
        g_assert_cmpmem (dst[i]->data, dst[i]->numel * 4, s->data, s->numel * 4);
    }
  g_assert_cmphex (float_bits (dst[4]->data[1]), ==, 0x7fc12345);
  g_assert_cmphex (float_bits (dst[4]->data[0]), ==, 0x80000000);
  g_assert_cmpfloat (dst[0]->data[0], ==, 6.5f);
  g_assert_cmpfloat (dst[5]->data[5], ==, -3.0f + 5 * 0.25f);

  /* The header as any JSON reader sees it. */
  g_autoptr (GBytes) file = read_bytes (path);
  gsize size;
  const guint8 *b = g_bytes_get_data (file, &size);
  guint64 n = 0;
  for (guint i = 0; i < 8; i++)
    n |= (guint64) b[i] << (8 * i);
  g_assert_cmpuint (n % 8, ==, 0);
  g_assert_cmpuint (8 + n, <=, size);
  g_autoptr (JsonParser) parser = json_parser_new ();
  json_parser_load_from_data (parser, (const char *) b + 8, (gssize) n, &error);
  g_assert_no_error (error);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  g_autoptr (GList) members = json_object_get_members (root);
  const char *order[] = { "__metadata__", "bn1.running_mean", "conv1.bias", "conv1.weight",
                          "empty", "fc.weight", "scale" };
  g_assert_cmpuint (g_list_length (members), ==, G_N_ELEMENTS (order));
  guint k = 0;
  for (GList *l = members; l; l = l->next)
    g_assert_cmpstr (l->data, ==, order[k++]);
  JsonObject *meta = json_object_get_object_member (root, "__metadata__");
  g_assert_cmpstr (json_object_get_string_member (meta, "producer"), ==, "cnnscope");
  JsonObject *w = json_object_get_object_member (root, "conv1.weight");
  g_assert_cmpstr (json_object_get_string_member (w, "dtype"), ==, "F32");
  JsonArray *shape = json_object_get_array_member (w, "shape");
  g_assert_cmpuint (json_array_get_length (shape), ==, 4);
  g_assert_cmpint (json_array_get_int_element (shape, 0), ==, 4);
  g_assert_cmpint (json_array_get_int_element (shape, 3), ==, 3);
  JsonArray *off = json_object_get_array_member (w, "data_offsets");
  /* Sorted order: bn1.running_mean (20 bytes) and conv1.bias (16) come first. */
  g_assert_cmpint (json_array_get_int_element (off, 0), ==, 36);
  g_assert_cmpint (json_array_get_int_element (off, 1), ==, 36 + 108 * 4);
  g_assert_cmpuint (json_array_get_length (
                      json_object_get_array_member (
                        json_object_get_object_member (root, "scale"), "shape")), ==, 0);
  /* The data buffer holds exactly the tensors. */
  g_assert_cmpuint (size, ==, 8 + n + (5 + 4 + 108 + 0 + 70 + 1) * 4);
  float v;
  memcpy (&v, b + 8 + n + 36, 4);
  g_assert_cmpfloat (v, ==, -3.0f);

  /* The same tensors in another order give the same bytes. */
  g_autofree char *path2 = g_build_filename (dir, "again.safetensors", NULL);
  CsTensor *rev[G_N_ELEMENTS (src)];
  for (guint i = 0; i < G_N_ELEMENTS (src); i++)
    rev[i] = src[G_N_ELEMENTS (src) - 1 - i];
  g_assert_true (cs_safetensors_save (path2, rev, G_N_ELEMENTS (rev), &error));
  g_autoptr (GBytes) file2 = read_bytes (path2);
  g_assert_true (g_bytes_equal (file, file2));

  for (guint i = 0; i < G_N_ELEMENTS (src); i++)
    {
      cs_tensor_free (src[i]);
      cs_tensor_free (dst[i]);
    }
  remove_tree (dir);
}

/* A file built by hand from the spec: another writer's key order, no padding (so the data is
 * not aligned), and metadata that is not ours. */
static void
test_st_golden_read (void)
{
  static const char golden[] =
    "\x8d\x00\x00\x00\x00\x00\x00\x00"
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[8,16]}}"
    "\x00\x00\x80\x3f" "\x00\x00\x00\xc0"  /* b = 1.0, -2.0 */
    "\x00\x00\x00\x3f" "\x00\x00\x40\x40"; /* a = 0.5, 3.0 */
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "golden.safetensors", NULL);
  write_bytes (path, golden, sizeof golden - 1);

  g_autoptr (CsTensor) a = tensor ("a", 2, 1, 2, 0, 0);
  g_autoptr (CsTensor) b = tensor ("b", 1, 2, 0, 0, 0);
  CsTensor *ts[] = { a, b };
  GError *error = NULL;
  g_assert_true (cs_safetensors_load (path, ts, 2, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (a->data[0], ==, 0.5f);
  g_assert_cmpfloat (a->data[1], ==, 3.0f);
  g_assert_cmpfloat (b->data[0], ==, 1.0f);
  g_assert_cmpfloat (b->data[1], ==, -2.0f);
  remove_tree (dir);
}

/* Our writer's bytes, pinned: the JSON, its space padding to 8, and little-endian floats. */
static void
test_st_golden_write (void)
{
  static const char expected[] =
    "\x60\x00\x00\x00\x00\x00\x00\x00"
    "{\"__metadata__\":{\"producer\":\"cnnscope\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   "
    "\x00\x00\x80\x3f" "\x00\x00\x00\xc0";
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "a.safetensors", NULL);
  g_autoptr (CsTensor) a = tensor ("a", 1, 2, 0, 0, 0);
  a->data[0] = 1.0f;
  a->data[1] = -2.0f;
  GError *error = NULL;
  g_assert_true (cs_safetensors_save (path, &a, 1, &error));
  g_assert_no_error (error);
  g_autoptr (GBytes) file = read_bytes (path);
  gsize size;
  const void *data = g_bytes_get_data (file, &size);
  g_assert_cmpmem (data, size, expected, sizeof expected - 1);

  /* An empty model still makes a valid file. */
  g_assert_true (cs_safetensors_save (path, NULL, 0, &error));
  g_assert_true (cs_safetensors_load (path, NULL, 0, &error));
  g_assert_no_error (error);
  remove_tree (dir);
}

/* ---- safetensors: malformed files -------------------------------------------------------- */

typedef struct {
  const char *what;
  const char *header;
  gsize data_len;
  CsErrorCode code;
  const char *message;
} BadHeader;

static const BadHeader bad_headers[] = {
  { "invalid JSON", "{\"w\": {\"dtype\": \"F32\",", 8, CS_ERROR_IO, "not valid JSON" },
  { "empty", "", 8, CS_ERROR_IO, "not a JSON object" },
  { "array", "[1, 2]", 8, CS_ERROR_IO, "not a JSON object" },
  { "number", "42", 8, CS_ERROR_IO, "not a JSON object" },
  { "entry not object", "{\"w\": [1]}", 8, CS_ERROR_IO, "tensor “w”: its header entry" },
  { "missing dtype", "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, CS_ERROR_IO,
    "tensor “w”: “dtype” is missing" },
  { "dtype not string", "{\"w\": {\"dtype\": 32, \"shape\": [2], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_IO, "“dtype” is missing or not a string" },
  { "missing shape", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8,
    CS_ERROR_IO, "“shape” is missing" },
  { "negative dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_IO, "non-negative integers" },
  { "fractional dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_IO, "non-negative integers" },
  { "string dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_IO, "non-negative integers" },
  { "missing offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, CS_ERROR_IO,
    "“data_offsets” must be" },
  { "three offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 9]}}",
    8, CS_ERROR_IO, "“data_offsets” must be" },
  { "reversed offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 0]}}",
    8, CS_ERROR_IO, "“data_offsets” must be" },
  { "offsets out of range",
    "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [1000, 1008]}}", 8,
    CS_ERROR_IO, "truncated at byte" },
  { "size mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
    8, CS_ERROR_IO, "dtype F32 and shape 2 take 8 bytes, but its data_offsets span 4" },
  { "F16 size mismatch", "{\"w\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_IO, "dtype F16 and shape 2 take 4 bytes" },
  { "size overflow",
    "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}",
    8, CS_ERROR_OVERFLOW, "tensor “w”: the size of its shape overflows" },
  { "metadata not object", "{\"__metadata__\": [\"x\"]}", 0, CS_ERROR_IO,
    "“__metadata__” must be an object of strings" },
  { "metadata number", "{\"__metadata__\": {\"epoch\": 3}}", 0, CS_ERROR_IO,
    "“__metadata__” must be an object of strings" },
};

static void
test_st_bad_header (gconstpointer data)
{
  const BadHeader *bad = data;
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bad.safetensors", NULL);
  static const guint8 zeros[16];
  GByteArray *file = safetensors_bytes (bad->header, strlen (bad->header), zeros,
                                        bad->data_len);
  write_bytes (path, file->data, file->len);
  g_byte_array_unref (file);

  g_autoptr (CsTensor) w = tensor ("w", 1, 2, 0, 0, 0);
  w->data[0] = 7.0f;
  GError *error = NULL;
  g_assert_false (cs_safetensors_load (path, &w, 1, &error));
  g_assert_error (error, CS_ERROR, (gint) bad->code);
  assert_message_has (error, "bad.safetensors");
  assert_message_has (error, bad->message);
  g_assert_cmpfloat (w->data[0], ==, 7.0f);
  g_error_free (error);
  remove_tree (dir);
}

static void
expect_load_error (const char *path, const void *bytes, gsize len, CsErrorCode code,
                   const char *part1, const char *part2)
{
  write_bytes (path, bytes, len);
  g_autoptr (CsTensor) w = tensor ("w", 1, 2, 0, 0, 0);
  GError *error = NULL;
  g_assert_false (cs_safetensors_load (path, &w, 1, &error));
  g_assert_error (error, CS_ERROR, (gint) code);
  assert_message_has (error, part1);
  if (part2)
    assert_message_has (error, part2);
  g_error_free (error);
}

static void
test_st_bad_framing (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bad.safetensors", NULL);

  expect_load_error (path, "", 0, CS_ERROR_IO, "truncated at byte 0", "8-byte header length");
  expect_load_error (path, "\x10\x00\x00", 3, CS_ERROR_IO, "bad.safetensors",
                     "truncated at byte 3");
  /* The header length says 64 bytes, but only 10 follow. */
  expect_load_error (path, "\x40\0\0\0\0\0\0\0{\"w\": {}}", 17, CS_ERROR_IO,
                     "truncated at byte 17", "bytes 8 to 72");
  /* A length with the top bit set is not taken for a negative or wrapped-around size. */
  expect_load_error (path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10, CS_ERROR_IO,
                     "truncated at byte 10", "not a safetensors file?");

  /* Text that is not UTF-8, and a NUL inside the header. */
  GByteArray *f = safetensors_bytes ("{\"w\xff\": 1}", 10, NULL, 0);
  expect_load_error (path, f->data, f->len, CS_ERROR_IO, "not valid UTF-8", "at byte 11");
  g_byte_array_unref (f);
  f = safetensors_bytes ("{\"w\": \0}", 8, NULL, 0);
  expect_load_error (path, f->data, f->len, CS_ERROR_IO, "not valid UTF-8", "at byte 14");
  g_byte_array_unref (f);

  /* Deep nesting, which would overflow the stack of a recursive JSON parser. */
  gsize depth = 200000;
  char *deep = g_malloc (depth + 2);
  deep[0] = '{';
  memcpy (deep + 1, "\"w\":", 4);
  memset (deep + 5, '[', depth - 5);
  f = safetensors_bytes (deep, depth, NULL, 0);
  expect_load_error (path, f->data, f->len, CS_ERROR_IO, "nests more than", NULL);
  g_byte_array_unref (f);
  g_free (deep);

  /* Brackets inside strings do not count as nesting. */
  GString *s = g_string_new ("{\"__metadata__\": {\"x\": \"");
  for (guint i = 0; i < 100; i++)
    g_string_append (s, "[{\\\"");
  g_string_append (s, "\"}}");
  f = safetensors_bytes (s->str, s->len, NULL, 0);
  expect_load_error (path, f->data, f->len, CS_ERROR_IO, "w: missing from the file", NULL);
  g_byte_array_unref (f);
  g_string_free (s, TRUE);

  g_autofree char *missing = g_build_filename (dir, "nonexistent.safetensors", NULL);
  g_autoptr (CsTensor) w = tensor ("w", 1, 2, 0, 0, 0);
  GError *error = NULL;
  g_assert_false (cs_safetensors_load (missing, &w, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "nonexistent.safetensors");
  g_clear_error (&error);
  g_assert_false (cs_safetensors_load (dir, &w, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
  remove_tree (dir);
}

/* A header length over 100 MiB in a file that really is that long: a sparse file, so the test
 * costs no disk space. */
static void
test_st_header_limit (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "huge.safetensors", NULL);
  guint64 n = 100 * 1024 * 1024 + 8;
  guint8 len[8];
  for (guint i = 0; i < 8; i++)
    len[i] = (guint8) (n >> (8 * i));
  FILE *fp = g_fopen (path, "wb");
  g_assert_nonnull (fp);
  g_assert_cmpuint (fwrite (len, 1, 8, fp), ==, 8);
  g_assert_cmpint (fseek (fp, (long) n, SEEK_CUR), ==, 0);
  g_assert_cmpuint (fwrite ("}", 1, 1, fp), ==, 1);
  g_assert_cmpint (fclose (fp), ==, 0);

  GError *error = NULL;
  g_assert_false (cs_safetensors_load (path, NULL, 0, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "huge.safetensors");
  assert_message_has (error, "104857608 bytes, is over the limit of 104857600");
  g_error_free (error);
  remove_tree (dir);
}

/* A real file cut short: the message names the file and where the data was expected. */
static void
test_st_truncated (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "cut.safetensors", NULL);
  g_autoptr (CsTensor) a = tensor ("a", 1, 4, 0, 0, 0);
  g_autoptr (CsTensor) b = tensor ("b", 2, 2, 3, 0, 0);
  CsTensor *ts[] = { a, b };
  GError *error = NULL;
  g_assert_true (cs_safetensors_save (path, ts, 2, &error));

  g_autoptr (GBytes) whole = read_bytes (path);
  gsize size;
  const guint8 *data = g_bytes_get_data (whole, &size);
  guint64 n = data[0] | (guint64) data[1] << 8;
  /* Lose the last float of b. */
  write_bytes (path, data, size - 4);
  fill (a, 1.0f);
  g_assert_false (cs_safetensors_load (path, ts, 2, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_autofree char *expect = g_strdup_printf (
    "cut.safetensors: truncated at byte %" G_GSIZE_FORMAT ": tensor “b” should occupy bytes %"
    G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT, size - 4, 8 + n + 16, 8 + n + 40);
  assert_message_has (error, expect);
  g_clear_error (&error);
  g_assert_cmpfloat (a->data[0], ==, 1.0f);

  /* Cut inside the header. */
  write_bytes (path, data, 20);
  g_assert_false (cs_safetensors_load (path, ts, 2, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "cut.safetensors: truncated at byte 20");
  g_clear_error (&error);
  remove_tree (dir);
}

/* ---- safetensors: files that do not match the model -------------------------------------- */

static void
test_st_mismatch (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "other.safetensors", NULL);
  GError *error = NULL;

  g_autoptr (CsTensor) fa = tensor ("conv1.weight", 4, 64, 3, 3, 3);
  g_autoptr (CsTensor) fb = tensor ("conv1.bias", 1, 64, 0, 0, 0);
  g_autoptr (CsTensor) fx = tensor ("extra.weight", 2, 5, 2, 0, 0);
  g_autoptr (CsTensor) fo = tensor ("ok", 1, 3, 0, 0, 0);
  fill (fb, 50.0f);
  fill (fo, 60.0f);
  CsTensor *in_file[] = { fa, fb, fx, fo };
  g_assert_true (cs_safetensors_save (path, in_file, 4, &error));

  g_autoptr (CsTensor) ma = tensor ("conv1.weight", 4, 64, 3, 7, 7);
  g_autoptr (CsTensor) mb = tensor ("conv1.bias", 1, 64, 0, 0, 0);
  g_autoptr (CsTensor) mc = tensor ("fc.bias", 1, 10, 0, 0, 0);
  g_autoptr (CsTensor) mo = tensor ("ok", 1, 3, 0, 0, 0);
  fill (mb, -1.0f);
  fill (mo, -2.0f);
  CsTensor *model[] = { ma, mb, mc, mo };
  g_assert_false (cs_safetensors_load (path, model, 4, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_autofree char *expected = g_strconcat (
    path, " does not match the model (3 differences):\n"
    "  conv1.weight: file has 64x3x3x3, model expects 64x3x7x7\n"
    "  fc.bias: missing from the file (model expects F32 10)\n"
    "  extra.weight: in the file (F32 5x2) but not in the model", NULL);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  /* The tensors that did match are untouched too. */
  g_assert_cmpfloat (mb->data[1], ==, -0.75f);
  g_assert_cmpfloat (mo->data[0], ==, -2.0f);

  /* A subset of a file is a mismatch as well: nothing is silently ignored. */
  CsTensor *subset[] = { mo };
  g_assert_false (cs_safetensors_load (path, subset, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "(3 differences)");
  assert_message_has (error, "conv1.bias: in the file (F32 64) but not in the model");
  g_clear_error (&error);
  g_assert_cmpfloat (mo->data[0], ==, -2.0f);
  remove_tree (dir);
}

/* Valid files with other dtypes and ranks are mismatches, not malformed files. */
static void
test_st_other_dtypes (void)
{
  static const char header[] =
    "{\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
    "\"big\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[4,12]},"
    "\"both\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[12,36]},"
    "\"future\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[36,37]}}";
  static const guint8 data[37];
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "mixed.safetensors", NULL);
  GByteArray *f = safetensors_bytes (header, sizeof header - 1, data, sizeof data);
  write_bytes (path, f->data, f->len);
  g_byte_array_unref (f);

  g_autoptr (CsTensor) half = tensor ("half", 1, 2, 0, 0, 0);
  g_autoptr (CsTensor) big = tensor ("big", 2, 1, 2, 0, 0);
  g_autoptr (CsTensor) both = tensor ("both", 1, 4, 0, 0, 0);
  g_autoptr (CsTensor) future = tensor ("future", 1, 2, 0, 0, 0);
  CsTensor *model[] = { half, big, both, future };
  GError *error = NULL;
  g_assert_false (cs_safetensors_load (path, model, 4, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_autofree char *expected = g_strconcat (
    path, " does not match the model (4 differences):\n"
    "  half: file has dtype F16, model expects F32\n"
    "  big: file has 1x1x1x1x2, model expects 1x2\n"
    "  both: file has F64 3, model expects F32 4\n"
    "  future: file has dtype F4, model expects F32", NULL);
  g_assert_cmpstr (error->message, ==, expected);
  g_error_free (error);
  remove_tree (dir);
}

/* ---- safetensors: saving that fails ------------------------------------------------------ */

static void
assert_file_is (const char *path, GBytes *expected)
{
  g_autoptr (GBytes) now = read_bytes (path);
  g_assert_true (g_bytes_equal (now, expected));
}

static void
test_st_save_bad_names (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "x.safetensors", NULL);
  g_autoptr (CsTensor) a = tensor ("a", 1, 1, 0, 0, 0);
  g_autoptr (CsTensor) a2 = tensor ("a", 1, 2, 0, 0, 0);
  g_autoptr (CsTensor) meta = tensor ("__metadata__", 1, 1, 0, 0, 0);
  GError *error = NULL;
  CsTensor *dup[] = { a, a2 };
  g_assert_false (cs_safetensors_save (path, dup, 2, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_NAME);
  assert_message_has (error, "two tensors are named “a”");
  g_clear_error (&error);
  g_assert_false (cs_safetensors_save (path, &meta, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_NAME);
  g_clear_error (&error);
  g_assert_cmpuint (count_entries (dir), ==, 0);
  remove_tree (dir);
}

/* The target is a folder: the rename fails at the very end, after all the writing. */
static void
test_st_save_onto_directory (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *target = g_build_filename (dir, "w.safetensors", NULL);
  g_autofree char *inside = g_build_filename (target, "keep", NULL);
  g_assert_cmpint (g_mkdir (target, 0700), ==, 0);
  write_bytes (inside, "kept", 4);

  g_autoptr (CsTensor) a = tensor ("a", 1, 3, 0, 0, 0);
  GError *error = NULL;
  g_assert_false (cs_safetensors_save (target, &a, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "w.safetensors");
  g_clear_error (&error);
  g_assert_true (g_file_test (target, G_FILE_TEST_IS_DIR));
  g_autofree char *kept = NULL;
  g_assert_true (g_file_get_contents (inside, &kept, NULL, NULL));
  g_assert_cmpstr (kept, ==, "kept");
  /* The temporary file was removed. */
  g_assert_cmpuint (count_entries (dir), ==, 1);

  /* A folder that does not exist. */
  g_autofree char *nowhere = g_build_filename (dir, "no", "such", "w.safetensors", NULL);
  g_assert_false (cs_safetensors_save (nowhere, &a, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
  g_assert_false (cs_npy_write (nowhere, a->data, a->rank, a->shape, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&error);
  remove_tree (dir);
}

static void
test_st_save_read_only (void)
{
#ifdef G_OS_UNIX
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "w.safetensors", NULL);
  g_autoptr (CsTensor) a = tensor ("a", 1, 3, 0, 0, 0);
  GError *error = NULL;
  g_assert_true (cs_safetensors_save (path, &a, 1, &error));
  g_autoptr (GBytes) before = read_bytes (path);

  if (geteuid () == 0)
    {
      g_test_skip ("root writes into read-only folders");
      remove_tree (dir);
      return;
    }
  g_assert_cmpint (g_chmod (dir, 0500), ==, 0);
  fill (a, 9.0f);
  g_assert_false (cs_safetensors_save (path, &a, 1, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "w.safetensors");
  assert_message_has (error, g_strerror (EACCES));
  g_clear_error (&error);
  g_assert_cmpint (g_chmod (dir, 0700), ==, 0);
  assert_file_is (path, before);
  g_assert_cmpuint (count_entries (dir), ==, 1);
  remove_tree (dir);
#else
  g_test_skip ("needs POSIX permissions");
#endif
}

/* A write that fails half way (the file size limit stands in for a full disk), so the
 * temporary file really has been partly written when it is abandoned; this works as root. */
static void
test_st_save_disk_full (void)
{
#ifdef G_OS_UNIX
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "w.safetensors", NULL);
  g_autofree char *npy = g_build_filename (dir, "w.npy", NULL);
  g_autoptr (CsTensor) small = tensor ("a", 1, 3, 0, 0, 0);
  g_autoptr (CsTensor) big = tensor ("a", 1, 1 << 20, 0, 0, 0);
  GError *error = NULL;
  g_assert_true (cs_safetensors_save (path, &small, 1, &error));
  g_assert_true (cs_npy_write (npy, small->data, small->rank, small->shape, &error));
  g_autoptr (GBytes) before = read_bytes (path);
  g_autoptr (GBytes) npy_before = read_bytes (npy);

  struct rlimit old, lim;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old), ==, 0);
  lim = old;
  lim.rlim_cur = 64 * 1024;
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &lim), ==, 0);
  gboolean st_ok = cs_safetensors_save (path, &big, 1, &error);
  GError *npy_error = NULL;
  gboolean npy_ok = cs_npy_write (npy, big->data, big->rank, big->shape, &npy_error);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old), ==, 0);
  signal (SIGXFSZ, old_handler);

  g_assert_false (st_ok);
  g_assert_error (error, CS_ERROR, CS_ERROR_IO);
  assert_message_has (error, "cannot write");
  assert_message_has (error, "w.safetensors");
  g_clear_error (&error);
  g_assert_false (npy_ok);
  g_assert_error (npy_error, CS_ERROR, CS_ERROR_IO);
  g_clear_error (&npy_error);
  assert_file_is (path, before);
  assert_file_is (npy, npy_before);
  g_assert_cmpuint (count_entries (dir), ==, 2);
  remove_tree (dir);
#else
  g_test_skip ("needs setrlimit");
#endif
}

/* ---- .npy -------------------------------------------------------------------------------- */

static void
test_npy_round_trip (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "a.npy", NULL);
  static const guint64 shapes[][4] = { { 7 }, { 2, 3 }, { 2, 3, 4 }, { 2, 1, 3, 5 }, { 0, 4 } };
  static const guint ranks[] = { 1, 2, 3, 4, 2 };
  for (guint s = 0; s < G_N_ELEMENTS (ranks); s++)
    {
      gsize n = 1;
      for (guint d = 0; d < ranks[s]; d++)
        n *= shapes[s][d];
      float *data = g_new (float, MAX (n, 1));
      for (gsize i = 0; i < n; i++)
        data[i] = (float) i * -1.5f + (float) s;
      if (n > 2)
        {
          data[1] = bits_float (0xffc00001);
          data[2] = -0.0f;
        }
      GError *error = NULL;
      g_assert_true (cs_npy_write (path, data, ranks[s], shapes[s], &error));
      g_assert_no_error (error);
      g_assert_cmpuint (count_entries (dir), ==, 1);

      g_autoptr (GBytes) file = read_bytes (path);
      gsize size;
      const guint8 *b = g_bytes_get_data (file, &size);
      g_assert_cmpmem (b, 8, "\x93NUMPY\x01\x00", 8);
      gsize hlen = b[8] | (gsize) b[9] << 8;
      g_assert_cmpuint ((10 + hlen) % 64, ==, 0);
      g_assert_cmpuint (b[10 + hlen - 1], ==, '\n');
      g_assert_cmpuint (size, ==, 10 + hlen + n * 4);

      guint rank = 99;
      guint64 shape[CS_TENSOR_MAX_RANK] = { 9, 9, 9, 9 };
      g_autofree float *back = cs_npy_read (path, &rank, shape, &error);
      g_assert_no_error (error);
      g_assert_nonnull (back);
      g_assert_cmpuint (rank, ==, ranks[s]);
      for (guint d = 0; d < CS_TENSOR_MAX_RANK; d++)
        g_assert_cmpuint (shape[d], ==, d < rank ? shapes[s][d] : 0);
      if (n)
        g_assert_cmpmem (back, n * 4, data, n * 4);
      g_free (data);
    }
  remove_tree (dir);
}

/* The bytes numpy 1.x writes for np.arange(6, dtype='<f4').reshape(2, 3), spelt out: version
 * 1.0, a 118-byte header padded with spaces so the data starts at byte 128. */
static const char npy_golden[] =
  "\x93NUMPY\x01\x00\x76\x00"
  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
  "                                                          \n"
  "\x00\x00\x00\x00" "\x00\x00\x80\x3f" "\x00\x00\x00\x40"
  "\x00\x00\x40\x40" "\x00\x00\x80\x40" "\x00\x00\xa0\x40";

static void
test_npy_golden (void)
{
  g_assert_cmpuint (sizeof npy_golden - 1, ==, 128 + 24);
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "golden.npy", NULL);
  write_bytes (path, npy_golden, sizeof npy_golden - 1);
  GError *error = NULL;
  guint rank;
  guint64 shape[CS_TENSOR_MAX_RANK];
  g_autofree float *data = cs_npy_read (path, &rank, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rank, ==, 2);
  g_assert_cmpuint (shape[0], ==, 2);
  g_assert_cmpuint (shape[1], ==, 3);
  for (guint i = 0; i < 6; i++)
    g_assert_cmpfloat (data[i], ==, (float) i);

  /* Our writer produces exactly these bytes. */
  g_autofree char *ours = g_build_filename (dir, "ours.npy", NULL);
  g_assert_true (cs_npy_write (ours, data, rank, shape, &error));
  g_autoptr (GBytes) file = read_bytes (ours);
  gsize size;
  const void *b = g_bytes_get_data (file, &size);
  g_assert_cmpmem (b, size, npy_golden, sizeof npy_golden - 1);
  remove_tree (dir);
}

/* Headers other writers produce: version 2.0, keys in another order, double quotes, Python 2's
 * long integers, the old 16-byte alignment, and a rank-1 tuple. */
static void
test_npy_tolerant (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "other.npy", NULL);
  static const struct {
    const char *prefix;
    gsize prefix_len;
    const char *header;
    guint rank;
    guint64 d0, d1;
  } cases[] = {
    { "\x93NUMPY\x02\x00\x2e\x00\x00\x00", 12,
      "{\"shape\": (3,), \"descr\": \"<f4\", \"fortran_order\": False}\n", 1, 3, 0 },
    { "\x93NUMPY\x01\x00\x46\x00", 10,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 3L), }       \n", 2, 1, 3 },
    { "\x93NUMPY\x03\x00\x22\x00\x00\x00", 12,
      "{'fortran_order':False,'descr':'<f4','shape':( 3 , )}", 1, 3, 0 },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      GByteArray *f = g_byte_array_new ();
      gsize hlen = strlen (cases[c].header);
      guint8 prefix[12];
      memcpy (prefix, cases[c].prefix, cases[c].prefix_len);
      prefix[8] = hlen & 0xff; /* the header length, which the table leaves to here */
      prefix[9] = hlen >> 8;
      g_byte_array_append (f, prefix, cases[c].prefix_len);
      g_byte_array_append (f, (const guint8 *) cases[c].header, hlen);
      g_byte_array_append (f, (const guint8 *) "\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40",
                           12);
      write_bytes (path, f->data, f->len);
      g_byte_array_unref (f);

      GError *error = NULL;
      guint rank;
      guint64 shape[CS_TENSOR_MAX_RANK];
      g_autofree float *data = cs_npy_read (path, &rank, shape, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (rank, ==, cases[c].rank);
      g_assert_cmpuint (shape[0], ==, cases[c].d0);
      g_assert_cmpuint (shape[1], ==, cases[c].d1);
      g_assert_cmpfloat (data[0], ==, 1.0f);
      g_assert_cmpfloat (data[2], ==, 3.0f);
    }
  remove_tree (dir);
}

typedef struct {
  const char *what;
  const char *header; /* after a version 1.0 prefix; NULL: RAW is the whole file */
  const char *raw;
  gsize raw_len;
  gsize data_len;
  CsErrorCode code;
  const char *message;
} BadNpy;

static const BadNpy bad_npys[] = {
  { "bad magic", NULL, "\x93NUMPZ\x01\x00\x00\x00", 10, 0, CS_ERROR_IO, "not a .npy file" },
  { "empty", NULL, "", 0, 0, CS_ERROR_IO, "not a .npy file" },
  { "version 4", NULL, "\x93NUMPY\x04\x00\x00\x00", 10, 0, CS_ERROR_UNSUPPORTED,
    "version 4.0 is not supported" },
  { "no header length", NULL, "\x93NUMPY\x02\x00\x10\x00", 10, 0, CS_ERROR_IO,
    "truncated at byte 10" },
  { "header past the end", NULL, "\x93NUMPY\x01\x00\x40\x00{}", 12, 0, CS_ERROR_IO,
    "truncated at byte 12: the header should occupy bytes 10 to 74" },
  { "f8", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", NULL, 0, 24,
    CS_ERROR_UNSUPPORTED, "dtype '<f8' is not supported" },
  { "big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", NULL, 0, 12,
    CS_ERROR_UNSUPPORTED, "dtype '>f4' is not supported" },
  { "structured", "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (3,), }", NULL,
    0, 12, CS_ERROR_UNSUPPORTED, "structured dtypes" },
  { "fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", NULL, 0, 24,
    CS_ERROR_UNSUPPORTED, "Fortran-order" },
  { "rank 0", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", NULL, 0, 4,
    CS_ERROR_UNSUPPORTED, "rank 0" },
  { "rank 5", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", NULL, 0,
    4, CS_ERROR_UNSUPPORTED, "rank 5" },
  { "truncated data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", NULL, 0,
    20, CS_ERROR_IO, "truncated at byte 89: the 2x3 float32 data should occupy bytes 69 to 93" },
  { "trailing data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", NULL, 0,
    12, CS_ERROR_IO, "4 unexpected bytes after the 2 float32 data" },
  { "missing key", "{'descr': '<f4', 'shape': (2,), }", NULL, 0, 8, CS_ERROR_IO,
    "needs 'descr', 'fortran_order' and 'shape'" },
  { "unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", NULL, 0,
    8, CS_ERROR_IO, "unexpected or repeated key 'x'" },
  { "repeated key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
    NULL, 0, 8, CS_ERROR_IO, "unexpected or repeated key 'descr'" },
  { "negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", NULL, 0, 8,
    CS_ERROR_IO, "expected a non-negative integer" },
  { "bad bool", "{'descr': '<f4', 'fortran_order': Falsehood, 'shape': (2,), }", NULL, 0, 8,
    CS_ERROR_IO, "expected True or False" },
  { "unterminated", "{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", NULL, 0, 8,
    CS_ERROR_IO, "malformed .npy header" },
  { "no brace", "'descr': '<f4', 'fortran_order': False, 'shape': (2,)", NULL, 0, 8,
    CS_ERROR_IO, "malformed .npy header at byte 10: expected '{'" },
  { "text after", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", NULL, 0, 8,
    CS_ERROR_IO, "unexpected text after the dictionary" },
  { "dim overflow",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }", NULL, 0, 8,
    CS_ERROR_OVERFLOW, "does not fit in 64 bits" },
  { "size overflow",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", NULL, 0,
    8, CS_ERROR_OVERFLOW, "the size of a 4294967296x4294967296 array overflows" },
};

static void
test_npy_bad (gconstpointer p)
{
  const BadNpy *bad = p;
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bad.npy", NULL);
  GByteArray *f = g_byte_array_new ();
  if (bad->header)
    {
      gsize hlen = strlen (bad->header);
      guint8 prefix[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, hlen & 0xff, hlen >> 8 };
      g_byte_array_append (f, prefix, 10);
      g_byte_array_append (f, (const guint8 *) bad->header, hlen);
      static const guint8 zeros[32];
      g_byte_array_append (f, zeros, bad->data_len);
    }
  else
    g_byte_array_append (f, (const guint8 *) bad->raw, bad->raw_len);
  write_bytes (path, f->data, f->len);
  g_byte_array_unref (f);

  GError *error = NULL;
  guint rank = 77;
  guint64 shape[CS_TENSOR_MAX_RANK] = { 0 };
  float *data = cs_npy_read (path, &rank, shape, &error);
  g_assert_null (data);
  g_assert_error (error, CS_ERROR, (gint) bad->code);
  assert_message_has (error, "bad.npy");
  assert_message_has (error, bad->message);
  g_assert_cmpuint (rank, ==, 77);
  g_error_free (error);
  remove_tree (dir);
}

static void
test_npy_write_bad (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "x.npy", NULL);
  float v[1] = { 1.0f };
  guint64 shape[5] = { 1, 1, 1, 1, 1 };
  GError *error = NULL;
  g_assert_false (cs_npy_write (path, v, 0, shape, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_assert_false (cs_npy_write (path, v, 5, shape, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  guint64 huge[2] = { G_MAXUINT64 / 2, 4 };
  g_assert_false (cs_npy_write (path, v, 2, huge, &error));
  g_assert_error (error, CS_ERROR, CS_ERROR_OVERFLOW);
  g_clear_error (&error);
  g_assert_cmpuint (count_entries (dir), ==, 0);
  remove_tree (dir);
}

/* An outside reader: numpy itself, where it is installed. */
static void
test_npy_numpy_reads (void)
{
  int status = 0;
  g_autofree char *probe_err = NULL;
  if (!g_spawn_command_line_sync ("python3 -c 'import numpy'", NULL, &probe_err, &status, NULL)
      || !g_spawn_check_wait_status (status, NULL))
    {
      g_test_skip ("python3 with numpy is not available");
      return;
    }
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "for-numpy.npy", NULL);
  float data[24];
  for (guint i = 0; i < 24; i++)
    data[i] = (float) i * 0.5f - 3.0f;
  guint64 shape[] = { 2, 3, 4 };
  GError *error = NULL;
  g_assert_true (cs_npy_write (path, data, 3, shape, &error));

  const char *script =
    "import sys, numpy\n"
    "a = numpy.load(sys.argv[1])\n"
    "assert a.dtype == numpy.dtype('<f4'), a.dtype\n"
    "assert a.shape == (2, 3, 4), a.shape\n"
    "assert a.flags['C_CONTIGUOUS']\n"
    "assert (a.ravel() == numpy.arange(24, dtype='<f4') * 0.5 - 3).all()\n"
    "print(float(a[1, 2, 3]))\n";
  const char *argv[] = { "python3", "-c", script, path, NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("numpy could not read our file: %s", err);
  g_assert_cmpstr (out, ==, "8.5\n");
  remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/core/weights/safetensors/round-trip", test_st_round_trip);
  g_test_add_func ("/core/weights/safetensors/golden-read", test_st_golden_read);
  g_test_add_func ("/core/weights/safetensors/golden-write", test_st_golden_write);
  for (guint i = 0; i < G_N_ELEMENTS (bad_headers); i++)
    {
      g_autofree char *name = g_strdup_printf ("/core/weights/safetensors/bad-header/%s",
                                               bad_headers[i].what);
      g_strdelimit (name + strlen ("/core/weights/safetensors/bad-header/"), " ", '-');
      g_test_add_data_func (name, &bad_headers[i], test_st_bad_header);
    }
  g_test_add_func ("/core/weights/safetensors/bad-framing", test_st_bad_framing);
  g_test_add_func ("/core/weights/safetensors/header-limit", test_st_header_limit);
  g_test_add_func ("/core/weights/safetensors/truncated", test_st_truncated);
  g_test_add_func ("/core/weights/safetensors/mismatch", test_st_mismatch);
  g_test_add_func ("/core/weights/safetensors/other-dtypes", test_st_other_dtypes);
  g_test_add_func ("/core/weights/safetensors/save-bad-names", test_st_save_bad_names);
  g_test_add_func ("/core/weights/safetensors/save-onto-directory", test_st_save_onto_directory);
  g_test_add_func ("/core/weights/safetensors/save-read-only", test_st_save_read_only);
  g_test_add_func ("/core/weights/safetensors/save-disk-full", test_st_save_disk_full);
  g_test_add_func ("/core/weights/npy/round-trip", test_npy_round_trip);
  g_test_add_func ("/core/weights/npy/golden", test_npy_golden);
  g_test_add_func ("/core/weights/npy/tolerant", test_npy_tolerant);
  for (guint i = 0; i < G_N_ELEMENTS (bad_npys); i++)
    {
      g_autofree char *name = g_strdup_printf ("/core/weights/npy/bad/%s", bad_npys[i].what);
      g_strdelimit (name + strlen ("/core/weights/npy/bad/"), " ", '-');
      g_test_add_data_func (name, &bad_npys[i], test_npy_bad);
    }
  g_test_add_func ("/core/weights/npy/write-bad", test_npy_write_bad);
  g_test_add_func ("/core/weights/npy/numpy-reads", test_npy_numpy_reads);
  return g_test_run ();
}
