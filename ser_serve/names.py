"""The names the engines serve the models under: one home for the engines, the clients, the gateway and the CLI.

No imports, so a client (locust loads them) or the gateway pays nothing for it.
"""

MODEL = "ser"  # single clips: one answer per upload
TIMELINE_MODEL = "ser-timeline"  # long recordings: an emotion timeline per upload
