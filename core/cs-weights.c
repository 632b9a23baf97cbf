/* safetensors and .npy files: atomic writers and validating readers for float32 tensors. */
#include "cs-weights.h"
#include "cs-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

/* The same cap the reference implementation uses: a header is a few kilobytes per thousand
 * tensors, so anything larger is a corrupt or hostile length field. */
#define SAFETENSORS_MAX_HEADER (100u * 1024 * 1024)
/* json-glib's parser recurses once per nesting level with no limit of its own, so a header of
 * a million '[' would overflow the stack; a real header nests three deep. */
#define SAFETENSORS_MAX_DEPTH 32
/* Floats converted to little-endian per write; big enough that the write calls cost nothing. */
#define WRITE_CHUNK 16384

/* ---- Atomic writing ---------------------------------------------------------------------- */

/* A temporary file next to the target, renamed over it only once everything has reached the
 * disk, so a reader never sees half a file and a failed save leaves the old one intact. */
typedef struct {
  char *path;
  char *tmp;
  int fd;
} AtomicFile;

static void
io_error (GError **error, const char *path, const char *what, int errsv)
{
  g_autofree char *display = g_filename_display_name (path);
  g_set_error (error, CS_ERROR, CS_ERROR_IO, "cannot %s %s: %s", what, display,
               g_strerror (errsv));
}

static gboolean
atomic_open (AtomicFile *af, const char *path, GError **error)
{
  af->path = g_strdup (path);
  af->tmp = g_strconcat (path, ".XXXXXX", NULL);
  int flags = O_RDWR;
#ifdef O_CLOEXEC
  flags |= O_CLOEXEC;
#endif
  /* 0666 rather than mkstemp's 0600: a weights file is ordinary data, so the umask decides. */
  af->fd = g_mkstemp_full (af->tmp, flags, 0666);
  if (af->fd < 0)
    {
      io_error (error, path, "write", errno);
      g_clear_pointer (&af->tmp, g_free);
      g_clear_pointer (&af->path, g_free);
      return FALSE;
    }
  return TRUE;
}

static void
atomic_abort (AtomicFile *af)
{
  if (af->fd >= 0)
    close (af->fd);
  af->fd = -1;
  if (af->tmp)
    g_unlink (af->tmp);
  g_clear_pointer (&af->tmp, g_free);
  g_clear_pointer (&af->path, g_free);
}

static gboolean
atomic_write (AtomicFile *af, const void *buf, gsize len, GError **error)
{
  const guint8 *p = buf;
  while (len > 0)
    {
      gssize w = write (af->fd, p, MIN (len, (gsize) G_MAXSSIZE));
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          io_error (error, af->path, "write", errno);
          return FALSE;
        }
      p += w;
      len -= (gsize) w;
    }
  return TRUE;
}

static gboolean
atomic_write_floats (AtomicFile *af, const float *data, gsize n, guint32 *chunk, GError **error)
{
  for (gsize done = 0; done < n;)
    {
      gsize k = MIN (n - done, (gsize) WRITE_CHUNK);
      memcpy (chunk, data + done, k * sizeof (float));
      for (gsize i = 0; i < k; i++)
        chunk[i] = GUINT32_TO_LE (chunk[i]);
      if (!atomic_write (af, chunk, k * sizeof (float), error))
        return FALSE;
      done += k;
    }
  return TRUE;
}

static gboolean
atomic_commit (AtomicFile *af, GError **error)
{
  /* Without the fsync a crash soon after the rename can leave an empty file under the old
   * name on filesystems that reorder metadata and data writes. */
  if (g_fsync (af->fd) != 0)
    {
      io_error (error, af->path, "write", errno);
      atomic_abort (af);
      return FALSE;
    }
  int fd = af->fd;
  af->fd = -1;
  if (close (fd) != 0)
    {
      io_error (error, af->path, "write", errno);
      atomic_abort (af);
      return FALSE;
    }
  if (g_rename (af->tmp, af->path) != 0)
    {
      io_error (error, af->path, "replace", errno);
      atomic_abort (af);
      return FALSE;
    }
  g_clear_pointer (&af->tmp, g_free);
  g_clear_pointer (&af->path, g_free);
  return TRUE;
}

/* ---- safetensors: saving ----------------------------------------------------------------- */

static int
compare_by_name (gconstpointer a, gconstpointer b)
{
  const CsTensor *ta = *(CsTensor *const *) a, *tb = *(CsTensor *const *) b;
  return strcmp (ta->name, tb->name);
}

gboolean
cs_safetensors_save (const char *path, CsTensor *const *tensors, guint n, GError **error)
{
  return cs_safetensors_save_full (path, tensors, n, NULL, error);
}

gboolean
cs_safetensors_save_full (const char *path, CsTensor *const *tensors, guint n,
                          GHashTable *metadata, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (n == 0 || tensors != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Sorted so that the same parameters always give the same bytes. */
  g_autofree CsTensor **sorted = g_new (CsTensor *, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    {
      g_return_val_if_fail (tensors[i] != NULL && tensors[i]->name != NULL, FALSE);
      g_return_val_if_fail (tensors[i]->numel == 0 || tensors[i]->data != NULL, FALSE);
      sorted[i] = tensors[i];
    }
  qsort (sorted, n, sizeof *sorted, compare_by_name);

  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "__metadata__");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "producer");
  json_builder_add_string_value (b, "cnnscope");
  if (metadata)
    {
      /* Sorted, like the tensors, so the bytes do not depend on the table's order. */
      g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (metadata),
                                            (GCompareFunc) strcmp);
      for (GList *k = keys; k; k = k->next)
        if (strcmp (k->data, "producer") != 0)
          {
            json_builder_set_member_name (b, k->data);
            json_builder_add_string_value (b, g_hash_table_lookup (metadata, k->data));
          }
    }
  json_builder_end_object (b);

  guint64 offset = 0;
  for (guint i = 0; i < n; i++)
    {
      const CsTensor *t = sorted[i];
      if (!g_utf8_validate (t->name, -1, NULL) || strcmp (t->name, "__metadata__") == 0)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_NAME,
                       "cannot save a tensor named “%s” in a safetensors file",
                       g_utf8_validate (t->name, -1, NULL) ? t->name : "(invalid UTF-8)");
          return FALSE;
        }
      if (i > 0 && strcmp (sorted[i - 1]->name, t->name) == 0)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_NAME,
                       "two tensors are named “%s”; safetensors names must be unique", t->name);
          return FALSE;
        }
      guint64 bytes, end;
      if (!g_uint64_checked_mul (&bytes, t->numel, sizeof (float))
          || !g_uint64_checked_add (&end, offset, bytes) || end > G_MAXINT64)
        {
          g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                       "tensor %s: the file's size overflows", t->name);
          return FALSE;
        }
      json_builder_set_member_name (b, t->name);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "dtype");
      json_builder_add_string_value (b, "F32");
      json_builder_set_member_name (b, "shape");
      json_builder_begin_array (b);
      for (guint d = 0; d < t->rank; d++)
        {
          if (t->shape[d] > G_MAXINT64)
            {
              g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                           "tensor %s: dimension %" G_GUINT64_FORMAT " is too large to save",
                           t->name, t->shape[d]);
              return FALSE;
            }
          json_builder_add_int_value (b, (gint64) t->shape[d]);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "data_offsets");
      json_builder_begin_array (b);
      json_builder_add_int_value (b, (gint64) offset);
      json_builder_add_int_value (b, (gint64) end);
      json_builder_end_array (b);
      json_builder_end_object (b);
      offset = end;
    }
  json_builder_end_object (b);

  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  gsize json_len = 0;
  g_autofree char *json = json_generator_to_data (gen, &json_len);

  /* Padding to 8 keeps the data buffer aligned for readers that map it as float arrays. */
  GString *header = g_string_new_len (json, json_len);
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');
  guint64 len_le = GUINT64_TO_LE ((guint64) header->len);

  AtomicFile af = { NULL, NULL, -1 };
  g_autofree guint32 *chunk = g_new (guint32, WRITE_CHUNK);
  gboolean ok = atomic_open (&af, path, error)
                && atomic_write (&af, &len_le, sizeof len_le, error)
                && atomic_write (&af, header->str, header->len, error);
  for (guint i = 0; ok && i < n; i++)
    ok = atomic_write_floats (&af, sorted[i]->data, sorted[i]->numel, chunk, error);
  g_string_free (header, TRUE);
  if (!ok)
    {
      atomic_abort (&af);
      return FALSE;
    }
  return atomic_commit (&af, error);
}

/* ---- safetensors: loading ---------------------------------------------------------------- */

typedef struct {
  const char *name;   /* owned by the parser's tree */
  const char *dtype;  /* likewise */
  guint rank;
  guint64 *shape;
  guint64 begin, end; /* relative to the data buffer */
} Entry;

static void
entry_clear (gpointer p)
{
  Entry *e = p;
  g_free (e->shape);
}

/* Element sizes of the dtypes the format defines, so that a file's other tensors are checked
 * as carefully as its float32 ones; dtypes added to the format later are left unchecked. */
static guint
dtype_size (const char *dtype)
{
  static const struct { const char *name; guint size; } sizes[] = {
    { "F64", 8 }, { "F32", 4 }, { "F16", 2 }, { "BF16", 2 },
    { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
    { "I64", 8 }, { "I32", 4 }, { "I16", 2 }, { "I8", 1 },
    { "U64", 8 }, { "U32", 4 }, { "U16", 2 }, { "U8", 1 }, { "BOOL", 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    if (strcmp (sizes[i].name, dtype) == 0)
      return sizes[i].size;
  return 0;
}

static gboolean
json_is_uint (JsonNode *node, guint64 *value)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *value = (guint64) v;
  return TRUE;
}

/* Rejects nesting deeper than json-glib can parse without exhausting the stack. */
static gboolean
json_depth_ok (const char *text, gsize len, guint max_depth)
{
  guint depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++)
    {
      char c = text[i];
      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '[' || c == '{')
        {
          if (++depth > max_depth)
            return FALSE;
        }
      else if ((c == ']' || c == '}') && depth > 0)
        depth--;
    }
  return TRUE;
}

static gboolean
parse_entry (const char *display, const char *name, JsonNode *node, guint64 data_len,
             guint64 data_start, guint64 file_size, Entry *e, GError **error)
{
  e->name = name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: tensor “%s”: its header entry is not a JSON object", display, name);
      return FALSE;
    }
  JsonObject *o = json_node_get_object (node);

  JsonNode *dtype = json_object_get_member (o, "dtype");
  if (dtype == NULL || !JSON_NODE_HOLDS_VALUE (dtype)
      || json_node_get_value_type (dtype) != G_TYPE_STRING)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: tensor “%s”: “dtype” is missing or not a string", display, name);
      return FALSE;
    }
  e->dtype = json_node_get_string (dtype);

  JsonNode *shape = json_object_get_member (o, "shape");
  if (shape == NULL || !JSON_NODE_HOLDS_ARRAY (shape))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: tensor “%s”: “shape” is missing or not an array", display, name);
      return FALSE;
    }
  JsonArray *dims = json_node_get_array (shape);
  e->rank = json_array_get_length (dims);
  e->shape = g_new0 (guint64, MAX (e->rank, 1));
  guint64 numel = 1;
  gboolean overflow = FALSE;
  for (guint d = 0; d < e->rank; d++)
    {
      if (!json_is_uint (json_array_get_element (dims, d), &e->shape[d]))
        {
          g_set_error (error, CS_ERROR, CS_ERROR_IO,
                       "%s: tensor “%s”: “shape” must hold non-negative integers", display,
                       name);
          return FALSE;
        }
      overflow |= !g_uint64_checked_mul (&numel, numel, e->shape[d]);
    }

  JsonNode *offsets = json_object_get_member (o, "data_offsets");
  JsonArray *pair = offsets && JSON_NODE_HOLDS_ARRAY (offsets)
                      ? json_node_get_array (offsets) : NULL;
  if (pair == NULL || json_array_get_length (pair) != 2
      || !json_is_uint (json_array_get_element (pair, 0), &e->begin)
      || !json_is_uint (json_array_get_element (pair, 1), &e->end) || e->begin > e->end)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: tensor “%s”: “data_offsets” must be [begin, end] with "
                   "0 <= begin <= end", display, name);
      return FALSE;
    }

  guint size = dtype_size (e->dtype);
  guint64 bytes = 0;
  if (size && (overflow || !g_uint64_checked_mul (&bytes, numel, size)))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                   "%s: tensor “%s”: the size of its shape overflows", display, name);
      return FALSE;
    }
  if (size && e->end - e->begin != bytes)
    {
      g_autofree char *s = cs_tensor_shape_string (e->rank, e->shape);
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: tensor “%s”: dtype %s and shape %s take %" G_GUINT64_FORMAT
                   " bytes, but its data_offsets span %" G_GUINT64_FORMAT,
                   display, name, e->dtype, s, bytes, e->end - e->begin);
      return FALSE;
    }
  if (e->end > data_len)
    {
      /* No overflow: offsets come from int64 values and data_start is at most 8 + 100 MiB. */
      guint64 from = data_start + e->begin, to = data_start + e->end;
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT ": tensor “%s” should occupy "
                   "bytes %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                   display, file_size, name, from, to);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_metadata (const char *display, JsonNode *node, GHashTable *out, GError **error)
{
  gboolean ok = JSON_NODE_HOLDS_OBJECT (node);
  if (ok)
    {
      JsonObject *o = json_node_get_object (node);
      g_autoptr (GList) keys = json_object_get_members (o);
      for (GList *k = keys; ok && k; k = k->next)
        {
          JsonNode *v = json_object_get_member (o, k->data);
          ok = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING;
          if (ok && out)
            g_hash_table_replace (out, g_strdup (k->data), g_strdup (json_node_get_string (v)));
        }
    }
  if (!ok)
    g_set_error (error, CS_ERROR, CS_ERROR_IO,
                 "%s: “__metadata__” must be an object of strings", display);
  return ok;
}

static gboolean
shapes_equal (const CsTensor *t, const Entry *e)
{
  if (t->rank != e->rank)
    return FALSE;
  for (guint d = 0; d < t->rank; d++)
    if (t->shape[d] != e->shape[d])
      return FALSE;
  return TRUE;
}

/* Compares the file's entries with the model's tensors; every difference becomes a line of
 * PROBLEMS so that one error shows the whole picture rather than the first symptom. */
static guint
collect_mismatches (CsTensor *const *tensors, guint n, GArray *entries, GHashTable *by_name,
                    GString *problems)
{
  guint count = 0;
  g_autoptr (GHashTable) expected = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < n; i++)
    {
      const CsTensor *t = tensors[i];
      g_hash_table_add (expected, t->name);
      g_autofree char *want = cs_tensor_shape_string (t->rank, t->shape);
      const Entry *e = g_hash_table_lookup (by_name, t->name);
      if (e == NULL)
        {
          g_string_append_printf (problems, "\n  %s: missing from the file (model expects F32 %s)",
                                  t->name, want);
          count++;
          continue;
        }
      gboolean dtype_ok = strcmp (e->dtype, "F32") == 0, shape_ok = shapes_equal (t, e);
      if (dtype_ok && shape_ok)
        continue;
      g_autofree char *have = cs_tensor_shape_string (e->rank, e->shape);
      if (!dtype_ok && !shape_ok)
        g_string_append_printf (problems, "\n  %s: file has %s %s, model expects F32 %s",
                                t->name, e->dtype, have, want);
      else if (!dtype_ok)
        g_string_append_printf (problems, "\n  %s: file has dtype %s, model expects F32",
                                t->name, e->dtype);
      else
        g_string_append_printf (problems, "\n  %s: file has %s, model expects %s", t->name,
                                have, want);
      count++;
    }
  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      if (g_hash_table_contains (expected, e->name))
        continue;
      g_autofree char *have = cs_tensor_shape_string (e->rank, e->shape);
      g_string_append_printf (problems, "\n  %s: in the file (%s %s) but not in the model",
                              e->name, e->dtype, have);
      count++;
    }
  return count;
}

gboolean
cs_safetensors_load (const char *path, CsTensor *const *tensors, guint n, GError **error)
{
  return cs_safetensors_load_full (path, tensors, n, NULL, error);
}

/* PATH mapped read-only; an error of the CS_ERROR_IO kind, naming the file, if it cannot be. */
static GMappedFile *
map_file (const char *path, GError **error)
{
  GError *local = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &local);
  if (mf == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s", local->message);
      g_error_free (local);
    }
  return mf;
}

gboolean
cs_safetensors_load_full (const char *path, CsTensor *const *tensors, guint n,
                          GHashTable **metadata, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (n == 0 || tensors != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  for (guint i = 0; i < n; i++)
    g_return_val_if_fail (tensors[i] != NULL && tensors[i]->name != NULL
                          && (tensors[i]->numel == 0 || tensors[i]->data != NULL), FALSE);

  g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *display = g_filename_display_name (path);
  g_autoptr (GMappedFile) mf = map_file (path, error);
  if (mf == NULL)
    return FALSE;
  const guint8 *bytes = (const guint8 *) g_mapped_file_get_contents (mf);
  guint64 size = g_mapped_file_get_length (mf);

  if (size < 8)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT
                   ": expected an 8-byte header length", display, size);
      return FALSE;
    }
  guint64 header_len;
  memcpy (&header_len, bytes, sizeof header_len);
  header_len = GUINT64_FROM_LE (header_len);
  if (header_len > size - 8)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT ": the header should occupy "
                   "bytes 8 to %" G_GUINT64_FORMAT "%s", display, size,
                   header_len > G_MAXUINT64 - 8 ? G_MAXUINT64 : header_len + 8,
                   header_len > SAFETENSORS_MAX_HEADER ? " (not a safetensors file?)" : "");
      return FALSE;
    }
  if (header_len > SAFETENSORS_MAX_HEADER)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: the header's length, %" G_GUINT64_FORMAT " bytes, is over the "
                   "limit of %u", display, header_len, SAFETENSORS_MAX_HEADER);
      return FALSE;
    }
  const char *header = (const char *) bytes + 8;
  guint64 data_start = 8 + header_len, data_len = size - data_start;

  /* This also rejects NUL bytes, which json-glib would take for the end of the text. */
  const char *bad_utf8 = NULL;
  if (!g_utf8_validate_len (header, header_len, &bad_utf8))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: the header is not valid UTF-8 text (at byte %" G_GUINT64_FORMAT ")",
                   display, 8 + (guint64) (bad_utf8 - header));
      return FALSE;
    }
  if (!json_depth_ok (header, header_len, SAFETENSORS_MAX_DEPTH))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: the header nests more than %d levels deep", display,
                   SAFETENSORS_MAX_DEPTH);
      return FALSE;
    }
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  GError *local = NULL;
  if (!json_parser_load_from_data (parser, header, (gssize) header_len, &local))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: the header is not valid JSON: %s",
                   display, local->message);
      g_error_free (local);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: the header is not a JSON object",
                   display);
      return FALSE;
    }
  JsonObject *obj = json_node_get_object (root);

  g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_array_set_clear_func (entries, entry_clear);
  g_autoptr (GList) names = json_object_get_members (obj);
  for (GList *l = names; l; l = l->next)
    {
      const char *name = l->data;
      JsonNode *node = json_object_get_member (obj, name);
      if (strcmp (name, "__metadata__") == 0)
        {
          if (!parse_metadata (display, node, meta, error))
            return FALSE;
          continue;
        }
      g_array_set_size (entries, entries->len + 1);
      Entry *e = &g_array_index (entries, Entry, entries->len - 1);
      if (!parse_entry (display, name, node, data_len, data_start, size, e, error))
        return FALSE;
    }

  g_autoptr (GHashTable) by_name = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < entries->len; i++)
    {
      Entry *e = &g_array_index (entries, Entry, i);
      g_hash_table_insert (by_name, (gpointer) e->name, e);
    }

  GString *problems = g_string_new (NULL);
  guint count = collect_mismatches (tensors, n, entries, by_name, problems);
  if (count > 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s does not match the model (%u %s):%s",
                   display, count, count == 1 ? "difference" : "differences", problems->str);
      g_string_free (problems, TRUE);
      return FALSE;
    }
  g_string_free (problems, TRUE);

  /* Only now, with every tensor known to fit, is anything overwritten. */
  const guint8 *data = bytes + data_start;
  for (guint i = 0; i < n; i++)
    {
      CsTensor *t = tensors[i];
      const Entry *e = g_hash_table_lookup (by_name, t->name);
      if (t->numel == 0)
        continue;
      memcpy (t->data, data + e->begin, t->numel * sizeof (float));
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
      guint32 *w = (guint32 *) t->data;
      for (gsize k = 0; k < t->numel; k++)
        w[k] = GUINT32_FROM_LE (w[k]);
#endif
    }
  if (metadata)
    *metadata = g_steal_pointer (&meta);
  return TRUE;
}

/* ---- .npy -------------------------------------------------------------------------------- */

static const char npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };
/* Twice the most dimensions numpy allows; any more is not a real file. */
#define NPY_MAX_DIMS 64

typedef struct {
  const char *p, *end, *start;
  const char *display;
  guint64 base;           /* file offset of START, for messages */
} NpyScan;

typedef struct {
  char descr[64];
  gboolean have_descr, have_fortran, have_shape;
  gboolean fortran;
  gboolean structured;
  guint rank;
  guint64 shape[NPY_MAX_DIMS];
} NpyHeader;

static gboolean
npy_fail (NpyScan *s, GError **error, const char *what)
{
  g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: malformed .npy header at byte %" G_GUINT64_FORMAT
               ": %s", s->display, s->base + (guint64) (s->p - s->start), what);
  return FALSE;
}

static void
npy_skip_ws (NpyScan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static gboolean
npy_accept (NpyScan *s, char c)
{
  npy_skip_ws (s);
  if (s->p < s->end && *s->p == c)
    {
      s->p++;
      return TRUE;
    }
  return FALSE;
}

/* A Python string literal without escapes, which is all numpy writes for these keys. */
static gboolean
npy_string (NpyScan *s, char *out, gsize out_size, GError **error)
{
  npy_skip_ws (s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
    return npy_fail (s, error, "expected a string");
  char quote = *s->p++;
  gsize n = 0;
  while (s->p < s->end && *s->p != quote)
    {
      guchar c = (guchar) *s->p;
      if (c < 0x20 || c > 0x7e || c == '\\')
        return npy_fail (s, error, "unexpected character in a string");
      if (n + 1 >= out_size)
        return npy_fail (s, error, "string too long");
      out[n++] = *s->p++;
    }
  if (s->p >= s->end)
    return npy_fail (s, error, "unterminated string");
  s->p++;
  out[n] = '\0';
  return TRUE;
}

static gboolean
npy_word (NpyScan *s, const char *word)
{
  gsize n = strlen (word);
  if ((gsize) (s->end - s->p) < n || memcmp (s->p, word, n) != 0)
    return FALSE;
  const char *after = s->p + n;
  if (after < s->end && (g_ascii_isalnum (*after) || *after == '_'))
    return FALSE;
  s->p = after;
  return TRUE;
}

static gboolean
npy_bool (NpyScan *s, gboolean *out, GError **error)
{
  npy_skip_ws (s);
  if (npy_word (s, "True"))
    *out = TRUE;
  else if (npy_word (s, "False"))
    *out = FALSE;
  else
    return npy_fail (s, error, "expected True or False");
  return TRUE;
}

/* A tuple of integers: "()", "(5,)", "(2, 3)", and Python 2's "(2L, 3L)". */
static gboolean
npy_shape (NpyScan *s, NpyHeader *h, GError **error)
{
  if (!npy_accept (s, '('))
    return npy_fail (s, error, "expected a shape tuple");
  h->rank = 0;
  for (;;)
    {
      if (npy_accept (s, ')'))
        return TRUE;
      npy_skip_ws (s);
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return npy_fail (s, error, "expected a non-negative integer in the shape");
      guint64 v = 0;
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        {
          if (!g_uint64_checked_mul (&v, v, 10) || !g_uint64_checked_add (&v, v, *s->p - '0'))
            {
              g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                           "%s: a dimension in the .npy header does not fit in 64 bits",
                           s->display);
              return FALSE;
            }
          s->p++;
        }
      if (s->p < s->end && (*s->p == 'L' || *s->p == 'l'))
        s->p++;
      if (h->rank == NPY_MAX_DIMS)
        return npy_fail (s, error, "too many dimensions");
      h->shape[h->rank++] = v;
      if (npy_accept (s, ','))
        continue;
      if (npy_accept (s, ')'))
        return TRUE;
      return npy_fail (s, error, "expected ',' or ')' in the shape");
    }
}

static gboolean
npy_parse_header (NpyScan *s, NpyHeader *h, GError **error)
{
  if (!npy_accept (s, '{'))
    return npy_fail (s, error, "expected '{'");
  for (;;)
    {
      if (npy_accept (s, '}'))
        break;
      char key[32];
      if (!npy_string (s, key, sizeof key, error))
        return FALSE;
      if (!npy_accept (s, ':'))
        return npy_fail (s, error, "expected ':'");
      if (strcmp (key, "descr") == 0 && !h->have_descr)
        {
          h->have_descr = TRUE;
          npy_skip_ws (s);
          /* A list describes a structured dtype: a valid file, but not one of floats. The
           * list is not parsed further, so the rest of the header goes unchecked. */
          if (s->p < s->end && *s->p == '[')
            {
              h->structured = TRUE;
              return TRUE;
            }
          if (!npy_string (s, h->descr, sizeof h->descr, error))
            return FALSE;
        }
      else if (strcmp (key, "fortran_order") == 0 && !h->have_fortran)
        {
          h->have_fortran = TRUE;
          if (!npy_bool (s, &h->fortran, error))
            return FALSE;
        }
      else if (strcmp (key, "shape") == 0 && !h->have_shape)
        {
          h->have_shape = TRUE;
          if (!npy_shape (s, h, error))
            return FALSE;
        }
      else
        {
          g_autofree char *msg = g_strdup_printf ("unexpected or repeated key '%s'", key);
          return npy_fail (s, error, msg);
        }
      if (npy_accept (s, ','))
        continue;
      if (npy_accept (s, '}'))
        break;
      return npy_fail (s, error, "expected ',' or '}'");
    }
  npy_skip_ws (s);
  if (s->p != s->end)
    return npy_fail (s, error, "unexpected text after the dictionary");
  if (!h->have_descr || !h->have_fortran || !h->have_shape)
    return npy_fail (s, error, "the dictionary needs 'descr', 'fortran_order' and 'shape'");
  return TRUE;
}

float *
cs_npy_read (const char *path, guint *rank, guint64 shape[CS_TENSOR_MAX_RANK], GError **error)
{
  g_return_val_if_fail (path != NULL && rank != NULL && shape != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_autofree char *display = g_filename_display_name (path);
  g_autoptr (GMappedFile) mf = map_file (path, error);
  if (mf == NULL)
    return NULL;
  const char *bytes = g_mapped_file_get_contents (mf);
  guint64 size = g_mapped_file_get_length (mf);

  if (size < 8 || memcmp (bytes, npy_magic, sizeof npy_magic) != 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO, "%s: not a .npy file (no \\x93NUMPY magic)",
                   display);
      return NULL;
    }
  guint major = (guchar) bytes[6], minor = (guchar) bytes[7];
  if (major < 1 || major > 3)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "%s: .npy format version %u.%u is not supported", display, major, minor);
      return NULL;
    }
  guint64 len_size = major == 1 ? 2 : 4, header_start = 8 + len_size;
  if (size < header_start)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT ": expected the header length",
                   display, size);
      return NULL;
    }
  const guchar *lb = (const guchar *) bytes + 8;
  guint64 header_len = major == 1
                         ? (guint64) lb[0] | (guint64) lb[1] << 8
                         : (guint64) lb[0] | (guint64) lb[1] << 8 | (guint64) lb[2] << 16
                             | (guint64) lb[3] << 24;
  if (header_len > size - header_start)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT ": the header should occupy "
                   "bytes %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                   display, size, header_start, header_start + header_len);
      return NULL;
    }

  NpyHeader h = { 0 };
  NpyScan s = { bytes + header_start, bytes + header_start + header_len, bytes + header_start,
                display, header_start };
  if (!npy_parse_header (&s, &h, error))
    return NULL;
  if (h.structured)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "%s: structured dtypes are not supported; only '<f4' (float32) is",
                   display);
      return NULL;
    }
  if (strcmp (h.descr, "<f4") != 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "%s: dtype '%s' is not supported; only '<f4' (little-endian float32) is",
                   display, h.descr);
      return NULL;
    }
  if (h.fortran)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "%s: Fortran-order (column-major) arrays are not supported", display);
      return NULL;
    }
  if (h.rank < 1 || h.rank > CS_TENSOR_MAX_RANK)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "%s: arrays of rank %u are not supported, only 1 to %d", display, h.rank,
                   CS_TENSOR_MAX_RANK);
      return NULL;
    }

  guint64 numel = 1, data_bytes;
  for (guint d = 0; d < h.rank; d++)
    if (!g_uint64_checked_mul (&numel, numel, h.shape[d]))
      numel = G_MAXUINT64;
  g_autofree char *shape_str = cs_tensor_shape_string (h.rank, h.shape);
  guint64 data_start = header_start + header_len;
  if (!g_uint64_checked_mul (&data_bytes, numel, sizeof (float))
      || data_bytes > G_MAXUINT64 - data_start)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                   "%s: the size of a %s array overflows", display, shape_str);
      return NULL;
    }
  if (data_bytes > size - data_start)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: truncated at byte %" G_GUINT64_FORMAT ": the %s float32 data should "
                   "occupy bytes %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                   display, size, shape_str, data_start, data_start + data_bytes);
      return NULL;
    }
  if (data_bytes < size - data_start)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_IO,
                   "%s: %" G_GUINT64_FORMAT " unexpected bytes after the %s float32 data, "
                   "which ends at byte %" G_GUINT64_FORMAT,
                   display, size - data_start - data_bytes, shape_str,
                   data_start + data_bytes);
      return NULL;
    }

  /* Never NULL for an empty array, since NULL means failure. */
  float *out = g_try_malloc (MAX (data_bytes, sizeof (float)));
  if (out == NULL)
    {
      g_autofree char *sz = g_format_size (data_bytes);
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %s",
                   display, sz);
      return NULL;
    }
  memcpy (out, bytes + data_start, data_bytes);
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
  guint32 *w = (guint32 *) out;
  for (guint64 k = 0; k < numel; k++)
    w[k] = GUINT32_FROM_LE (w[k]);
#endif
  *rank = h.rank;
  for (guint d = 0; d < CS_TENSOR_MAX_RANK; d++)
    shape[d] = d < h.rank ? h.shape[d] : 0;
  return out;
}

gboolean
cs_npy_write (const char *path, const float *data, guint rank, const guint64 *shape,
              GError **error)
{
  g_return_val_if_fail (path != NULL && shape != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (rank < 1 || rank > CS_TENSOR_MAX_RANK)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_UNSUPPORTED,
                   "cannot write a rank %u array to .npy; only ranks 1 to %d", rank,
                   CS_TENSOR_MAX_RANK);
      return FALSE;
    }
  guint64 numel = 1;
  for (guint d = 0; d < rank; d++)
    if (!g_uint64_checked_mul (&numel, numel, shape[d]) || numel > G_MAXSIZE / sizeof (float))
      {
        g_set_error (error, CS_ERROR, CS_ERROR_OVERFLOW,
                     "cannot write a .npy array: its size overflows");
        return FALSE;
      }
  g_return_val_if_fail (numel == 0 || data != NULL, FALSE);

  GString *header = g_string_new ("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (guint d = 0; d < rank; d++)
    g_string_append_printf (header, "%s%" G_GUINT64_FORMAT, d ? ", " : "", shape[d]);
  /* A one-element tuple needs its comma in Python. */
  g_string_append (header, rank == 1 ? ",), }" : "), }");
  /* numpy aligns the data to 64 bytes so that it can be mapped straight into arrays; the
   * header ends in a newline after the padding. */
  while ((10 + header->len + 1) % 64 != 0)
    g_string_append_c (header, ' ');
  g_string_append_c (header, '\n');

  guint8 prefix[10];
  memcpy (prefix, npy_magic, sizeof npy_magic);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix[8] = header->len & 0xff;
  prefix[9] = (header->len >> 8) & 0xff;

  AtomicFile af = { NULL, NULL, -1 };
  g_autofree guint32 *chunk = g_new (guint32, WRITE_CHUNK);
  gboolean ok = atomic_open (&af, path, error)
                && atomic_write (&af, prefix, sizeof prefix, error)
                && atomic_write (&af, header->str, header->len, error)
                && atomic_write_floats (&af, data, numel, chunk, error);
  g_string_free (header, TRUE);
  if (!ok)
    {
      atomic_abort (&af);
      return FALSE;
    }
  return atomic_commit (&af, error);
}
