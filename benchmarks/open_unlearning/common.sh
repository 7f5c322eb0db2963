# Sourced by eval.sh and muse_eval.sh: where open-unlearning lives and how it runs offline.
# ou_prepare MODEL_DIR: checks the set-up, copies the model's tokenizer in a form transformers
# 4.45 reads (sets $tokenizer_dir) and exports the environment of a CPU, 2-thread, offline run.
OU_HOME=${OU_HOME:-$HOME/.cache/constrained_unlearn/open-unlearning}

# ou_arguments NAME MODEL_DIR DATA_DIR OUT_DIR [LOG]: the scripts' arguments (NAME: what LOG is
# called in the usage line); sets model_dir, data_dir (absolute), out_dir and reference (null
# without a LOG)
ou_arguments() {
  local name=$1
  shift
  if [[ $# -lt 3 ]]; then
    echo "usage: $0 MODEL_DIR DATA_DIR OUT_DIR [$name]" >&2
    exit 2
  fi
  model_dir=$(cd "$1" && pwd)
  data_dir=$(cd "$2" && pwd)
  out_dir=$3
  reference=${4:-null}
}

ou_prepare() {
  local model_dir=$1
  if [[ ! -x $OU_HOME/venv/bin/python ]]; then
    echo "open-unlearning is not set up under $OU_HOME: run benchmarks/open_unlearning/setup.sh" >&2
    exit 2
  fi
  # transformers 4.45 cannot name transformers 5's tokenizer class; the tokenizer itself (the
  # tokenizer.json) is the same file, so only the class name changes
  tokenizer_dir=$OU_HOME/tokenizers/$(printf '%s' "$model_dir" | cksum | cut -d' ' -f1)
  mkdir -p "$tokenizer_dir"
  cp "$model_dir/tokenizer.json" "$tokenizer_dir/"
  sed 's/"TokenizersBackend"/"PreTrainedTokenizerFast"/' "$model_dir/tokenizer_config.json" \
    >"$tokenizer_dir/tokenizer_config.json"
  export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 CUDA_VISIBLE_DEVICES=""
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  export HF_HOME=$OU_HOME/hf_home HF_DATASETS_CACHE=$OU_HOME/hf_home/datasets
  export TOKENIZERS_PARALLELISM=false PYTHONWARNINGS=ignore
}

# ou_run OUT_DIR OVERRIDE...: open-unlearning's src/eval.py with these overrides, into OUT_DIR
# (emptied first; OU_COLD=1 also drops the datasets cache)
ou_run() {
  local out_dir=$1
  shift
  rm -rf "$out_dir"
  if [[ ${OU_COLD:-0} == 1 ]]; then rm -rf "$HF_DATASETS_CACHE"; fi
  mkdir -p "$out_dir"
  out_dir=$(cd "$out_dir" && pwd)
  cd "$OU_HOME/src"
  exec "$OU_HOME/venv/bin/python" src/eval.py "$@" "paths.output_dir=$out_dir"
}
