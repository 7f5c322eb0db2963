#!/usr/bin/env bash
# Install open-unlearning (the field's framework) next to this library, to race its TOFU
# evaluation against ours on the same mini-TOFU model and data (docs/benchmarks.md,
# "Side by side with open-unlearning").
#
#   benchmarks/open_unlearning/setup.sh [CHECKOUT]
#
# CHECKOUT: an existing open-unlearning checkout (default: cloned from GitHub at the commit
# below). Everything goes under $OU_HOME (default ~/.cache/constrained_unlearn/open-unlearning):
# the checkout, a venv with open-unlearning's own pins (torch kept at this project's CPU wheel),
# and a copy of the mini-TOFU tokenizer that transformers 4.45 can read.
set -euo pipefail

OU_COMMIT=d3d7cf9e6b3c125d16687d4232680d8d83548f1a # 2025-12-23, the one measured
OU_HOME=${OU_HOME:-$HOME/.cache/constrained_unlearn/open-unlearning}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
PYTHON=${PYTHON:-python3}
mkdir -p "$OU_HOME"

if [[ $# -ge 1 ]]; then
  ln -sfn "$(cd "$1" && pwd)" "$OU_HOME/src"
elif [[ ! -d $OU_HOME/src ]]; then
  git clone https://github.com/locuslab/open-unlearning "$OU_HOME/src"
  git -C "$OU_HOME/src" checkout "$OU_COMMIT"
fi

echo "$TORCH_PIN" >"$OU_HOME/constraints.txt"
# open-unlearning's requirements.txt without its torch pin and the GPU-only or unused packages
grep -v -E '^(torch|deepspeed|bitsandbytes|tensorboard)==' "$OU_HOME/src/requirements.txt" >"$OU_HOME/requirements.txt"
"$PYTHON" -m venv "$OU_HOME/venv"
pip=("$OU_HOME/venv/bin/python" -m pip install -q -c "$OU_HOME/constraints.txt")
"${pip[@]}" "$TORCH_PIN"
"${pip[@]}" -r "$OU_HOME/requirements.txt"
# its eval entry point imports lm-eval and deepspeed unconditionally (src/evals/__init__.py,
# src/trainer/unlearn/rmu.py); hydra 1.3 wants omegaconf 2.3
"${pip[@]}" -c "$OU_HOME/requirements.txt" lm-eval==0.4.8
DS_BUILD_OPS=0 "${pip[@]}" -c "$OU_HOME/requirements.txt" --no-build-isolation deepspeed==0.15.4
"${pip[@]}" omegaconf==2.3.0
echo "open-unlearning ready under $OU_HOME"
