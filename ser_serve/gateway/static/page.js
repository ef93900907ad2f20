// Record with MediaRecorder (WebM/Opus in Chrome and Firefox) or pick a file,
// POST it to /predict as the multipart field "file", draw the scores. A
// recording too long for one clip goes to /timeline and is shown as segments.
"use strict";
const $ = (id) => document.getElementById(id);
let recorder = null;
let chunks = [];

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function render(answer) {
  $("dominant").textContent = answer.dominant.label;
  $("dominant-score").textContent = `(${answer.dominant.score.toFixed(2)})`;
  const bars = $("bars");
  bars.replaceChildren(...answer.results.map(({ label, score }) => {
    const item = document.createElement("li");
    item.dataset.label = label;
    item.innerHTML = `<span class="label"></span><span class="bar-track"><span class="bar"></span></span>` +
      `<span class="score"></span>`;
    item.querySelector(".label").textContent = label;
    item.querySelector(".bar").style.display = "block";
    item.querySelector(".bar").style.width = `${Math.round(score * 100)}%`;
    item.querySelector(".score").textContent = score.toFixed(3);
    return item;
  }));
  $("answer").hidden = false;
}

function renderTimeline(answer) {
  const rows = answer.segments.map((segment) => {
    const row = document.createElement("tr");
    for (const value of [segment.channel, segment.start.toFixed(1), segment.end.toFixed(1),
                         segment.dominant.label, segment.dominant.score.toFixed(2)]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    return row;
  });
  $("timeline").querySelector("tbody").replaceChildren(...rows);
  $("timeline-section").hidden = false;
}

async function post(path, blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const response = await fetch(path, { method: "POST", body: form });
  return { response, body: await response.json() };
}

async function classify(blob, name) {
  setStatus(`Classifying ${name} (${Math.round(blob.size / 1024)} KiB) ...`);
  try {
    let { response, body } = await post("/predict", blob, name);
    if (response.status === 413 && body.error && body.error.code === "audio_too_long") {
      setStatus(`${name} is long: making a timeline ...`);
      ({ response, body } = await post("/timeline", blob, name));
      if (response.ok) {
        renderTimeline(body);
        const channels = Object.values(body.summary.channels || {});
        setStatus(`Done: ${name}, ${body.duration.toFixed(0)} s, ${body.segments.length} segments.`);
        if (channels.length && channels[0].dominant) render({ dominant: channels[0].dominant, results: channels[0].results || [] });
        return;
      }
    }
    if (!response.ok) {
      setStatus(`${response.status}: ${body.error ? body.error.message : "the server refused it"}`, true);
      return;
    }
    render(body);
    setStatus(`Done: ${name}.`);
  } catch (exc) {
    setStatus(`The server did not answer: ${exc}`, true);
  }
}

$("record").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    recorder = new MediaRecorder(stream);
    chunks = [];
    recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      classify(new Blob(chunks, { type: recorder.mimeType || "audio/webm" }), "recording.webm");
    };
    recorder.start();
    $("record").classList.add("recording");
    $("record").disabled = true;
    $("stop").disabled = false;
    setStatus("Recording ... speak, then press Stop.");
  } catch (exc) {
    setStatus(`No microphone: ${exc}`, true);
  }
});

$("stop").addEventListener("click", () => {
  if (recorder && recorder.state === "recording") recorder.stop();
  $("record").classList.remove("recording");
  $("record").disabled = false;
  $("stop").disabled = true;
});

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) classify(file, file.name);
});
