"""Defaults of the load options, shared by the locustfile (when locust runs it directly) and
`ser-serve loadtest` (which passes every one of them on), so the two cannot drift apart."""

from ser_tools.clipmix import ClipMix

CLIP_COUNT = ClipMix().count
CLIP_FORMATS = ",".join(f"{name}={share}" for name, share in ClipMix().formats.items())
CLIP_SECONDS = f"{ClipMix().min_seconds},{ClipMix().mean_seconds},{ClipMix().max_seconds}"
SHAPE_USERS = 4          # steady users; step increment; spike baseline
SHAPE_SECONDS = 30.0     # total duration of the shape
STEP_SECONDS = 10.0      # step: time at each user count
MAX_USERS = 32           # step ceiling; spike peak
MAX_REQUESTS = 2_000     # every run is bounded in count as well as in time
SLO_P95_MS = 5_000.0     # step: stop when p95 breaks it; loadtest: fail the run


def parse_clip_mix(count: int, formats: str, seconds: str) -> ClipMix:
    """ClipMix from the command-line spellings ``wav=0.4,mp3=0.2`` and ``min,mean,max``."""
    shares = {name: float(share) for name, share in (item.split("=") for item in formats.split(","))}
    low, mean, high = (float(x) for x in seconds.split(","))
    return ClipMix(count=count, formats=shares, min_seconds=low, mean_seconds=mean, max_seconds=high)
