#!/usr/bin/env bash
# `make run`: start the daemon where a sound server answers, the demo otherwise; say which.
# Never autospawns a sound server to decide (the probe runs pactl with autospawn off).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if server=$("$VENV/bin/python" -c 'import sys; from percepnet_live.demo import running_sound_server as r; s = r(); print(s or ""); sys.exit(0 if s else 1)'); then
  echo "make run: sound server found ($server): starting the daemon with 'percepnet-live run'"
  exec "$VENV/bin/percepnet-live" run "$@"
else
  echo "make run: no sound server is running: starting 'percepnet-live demo' (a private PulseAudio and a fake noisy microphone)"
  exec "$VENV/bin/percepnet-live" demo "$@"
fi
