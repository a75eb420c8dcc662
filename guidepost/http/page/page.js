// Guidepost's phone page: take a photo, hear the warning at once, then the description. No build step, no CDN.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "guidepost.apiKey";
  const VOICE_LANG = { en: "en-US", ko: "ko-KR" };
  const DEFAULT_MAX_SIDE = 768; // until /info says the model's size
  const REPEAT_AFTER_MS = 10000; // keep watching: the same hazard and direction is not spoken again before this
  const MAX_BUSY_RETRIES = 5;
  const WORDS = {
    busy: "The server is busy, trying again.",
    stillBusy: "The server is still busy. Please try again in a moment.",
    starting: "The server is still starting, trying again.",
    offline: "Cannot reach the server. Check your connection.",
    badPhoto: "That photo could not be read. Please take another one.",
    tooLarge: "The photo is too large. Please take a smaller one.",
    noKey: "This server needs an API key.",
    wrongKey: "The API key was not accepted.",
    broken: "Something went wrong on the server. Please try again.",
    cutOff: "The answer was cut off. Please try again.",
    sending: "Sending the photo…",
    listening: "Listening for the answer…",
    done: "Done. Take another photo any time.",
    noCamera: "The camera is not available here. Keep watching needs the page opened over https (or on this device).",
    watching: "Watching. New warnings will be spoken.",
    stopped: "Stopped watching.",
    clear: "Nothing dangerous ahead.",
  };

  const state = { info: null, current: null, watch: null, recent: new Map() };

  // ---- speech and the live region ----------------------------------------------------------------------------

  function utterance(text, lang) {
    const spoken = new SpeechSynthesisUtterance(text);
    spoken.lang = VOICE_LANG[lang] || lang;
    const voices = window.speechSynthesis.getVoices();
    const voice = voices.find((v) => v.lang === spoken.lang) || voices.find((v) => v.lang.startsWith(lang));
    if (voice) spoken.voice = voice;
    return spoken;
  }

  function speakNow(text, lang) {
    // A warning never waits behind an older answer.
    if (!("speechSynthesis" in window)) return;
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(utterance(text, lang));
  }

  function speakNext(text, lang) {
    if ("speechSynthesis" in window) window.speechSynthesis.speak(utterance(text, lang));
  }

  function show(text, kind) {
    const line = document.createElement("p");
    line.textContent = text;
    if (kind) line.className = kind;
    $("answer").append(line);
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function fail(text, lang) {
    show(text, "error");
    setStatus(text);
    speakNext(text, lang);
  }

  // ---- requests: API key, 503 retries ---------------------------------------------------------------------------

  function askForKey() {
    const dialog = $("key-dialog");
    $("key").value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        const key = dialog.returnValue === "save" ? $("key").value.trim() : "";
        resolve(key || null);
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  class Refused extends Error {}

  // fetch with the stored key. Interactive calls ask for a key on a 401 (once per call) and wait and retry a 503
  // as Retry-After says, telling the user through onBusy(words, first).
  async function call(path, init, { interactive = false, onBusy = () => {}, signal } = {}) {
    let asked = false;
    for (let busy = 0; ; busy++) {
      const headers = new Headers(init.headers || {});
      const key = localStorage.getItem(KEY_STORE);
      if (key) headers.set("X-API-Key", key);
      let response;
      try {
        response = await fetch(path, { ...init, headers, signal });
      } catch (error) {
        if (error.name === "AbortError") throw error;
        throw new Refused(WORDS.offline);
      }
      if (response.status === 401) {
        if (asked || !interactive) throw new Refused(key ? WORDS.wrongKey : WORDS.noKey);
        if (key) localStorage.removeItem(KEY_STORE);
        asked = true;
        const given = await askForKey();
        if (!given) throw new Refused(WORDS.noKey);
        localStorage.setItem(KEY_STORE, given);
        loadInfo(); // the key opens /info too
        continue;
      }
      if (response.status === 503 && interactive && busy < MAX_BUSY_RETRIES) {
        const body = await response.json().catch(() => ({}));
        const code = body.error && body.error.code;
        onBusy(code === "not_ready" ? WORDS.starting : WORDS.busy, busy === 0);
        const seconds = Math.min(30, Math.max(1, Number(response.headers.get("Retry-After")) || 1));
        await sleep(seconds * 1000);
        continue;
      }
      if (response.status === 503) throw new Refused(WORDS.stillBusy);
      return response;
    }
  }

  async function errorWords(response) {
    const body = await response.json().catch(() => ({}));
    const error = body.error || {};
    switch (error.code) {
      case "invalid_image": case "unsupported_image": case "empty_image": case "missing_image":
        return WORDS.badPhoto;
      case "payload_too_large": case "image_too_large":
        return WORDS.tooLarge;
      case "internal_error":
        return WORDS.broken;
      default:
        return error.message || WORDS.broken;
    }
  }

  async function loadInfo() {
    try {
      const response = await call("info", {});
      if (response.ok) state.info = await response.json();
    } catch (error) {
      // No key yet, or offline: the page still works with the default size.
    }
  }

  function maxSide() {
    return (state.info && state.info.limits && state.info.limits.image_max_side) || DEFAULT_MAX_SIDE;
  }

  // ---- photos ---------------------------------------------------------------------------------------------------

  function canvasBlob(canvas) {
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  }

  function drawShrunk(source, width, height) {
    const scale = Math.min(1, maxSide() / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  // A phone photo is several MB; the model sees image_max_side pixels. Shrinking it here makes the upload (and
  // so the warning) faster. A photo the browser cannot draw (HEIC on some phones) goes as it is.
  async function shrink(file) {
    try {
      const bitmap = await createImageBitmap(file);
      if (Math.max(bitmap.width, bitmap.height) <= maxSide()) return file;
      return (await canvasBlob(drawShrunk(bitmap, bitmap.width, bitmap.height))) || file;
    } catch (error) {
      return file;
    }
  }

  function form(image, extra) {
    const body = new FormData();
    body.append("image", image, image.name || "photo.jpg");
    for (const [name, value] of Object.entries(extra)) if (value) body.append(name, value);
    return body;
  }

  // ---- one photo, streamed answer ---------------------------------------------------------------------------------

  // Server-Sent Events from a fetch body: calls on(event, data) for each event, in order.
  async function readEvents(response, on) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue; // a keep-alive comment
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = text;
          else if (field === "data") data.push(text);
        }
        if (data.length) on(name, JSON.parse(data.join("\n")));
      }
    }
  }

  function answerReader(lang) {
    let warning = null;
    let sentences = 0;
    return {
      finished: false,
      hazard(data) {
        if (!data.warning) return;
        warning = data.warning;
        speakNow(warning, lang);
        show(warning, "warning");
      },
      sentence(data) {
        sentences += 1;
        speakNext(data.text, lang);
        show(data.text);
      },
      done(data) {
        // Without sentences (the detector's answer), say whatever the answer adds to the warning.
        if (!sentences) {
          const rest = warning && data.result.startsWith(warning) ? data.result.slice(warning.length).trim()
            : data.result;
          if (rest) {
            speakNext(rest, lang);
            show(rest);
          }
        }
        setStatus(WORDS.done);
        this.finished = true;
      },
      error(data) {
        fail((data.error && data.error.message) || WORDS.broken, lang);
        this.finished = true;
      },
    };
  }

  async function describe(file) {
    if (state.current) state.current.abort();
    const controller = (state.current = new AbortController());
    const lang = $("lang").value;
    if ("speechSynthesis" in window) window.speechSynthesis.cancel();
    $("answer").replaceChildren();
    setStatus(WORDS.sending);
    try {
      const image = await shrink(file);
      const body = form(image, { text: $("question").value.trim(), lang, stream: "true" });
      const response = await call("process", { method: "POST", body, headers: { Accept: "text/event-stream" } }, {
        interactive: true, signal: controller.signal,
        onBusy: (words, first) => { setStatus(words); if (first) speakNext(words, lang); },
      });
      if (!response.ok) return fail(await errorWords(response), lang);
      const reader = answerReader(lang);
      if ((response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        setStatus(WORDS.listening);
        await readEvents(response, (name, data) => {
          if (Object.hasOwn(reader, name) && typeof reader[name] === "function") reader[name](data);
        });
        if (!reader.finished) fail(WORDS.cutOff, lang); // the connection ended before `done`
      } else {
        // A server without streamed answers: the whole answer at once (a danger answer leads with the warning).
        const data = await response.json();
        speakNow(data.result, lang);
        show(data.result, data.danger ? "warning" : "");
        setStatus(WORDS.done);
      }
    } catch (error) {
      if (error.name !== "AbortError") fail(error instanceof Refused ? error.message : WORDS.offline, lang);
    } finally {
      if (state.current === controller) state.current = null;
    }
  }

  // ---- keep watching: a camera frame every N seconds, quick answers, only new warnings -------------------------------

  function isNewWarning(data, now) {
    if (!data.danger || !data.hazards.length) return false;
    const main = data.hazards[0];
    const key = `${main}|${(data.directions || {})[main] || ""}`;
    const last = state.recent.get(key);
    if (last !== undefined && now - last < REPEAT_AFTER_MS) return false;
    state.recent.set(key, now);
    return true;
  }

  async function watchOnce(video, lang) {
    const canvas = drawShrunk(video, video.videoWidth, video.videoHeight);
    const image = await canvasBlob(canvas);
    const response = await call("process", { method: "POST", body: form(image, { lang, mode: "quick" }) }, {
      interactive: true, onBusy: (words) => setStatus(words),
    });
    if (!response.ok) return fail(await errorWords(response), lang);
    const data = await response.json();
    if (isNewWarning(data, Date.now())) {
      speakNow(data.result, lang);
      show(data.result, "warning");
    }
    setStatus(data.danger ? WORDS.watching : WORDS.clear);
  }

  async function startWatching() {
    const button = $("watch");
    const video = $("camera");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return fail(WORDS.noCamera, $("lang").value);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      return fail(WORDS.noCamera, $("lang").value);
    }
    video.srcObject = stream;
    await video.play();
    button.setAttribute("aria-pressed", "true");
    setStatus(WORDS.watching);
    const watch = (state.watch = { stream, stopped: false });
    while (!watch.stopped) {
      const started = Date.now();
      try {
        await watchOnce(video, $("lang").value); // one frame at a time: never a pile of requests
      } catch (error) {
        setStatus(error instanceof Refused ? error.message : WORDS.offline);
      }
      const every = Math.min(60, Math.max(1, Number($("every").value) || 3)) * 1000;
      await sleep(Math.max(0, every - (Date.now() - started)));
    }
  }

  function stopWatching() {
    const watch = state.watch;
    if (!watch) return;
    watch.stopped = true;
    watch.stream.getTracks().forEach((track) => track.stop());
    state.watch = null;
    $("watch").setAttribute("aria-pressed", "false");
    setStatus(WORDS.stopped);
  }

  // ---- wiring -------------------------------------------------------------------------------------------------------

  $("ask").addEventListener("submit", (event) => event.preventDefault());
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    if (file) describe(file);
    $("photo").value = ""; // the same photo taken again is a new change
  });
  $("watch").addEventListener("click", () => (state.watch ? stopWatching() : startWatching()));
  loadInfo();
})();
