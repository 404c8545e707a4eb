"""The daemon end to end on a real (private) PulseAudio and PipeWire: mic in, virtual mic out.

Every test starts its own server (tests/audio_servers.py) with a null-sink microphone, runs the
daemon against it and records what applications would record from "PercepNet Microphone".
The processing tests use the real DSP path with unity gains (``FrameProcessor(network=None)``: a
delay-matched passthrough) until trained weights ship; the "closer to clean" test needs weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from audio_servers import RATE, available, private_pipewire, private_pulseaudio

from percepnet_live import config
from percepnet_live.constants import HOP, SAMPLE_RATE
from percepnet_live.engine.bench import lag_of, voice_like
from percepnet_live.engine import streams as S
from percepnet_live.engine.daemon import Daemon
from percepnet_live.engine.worker import DelayProcessor

SERVERS = {"pulseaudio": private_pulseaudio, "pipewire": private_pipewire}
VM = "percepnet_mic"
pytestmark = pytest.mark.timeout(300)


def _server(kind, **kw):
    if available(kind):
        pytest.skip(available(kind))
    return SERVERS[kind](**kw)


def unity_processor():
    from percepnet_live.pipeline import FrameProcessor

    return FrameProcessor(network=None)




def longest_silence(x: np.ndarray, floor: float = 1e-5) -> int:
    """Longest run of samples with |x| below ``floor``."""
    quiet = np.abs(x) < floor
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best


def realtime_allowed() -> bool:
    """Whether this process may use SCHED_FIFO (root, RLIMIT_RTPRIO or rtkit)."""
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


def fifo_threads(priority: int) -> list[int]:
    """This process's threads running SCHED_FIFO at ``priority``."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) == os.SCHED_FIFO and os.sched_getparam(int(tid)).sched_priority == priority:
                out.append(int(tid))
        except OSError:
            continue
    return out


def wait_until(cond, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def cfg_for(**overrides):
    return config.load(use_user_file=False, overrides=overrides)


def play_and_record(server, x: np.ndarray, source: str = VM, sink: str = "fake_mic", tail_s: float = 0.6,
                    settle_s: float = 1.5) -> np.ndarray:
    """Record ``source`` while ``x`` plays into ``sink``.

    A PulseAudio null sink reconfigures its latency when a new low-latency reader connects (our
    recorder), which disturbs the streams on it for up to a second: the signal starts after
    ``settle_s``, and everything checked is inside the signal."""
    lead = np.zeros(int(settle_s * RATE), np.float32)
    with server.recording(source) as rec:
        server.play(np.concatenate([lead, x]), sink=sink).wait(timeout=60)
        time.sleep(tail_s)
    return rec.samples


def daemon_counters(d) -> dict:
    """The daemon's counters plus the engine's internal ones (re-primes, resyncs, worker skips)."""
    if d is None:
        return {}
    from percepnet_live.engine import streams as S

    c = dict(d.counters())
    if d.session is not None:
        c.update(resyncs=int(d.session.st[S.S_RESYNCS]), worker_rt=d.session.worker.is_realtime,
                 skipped=d.session.telemetry.skipped, in_seq=int(d.session.st[S.S_IN_SEQ]),
                 next=int(d.session.st[S.S_NEXT]), out_cb=int(d.session.st[S.S_OUT_CALLBACKS]),
                 hist_w=int(d.session.st[S.S_HIST_W]))
    return c


def diagnose(x: np.ndarray, rec: np.ndarray, lag: int, win: int = RATE // 4) -> str:
    """Where the recording departs from the signal: (offset in samples, correlation) per 250 ms."""
    out = []
    for k in range(0, x.size - win + 1, win):
        lo = max(0, lag + k - 4800)
        l2, c2 = lag_of(x[k:k + win], rec[lo: lag + k + win + 4800])
        out.append(f"{(l2 + lo) - (lag + k):+d}/{c2:.2f}")
    return "per 250 ms: " + " ".join(out)


def transported_cleanly(server, x: np.ndarray, daemon, min_corr: float = 0.98, attempts: int = 2,
                        settle_s: float = 1.5) -> int:
    """Play ``x`` into the mic, record the virtual mic, and check it arrived intact (``check_clean_transport``).

    One more attempt is allowed: on this shared 2-core machine under heavy load, the test rig
    itself (pacat, parec, the server's null sinks) occasionally slips a few hundred samples with
    no event on the daemon's side. Two failures in a row fail the test."""
    for i in range(attempts):
        rec = play_and_record(server, x, settle_s=settle_s)
        try:
            return check_clean_transport(x, rec, min_corr=min_corr, daemon=daemon)
        except AssertionError as e:
            print(f"attempt {i + 1} of {attempts} failed: {e}")  # shown by pytest if the test fails
            if i == attempts - 1:
                raise
    return -1


def check_clean_transport(x: np.ndarray, rec: np.ndarray, min_corr: float = 0.98, daemon=None) -> int:
    """The recording holds all of ``x`` once, intact: one lag for the start and the end, no gap."""
    assert rec.size > x.size, "the recording is shorter than the signal"
    lag, corr = lag_of(x, rec)
    why = f"{diagnose(x, rec, lag)}; daemon counters {daemon_counters(daemon)}"
    assert corr > min_corr, f"the virtual mic does not carry the signal (correlation {corr:.3f}); {why}"
    inside = rec[lag:lag + x.size]
    assert longest_silence(inside) <= HOP, f"a gap longer than one block inside the signal; {why}"
    head, tail = x[: RATE // 2], x[-RATE // 2:]
    lag_head, _ = lag_of(head, rec[max(0, lag - HOP): lag + RATE // 2 + HOP])
    lag_tail, _ = lag_of(tail, rec[lag + x.size - RATE // 2 - HOP: lag + x.size + HOP])
    assert lag_head == HOP or lag == lag_head, "start misaligned"
    assert lag_tail == HOP, f"samples lost or repeated: the end is {lag_tail - HOP:+d} samples off the start; {why}"
    return lag


@pytest.mark.parametrize("kind", ["pulseaudio", "pipewire"])
def test_the_virtual_mic_carries_the_processed_mic_signal_intact(kind):
    """Mic -> daemon (full DSP path, unity gains) -> PercepNet Microphone: same signal, every sample once, no gap."""
    x = voice_like(4.0)
    with _server(kind) as s, s.activate():
        d = Daemon(cfg_for(), processor=unity_processor())
        d.start()
        try:
            first = d.session
            if realtime_allowed() and first is not None:  # the capture callback thread starts as a normal thread
                assert first.pending_rt
                assert all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in first.pending_rt)
            assert wait_until(lambda: VM in s.source_names(), 10)
            desc = s.pactl("list", "sources")
            assert "PercepNet Microphone" in desc
            time.sleep(0.5)
            transported_cleanly(s, x, d)
            snap = d.snapshot()
            assert snap["state"] in ("running", "passthrough")
            # a shared 2-core CI box may starve the worker for a moment: then those few blocks were the
            # delay-matched dry input (the transport check above still holds); never a sustained fallback
            assert snap["counters"]["passthrough_blocks"] < 20, snap["counters"]
            assert snap["latency_ms"]["algorithmic"] == pytest.approx(1000 * d.processor.delay_samples / SAMPLE_RATE)
            if realtime_allowed():
                # both callback threads end at the callback priority; the capture one only after
                # it settled (it busy-waits for its first fraction of a second: not at RT priority)
                assert d.session.pending_rt == []
                assert len(fifo_threads(S.CALLBACK_RT_PRIORITY)) == 2
        finally:
            d.stop()
        assert not any("percepnet_live.pid" in a for _, _, a in s.modules()), "modules left behind"
        assert VM not in s.source_names()


@pytest.mark.parametrize("kind", ["pulseaudio", "pipewire"])
def test_an_application_that_starts_recording_later_gets_audio_at_once(kind):
    """The virtual mic behaves like a real device for a late recorder: no stall while an idle null
    sink's rendered-ahead audio drains, with nothing of ours reading it (the daemon's output stream
    alone clocks the sink; the recorder's 10 ms request then sets its latency)."""
    x = np.tile(voice_like(2.0), 5)
    with _server(kind) as s, s.activate():
        d = Daemon(cfg_for(), processor=unity_processor())
        d.start()
        try:
            assert wait_until(lambda: VM in s.source_names(), 10)
            player = s.play(x)
            time.sleep(3.0)              # the daemon has been writing into its sink with no reader
            with s.recording(VM, latency_ms=10) as rec:
                t0 = time.monotonic()
                time.sleep(1.5)
            wall = time.monotonic() - t0
            player.kill()
            if kind == "pulseaudio":
                sink = s.pactl("list", "sinks").split("Sink #")
                conf = [b for b in sink if f"Name: {VM}_sink" in b][0]
                usec = int(conf.split("configured ")[1].split()[0])
                assert usec <= 20_000, f"the virtual mic's sink runs at {usec} us latency"
        finally:
            d.stop()
    got = rec.samples
    assert got.size >= (wall - 0.3) * RATE, f"only {got.size / RATE:.2f} s of audio in {wall:.2f} s"
    first = got[: RATE // 5]
    assert np.sqrt(np.mean(first ** 2)) > 0.01, "the first 200 ms recorded were silent"


def _probe_delay(s, make_processor, x, attempts: int = 3) -> float:
    """``_probe_once`` again (fresh daemon) when the stimulus itself arrived damaged at the mic
    (a server-side glitch of the test rig under load, seen on the probe's left channel)."""
    for i in range(attempts):
        try:
            return _probe_once(s, make_processor(), x)
        except StimulusDamaged:
            if i == attempts - 1:
                raise


class StimulusDamaged(AssertionError):
    pass


def _probe_once(s, processor, x, lead_s: float = 3.0) -> float:
    """Mic-to-output delay in ms of a daemon running ``processor``, measured on one clock (probe route).

    The daemon starts, then the recorder and the stimulus player connect (connecting a stream
    re-times a null sink); the signal begins ``lead_s`` seconds later."""
    d = Daemon(cfg_for(output="probe_out"), processor=processor)
    d.start()
    try:
        with s.recording_probe() as rec:
            s.play(np.concatenate([np.zeros(int(lead_s * RATE), np.float32), x]), sink="probe_stim").wait(timeout=60)
            time.sleep(0.5)
        counters = daemon_counters(d)
    finally:
        d.stop()
    both = rec.samples
    lag_mic, corr_mic = lag_of(x, both[:, 0])
    lag_out, corr_out = lag_of(x, both[:, 1])
    if corr_mic < 0.99:
        raise StimulusDamaged(f"the stimulus did not reach the mic intact (correlation {corr_mic:.3f})")
    assert corr_out > 0.98, f"output does not match the mic (correlation {corr_out:.3f}); {counters}"
    return 1000.0 * (lag_out - lag_mic) / RATE


def test_processing_adds_at_most_the_algorithmic_delay_plus_10ms_over_a_plain_passthrough():
    """Same route, same run: PercepNet daemon delay - passthrough daemon delay <= algorithmic + 10 ms."""
    x = voice_like(1.5, seed=3)
    with _server("pulseaudio", mic=False) as s, s.activate():
        s.add_probe_mic()
        plain, proc = [], []
        algo_ms = 1000 * unity_processor().delay_samples / SAMPLE_RATE
        for _ in range(2):
            plain.append(_probe_delay(s, lambda: DelayProcessor(0), x))
            proc.append(_probe_delay(s, unity_processor, x))
        print(f"\nplain passthrough {plain} ms, PercepNet path {proc} ms, algorithmic {algo_ms} ms")
        assert min(proc) - min(plain) <= algo_ms + 10.0
        assert min(proc) - min(plain) >= algo_ms - 10.0  # the algorithmic delay really is in the path


def test_a_slowed_worker_degrades_to_delay_matched_passthrough_without_gaps():
    """Worker 15 ms per 10 ms block: the output keeps flowing (dry, same timing), counters rise, nothing raises."""
    x = voice_like(3.0, seed=5)
    with _server("pulseaudio") as s, s.activate():
        d = Daemon(cfg_for(), processor=unity_processor(), slow_ms=15.0)
        d.start()
        try:
            time.sleep(0.5)
            transported_cleanly(s, x, d, min_corr=0.95)
            snap = d.snapshot()
            c = snap["counters"]
            assert c["passthrough_blocks"] > 50 and c["passthrough_events"] >= 1
            assert d.session.worker.error is None and d.session.worker.is_alive()
            assert d.session.telemetry.skipped > 0
        finally:
            d.stop()


def test_a_device_at_44100_hz_is_resampled_on_the_worker():
    """A capture stream forced to 44.1 kHz: soxr brings it to 48 kHz; the signal arrives intact."""
    x = voice_like(3.0, seed=7)
    with _server("pulseaudio") as s, s.activate():
        d = Daemon(cfg_for(**{"audio.input_rate": 44100}), processor=DelayProcessor(0))
        d.start()
        try:
            assert d.snapshot()["input"]["rate"] == 44100
            time.sleep(0.5)
            rec = play_and_record(s, x, settle_s=2.5)
            lag, corr = lag_of(x, rec)
            windows = diagnose(x, rec, lag)
            good = [w for w in windows.split(": ")[1].split() if float(w.split("/")[1]) >= 0.98]
            # Known issue (see README): the 44.1 kHz capture path through the ALSA pulse plugin
            # occasionally shifts once by a few blocks; the resampled signal itself must be intact.
            assert len(good) >= 0.8 * len(windows.split(": ")[1].split()), f"{windows}; {daemon_counters(d)}"
            assert longest_silence(rec[lag:lag + x.size]) <= HOP
        finally:
            d.stop()


@pytest.mark.parametrize("kind", ["pulseaudio", "pipewire"])
def test_audio_resumes_after_the_mic_is_unplugged_and_replugged(kind):
    x = voice_like(2.0, seed=11)
    with _server(kind) as s, s.activate():
        d = Daemon(cfg_for(), processor=DelayProcessor(0))
        d.start()
        try:
            time.sleep(0.5)
            s.remove_mic()
            assert wait_until(lambda: d.snapshot()["state"] == "waiting_for_input", 5)
            # with the mic gone, nothing may capture our own virtual mic (no feedback loop)
            if VM in s.source_names():
                s.pactl("set-default-source", VM)
            time.sleep(1.0)
            assert d.snapshot()["state"] == "waiting_for_input"
            assert d.session is None
            assert VM in s.source_names(), "the virtual mic must stay while the input is away"
            t0 = time.monotonic()
            s.add_mic()
            assert wait_until(lambda: d.snapshot()["state"] == "running", 5), "audio did not resume within 5 s"
            print(f"\nresumed {time.monotonic() - t0:.2f} s after the mic came back")
            transported_cleanly(s, x, d)
            assert d.snapshot()["counters"]["device_events"] >= 1
        finally:
            d.stop()


def test_the_virtual_mic_comes_back_after_the_server_restarts():
    x = voice_like(2.0, seed=13)
    with _server("pulseaudio") as s, s.activate():
        d = Daemon(cfg_for(), processor=DelayProcessor(0))
        d.start()
        try:
            time.sleep(0.5)
            s.restart()
            t0 = time.monotonic()
            assert wait_until(lambda: VM in s.source_names() and d.snapshot()["state"] == "running", 10)
            print(f"\nrunning again {time.monotonic() - t0:.2f} s after the server came back")
            time.sleep(0.5)
            # the fresh server's null sinks re-time for a while as the player and recorder connect
            transported_cleanly(s, x, d, settle_s=3.0)
        finally:
            d.stop()
        assert not any("percepnet_live.pid" in a for _, _, a in s.modules())


def _spawn_run(s, *args):
    env = s.client_env()
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "percepnet_live", "run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_leaves_nothing_loaded_and_a_second_instance_refuses():
    with _server("pulseaudio") as s:
        first = _spawn_run(s, "--passthrough")
        try:
            assert wait_until(lambda: VM in s.source_names(), 60), "the daemon did not create the virtual mic"
            second = subprocess.run([sys.executable, "-m", "percepnet_live", "run", "--passthrough"],
                                    env=s.client_env(), capture_output=True, text=True, timeout=60)
            assert second.returncode != 0
            err = second.stderr.strip()
            assert "already running" in err and str(first.pid) in err and "Traceback" not in err
            assert len(err.splitlines()) == 1
            assert VM in s.source_names(), "the refused instance must not touch the running one's mic"
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=20)
            assert first.returncode == 0, first.stderr.read()
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert not any("percepnet_live.pid" in a for _, _, a in s.modules())
        assert VM not in s.source_names()


def test_leftovers_of_a_killed_daemon_are_removed_on_the_next_start():
    with _server("pulseaudio") as s:
        first = _spawn_run(s, "--passthrough")
        assert wait_until(lambda: VM in s.source_names(), 60)
        first.kill()
        first.wait()
        assert sum("percepnet_live.pid" in a for _, _, a in s.modules()) == 2  # the crash left them
        with s.activate():
            d = Daemon(cfg_for(), processor=DelayProcessor(0))
            d.start()
            try:
                ours = [a for _, _, a in s.modules() if "percepnet_live.pid" in a]
                assert len(ours) == 2 and all(f"percepnet_live.pid={os.getpid()}" in a for a in ours)
            finally:
                d.stop()


def test_run_without_shipped_weights_says_so_in_one_line():
    from percepnet_live.model.network import Network

    if Network.default_available():
        pytest.skip("trained weights are shipped: 'run' starts normally")
    res = subprocess.run([sys.executable, "-m", "percepnet_live", "run"], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1 and "weights" in res.stderr and "Traceback" not in res.stderr


def test_the_recording_is_closer_to_clean_than_the_input_was():
    """With the shipped weights: noisy speech in, the virtual mic's recording is closer to the clean speech."""
    from percepnet_live.model.network import Network

    if not Network.default_available():
        pytest.skip("needs the trained weights, which are not shipped yet (training issue): the other end-to-end "
                    "checks run with the unity-gain DSP path")
    clean = voice_like(4.0, seed=21)
    rng = np.random.default_rng(22)
    noise = (0.05 * rng.standard_normal(clean.size)).astype(np.float32)
    noisy = clean + noise
    with _server("pulseaudio") as s, s.activate():
        d = Daemon(cfg_for())
        d.start()
        try:
            time.sleep(0.5)
            rec = play_and_record(s, noisy)
        finally:
            d.stop()
    lag, _ = lag_of(clean, rec)
    out = rec[lag:lag + clean.size]

    def snr(ref, y):
        g = np.dot(ref, y) / (np.dot(ref, ref) + 1e-12)
        return 10 * np.log10(np.sum((g * ref) ** 2) / (np.sum((y - g * ref) ** 2) + 1e-12))

    assert snr(clean, out) > snr(clean, noisy) + 3.0
