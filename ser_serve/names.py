"""The names the engines serve the models under: one home for the engines, the clients, the gateway and the CLI.

No imports, so a client (locust loads them) or the gateway pays nothing for it.
"""

MODEL = "ser"  # single clips: one answer per upload
TIMELINE_MODEL = "ser-timeline"  # long recordings: an emotion timeline per upload
# How many recordings may wait for the timeline model on either engine; more are refused at once (503 /
# UNAVAILABLE). A waiting recording holds its upload (up to hours of audio) in memory and each takes minutes:
# TorchServe's frontend keeps them in its 2 GiB heap, Triton in its queue.
TIMELINE_QUEUE_SIZE = 4
