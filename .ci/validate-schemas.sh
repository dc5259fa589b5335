#!/usr/bin/env bash
# Validate the Actor's schemas with the official Apify CLI.
#
# With no path argument, `apify validate-schema` (apify-cli >= 1.x) reads .actor/actor.json and
# validates every schema it references: the input schema ("input"), the dataset schema
# ("storages.dataset"), the output schema ("output") and a key-value store schema
# ("storages.keyValueStore", none here). Given a path it validates only that input schema.
# It must run from the repository root, where .actor/ lives. It does not check actor.json itself,
# so this script also checks .actor/actor.json (with the CLI's bundled JSON schema) and the shape of
# .actor/pay_per_event.json. Any failure exits non-zero.
#
# Uses `apify` from PATH when present; otherwise installs apify-cli into .ci/.npm (git-ignored).
# Set APIFY_CLI_VERSION to pin another version.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

cli_version="${APIFY_CLI_VERSION:-^1.10.0}"
npm_prefix="$repo_root/.ci/.npm"

if command -v apify >/dev/null 2>&1; then
    apify_bin="$(command -v apify)"
else
    apify_bin="$npm_prefix/node_modules/.bin/apify"
    if [[ ! -x "$apify_bin" ]]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "validate-schemas: neither 'apify' nor 'npm' is on PATH; install Node.js or apify-cli." >&2
            exit 2
        fi
        echo "validate-schemas: installing apify-cli@${cli_version} into .ci/.npm ..." >&2
        npm install --no-save --no-audit --no-fund --loglevel=error \
            --prefix "$npm_prefix" "apify-cli@${cli_version}" >&2
    fi
fi

export APIFY_CLI_DISABLE_TELEMETRY=1

echo "validate-schemas: $("$apify_bin" --version)" >&2
"$apify_bin" validate-schema "$@"

# `apify validate-schema` does not check .actor/actor.json itself (a bad "version" passes), so check
# it against the CLI's own bundled JSON schema when that package is at hand.
if [[ $# -eq 0 ]]; then
    json_schemas="$npm_prefix/node_modules/@apify/json_schemas"
    if [[ -d "$json_schemas" ]] && command -v node >/dev/null 2>&1; then
        JSON_SCHEMAS="$json_schemas" node -e '
            const { getActorSchemaValidator } = require(process.env.JSON_SCHEMAS);
            const actor = JSON.parse(require("fs").readFileSync(".actor/actor.json", "utf8"));
            const validate = getActorSchemaValidator();
            if (!validate(actor)) {
                console.error("Error: .actor/actor.json is not valid:");
                for (const e of validate.errors) console.error(`  - ${e.message} at ${e.instancePath || "/"}`);
                process.exit(1);
            }
            console.error("Success: .actor/actor.json is valid.");
        '
    else
        echo "validate-schemas: @apify/json_schemas not in .ci/.npm; skipping the actor.json check." >&2
    fi

    # .actor/pay_per_event.json is a convention (pricing is set in the Console): check its shape.
    if [[ -f .actor/pay_per_event.json ]]; then
        python3 - <<'PY'
import json, sys
with open(".actor/pay_per_event.json", encoding="utf-8") as f:
    events = json.load(f)
problems = []
if not isinstance(events, dict) or not events:
    problems.append("top level must be a non-empty object of events")
else:
    for name, ev in events.items():
        if not isinstance(ev, dict):
            problems.append(f"{name}: must be an object")
            continue
        for key in ("eventTitle", "eventDescription"):
            if not isinstance(ev.get(key), str) or not ev[key].strip():
                problems.append(f"{name}.{key}: must be a non-empty string")
        price = ev.get("eventPriceUsd")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            problems.append(f"{name}.eventPriceUsd: must be a non-negative number")
if problems:
    print("Error: .actor/pay_per_event.json is not valid:", *("  - " + p for p in problems), sep="\n", file=sys.stderr)
    sys.exit(1)
print("Success: .actor/pay_per_event.json is valid.", file=sys.stderr)
PY
    fi
fi
