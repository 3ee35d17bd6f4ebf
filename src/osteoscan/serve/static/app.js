"use strict";
// The osteoscan page: send each dropped or chosen file to POST /api/v1/predict?explain=true
// and show the image, the probability, the decision and a Grad-CAM layer that can be hidden;
// for a knee-ROI model also one line per knee and each knee's box drawn on the image.
// The access token (when the service has one) is sent in the Authorization header only and
// kept in sessionStorage: for this tab, never in a URL.

const TOKEN_KEY = "osteoscan-token";
const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", model: null };

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

// After a 401: forget a token that was refused, and ask for one.
function askForToken() {
  const refused = state.token !== "";
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("token-form").hidden = false;
  document.getElementById("token").focus();
  return refused
    ? "The access token was not accepted: enter the right one above, then upload again."
    : "This service needs an access token: enter it above, then upload again.";
}

async function loadModel() {
  const response = await fetch("/api/v1/model", { headers: headers() });
  if (response.status === 401) {
    setStatus(askForToken());
    return;
  }
  if (!response.ok) {
    setStatus("The model information could not be read (the server answered " +
      response.status + ").");
    return;
  }
  const model = await response.json();
  state.model = model;
  const threshold = model.operating_threshold === null ? "most probable class"
    : "threshold " + model.operating_threshold.toFixed(2);
  const roi = model.roi ? " · one crop per knee" : "";
  document.getElementById("model-name").textContent =
    model.model + " · version " + model.version + " · trained " + model.created.slice(0, 10) +
    " · " + threshold + roi;
}

function errorText(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  return "the server answered " + status;
}

function kneeLabel(name) {
  return name === "right" || name === "left" ? name + " knee" : name;
}

// One line per knee under the image-level result.
function showKnees(card, result) {
  const list = card.querySelector(".knees");
  for (const knee of result.knees) {
    const item = document.createElement("li");
    item.className = "knee";
    item.textContent = kneeLabel(knee.knee) + ": P(osteoporosis) = " +
      knee.probability.toFixed(3) + " · " + knee.prediction;
    item.classList.toggle("positive", knee.prediction === "osteoporosis");
    list.append(item);
  }
  if (result.summary_knee !== null) {
    card.querySelector(".basis").textContent = "The image-level result is the " +
      kneeLabel(result.summary_knee) + "'s, the more abnormal of " + result.knees.length +
      " knee(s) found.";
  }
}

// Each knee's crop as a square on the image (the boxes are in source pixels).
function drawBoxes(card, result) {
  const svg = card.querySelector(".boxes");
  svg.setAttribute("viewBox", "0 0 " + result.width + " " + result.height);
  const fontSize = Math.max(result.width, result.height) / 22;
  for (const knee of result.knees) {
    const summary = knee.knee === result.summary_knee;
    const rect = document.createElementNS(svg.namespaceURI, "rect");
    rect.setAttribute("x", knee.box.left);
    rect.setAttribute("y", knee.box.top);
    rect.setAttribute("width", knee.box.side);
    rect.setAttribute("height", knee.box.side);
    rect.classList.toggle("summary", summary);
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", Math.max(0, knee.box.left) + fontSize * 0.3);
    label.setAttribute("y", Math.max(0, knee.box.top) + fontSize * 1.1);
    label.setAttribute("font-size", fontSize);
    label.classList.toggle("summary", summary);
    label.textContent = knee.knee + " " + knee.probability.toFixed(3);
    svg.append(rect, label);
  }
}

async function predictFile(file) {
  const card = document.getElementById("card").content.firstElementChild.cloneNode(true);
  card.querySelector(".filename").textContent = file.name;
  card.querySelector(".probability").textContent = "analysing…";
  const figure = card.querySelector(".figure");
  card.querySelector(".show-heat").addEventListener("change", (event) => {
    figure.classList.toggle("no-heat", !event.target.checked);
  });
  document.getElementById("results").prepend(card);
  const form = new FormData();
  form.append("files", file, file.name);
  const explain = !state.model || state.model.explain;
  let response, body;
  try {
    response = await fetch("/api/v1/predict?explain=" + explain, {
      method: "POST", body: form, headers: headers(),
    });
    body = await response.json().catch(() => null);
  } catch (err) {
    card.querySelector(".probability").textContent = "";
    card.querySelector(".error").textContent = "no answer from the server (" + err + ")";
    return;
  }
  if (!response.ok) {
    card.querySelector(".probability").textContent = "";
    card.querySelector(".error").textContent =
      response.status === 401 ? askForToken() : errorText(body, response.status);
    card.classList.add("failed");
    figure.hidden = true;
    card.querySelector(".toggle").hidden = true;
    return;
  }
  const result = body.results[0];
  card.classList.add("done");
  card.querySelector(".probability").textContent =
    "P(osteoporosis) = " + result.probability.toFixed(3);
  const decision = card.querySelector(".decision");
  const at = result.threshold === null ? "" : " (threshold " + result.threshold.toFixed(2) + ")";
  decision.textContent = "Screening result: " + result.prediction + at;
  decision.classList.toggle("positive", result.prediction === "osteoporosis");
  showKnees(card, result);
  drawBoxes(card, result);
  const xray = card.querySelector(".xray");
  const heat = card.querySelector(".heat");
  if (result.image_png) {
    xray.src = "data:image/png;base64," + result.image_png;
  } else {
    xray.src = URL.createObjectURL(file);
  }
  if (result.heatmap_png) {
    heat.src = "data:image/png;base64," + result.heatmap_png;
  } else {
    heat.remove();
    card.querySelector(".toggle").hidden = true;
  }
}

async function handleFiles(fileList) {
  const list = Array.from(fileList);
  setStatus("Analysing " + list.length + " file(s)…");
  for (const file of list) await predictFile(file);
  setStatus("Done: " + list.length + " file(s).");
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    handleFiles(event.dataTransfer.files);
  });
  document.getElementById("choose").addEventListener("change", (event) => {
    handleFiles(event.target.files);
    event.target.value = "";
  });
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    state.token = input.value.trim();
    input.value = "";
    sessionStorage.setItem(TOKEN_KEY, state.token);
    document.getElementById("token-form").hidden = true;
    setStatus("");
    loadModel();
  });
  loadModel();
});
