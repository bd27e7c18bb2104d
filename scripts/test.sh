#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatter and linters (any warning fails), then the
# image build the end-to-end tests boot, then pytest (unit, integration and e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/mvirt-build uki
exec .venv/bin/pytest "$@"
