"""The `devices` command: capture and playback devices with their rates, our virtual mic marked."""

from __future__ import annotations

from typing import Optional

import typer


def devices(
    json_out: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Settings file (for the virtual mic's name)."),
) -> None:
    """List the sound server's sources (inputs) and sinks (outputs), and PortAudio's own devices.

    '--input'/'--output' take a name substring from the server lists or a PortAudio index."""
    import json

    from rich.console import Console
    from rich.table import Table

    from .. import config as cfgmod
    from ..engine.devices import portaudio_devices
    from ..engine.soundserver import ServerConnection, ServerUnavailable, VirtualMic

    cfg = cfgmod.load(config)
    vm = VirtualMic(cfg["virtual_mic"]["name"], cfg["virtual_mic"]["description"])
    conn = ServerConnection("percepnet-live-devices")
    data: dict = {"server": None, "default_source": None, "inputs": [], "outputs": [], "portaudio": []}
    try:
        data["server"] = conn.server_name()
        data["default_source"] = conn.default_source()
        for s in conn.sources():
            data["inputs"].append({"name": s.name, "description": s.description, "rate": s.rate,
                                   "channels": s.channels, "monitor": s.is_monitor, "virtual_mic": vm.owns(s.name)})
        for s in conn.sinks():
            data["outputs"].append({"name": s.name, "description": s.description, "rate": s.rate,
                                    "channels": s.channels, "virtual_mic": vm.owns(s.name)})
    except ServerUnavailable:
        pass
    finally:
        conn.close()
    for d in portaudio_devices():
        data["portaudio"].append({"index": d["index"], "name": d["name"], "inputs": d["max_input_channels"],
                                  "outputs": d["max_output_channels"], "rate": int(d["default_samplerate"])})
    if json_out:
        print(json.dumps(data, indent=2))
        return
    con = Console()
    if data["server"] is None:
        con.print("[yellow]no PulseAudio/PipeWire server answers[/]: only PortAudio's devices are listed")
    else:
        con.print(f"sound server: [bold]{data['server']}[/]")
        for kind in ("inputs", "outputs"):
            t = Table(title=f"{kind} ({'sources' if kind == 'inputs' else 'sinks'})", title_justify="left")
            for col in ("name", "description", "rate", "ch", "note"):
                t.add_column(col)
            for d in data[kind]:
                notes = []
                if d["virtual_mic"]:
                    notes.append("[magenta]percepnet virtual mic[/]")
                if d.get("monitor"):
                    notes.append("monitor")
                if kind == "inputs" and d["name"] == data["default_source"]:
                    notes.append("[green]default (--input mic)[/]")
                t.add_row(d["name"], d["description"], str(d["rate"]), str(d["channels"]), ", ".join(notes))
            con.print(t)
    t = Table(title="PortAudio devices (--input/--output INDEX)", title_justify="left")
    for col in ("index", "name", "in", "out", "rate"):
        t.add_column(col)
    for d in data["portaudio"]:
        t.add_row(str(d["index"]), d["name"], str(d["inputs"]), str(d["outputs"]), str(d["rate"]))
    con.print(t)
