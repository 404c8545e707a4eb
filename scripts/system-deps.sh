#!/usr/bin/env bash
# Install the Debian packages percepnet-live needs, only where missing.
#   libportaudio2            PortAudio, the audio I/O library behind sounddevice
#   libasound2-plugins       the ALSA `pulse` PCM: how PortAudio (ALSA host API only) reaches PulseAudio/PipeWire
#   pulseaudio, pulseaudio-utils (pactl)   sound server + its client, for the virtual mic and the tests
#   pipewire, pipewire-pulse, wireplumber, dbus   the PipeWire end-to-end tests
#   tmux                     drives the monitor TUI in its test
#   systemd                  systemd-analyze verifies the user unit
set -euo pipefail
want=(libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils pipewire pipewire-pulse wireplumber dbus tmux systemd)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
