#!/usr/bin/env bash
# open-unlearning's TOFU evaluation (its default suite, forget10 / holdout10) of one mini-TOFU
# model, on CPU in float32 with 2 threads, offline, reading the local JSONL configs.
#
#   benchmarks/open_unlearning/eval.sh MODEL_DIR DATA_DIR OUT_DIR [RETAIN_LOG]
#
# MODEL_DIR: a mini-TOFU model folder (target/ or retain/ of a cache entry); DATA_DIR: its data/;
# RETAIN_LOG: open-unlearning's own TOFU_EVAL.json of the retain model (made by running this
# script on retain/ without one). Needs setup.sh first. Set OU_COLD=1 to drop the datasets
# cache before the run. Nothing in open-unlearning's source is changed: all of it is overrides.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ou_arguments RETAIN_LOG "$@" # sets model_dir, data_dir, out_dir, reference
ou_prepare "$model_dir"

overrides=(
  model=phi-1_5 # a plain-prompt model config; every field that matters is set below
  "model.model_args.pretrained_model_name_or_path=$model_dir"
  model.model_args.device_map=cpu
  +model.model_args.torch_dtype=float32
  "model.tokenizer_args.pretrained_model_name_or_path=$tokenizer_dir"
  model.template_args.apply_chat_template=false
  'model.template_args.user_start_tag="Question: "'
  'model.template_args.user_end_tag="'$'\n''"'
  'model.template_args.asst_start_tag="Answer: "'
  "model.template_args.asst_end_tag=''"
  eval=tofu
  eval.tofu.forget_split=forget10
  eval.tofu.holdout_split=holdout10
  eval.tofu.batch_size=32
  eval.tofu.overwrite=true
  "eval.tofu.retain_logs_path=$reference"
  task_name=minitofu
  seed=0
)
# every dataset node of the default suite (configs/eval/tofu.yaml) reads the local JSONL file
# named after its config (forget10_perturbed, retain_perturbed, holdout10, ...)
M=eval.tofu.metrics
nodes=(
  $M.forget_truth_ratio.pre_compute.forget_Q_A_PARA_Prob.datasets.TOFU_QA_forget_para
  $M.forget_truth_ratio.pre_compute.forget_Q_A_PERT_Prob.datasets.TOFU_QA_forget_pert
  $M.forget_quality.pre_compute.forget_truth_ratio.pre_compute.forget_Q_A_PARA_Prob.datasets.TOFU_QA_forget_para
  $M.forget_quality.pre_compute.forget_truth_ratio.pre_compute.forget_Q_A_PERT_Prob.datasets.TOFU_QA_forget_pert
  $M.forget_Q_A_Prob.datasets.TOFU_QA_forget
  $M.forget_Q_A_ROUGE.datasets.TOFU_QA_forget
  $M.model_utility.pre_compute.retain_Q_A_Prob.datasets.TOFU_QA_retain_eval
  $M.model_utility.pre_compute.retain_Q_A_ROUGE.datasets.TOFU_QA_retain_eval
  $M.model_utility.pre_compute.retain_Truth_Ratio.pre_compute.retain_Q_A_PARA_Prob.datasets.TOFU_QA_retain_para
  $M.model_utility.pre_compute.retain_Truth_Ratio.pre_compute.retain_Q_A_PERT_Prob.datasets.TOFU_QA_retain_pert
  $M.model_utility.pre_compute.ra_Q_A_Prob_normalised.pre_compute.ra_Q_A_Prob.datasets.TOFU_QA_ra
  $M.model_utility.pre_compute.ra_Q_A_Prob_normalised.pre_compute.ra_Q_A_PERT_Prob.datasets.TOFU_QA_ra_pert
  $M.model_utility.pre_compute.ra_Q_A_ROUGE.datasets.TOFU_QA_ra
  $M.model_utility.pre_compute.ra_Truth_Ratio.pre_compute.ra_Q_A_Prob.datasets.TOFU_QA_ra
  $M.model_utility.pre_compute.ra_Truth_Ratio.pre_compute.ra_Q_A_PERT_Prob.datasets.TOFU_QA_ra_pert
  $M.model_utility.pre_compute.wf_Q_A_Prob_normalised.pre_compute.wf_Q_A_Prob.datasets.TOFU_QA_wf
  $M.model_utility.pre_compute.wf_Q_A_Prob_normalised.pre_compute.wf_Q_A_PERT_Prob.datasets.TOFU_QA_wf_pert
  $M.model_utility.pre_compute.wf_Q_A_ROUGE.datasets.TOFU_QA_wf
  $M.model_utility.pre_compute.wf_Truth_Ratio.pre_compute.wf_Q_A_Prob.datasets.TOFU_QA_wf
  $M.model_utility.pre_compute.wf_Truth_Ratio.pre_compute.wf_Q_A_PERT_Prob.datasets.TOFU_QA_wf_pert
  $M.privleak.pre_compute.mia_min_k.datasets.TOFU_QA_forget
  $M.privleak.pre_compute.mia_min_k.datasets.TOFU_QA_holdout
  $M.extraction_strength.datasets.TOFU_QA_forget
)
for node in "${nodes[@]}"; do
  overrides+=("$node.args.hf_args.path=json" "+$node.args.hf_args.data_files=$data_dir/\${.name}.jsonl"
    "$node.args.hf_args.split=train")
done

ou_run "$out_dir" "${overrides[@]}"
