/* Shared by the checkpoint files of model/: the architecture section codec. */
#ifndef DPRUNE_CKPT_INTERNAL_H
#define DPRUNE_CKPT_INTERNAL_H

#include "dprune/checkpoint.h"

/* The architecture section: arch name, input shape, classes, then one length-prefixed record
 * per node (op, name, inputs, output shape, attributes). */
void ckpt_arch_encode(dp_bytes *b, const dp_model *m);
/* Rebuilds the model by replaying dp_add_* (every value range-checked first, every shape
 * compared with the stored one), then dp_model_finish. max_floats bounds the parameter and
 * buffer floats the model may need (from the tensor sections' sizes), so an absurd stored
 * width is refused before anything that large is allocated. */
dp_status ckpt_arch_decode(dp_model *m, const uint8_t *p, size_t len, uint64_t max_floats,
                           const char *where, dp_error *err);

#endif
