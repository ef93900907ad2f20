"""Emotional prosody from the distribution's text-to-speech engines: espeak-ng, flite, festival, its HTS voice,
and festival's Italian and Catalan voices reading English.

The project's own voice (``ser_train.synth``) is one generator; a model trained
on it alone learns that voice, not emotion-like prosody, and answers anything
else with misplaced certainty. These engines are other generators: different
vocoders (formant synthesis, diphone concatenation, statistical parametric),
different speakers and real sentences. Each is driven with the same
*direction* of prosodic change per label as ``synth.PROFILES`` — pitch level,
pitch range, speaking rate, loudness, and a final rise for surprise — through
the controls the engine has:

- espeak-ng: SSML ``<prosody pitch range rate volume>`` relative to the voice,
  with its voice variants (m1..m7, f1..f5, klatt...) as speakers;
- flite: ``int_f0_target_mean`` / ``int_f0_target_stddev`` (Hz) and
  ``duration_stretch`` on the voices that honour them (kal, kal16, awb, slt;
  rms ignores the F0 targets, so it is not used);
- festival: ``int_lr_params`` (target F0 mean and deviation) and
  ``Duration_Stretch`` for the diphone voices kal and ked, many utterances per
  festival process (starting festival costs more than an utterance);
- hts: festival's statistical parametric (HTS) engine with its one voice, slt
  (an American woman): the engine's speed control for the rate; it ignores F0
  targets, so pitch level and range are set afterwards with the WORLD vocoder
  (analysis, F0 moved in log-frequency around the clip's median, resynthesis),
  which also warps the spectral envelope to make other speakers of one voice;
- accented: festival's voices of other languages reading the English
  sentences by their own letter-to-sound rules (Italian diphone voices lp, a
  woman, and pc, a man; the Catalan HTS voice ona, a woman): three more
  timbres, accents and two more vocoders, which the distribution has where it
  has no other English voice (no pico, no mbrola). Rate by the engines'
  controls (``Duration_Stretch``; HTS's speed); their intonation takes no F0
  targets, so pitch level, range and the question rise go through WORLD as
  for hts.

None of this is emotional speech: it is speech whose prosody was set by rule.
Every clip is decoded and resampled to 16 kHz mono by the serving decoder
(``ser_serve.audio``), exactly what the server does with an upload.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ser_serve.audio import load_waveform
from ser_train.augment import pyworld, warp_envelope, world_analysis
from ser_train.synth import EMOTIONS, PROFILES

SAMPLE_RATE = 16_000
ENGINES = ("espeak-ng", "flite", "festival", "hts", "accented", "accented2")
# The Debian packages that provide them (scripts/ensure_test_tools.sh installs these).
PACKAGES = ("espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts",
            "festvox-italp16k", "festvox-itapc16k", "festvox-ca-ona-hts",
            "festvox-czech-dita", "festvox-czech-krb", "festvox-czech-ph", "festvox-suopuhe-lj", "festvox-suopuhe-mv",
            "festvox-ru")

# Neutral sentences (no emotional words, so the label lives in the prosody only).
# The first SENTENCE_SPLIT[0] are for training, the next for validation, the rest for test.
SENTENCES = (
    "The train leaves at seven in the morning.",
    "Please put the folder on the second shelf.",
    "We moved the meeting to the room upstairs.",
    "The bus stops at the corner of the street.",
    "He wrote the numbers down on a small card.",
    "The shop closes at six on most weekdays.",
    "She parked the car next to the old garage.",
    "The report has twelve pages and two tables.",
    "Turn left after the bridge and keep going.",
    "The kettle is on the counter by the window.",
    "They painted the fence a light shade of grey.",
    "I left my umbrella in the office yesterday.",
    "The package arrived on Tuesday afternoon.",
    "Our neighbours have a garden with tall trees.",
    "The library opens again next Monday.",
    "He carried the boxes up to the third floor.",
    "The recipe needs two eggs and some flour.",
    "We will take the early flight to Boston.",
    "The cat is sleeping under the kitchen table.",
    "The lecture starts right after lunch.",
    "You can find the forms at the front desk.",
    "The river runs along the edge of the town.",
    "I bought bread and milk on the way home.",
    "The printer on this floor needs new paper.",
    "The children walk to school every day.",
    "The door on the left leads to the yard.",
    "My brother works at the station downtown.",
    "The clock in the hall is five minutes fast.",
    "There are four chairs around the table.",
    "The letter was sent to the wrong address.",
    "We usually have dinner at eight o'clock.",
    "The bottle is in the fridge on the top shelf.",
    "Someone called about the car this morning.",
    "The road was closed for repairs last week.",
    "She keeps her keys in the blue bowl.",
    "The tickets are in the drawer by the door.",
    # validation
    "The plates go in the cupboard above the sink.",
    "He reads the paper before he goes to work.",
    "The garden gate was left open again.",
    "We need to buy a new lamp for the desk.",
    "The museum is closed on public holidays.",
    "I saw your sister at the market today.",
    # test
    "The meeting will be held in the main hall.",
    "Your coat is hanging behind the door.",
    "The shop on the corner sells fresh fish.",
    "They are moving to a flat near the park.",
    "The water in the lake was very still.",
    "The last bus leaves at half past eleven.",
)
SENTENCE_SPLIT = {"train": (0, 36), "validation": (36, 42), "test": (42, 48)}


@dataclass(frozen=True)
class Prosody:
    """Engine-neutral prosody of one clip, as multiples of the voice's own defaults."""
    pitch: float      # F0 level multiplier
    range: float      # F0 range (deviation) multiplier
    rate: float       # speaking-rate multiplier (duration stretch = 1 / rate)
    volume: float     # peak level, 0..1
    ending: str       # sentence-final punctuation: "?" makes the engines' question intonation (a final rise)


def emotion_prosody(emotion: str) -> Prosody:
    """The label's prosody from synth.PROFILES, relative to its neutral profile.

    Range and rate are compressed (a power below 1): the engines distort badly
    at synth.py's extremes (a 5x pitch range, half speed).
    """
    p, n = PROFILES[emotion], PROFILES["neutral"]
    return Prosody(
        pitch=p.pitch / n.pitch,
        range=(p.pitch_range / n.pitch_range) ** 0.6,
        rate=(p.rate / n.rate) ** 0.8,
        volume=float(np.clip(p.loudness * 1.1, 0.2, 0.98)),
        ending="?" if p.final > 3 else ("!" if p.loudness >= 0.75 else "."),
    )


@dataclass(frozen=True)
class Job:
    """One clip to render: what, how, and by whom."""
    text: str
    prosody: Prosody
    voice: str
    speaker_pitch: float  # this 'speaker's' F0 multiplier on top of the voice's
    speaker_rate: float   # and speaking-rate multiplier


def vary(prosody: Prosody, rng: np.random.Generator) -> Prosody:
    """Clip-to-clip variation, so the labels overlap as they would between people."""
    def jitter(value, sd):
        return float(value * np.exp(sd * rng.standard_normal()))
    return Prosody(jitter(prosody.pitch, 0.05), jitter(prosody.range, 0.15), jitter(prosody.rate, 0.07),
                   float(np.clip(jitter(prosody.volume, 0.1), 0.1, 0.99)), prosody.ending)


def _sentence(text: str, ending: str) -> str:
    return text.rstrip(".!?") + ending


# --- espeak-ng -----------------------------------------------------------------------------------------------
ESPEAK_LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "Andy", "Annie", "Denis", "Gene", "Lee", "Mario", "Michael",
                   "anika", "belinda", "edward", "grandma", "linda", "steph", "victor", "zac")


def _espeak(job: Job, path: Path) -> None:
    p = job.prosody
    pitch = 100 * (p.pitch * job.speaker_pitch - 1)
    ssml = (f'<speak><prosody pitch="{pitch:+.0f}%" range="{100 * p.range:.0f}%" '
            f'rate="{100 * p.rate * job.speaker_rate:.0f}%">{_sentence(job.text, p.ending)}</prosody></speak>')
    subprocess.run(["espeak-ng", "-v", job.voice, "-m", "-w", str(path), ssml], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


# --- flite ---------------------------------------------------------------------------------------------------
# Each voice's typical F0 mean and deviation in Hz (measured here), which the targets scale.
FLITE_VOICES = {"kal": (100.0, 14.0), "kal16": (100.0, 14.0), "awb": (125.0, 18.0), "slt": (170.0, 25.0)}


def _flite(job: Job, path: Path) -> None:
    p = job.prosody
    mean, sd = FLITE_VOICES[job.voice]
    f0 = mean * p.pitch * job.speaker_pitch
    subprocess.run(["flite", "-voice", job.voice,
                    "--setf", f"int_f0_target_mean={f0:.1f}",
                    "--setf", f"int_f0_target_stddev={sd * p.range * p.pitch * job.speaker_pitch:.1f}",
                    "--setf", f"duration_stretch={1 / (p.rate * job.speaker_rate):.3f}",
                    "-t", _sentence(job.text, p.ending), "-o", str(path)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


# --- festival ------------------------------------------------------------------------------------------------
FESTIVAL_VOICES = {"kal_diphone": (105.0, 14.0), "ked_diphone": (105.0, 15.0)}


def _festival_text(job: Job) -> str:
    """The sentence as a Scheme string literal's contents (no quote or backslash can end it early)."""
    return _sentence(job.text, job.prosody.ending).replace("\\", "").replace('"', "")


def _festival_script(jobs: list[Job], paths: list[Path]) -> str:
    lines = []
    for job, path in zip(jobs, paths):
        p = job.prosody
        mean, sd = FESTIVAL_VOICES[job.voice]
        f0 = mean * p.pitch * job.speaker_pitch
        text = _festival_text(job)
        # The voice's own setup resets int_lr_params and Duration_Stretch, so they are set after it.
        lines += [
            f"(voice_{job.voice})",
            f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {sd * p.range * p.pitch * job.speaker_pitch:.1f})"
            " (model_f0_mean 170) (model_f0_std 34)))",
            f"(Parameter.set 'Duration_Stretch {1 / (p.rate * job.speaker_rate):.3f})",
            f'(set! utt (utt.synth (Utterance Text "{text}")))',
            f'(utt.save.wave utt "{path}" \'riff)',
        ]
    return "\n".join(lines) + "\n"


def _festival_process(jobs: list[Job], paths: list[Path], workdir: Path, make_script=_festival_script) -> None:
    script = workdir / f"batch_{paths[0].stem}.scm"
    script.write_text(make_script(jobs, paths))
    subprocess.run(["festival", "--batch", str(script)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60 + 5 * len(jobs))


def _festival_batch(jobs: list[Job], paths: list[Path], workdir: Path) -> None:
    """Many utterances in one festival process; if festival aborts, each clip again in a process of its own."""
    try:
        _festival_process(jobs, paths, workdir)
    except subprocess.CalledProcessError:
        for job, path in zip(jobs, paths):
            _festival_alone(job, path, workdir)


def _festival_alone(job: Job, path: Path, workdir: Path, attempts: int = 4) -> None:
    """Festival aborts (heap corruption) on a few very low, very slow utterances (kal, sad, at the lowest speaker
    pitch and rate, on one sentence in forty), so such a clip is spoken a little higher, 10 % a try, and the change is
    said on stderr. None of ``make data``'s clips needs it."""
    for attempt in range(attempts):
        try:
            _festival_process([replace(job, speaker_pitch=job.speaker_pitch * 1.1**attempt)], [path], workdir)
        except subprocess.CalledProcessError:
            continue
        if attempt:
            print(f"festival: {job.voice} aborted on {job.text!r}; spoken {10 * attempt}% higher", file=sys.stderr)
        return
    raise RuntimeError(f"festival aborted on {job.text!r} with {job.voice} {attempts} times, pitch raised each time")


# --- hts (festival's HTS engine, prosody through WORLD) -------------------------------------------------------
# Speakers made from the one voice: (F0 multiplier, spectral-envelope warp; below 1 moves the formants down,
# a longer vocal tract). slt's own F0 is about 177 Hz.
HTS_VOICES = {"slt": (1.0, 1.0), "slt-bright": (1.12, 1.07), "slt-low": (0.8, 0.93), "slt-deep": (0.6, 0.86)}
HTS_VOICE_DIR = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts")  # package festvox-us-slt-hts
HTS_FRAME_MS = 5.0
# The engine makes no question intonation, so a "?" clip gets one: F0 rises by this much over its last voiced
# fifth (the other engines rise by about this on "?"; synth.py's surprise ends 9 semitones up).
HTS_QUESTION_RISE_SEMITONES = 6.0


def _hts_script(jobs: list[Job], paths: list[Path]) -> str:
    lines = ["(voice_cmu_us_slt_arctic_hts)", "(set! base_params hts_engine_params)"]
    for job, path in zip(jobs, paths):
        text = _festival_text(job)
        lines += [
            f"(set! hts_engine_params (append base_params '((\"-r\" {job.prosody.rate * job.speaker_rate:.3f}))))",
            f'(set! utt (utt.synth (Utterance Text "{text}")))',
            f'(utt.save.wave utt "{path}" \'riff)',
        ]
    return "\n".join(lines) + "\n"


# --- accented (festival's voices of other languages reading English; prosody through WORLD as for hts) -------------
# voice: (festival's name, its directory). Each voice's own pitch is kept (WORLD moves it by the prosody only).
ACCENTED_VOICES = {"lp": ("lp_diphone", "italian/lp_diphone"), "pc": ("pc_diphone", "italian/pc_diphone"),
                   "ona": ("upc_ca_ona_hts", "catalan/upc_ca_ona_hts")}
# accented2: a second such set, Czech, Finnish and Russian: a woman (dita, about 220 Hz), a boy (krb, 255 Hz), a
# Finnish woman (lj, 155 Hz) and three men. A high unheard voice then has high voices of other languages to learn
# from when `accented` is held out, and the other way round.
ACCENTED2_VOICES = {"dita": ("czech_dita", "czech/czech_dita"), "krb": ("czech_krb", "czech/czech_krb"),
                    "ph": ("czech_ph", "czech/czech_ph"), "lj": ("suo_fi_lj_diphone", "finnish/suo_fi_lj_diphone"),
                    "mv": ("hy_fi_mv_diphone", "finnish/hy_fi_mv_diphone"),
                    "nsh": ("msu_ru_nsh_clunits", "russian/msu_ru_nsh_clunits")}
FOREIGN_VOICES = {**ACCENTED_VOICES, **ACCENTED2_VOICES}
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")


def _accented_script(jobs: list[Job], paths: list[Path]) -> str:
    lines = []
    if any(job.voice == "ona" for job in jobs):
        # The HTS voice's own engine parameters, captured once, get the speed control appended per clip.
        lines += ["(voice_upc_ca_ona_hts)", "(set! ona_params hts_engine_params)"]
    for job, path in zip(jobs, paths):
        rate, text = job.prosody.rate * job.speaker_rate, _festival_text(job)
        lines.append(f"(voice_{FOREIGN_VOICES[job.voice][0]})")
        if job.voice == "ona":
            lines.append(f"(set! hts_engine_params (append ona_params '((\"-r\" {rate:.3f}))))")
        else:  # after the voice's setup, which resets it
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})")
            # The Italian voices' question intonation aborts festival on 8 sentences in 56 and makes no rise on
            # the others: they get a statement, and WORLD the rise (accented2's voices too, to treat them alike).
            # Their steep final fall often hides it: over the last voiced tenth (pYIN), -5 to +4 semitones against
            # the statement, three sentences per voice.
            text = text.replace("?", ".")
        lines += [f'(set! utt (utt.synth (Utterance Text "{text}")))',
                  f'(utt.save.wave utt "{path}" \'riff)']
    return "\n".join(lines) + "\n"


# Speakers of the voices WORLD re-pitches: (F0 multiplier, spectral-envelope warp).
WORLD_VOICES = {**HTS_VOICES, **{voice: (1.0, 1.0) for voice in FOREIGN_VOICES}}


def _world_prosody(x: np.ndarray, job: Job) -> np.ndarray:
    """The clip's F0 level times pitch (prosody, speaker, voice), its spread around the median times the prosody's
    range, and the voice's envelope warp, resynthesised by WORLD (16 kHz)."""
    f0, envelope, aperiodicity = world_analysis(x, HTS_FRAME_MS)
    voice_pitch, warp = WORLD_VOICES[job.voice]
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        centre = np.median(log_f0)
        shifted = centre + np.log(job.prosody.pitch * job.speaker_pitch * voice_pitch) + job.prosody.range * (log_f0 - centre)
        if job.prosody.ending == "?":
            shifted += np.log(2.0) * HTS_QUESTION_RISE_SEMITONES / 12 * np.clip(np.linspace(-4.0, 1.0, len(shifted)), 0, 1)
        f0[voiced] = np.exp(np.clip(shifted, np.log(60.0), np.log(500.0)))
    if warp != 1.0:
        envelope = warp_envelope(envelope, warp)
    y = pyworld().synthesize(f0, np.ascontiguousarray(envelope), aperiodicity, SAMPLE_RATE, HTS_FRAME_MS)
    return y.astype(np.float32)


VOICES = {"espeak-ng": None, "flite": tuple(FLITE_VOICES), "festival": tuple(FESTIVAL_VOICES), "hts": tuple(HTS_VOICES),
          "accented": tuple(ACCENTED_VOICES), "accented2": tuple(ACCENTED2_VOICES)}
# The programs each engine runs, and the voice directories it needs besides.
PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival", "hts": "festival", "accented": "festival",
            "accented2": "festival"}
VOICE_DIRS = {"hts": [HTS_VOICE_DIR], "accented": [FESTIVAL_VOICE_ROOT / d for _, d in ACCENTED_VOICES.values()],
              "accented2": [FESTIVAL_VOICE_ROOT / d for _, d in ACCENTED2_VOICES.values()]}
# Engines whose pitch level, range and question rise WORLD puts on afterwards (_world_prosody).
WORLD_ENGINES = ("hts", "accented", "accented2")
# Engines whose voices must not share a festival process (_festival_chunks).
ONE_VOICE_PER_FESTIVAL = ("accented2",)


def missing_engines(engines=ENGINES) -> list[str]:
    """Engines whose program or voices are not installed."""
    return [e for e in engines
            if shutil.which(PROGRAMS[e]) is None or not all(d.is_dir() for d in VOICE_DIRS.get(e, []))]


@dataclass(frozen=True)
class SpeakerPitch:
    """Bounds of the speakers' F0 multiplier on top of their voice's, and how a speaker is drawn between them:
    uniformly in the multiplier, or (``log``) uniformly in semitones, which spreads speakers evenly above and
    below the voice. Either way a speaker costs one uniform draw, so two ranges differ in pitch alone."""
    low: float
    high: float
    log: bool = False

    @classmethod
    def semitones(cls, low: float, high: float) -> "SpeakerPitch":
        return cls(2 ** (low / 12), 2 ** (high / 12), log=True)

    def draw(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


# The engines' speakers, in every split unless training asks for more: about -3 to +4 semitones.
SPEAKER_PITCH = SpeakerPitch(0.85, 1.25)


def random_job(engine: str, emotion: str, text: str, rng: np.random.Generator,
               speaker_pitch: SpeakerPitch = SPEAKER_PITCH) -> Job:
    """A clip of ``emotion`` by a random speaker of ``engine``, whose pitch ``speaker_pitch`` draws."""
    if engine == "espeak-ng":
        voice = f"{ESPEAK_LANGUAGES[rng.integers(len(ESPEAK_LANGUAGES))]}+{ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]}"
    else:
        voice = VOICES[engine][rng.integers(len(VOICES[engine]))]
    # Speakers: the same voice pitched higher or lower, faster or slower (as people differ).
    return Job(text, vary(emotion_prosody(emotion), rng), voice,
               speaker_pitch=speaker_pitch.draw(rng), speaker_rate=float(rng.uniform(0.9, 1.1)))


def _festival_chunks(engine: str, jobs: list[Job], paths: list[Path], size: int = 50):
    """(jobs, paths) of at most ``size`` utterances for one festival process each.

    The chunks of ONE_VOICE_PER_FESTIVAL's engines (accented2) hold one voice each: after the Russian voice,
    festival asks the Finnish voice's phones for Russian phone features and aborts ("Phone S does not have
    feature csoft"), which a chunk of 50 mixed voices nearly always runs into.
    """
    if engine not in ONE_VOICE_PER_FESTIVAL:
        return [(jobs[i : i + size], paths[i : i + size]) for i in range(0, len(jobs), size)]
    chunks = []
    for voice in sorted({job.voice for job in jobs}):
        mine = [i for i, job in enumerate(jobs) if job.voice == voice]
        chunks += [([jobs[i] for i in mine[j : j + size]], [paths[i] for i in mine[j : j + size]])
                   for j in range(0, len(mine), size)]
    return chunks


def render(engine: str, jobs: list[Job], rng: np.random.Generator, snr_db: tuple[float, float] = (25.0, 45.0),
           threads: int = 2) -> list[np.ndarray]:
    """16 kHz mono float32 clips of ``jobs``: the engine's output decoded by the serving decoder, scaled to
    each job's volume, with faint background noise (engines output digital silence, which no microphone does)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    missing = missing_engines([engine])
    if missing:
        raise RuntimeError(f"{engine} is not installed; run scripts/ensure_test_tools.sh (apt-get install {' '.join(PACKAGES)})")
    with tempfile.TemporaryDirectory(prefix=f"tts-{engine}-") as tmp:
        workdir = Path(tmp)
        paths = [workdir / f"{i:06d}.wav" for i in range(len(jobs))]
        if PROGRAMS[engine] == "festival":  # many utterances per festival process
            batch = (_festival_batch if engine == "festival"
                     else partial(_festival_process, make_script=_hts_script if engine == "hts" else _accented_script))
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda c: batch(*c, workdir), _festival_chunks(engine, jobs, paths)))
        else:
            one = _espeak if engine == "espeak-ng" else _flite
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, jobs, paths))
        clips = [load_waveform(path.read_bytes()) for path in paths]
        if engine in WORLD_ENGINES:  # WORLD holds the GIL: one process per thread
            with ProcessPoolExecutor(threads) as pool:
                clips = list(pool.map(_world_prosody, clips, jobs, chunksize=8))
        for index, (job, x) in enumerate(zip(jobs, clips)):
            x = x * (job.prosody.volume / (np.abs(x).max() + 1e-9))
            noise_rms = np.sqrt(np.mean(x**2)) / 10 ** (rng.uniform(*snr_db) / 20)
            x = x + noise_rms * rng.standard_normal(len(x))
            clips[index] = np.clip(x, -1, 1).astype(np.float32)
    return clips


def generate(engine: str, count_per_label: int, seed: int, split: str = "train",
             speaker_pitch: SpeakerPitch = SPEAKER_PITCH):
    """Yield ``(emotion, samples, job)`` for ``count_per_label`` clips of each label, deterministic for ``seed``.

    Sentences come from ``split``'s share of :data:`SENTENCES`, so test sentences are never trained on.
    ``speaker_pitch`` draws the speakers' F0 multiplier; any range draws the same random numbers, so only the
    pitch of the clips differs between two ranges.
    """
    rng = np.random.default_rng(seed)
    first, last = SENTENCE_SPLIT[split]
    jobs, emotions = [], []
    for index in range(count_per_label * len(EMOTIONS)):
        emotion = EMOTIONS[index % len(EMOTIONS)]
        jobs.append(random_job(engine, emotion, SENTENCES[rng.integers(first, last)], rng, speaker_pitch))
        emotions.append(emotion)
    for start in range(0, len(jobs), 200):  # bounded temporary space
        clips = render(engine, jobs[start : start + 200], rng)
        yield from zip(emotions[start : start + 200], clips, jobs[start : start + 200])
