#!/usr/bin/env bash
# What the tests need beyond cargo, installed only if missing (safe to run again):
# - Debian's chromium: tests/dashboard.rs drives /dashboard in headless Chromium;
# - openapi-spec-validator (PyPI): tests/admin_api.rs validates GET /admin/openapi.json.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -z "${SWITCHYARD_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    echo "test-deps: installing Debian's chromium" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
    echo "test-deps: installing openapi-spec-validator" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'openapi-spec-validator==0.9.0'
fi
