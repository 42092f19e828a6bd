/* app/: the command line, the phase driver and glue between config and modules.
 * Contains no algorithms; only app/ exits. */
#ifndef DPRUNE_APP_H
#define DPRUNE_APP_H

#include "dprune/data.h"
#include "dprune/dist.h"
#include "dprune/io.h"
#include "dprune/model.h"
#include "dprune/optim.h"
#include "dprune/prune.h"
#include "dprune/csgd.h"
#include "dprune/checkpoint.h"
#include "dprune/ckpt_file.h"

typedef struct {
    dp_dist dist;
    dp_config cfg;
    char *cfg_text; /* the config as read (saved in checkpoints) */
    int threads;
    bool resume_flag; /* --resume on the command line */
} dp_app;

/* SIGUSR1 / SIGTERM: stop at the next step boundary with a checkpoint (app/signals.c). */
void app_signals_install(void);
int app_signal_pending(void);

/* Datasets and how samples become inputs, from the config. */
typedef struct {
    dp_dataset train_ds, test_ds;
    dp_split train, val, test;
    dp_augment aug;
    int in_c, in_h, in_w, num_classes;
} dp_app_data;

/* Zeroes `app` and joins the ranks (dp_dist_init: MPI when built with it); false, after saying
 * why on stderr, when that fails. Every command starts here. */
bool app_start(dp_app *app, int *argc, char ***argv);
/* Threads per rank: run.threads, else OMP_NUM_THREADS, else this rank's fair share of the
 * cores it may run on (dp_dist_fair_threads: ranks sharing a node do not oversubscribe it).
 * Sets app->threads. Collective. */
void app_setup_threads(dp_app *app);
/* Creates the run directory and its missing parents (mkdir -p); a failure names the directory
 * it could not create. */
dp_status app_make_run_dir(const char *dir, dp_error *err);
/* Rank 0 reads the file, broadcasts its text; every rank parses the same bytes. Collective. */
dp_status app_load_config(dp_app *app, const char *path, dp_error *err);
dp_status app_open_data(const dp_config *cfg, dp_app_data *d, dp_error *err);
void app_close_data(dp_app_data *d);
/* Builds the configured model for the data's input shape and initialises it on rank 0 (seeded),
 * then broadcasts parameters and buffers so every rank starts identical. */
dp_status app_build_model(dp_app *app, const dp_app_data *d, dp_model *m, dp_error *err);

/* ---- the training phase ---- */
typedef struct {
    double loss_sum;
    int64_t top1, top5, count;
} eval_result;

typedef struct {
    int epoch; /* 1-based, within the phase */
    int epochs;
} trainer_epoch_info;

typedef struct trainer {
    dp_app *app;
    dp_app_data *data;
    dp_model *m;
    dp_activations act;
    dp_sgd opt;
    dp_metrics *metrics;  /* rank 0 only */
    uint64_t *keys;       /* per-sample keys of the current batch (index + epoch) */
    int micro_global;     /* global samples per micro-batch */
    dp_grad_sync *sync;   /* NULL on one rank */
    bool momentum_sliced; /* after sharded steps: momentum current only in this rank's slice */
    dp_exec_hooks hooks;
    const dp_train_config *tc; /* the active schedule: train, or a fine-tune variant */
    const char *phase;         /* "train", "finetune1", ... in progress lines and metrics */
    int phase_index;           /* 0 = training, r = fine-tuning after prune round r */
    int64_t run_step;          /* optimizer steps since the run began (all phases) */
    double bn_l1;              /* slim: lambda of the BN-L1 term (0 = off) */
    dp_pcc_term pcc;           /* PCC term of the active phase (n_maps 0 = off) */
    bool bn_identical;         /* BN running statistics known equal on every rank */
    /* checkpoints */
    dp_ckpt_writer *writer; /* rank 0 */
    bool resuming;          /* resume_state not yet consumed by trainer_run */
    dp_train_state resume_state;
    bool stopped;           /* a stop signal ended the run (after a checkpoint) */
    char summary[8192];     /* metrics summary kept in checkpoints (baseline facts) */
    uint8_t *prune_history; /* the broadcast plans of the rounds so far */
    size_t prune_history_len;
    /* C-SGD phase in progress (app/csgd_phase.c): the transform after the gradient sync */
    const dp_csgd_clusters *csgd;
    const dp_groups *csgd_groups;
    dp_csgd_strength csgd_strength;
    uint8_t *csgd_state; /* the clusters as bytes: saved in checkpoints of the phase */
    size_t csgd_state_len;
    /* CIP schedule in progress (app/cip_phase.c): its step and mask as bytes, saved in the
     * checkpoints of the schedule; NULL outside it */
    uint8_t *cip_state;
    size_t cip_state_len;
    /* called at every epoch end of trainer_run before evaluation and checkpoint; *stop ends
     * the phase there (its checkpoint then says the phase is complete) */
    dp_status (*epoch_end)(void *ctx, trainer_epoch_info *info, bool *stop, dp_error *err);
    void *epoch_end_ctx;
} trainer;

/* Collective. Allocates activations and optimizer state, the gradient sync, and (rank 0) the
 * metrics file in run.dir. */
dp_status trainer_init(trainer *t, dp_app *app, dp_app_data *data, dp_model *m, dp_error *err);
/* Runs train.epochs epochs with evaluation as configured. Collective. */
dp_status trainer_run(trainer *t, dp_error *err);
/* Sharded evaluation; counts summed exactly over ranks. Collective. */
dp_status trainer_evaluate(trainer *t, const dp_split *split, eval_result *r, dp_error *err);
void trainer_free(trainer *t);
/* Rank 0: opens (appends to) run.dir/metrics.jsonl and writes the provenance line. */
dp_status trainer_open_metrics(trainer *t, dp_error *err);
/* Collective: BN statistics averaged across ranks, then rank 0 hands a snapshot to the
 * background writer (the training stall is the copy). epoch/step_in_epoch: where a resume
 * continues within the current phase. */
dp_status trainer_checkpoint(trainer *t, int64_t epoch, int64_t step_in_epoch, dp_error *err);
/* Loads the checkpoint named by checkpoint.resume / --resume (rank 0 finds it, every rank
 * reads it), replaces *m, restores momentum and the state trainer_run and app_prune continue
 * from. DP_OK with nothing done when there is nothing to resume. Collective. */
dp_status trainer_resume(trainer *t, dp_model *m, dp_error *err);
void trainer_report_eval(trainer *t, const char *split, int epoch, const eval_result *r);
/* Per-rank BN running statistics averaged across ranks, so every rank holds the same model
 * (before evaluations and checkpoints; a no-op with sync-BN). Collective. */
dp_status trainer_average_bn(trainer *t, dp_error *err);
/* After sharded optimizer steps, gathers the momentum so every rank holds all of it (before
 * checkpoints, epoch ends, surgery). Collective; a no-op when it is whole. */
dp_status trainer_whole_momentum(trainer *t, dp_error *err);
/* After a train-mode forward: per-rank BN statistics have moved apart (not with sync-BN). */
void trainer_bn_updated(trainer *t);
/* After surgery: *t->m is freed and becomes `fresh` (moved; fresh is zeroed); activations and
 * gradient buckets are rebuilt (the optimizer's momentum was sliced by the surgery).
 * Collective. */
dp_status trainer_replace_model(trainer *t, dp_model *fresh, dp_error *err);

/* ---- the PCC term during training (app/trainer_pcc.c) ---- */
/* At the start of a phase: builds the term on the current model when t->tc->pcc_lambda != 0
 * (groups as the prune config makes them), drops it otherwise. Collective (error check). */
dp_status trainer_pcc_prepare(trainer *t, dp_error *err);
void trainer_pcc_drop(trainer *t);
/* Progress-line text and metrics JSON fields (leading comma) of a summed pcc over `count`
 * samples; both empty when the term is off. */
void trainer_pcc_format(const trainer *t, double pcc_sum, double count, char *text, size_t tn,
                        char *json, size_t jn);

/* The channel groups of m with the prune config's options (protect, protect_first, residual). */
/* Optimizer steps per epoch of the training split with t's batch and accumulation. */
int64_t trainer_steps_per_epoch(const trainer *t);

/* ---- the pruning phase (app/prune_phase.c) ---- */
/* Phase index of round r's C-SGD training in checkpoints (r = its fine-tuning after the merge):
 * the C-SGD phase of round r comes after round r-1's fine-tuning and before round r's. */
#define APP_CSGD_PHASE_BASE 1000
/* Round r's CIP schedule: the same slot (training before round r's surgery); a run has one
 * criterion. */
#define APP_CIP_PHASE_BASE APP_CSGD_PHASE_BASE
/* The planner's budget from prune.* settings. */
void app_budget_from_config(const dp_prune_config *pc, dp_budget *b);
/* The channel groups of m with the prune config's options (protect, protect_first, residual).
 * Not collective: callers agree on errors. */
dp_status app_build_groups(const dp_prune_config *pc, const dp_model *m, dp_groups *gs,
                           dp_error *err);
/* BN running statistics re-estimated on `batches` training batches (cumulative average). */
dp_status app_reestimate_bn(trainer *t, int batches, dp_error *err);
/* Appends a broadcast plan to the prune history saved in checkpoints. */
dp_status app_record_plan(trainer *t, const dp_plan *plan, dp_error *err);
void app_write_plan_text(const trainer *t, int round, const dp_plan *plan, const dp_model *m,
                         const dp_groups *gs);
/* Rank 0 broadcasts n bytes (malloc'ed on the others into *buf). Collective. */
dp_status app_bcast_blob(dp_dist *d, uint8_t **buf, size_t *len, dp_error *err);
/* Test accuracy (and validation when there is a split), reported under `label`. */
dp_status app_test_accuracy(trainer *t, const char *label, int epoch, double *top1, double *top5,
                            dp_error *err);
/* C-SGD round r (app/csgd_phase.c): widths, clusters (rank 0, broadcast), the C-SGD phase
 * until the deviation threshold or its epoch limit, then the merge. Resumes inside its phase.
 * On return (not stopped) t->m is the merged model. */
dp_status app_csgd_round(trainer *t, int round, dp_error *err);
/* Round r's clusters: rank 0 decides, every rank gets the same (also kept as bytes in
 * t->csgd_state for checkpoints). Collective. */
dp_status app_csgd_decide(trainer *t, int round, const dp_groups *gs, dp_csgd_clusters *cl,
                          dp_error *err);
/* Rounds of calibrate, plan (rank 0), broadcast, surgery, BN re-estimation, fine-tune, then
 * the final evaluation and the before/after summary. *m is replaced by the pruned model. */
dp_status app_prune(trainer *t, dp_model *m, dp_error *err);
/* One round's decision on the current model: groups, scores (calibration if the criterion
 * needs it), the plan on rank 0, broadcast to every rank. Collective. */
dp_status app_plan_round(trainer *t, int round, dp_groups *gs, dp_plan *plan, dp_error *err);
/* The same with `fraction` of the configured budget (ratio, ratios or target times it; 1 = as
 * configured): a step of CIP's schedule. Collective. */
dp_status app_plan_round_at(trainer *t, int round, double fraction, dp_groups *gs, dp_plan *plan,
                            dp_error *err);
/* Cuts a broadcast plan: recorded in the prune history, written as text (rank 0), the same
 * surgery on every rank (applying CorrTopo's broadcast fold if fold is not NULL), t->m
 * replaced. Collective. */
dp_status app_cut(trainer *t, int round, const dp_groups *gs, const dp_plan *plan,
                  const dp_corr_fold *fold, dp_error *err);
/* CIP (app/cip_phase.c). The prune config whose budget is `fraction` of pc's (uniform/global
 * ratio, per-group ratios, FLOPs/params/latency target). */
void app_cip_budget_at(const dp_prune_config *pc, double fraction, dp_prune_config *out);
/* CIP scores of the prunable groups of t->m: RMS statistics of every feature map (calibration,
 * rank-count independent), then the propagation on rank 0 (sc untouched elsewhere).
 * Collective. */
dp_status app_cip_scores(trainer *t, const dp_groups *gs, dp_scores *sc, dp_error *err);
/* CIP round r: the soft schedule (steps 1..n-1 soft-zero a growing fraction of the budget at
 * the scheduled epoch ends, re-scored each time; masks from rank 0), then step n's plan is cut.
 * Resumes inside its schedule. On return (not stopped) t->m is the pruned model. */
dp_status app_cip_round(trainer *t, int round, dp_error *err);
/* One round's decision and cut for a scoring criterion: plan (and CorrTopo's fold) on rank 0,
 * broadcast, the same surgery on every rank, the trainer's model replaced. Collective. */
dp_status app_plan_and_cut(trainer *t, int round, dp_error *err);
/* `dprune plan CONF`: the plan the config would make, printed, nothing cut. */
int app_cmd_plan(dp_app *app);

int app_cmd_train(dp_app *app);
/* `dprune eval FILE`: the checkpoint's model on the test set of the config stored in it. */
int app_cmd_eval(dp_app *app, const char *checkpoint_path);
/* `dprune export FILE [OUT] [--fp16|--bf16]`: a deployable copy, BN folded into the layers,
 * no optimizer or training state. Single process. */
int app_cmd_export(const char *path, const char *out_path, dp_dtype dtype);
/* The PyTorch bridge's file side (app/bridge.c, tools/dprune_torch.py): dump a checkpoint as
 * arch.json + raw float32 tensors; import such tensors into the configured model; logits of
 * a checkpoint for raw float32 inputs. */
int app_cmd_dump(const char *path, const char *dir);
int app_cmd_import(dp_app *app, const char *dir, const char *out);
/* `dprune init CONF OUT`: the configured model, freshly initialised, as a checkpoint. */
int app_cmd_init(dp_app *app, const char *out);
int app_cmd_logits(const char *path, const char *in_path, int N, const char *out_path);
int app_cmd_summary(dp_app *app);

#endif
