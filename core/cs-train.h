/* Training and evaluation loops over a dataset: SGD with momentum, weight decay, the lecture's
 * learning-rate schedules, augmentation, and progress reported through a callback. */
#pragma once

#include "cs-backend.h"
#include "cs-data.h"
#include "cs-net.h"

G_BEGIN_DECLS

typedef struct {
  guint epochs, batch;
  double lr, momentum, decay;
  CsSchedule schedule;          /* NONE or CONSTANT: constant */
  guint steps[8], n_steps;      /* CS_SCHEDULE_STEP: divide by 10 at these epochs */
  guint patience;               /* CS_SCHEDULE_PLATEAU: epochs without a better validation top-1 */
  gboolean augment;             /* random crop (pad 4 at 32x32, scaled) and horizontal flip */
  guint64 seed;
  guint max_steps;              /* stop after this many steps in all; 0: no limit */
  CsAugment norm;               /* set by cs_train: the training set's channel mean and std */
} CsTrainOptions;

typedef struct {
  guint epoch, epochs;          /* from 1 */
  guint step, steps;            /* within the epoch, from 1 */
  double loss, top1;            /* running means over the epoch so far; top1 in [0,1] */
  double lr, images_per_s, eta_s;
} CsTrainProgress;

typedef struct {
  guint epoch;
  double lr, train_loss, train_top1, val_loss, val_top1, val_top5, seconds;
} CsEpochResult;

/* Called after every step (EPOCH NULL) and at the end of every epoch. Returning FALSE stops the
 * training cleanly after that step, with the parameters in NET. */
typedef gboolean (*CsTrainFunc) (const CsTrainProgress *progress, const CsEpochResult *epoch,
                                 gpointer user_data);

/* Fills OPTIONS from a model's training preset, with fallbacks for what it does not say. */
void     cs_train_options_from_preset (CsTrainOptions *options, const CsTrainPreset *preset);

/* Trains NET on TRAIN, evaluating on VAL after each epoch; the parameters end in NET. */
gboolean cs_train (CsNet *net, CsBackend *be, const CsDataset *train, const CsDataset *val,
                   CsTrainOptions *options, CsTrainFunc func, gpointer user_data,
                   GError **error);

/* Loss, top-1 and top-5 accuracy of NET on DS at inference (running batch-norm statistics, no
 * dropout). */
gboolean cs_evaluate (CsNet *net, CsBackend *be, const CsDataset *ds, const CsAugment *norm,
                      guint batch, double *loss, double *top1, double *top5, GError **error);

G_END_DECLS
