#!/usr/bin/env bash
# open-unlearning's MUSE evaluation (its recipe experiment=eval/muse/default: VerbMem, KnowMem,
# PrivLeak, extraction strength) of one mini-MUSE model, on CPU in float32 with 2 threads,
# offline, reading the local JSONL files.
#
#   benchmarks/open_unlearning/muse_eval.sh MODEL_DIR DATA_DIR OUT_DIR [RETRAIN_LOG]
#
# MODEL_DIR: target/ or retrain/ of a mini-MUSE cache entry; DATA_DIR: its data/
# (<config>/<split>.jsonl); RETRAIN_LOG: open-unlearning's own MUSE_EVAL.json of the retrained
# model (made by running this script on retrain/ without one), the PrivLeak reference.
# Every metric setting stays open-unlearning's (128 / 32 new tokens, its stop strings, Min-K
# k = 0.4, MIA texts cut to 2048 tokens, ROUGE with stemming); only the paths, the device and
# the dtype are overridden. Needs setup.sh first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ou_arguments RETRAIN_LOG "$@" # sets model_dir, data_dir, out_dir, reference
ou_prepare "$model_dir"

overrides=(
  experiment=eval/muse/default # its MUSE recipe: the plain "Question: … Answer: " few-shot format
  "model.model_args.pretrained_model_name_or_path=$model_dir"
  model.model_args.device_map=cpu
  model.model_args.torch_dtype=float32
  model.model_args.attn_implementation=sdpa # the recipe asks for flash_attention_2 (CUDA only)
  "model.tokenizer_args.pretrained_model_name_or_path=$tokenizer_dir"
  eval.muse.overwrite=true
  "retain_logs_path=$reference"
  task_name=minimuse
  seed=0
)
# every dataset node of the suite, with the local file it reads (open-unlearning reads
# muse-bench/MUSE-News, name=<config>, split=<split>)
M=eval.muse.metrics
nodes=(
  "$M.forget_knowmem_ROUGE.datasets.MUSE_forget_knowmem.args.hf_args|knowmem/forget_qa"
  "$M.forget_knowmem_ROUGE.datasets.MUSE_forget_knowmem.args.few_shot_dataset_hf_args|knowmem/forget_qa_icl"
  "$M.retain_knowmem_ROUGE.datasets.MUSE_retain_knowmem.args.hf_args|knowmem/retain_qa"
  "$M.retain_knowmem_ROUGE.datasets.MUSE_retain_knowmem.args.few_shot_dataset_hf_args|knowmem/retain_qa_icl"
  "$M.forget_verbmem_ROUGE.datasets.MUSE_forget_verbmem.args.hf_args|verbmem/forget"
  "$M.privleak.pre_compute.mia_min_k.datasets.MUSE_MIA_holdout.args.hf_args|privleak/holdout"
  "$M.privleak.pre_compute.mia_min_k.datasets.MUSE_MIA_forget.args.hf_args|privleak/forget"
  "$M.extraction_strength.datasets.MUSE_forget_verbmem.args.hf_args|verbmem/forget"
)
for entry in "${nodes[@]}"; do
  node=${entry%%|*}
  file=${entry#*|}
  overrides+=("$node.path=json" "+$node.data_files=$data_dir/$file.jsonl" "$node.split=train")
done

ou_run "$out_dir" "${overrides[@]}"
