# ser-serve: `make serve` serves the default model, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The committed demo model (trained on synthetic speech); models/tiny is untrained.
MODEL_DIR ?= $(if $(wildcard models/demo/config.json),models/demo,models/tiny)
# Precision profile of the worker: float32 | bfloat16 | int8 | auto (empty: the model-config's, shipped float32).
# A reduced profile runs only if it agrees with float32 at worker start (README "Performance").
PRECISION ?=
PRECISION_ARG := $(if $(PRECISION),--precision $(PRECISION))
# EVAL_THREADS=1: evaluate-demo and check-demo-tts with one torch thread, for a host busy with another run (a training
# run): torch's default of one thread per core then stalls (2 against 54 clips/s on 2 cores). Empty: torch's default.
EVAL_THREADS ?=
EVAL_THREADS_ARG := $(if $(EVAL_THREADS),--threads $(EVAL_THREADS))

.PHONY: setup serve serve-triton demo test test-tools failover test-unit test-integration screenshot-page lint-imports archive checkpoint bench bench-engines bench-sweep bench-timeline loadtest grpc-stubs soak data data-synth stage1-from-git train-demo evaluate-demo data-logo-test evaluate-demo-logo probe-demo check-demo-tts print-train-args clean

setup: $(VENV)/.installed

# Re-install whenever the pinned dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[serve,triton,train,bench,loadtest,test]'
	$(PY) -c "from ser_serve.clients.grpc import generate_stubs; generate_stubs()"
	touch $@

models/tiny: | $(VENV)/.installed
	$(PY) -m ser_serve.cli checkpoint --preset tiny --out $@

checkpoint: models/tiny

archive: setup
	$(PY) -m ser_serve.cli archive --model-dir $(MODEL_DIR) $(PRECISION_ARG)

serve: setup
	$(PY) -m ser_serve.cli serve --model-dir $(MODEL_DIR) $(PRECISION_ARG)

# The same checkpoint on Triton (bundled in the nvidia-pytriton wheel): HTTP 8000, gRPC 8001, metrics 8002
# on 127.0.0.1, the gateway with the page and the card's POST /predict on 127.0.0.1:8090.
serve-triton: setup
	$(PY) -m ser_serve.cli serve --engine triton --model-dir $(MODEL_DIR) $(PRECISION_ARG)

# TorchServe and the gateway with the page and the card's POST /predict on 127.0.0.1:8090.
demo: setup
	$(PY) -m ser_serve.cli serve --model-dir $(MODEL_DIR) --port 8090

test: setup test-tools
	$(PY) -m pytest

# System programs some tests drive for real (nginx); apt-installed when run as root.
test-tools:
	@bash scripts/ensure_test_tools.sh

test-unit: setup
	$(PY) -m pytest -m "not integration"

# The package layering (pyproject.toml [tool.importlinter]); also run by `make test`.
lint-imports: setup
	$(VENV)/bin/lint-imports

test-integration: setup
	$(PY) -m pytest -m integration

# The README's screenshot of the page (docs/gateway-page.png): the browser test, serving the demo model, writes it.
screenshot-page: setup test-tools
	SER_PAGE_SCREENSHOT=$(CURDIR)/docs/gateway-page.png $(PY) -m pytest tests/integration/test_page.py

# Locust against a local server (started and stopped here) or your own:
#   make loadtest LOADTEST_ARGS="--url http://host:8080 --grpc-target host:7070 --key-file key_file.json"
LOADTEST_ARGS ?= --shape steady --users 4 --seconds 30
loadtest: setup
	$(PY) -m ser_serve.cli loadtest $(LOADTEST_ARGS)

# Bounded steady load with worker memory sampled over time (build/soak/soak.{json,png}).
SOAK_ARGS ?= --seconds 300 --users 2
soak: setup
	$(PY) -m ser_serve.cli soak $(SOAK_ARGS)

# Two production-profile replicas behind nginx under locust; one is SIGKILLed mid-run
# (build/failover/failover.json: answered, retried, lost, throughput before/after).
FAILOVER_ARGS ?= --replicas 2 --users 4 --seconds 40 --kill-after 15
failover: setup test-tools
	$(PY) -m ser_tools.replicas $(FAILOVER_ARGS)

# The demo model's data (build/data/{train,validation,test}.parquet, CREMA-D-style, a `generator` column):
# the project's synthetic voice (1,200/25/50 clips per label for train/validation/test) and five text-to-speech
# engines from Debian packages, espeak-ng, flite, festival, festival's HTS voice (hts) and festival's Italian and
# Catalan voices reading English (accented) (300/20/40 clips per label each; installed by
# scripts/ensure_test_tools.sh --tts, with apt as root). About 20 minutes on 2 CPU cores.
DATA_ARGS ?= --per-label 1200 25 50 --tts-per-label 300 20 40 --generators synth espeak-ng flite festival hts accented
data: build/data/.made
build/data/.made: ser_train/synth.py ser_train/tts.py ser_train/dataset.py | $(VENV)/.installed
	@bash scripts/ensure_test_tools.sh --tts
	$(PY) -m ser_serve.cli synth --out build/data $(DATA_ARGS)
	touch $@

# The demo recipe, in two stages.
# Stage 1: the `small` preset from scratch on the synthetic voice alone (400/25/50 clips per label, 24 epochs;
# about 18 minutes on 2 free CPU cores). Every stage-2 run starts from it; it has heard no text-to-speech voice,
# so leave-one-generator-out folds over the TTS engines stay honest.
STAGE1 ?= build/demo-stage1
data-synth: build/data-synth/.made
build/data-synth/.made: ser_train/synth.py ser_train/dataset.py | $(VENV)/.installed
	$(PY) -m ser_serve.cli synth --out build/data-synth --per-label 400 25 50
	touch $@
$(STAGE1)/config.json: build/data-synth/.made
	$(PY) -m ser_serve.cli train --train build/data-synth/train.parquet --validation build/data-synth/validation.parquet \
		--preset small --out $(STAGE1) --epochs 24 --batch-size 16 --lr 1e-3 --warmup-steps 200 --no-calibrate
# Or take stage 1 from git instead of training it: the previous demo model (commit 6af9feb) is exactly that run.
# A stage 1 that is there is used as it is (taken from git, it has no data-synth to be newer than, so without this
# make would regenerate data-synth and retrain stage 1 over it).
STAGE1_READY = $(if $(wildcard $(STAGE1)/config.json),,$(STAGE1)/config.json)
stage1-from-git:
	mkdir -p $(STAGE1)
	for f in config.json preprocessor_config.json model.safetensors training_log.json; do \
		git show 6af9feb:models/demo/$$f > $(STAGE1)/$$f; done
# Stage 2: fine-tune on every generator with augmentation on the fly, 4 s crops, the clip-measure loss (the prosody
# probe's eleven measures read out of the pooled hidden state), label smoothing, one torch thread (these machines are
# shared: two threads stall each other) and bfloat16 autocast where the CPU has it natively; temperature calibration.
# On a CPU without AVX512-BF16 or AMX, bfloat16 is emulated and about 5x slower, so DEMO_BF16 is empty there and
# training runs in float32 (`args.bf16` in models/demo/training_log.json says which the committed model used).
# DEMO_BF16=--bf16 or DEMO_BF16= forces either.
DEMO_BF16 ?= $(if $(shell lscpu 2>/dev/null | grep -o 'avx512_bf16\|amx_tile'),--bf16,)
TRAIN_ARGS ?= --batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 \
	--calibration-copies 1 --threads 1 $(DEMO_BF16)
DEMO_EPOCHS ?= 6
# The stage-2 options, for a write-up's script that runs the recipe by hand (benchmarks/results/*/run.sh).
print-train-args:
	@echo $(TRAIN_ARGS)
LOGO_EPOCHS ?= 6

# Re-train the demo model: stage 1 (if missing), then stage 2 on all generators (about 1 h 50 min in float32 on
# an AVX2-only 2-core host beside another run; roughly half that with AVX512-BF16), then evaluate it.
# Its temperature: the one fitted on the leave-one-generator-out folds' held-out generators to minimise the largest of
# their NLLs (build/logo/summary.json: run `make evaluate-demo-logo` first), else the one fitted on validation.
# DEMO_SEEDS="0 1": train once per seed, two side by side (build/demo-seed-<s>), and make build/demo their soup
# (ser_train/soup.py: the weight average); LOGO_SEEDS="0 1" does the same per fold of evaluate-demo-logo.
DEMO_SEEDS ?=
LOGO_SEEDS ?=
DEMO_TRAIN_DATA = --train build/data/train.parquet --validation build/data/validation.parquet --init-from $(STAGE1)
train-demo: data $(STAGE1_READY)
ifeq ($(strip $(DEMO_SEEDS)),)
	$(PY) -m ser_serve.cli train $(DEMO_TRAIN_DATA) --out build/demo --epochs $(DEMO_EPOCHS) $(TRAIN_ARGS)
else
	$(PY) -m ser_train.soup --out build/demo --seeds $(DEMO_SEEDS) --jobs 2 \
		--train-args "$(DEMO_TRAIN_DATA) --epochs $(DEMO_EPOCHS) $(TRAIN_ARGS)"
endif
	@if [ -f build/logo/summary.json ]; then $(PY) -m ser_train.calibrate --model-dir build/demo --logo-summary build/logo/summary.json; \
	else echo "note: no build/logo/summary.json: build/demo keeps the temperature fitted on validation"; fi
	$(MAKE) evaluate-demo DEMO_DIR=build/demo DEMO_EVAL=build/demo/eval

# Evaluates a demo model: on the project's own held-out synthetic split (eval/synth) and on every generator's test clips
# (eval/all): accuracy, macro-F1, confusion matrix, ECE (15 bins) and reliability diagram.
DEMO_DIR ?= models/demo
DEMO_EVAL ?= build/demo-eval
evaluate-demo: data
	$(PY) -m ser_serve.cli evaluate --data build/data/test.parquet --generator synth --model-dir $(DEMO_DIR) \
		--out $(DEMO_EVAL)/synth $(PRECISION_ARG) $(EVAL_THREADS_ARG)
	$(PY) -m ser_serve.cli evaluate --data build/data/test.parquet --model-dir $(DEMO_DIR) --out $(DEMO_EVAL)/all \
		$(PRECISION_ARG) $(EVAL_THREADS_ARG)

# More held-out clips for the folds: 85 per label and generator from a second seed (the same test sentences, new
# speakers and prosody draws); with make data's 40, 1,000 clips per engine, where a 320-clip ECE is noise of about
# +-0.035 (benchmarks/results/demo-logo-1000-clips). About 10 minutes. The synthetic voice is listed with 0 clips so
# each engine keeps its place in the list, and with it its seed: these are that write-up's extra clips.
LOGO_TEST_ARGS ?= --seed 1 --per-label 0 0 0 --tts-per-label 0 0 85 --generators synth espeak-ng flite festival hts accented
data-logo-test: build/data-logo-test/.made
build/data-logo-test/.made: ser_train/synth.py ser_train/tts.py ser_train/dataset.py | $(VENV)/.installed
	@bash scripts/ensure_test_tools.sh --tts
	$(PY) -m ser_serve.cli synth --out build/data-logo-test $(LOGO_TEST_ARGS)
	touch $@

# Leave-one-generator-out: per held-out TTS engine, stage 2 on the other generators from stage 1, evaluated on the
# held-out engine's 1,000 test clips (make data's and data-logo-test's; build/logo/summary.md; 1-1.8 h per fold on 2
# cores, bfloat16 or float32 as for train-demo; a finished fold is kept, delete its folder to redo it, and a fold
# scored on other clips is scored again). LOGO_EXTRA_TEST= scores on make data's 320 alone.
LOGO_HOLDOUT ?= espeak-ng flite festival hts accented
LOGO_EXTRA_TEST ?= build/data-logo-test/test.parquet
evaluate-demo-logo: data $(STAGE1_READY) $(if $(LOGO_EXTRA_TEST),data-logo-test)
	$(PY) -m ser_train.logo --data build/data --holdout $(LOGO_HOLDOUT) --out build/logo --init-from $(STAGE1) \
		--train-args "--epochs $(LOGO_EPOCHS) $(TRAIN_ARGS)" $(if $(strip $(LOGO_SEEDS)),--seeds $(LOGO_SEEDS) --jobs 2) \
		$(if $(LOGO_EXTRA_TEST),--extra-test $(LOGO_EXTRA_TEST))

# An independent text-to-speech check: emotion prosody by textbook rules (not the training data's), other sentences,
# each engine; accuracy, ECE and plots per engine (build/tts-check/summary.md; about 3 minutes).
check-demo-tts: setup
	@bash scripts/ensure_test_tools.sh --tts
	$(PY) -m ser_train.tts_check --model-dir $(DEMO_DIR) --out build/tts-check $(EVAL_THREADS_ARG)

# How far prosody alone carries to an unheard engine: boosted trees on eleven hand-made prosodic measures,
# leave-one-generator-out as above (build/prosody-probe/summary.md; about 2 minutes): the yardstick for the folds.
probe-demo: data
	$(PY) -m ser_train.prosody_probe --data build/data --out build/prosody-probe

# gRPC stubs from the installed TorchServe's own inference.proto (also made on first use).
grpc-stubs: setup
	$(PY) -c "from ser_serve.clients.grpc import generate_stubs; print(generate_stubs())"

# Base-size model on CPU: model-only ceiling vs served stack vs naive baselines
# (a few minutes; writes benchmarks/results/bench.{md,json,png}).
bench: setup
	$(PY) -m ser_tools.bench

# The two engines side by side only (TorchServe and Triton, same clips, same model) and each engine's
# per-request overhead with the tiny model; a few minutes (benchmarks/results/engines/).
bench-engines: setup
	$(PY) -m ser_tools.bench --configurations ser,triton --out benchmarks/results/engines

# Long recordings: a synthetic two-speaker call (8 kHz stereo mu-law) as a timeline with the demo model;
# seconds of processing per hour of audio, peak memory, turns right, and a plot (benchmarks/results/timeline.*).
# TIMELINE_ARGS="--minutes 60 --busy": an hour with both channels talking all the time (timeline-busy.*), the worst case.
TIMELINE_ARGS ?= --minutes 10
bench-timeline: setup
	$(PY) -m ser_tools.timeline $(TIMELINE_ARGS)

# The same plus alternative worker/thread/batch settings, as used to tune model-config.yaml.
bench-sweep: setup
	$(PY) -m ser_tools.bench --sweep

# The deployment files (deploy/): hadolint, Kubernetes and CRD schemas, cross-file checks; offline, seconds.
.PHONY: test-deploy image image-gpu image-loadtest
test-deploy: setup
	$(PY) -m pytest tests/deploy

# Container images (need a container runtime; not used by `make test`). IMAGE=registry/ser-serve:tag
IMAGE ?= ser-serve:0.2.0
image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .
image-gpu:
	docker build -f deploy/Dockerfile.gpu -t $(IMAGE)-gpu .
image-loadtest:
	docker build -f deploy/Dockerfile --target loadtest -t $(subst ser-serve:,ser-serve-loadtest:,$(IMAGE)) .

clean:
	rm -rf .serve build model_store/*.mar .pytest_cache
