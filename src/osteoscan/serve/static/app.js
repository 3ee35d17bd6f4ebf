"use strict";
// The osteoscan page: send each dropped or chosen file to POST /api/v1/predict?explain=true
// and show the image, the probability, the decision and a Grad-CAM layer that can be hidden.

const state = { token: sessionStorage.getItem("osteoscan-token") || "", model: null };

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

async function loadModel() {
  const response = await fetch("/api/v1/model", { headers: headers() });
  if (response.status === 401) {
    document.getElementById("token-form").hidden = false;
    setStatus("This service needs an access token.");
    return;
  }
  const model = await response.json();
  state.model = model;
  const threshold = model.operating_threshold === null ? "most probable class"
    : "threshold " + model.operating_threshold.toFixed(2);
  document.getElementById("model-name").textContent =
    model.model + " · version " + model.version + " · trained " + model.created.slice(0, 10) +
    " · " + threshold;
}

function errorText(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  return "the server answered " + status;
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
    card.querySelector(".error").textContent = errorText(body, response.status);
    figure.hidden = true;
    card.querySelector(".toggle").hidden = true;
    if (response.status === 401) document.getElementById("token-form").hidden = false;
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
    state.token = document.getElementById("token").value.trim();
    sessionStorage.setItem("osteoscan-token", state.token);
    document.getElementById("token-form").hidden = true;
    setStatus("");
    loadModel();
  });
  loadModel();
});
