#!/usr/bin/env bash
# Run by Snakemake inside the new conda env: auto-LiRPA 0.3 without its stale torch<1.13 pin
# (bench.models.lirpa patches it at import).
set -euo pipefail
python -m pip install --no-deps auto-LiRPA==0.3
