/* CsDetails: the selected layer's parameters, the lecture's formulas with its own numbers, its
 * receptive field and, after a profile, its times. */
#pragma once

#include <gtk/gtk.h>

#include "cs-profile.h"
#include "cs-stats.h"

G_BEGIN_DECLS

#define CS_TYPE_DETAILS (cs_details_get_type ())
G_DECLARE_FINAL_TYPE (CsDetails, cs_details, CS, DETAILS, GtkWidget)

GtkWidget *cs_details_new  (void);
/* Shows NODE of ST (-1: the model's summary), with its times, rate, kernels and algorithm from
 * PROFILE (may be NULL). */
void       cs_details_show (CsDetails *self, CsStats *st, gint node, const CsProfile *profile);
/* The text shown, for tests. */
char      *cs_details_get_text (CsDetails *self);

G_END_DECLS
