/* Training and evaluation loops: batches from a dataset, the learning-rate schedule, validation
 * after every epoch, progress through a callback. */
#include "cs-train.h"
#include "cs-error.h"
#include "cs-exec.h"

#include <math.h>

void
cs_train_options_from_preset (CsTrainOptions *o, const CsTrainPreset *p)
{
  *o = (CsTrainOptions) {
    .epochs = p->epochs ? p->epochs : 10,
    .batch = p->batch ? p->batch : 32,
    .lr = p->lr > 0 ? p->lr : 0.01,
    .momentum = p->momentum > 0 ? p->momentum : 0.9,
    .decay = p->decay,
    .schedule = p->schedule,
    .n_steps = p->n_steps,
    .patience = 2,
    .augment = TRUE,
    .seed = 1,
  };
  memcpy (o->steps, p->steps, sizeof o->steps);
}

static const CsShape *
input_shape (const CsNet *net)
{
  return &cs_graph_node (net->graph, 0)->shape;
}

static guint
output_classes (const CsNet *net)
{
  const CsNode *o = cs_graph_output (net->graph);
  if (o->op == CS_OP_SOFTMAX)
    o = cs_graph_node (net->graph, o->inputs[0]);
  return o->shape.c * o->shape.h * o->shape.w;
}

gboolean
cs_evaluate (CsNet *net, CsBackend *be, const CsDataset *ds, const CsAugment *norm,
             guint batch, double *loss, double *top1, double *top5, GError **error)
{
  if (ds->n == 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "the %s set to evaluate on is empty",
                   ds->name);
      return FALSE;
    }
  const CsShape *in = input_shape (net);
  const CsNode *out = cs_graph_output (net->graph);
  gboolean probs = out->op == CS_OP_SOFTMAX;
  guint classes = output_classes (net);
  batch = MIN (batch, ds->n);
  g_autoptr (CsExec) x = cs_exec_new (net, be, batch, CS_EXEC_INFERENCE, 0, error);
  if (x == NULL)
    return FALSE;
  gsize vol = (gsize) in->c * in->h * in->w;
  g_autofree float *images = g_try_malloc ((gsize) batch * vol * sizeof (float));
  g_autofree float *scores = g_try_malloc ((gsize) batch * classes * sizeof (float));
  g_autofree guint *idx = g_new (guint, batch), *labels = g_new (guint, batch);
  if (images == NULL || scores == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "no memory for a batch of %u",
                   batch);
      return FALSE;
    }
  double total = 0;
  guint hit1 = 0, hit5 = 0;
  for (guint start = 0; start < ds->n; start += batch)
    {
      guint n = MIN (batch, ds->n - start);
      for (guint i = 0; i < n; i++)
        idx[i] = start + i;
      cs_dataset_batch (ds, idx, n, in->c, in->h, in->w, norm, NULL, images, labels);
      if (!cs_exec_forward (x, images, n, error) || !cs_exec_get_output (x, scores, error))
        return FALSE;
      for (guint i = 0; i < n; i++)
        {
          const float *s = scores + (gsize) i * classes;
          guint y = labels[i] < classes ? labels[i] : 0;
          double lp;
          if (probs)
            lp = log (MAX (s[y], 1e-30));
          else
            {
              double mx = -INFINITY, sum = 0;
              for (guint c = 0; c < classes; c++)
                mx = MAX (mx, s[c]);
              for (guint c = 0; c < classes; c++)
                sum += exp (s[c] - mx);
              lp = s[y] - mx - log (sum);
            }
          total -= lp;
          guint above = 0;
          for (guint c = 0; c < classes; c++)
            above += s[c] > s[y];
          hit1 += above == 0;
          hit5 += above < 5;
        }
    }
  *loss = total / ds->n;
  *top1 = (double) hit1 / ds->n;
  *top5 = (double) hit5 / ds->n;
  return TRUE;
}

/* Channel mean and standard deviation of the images as the model sees them (grey from colour
 * averages the channels, so the dataset's own statistics would not do), over up to 2,000. */
static gboolean
model_channel_stats (const CsDataset *ds, const CsShape *in, float *mean, float *std,
                     GError **error)
{
  guint n = MIN (ds->n, 2000u), chunk = 50;
  gsize plane = (gsize) in->h * in->w;
  g_autofree float *buf = g_try_malloc ((gsize) chunk * in->c * plane * sizeof (float));
  if (buf == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "no memory for a batch of %u",
                   chunk);
      return FALSE;
    }
  g_autofree guint *idx = g_new (guint, chunk), *labels = g_new (guint, chunk);
  double sum[4] = { 0 }, sq[4] = { 0 };
  for (guint start = 0; start < n; start += chunk)
    {
      guint m = MIN (chunk, n - start);
      for (guint i = 0; i < m; i++)
        idx[i] = (guint) ((guint64) (start + i) * ds->n / n);
      cs_dataset_batch (ds, idx, m, in->c, in->h, in->w, NULL, NULL, buf, labels);
      for (guint i = 0; i < m; i++)
        for (guint c = 0; c < in->c && c < 4; c++)
          {
            const float *p = buf + ((gsize) i * in->c + c) * plane;
            for (gsize k = 0; k < plane; k++)
              {
                sum[c] += p[k];
                sq[c] += (double) p[k] * p[k];
              }
          }
    }
  for (guint c = 0; c < 4; c++)
    {
      double count = MAX (1.0, (double) n * plane), mu = sum[c] / count;
      double var = MAX (0.0, sq[c] / count - mu * mu);
      mean[c] = (float) mu;
      std[c] = var > 1e-12 ? (float) sqrt (var) : 1.0f;
    }
  return TRUE;
}

static double
scheduled_lr (const CsTrainOptions *o, guint epoch, double plateau_lr)
{
  if (o->schedule == CS_SCHEDULE_STEP)
    {
      double lr = o->lr;
      for (guint i = 0; i < o->n_steps; i++)
        if (epoch > o->steps[i])
          lr /= 10;
      return lr;
    }
  if (o->schedule == CS_SCHEDULE_PLATEAU)
    return plateau_lr;
  return o->lr;
}

gboolean
cs_train (CsNet *net, CsBackend *be, const CsDataset *train, const CsDataset *val,
          CsTrainOptions *o, CsTrainFunc func, gpointer user_data, GError **error)
{
  const CsShape *in = input_shape (net);
  guint classes = output_classes (net);
  if (train->n_classes > classes)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_SHAPE, "the dataset has %u classes but %s has %u "
                   "outputs", train->n_classes, net->graph->name, classes);
      return FALSE;
    }
  guint batch = MIN (o->batch, train->n);
  if (batch == 0)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "the training set is empty");
      return FALSE;
    }
  if (!model_channel_stats (train, in, o->norm.mean, o->norm.std, error))
    return FALSE;
  o->norm.flip = o->augment;
  o->norm.crop_pad = o->augment ? MAX (1u, (guint) in->h / 8) : 0;

  g_autoptr (CsExec) x = cs_exec_new (net, be, batch, CS_EXEC_TRAINING, o->seed, error);
  if (x == NULL)
    return FALSE;
  gsize vol = (gsize) in->c * in->h * in->w;
  g_autofree float *images = g_try_malloc ((gsize) batch * vol * sizeof (float));
  g_autofree guint *order = g_new (guint, train->n), *labels = g_new (guint, batch);
  if (images == NULL)
    {
      g_set_error (error, CS_ERROR, CS_ERROR_OUT_OF_MEMORY, "no memory for a batch of %u",
                   batch);
      return FALSE;
    }
  g_autoptr (GRand) rng = g_rand_new_with_seed ((guint32) o->seed);
  for (guint i = 0; i < train->n; i++)
    order[i] = i;

  guint steps = train->n / batch, total_steps = 0;
  double plateau_lr = o->lr, best = -1;
  guint since_best = 0;
  for (guint epoch = 1; epoch <= o->epochs; epoch++)
    {
      /* Fisher-Yates with the run's own generator: the same seed, the same order. */
      for (guint i = train->n - 1; i > 0; i--)
        {
          guint j = g_rand_int_range (rng, 0, i + 1), t = order[i];
          order[i] = order[j];
          order[j] = t;
        }
      double lr = scheduled_lr (o, epoch, plateau_lr), loss_sum = 0;
      guint hits = 0, seen = 0;
      gint64 t_epoch = g_get_monotonic_time ();
      gboolean stop = FALSE;
      for (guint s = 0; s < steps && !stop; s++)
        {
          cs_dataset_batch (train, order + (gsize) s * batch, batch, in->c, in->h, in->w,
                            &o->norm, o->augment ? rng : NULL, images, labels);
          CsStepResult r;
          if (!cs_exec_train_step (x, images, labels, batch, lr, o->momentum, o->decay, &r,
                                   error))
            return FALSE;
          if (!isfinite (r.loss))
            {
              g_set_error (error, CS_ERROR, CS_ERROR_USAGE, "the loss diverged (%g) at epoch "
                           "%u, step %u: try a smaller learning rate than %g", r.loss, epoch,
                           s + 1, lr);
              return FALSE;
            }
          loss_sum += r.loss * batch;
          hits += r.top1;
          seen += batch;
          total_steps++;
          double elapsed = (g_get_monotonic_time () - t_epoch) / 1e6;
          CsTrainProgress p = {
            epoch, o->epochs, s + 1, steps, loss_sum / seen, (double) hits / seen, lr,
            seen / MAX (elapsed, 1e-9),
            elapsed / (s + 1) * ((double) (o->epochs - epoch) * steps + steps - s - 1),
          };
          if (func && !func (&p, NULL, user_data))
            stop = TRUE;
          if (o->max_steps && total_steps >= o->max_steps)
            stop = TRUE;
        }
      if (!cs_exec_sync_to_net (x, error))
        return FALSE;
      CsEpochResult er = { epoch, lr, seen ? loss_sum / seen : 0, seen ? (double) hits / seen : 0,
                           0, 0, 0, 0 };
      if (val && val->n
          && !cs_evaluate (net, be, val, &o->norm, batch, &er.val_loss, &er.val_top1,
                           &er.val_top5, error))
        return FALSE;
      er.seconds = (g_get_monotonic_time () - t_epoch) / 1e6;
      if (er.val_top1 > best)
        {
          best = er.val_top1;
          since_best = 0;
        }
      else if (++since_best >= o->patience)
        {
          plateau_lr /= 10;
          since_best = 0;
        }
      CsTrainProgress p = { epoch, o->epochs, steps, steps, er.train_loss, er.train_top1, lr, 0,
                            0 };
      if (func && !func (&p, &er, user_data))
        stop = TRUE;
      if (stop)
        break;
    }
  return TRUE;
}
