/* Chatbot widget: one script tag and a config object embed a chat on any page (see web/README.md).
 *
 *   <script>window.ChatbotWidgetConfig = { agentId: "support", title: "Help" };</script>
 *   <script src="https://<host>/widget/chatbot-widget.js" async></script>
 *
 * Speaks the chat protocol of docs/chat.md: EventSource GET when there are no attachments, fetch-streamed POST
 * when there are (or when `streaming: "fetch"`), and a non-streaming POST when streaming is unavailable.
 * Model output is escaped before a small whitelist of Markdown is applied, so it can never inject HTML.
 */
(function () {
  "use strict";

  const SCRIPT = document.currentScript;
  const BASE = SCRIPT && SCRIPT.src ? new URL(".", SCRIPT.src).href : new URL(".", location.href).href;

  const DEFAULTS = {
    id: "default", // names the widget's stored conversation; give each widget on a page its own
    apiEndpoint: new URL("../chat", BASE).href,
    agentId: "",
    apiType: "", // "" = the server's default
    mode: "floating", // or "inline" (rendered into `container`)
    container: null, // element or selector, for mode "inline"
    position: "bottom-right", // or "bottom-left"
    title: "Chat",
    greeting: "Hi! How can I help?",
    placeholder: "Type a message…",
    theme: {}, // primary, background, text, userBubble, assistantBubble, font
    streaming: "auto", // "auto" (EventSource, fetch for attachments), "fetch", "none"
    enableFileUpload: false,
    maxFileSize: 10 * 1024 * 1024,
    allowedFileTypes: ["txt", "pdf", "doc", "docx", "jpg", "jpeg", "png"],
    open: false,
    stylesheet: new URL("chatbot-widget.css", BASE).href,
  };
  const THEME_VARS = {
    primary: "--cbw-primary",
    background: "--cbw-bg",
    text: "--cbw-text",
    userBubble: "--cbw-user-bg",
    assistantBubble: "--cbw-assistant-bg",
    font: "--cbw-font",
  };
  const GENERIC_ERROR = "Something went wrong. Please try again.";

  // --- safe Markdown: escape everything, then turn a few patterns into a few tags -------------------------

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function inline(escaped) {
    // Code spans first, so their contents are left alone.
    return escaped
      .split(/(`[^`\n]+`)/)
      .map((part, i) => {
        if (i % 2) return "<code>" + part.slice(1, -1) + "</code>";
        return part
          .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
          .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
          .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+|mailto:[^\s)]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
      })
      .join("");
  }

  function renderMarkdown(source) {
    const out = [];
    String(source)
      .split(/```/)
      .forEach((chunk, i) => {
        if (i % 2) {
          // Fenced code: drop the language word on the fence line.
          out.push("<pre><code>" + escapeHtml(chunk.replace(/^[\w+-]*\n/, "")) + "</code></pre>");
          return;
        }
        let list = null;
        escapeHtml(chunk)
          .split("\n")
          .forEach((line) => {
            const item = /^\s*(?:[-*]|(\d+)\.)\s+(.*)$/.exec(line);
            const kind = item ? (item[1] ? "ol" : "ul") : null;
            if (list && list !== kind) out.push("</" + list + ">");
            if (kind && list !== kind) out.push("<" + kind + ">");
            list = kind;
            if (item) out.push("<li>" + inline(item[2]) + "</li>");
            else if (line.trim()) out.push("<p>" + inline(line) + "</p>");
          });
        if (list) out.push("</" + list + ">");
      });
    return out.join("");
  }

  // --- protocol helpers ----------------------------------------------------------------------------------

  const memoryStore = {};
  const storage = {
    get(key) {
      try {
        return localStorage.getItem(key);
      } catch (e) {
        return memoryStore[key] || null; // storage blocked (sandboxed iframe, privacy mode)
      }
    },
    set(key, value) {
      try {
        if (value == null) localStorage.removeItem(key);
        else localStorage.setItem(key, value);
      } catch (e) {
        memoryStore[key] = value;
      }
    },
  };

  function errorMessage(body, status) {
    const error = body && body.error;
    if (error && typeof error === "object" && error.message) return error.message;
    if (typeof error === "string") return error;
    return status ? "Request failed (" + status + ")." : GENERIC_ERROR;
  }

  /** Read `text/event-stream` frames from a fetch Response; calls onFrame(eventName, dataString). */
  async function readEventStream(response, onFrame) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let event = "message";
      const data = [];
      block.split(/\r?\n/).forEach((line) => {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      });
      onFrame(event, data.join("\n"));
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      blocks.filter((b) => b.trim()).forEach(dispatch);
    }
    if (buffer.trim()) dispatch(buffer);
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve({ name: file.name, type: file.type || "application/octet-stream", size: file.size, data: String(reader.result).split(",", 2)[1] || "" });
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // Stroked SVG icons (emoji fonts are not everywhere).
  const ICONS = {
    chat: "M4 5h16v11H8l-4 4z",
    attach: "M16 7l-7.5 7.5a2 2 0 0 0 2.8 2.8L19 9.6a4 4 0 0 0-5.7-5.7L5.6 11.6a6 6 0 0 0 8.5 8.5L20 14.2",
  };
  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
    });
    children.forEach((c) => c != null && node.append(c));
    return node;
  }

  // --- the widget ----------------------------------------------------------------------------------------

  class ChatbotWidget {
    constructor(options) {
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.storageKey = "chatbot-widget:" + this.options.id + ":conversation";
      this.conversationId = storage.get(this.storageKey);
      this.files = [];
      this.busy = false;
      this.build();
      if (this.options.greeting) this.addBubble("assistant").innerHTML = renderMarkdown(this.options.greeting);
      this.setOpen(this.options.mode === "inline" || !!this.options.open);
    }

    build() {
      const o = this.options;
      this.host = el("div", { class: "chatbot-widget-host", "data-widget-id": o.id });
      Object.entries(o.theme || {}).forEach(([k, v]) => THEME_VARS[k] && this.host.style.setProperty(THEME_VARS[k], v));
      const root = this.host.attachShadow({ mode: "open" });
      root.append(el("link", { rel: "stylesheet", href: o.stylesheet }));
      const panelId = "cbw-panel-" + o.id;
      this.toggle = el("button", { class: "cbw-toggle", type: "button", "aria-controls": panelId, "aria-expanded": "false", "aria-label": "Open chat: " + o.title, onclick: () => this.setOpen(!this.isOpen) }, icon("chat"));
      this.messages = el("div", { class: "cbw-messages", role: "log", "aria-live": "off", "aria-label": "Conversation" });
      this.live = el("div", { class: "cbw-sr-only", "aria-live": "polite", "aria-atomic": "true" });
      this.input = el("textarea", { class: "cbw-input", rows: "1", placeholder: o.placeholder, "aria-label": "Message", maxlength: "4000" });
      this.input.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submit();
        }
      });
      this.sendButton = el("button", { class: "cbw-send", type: "submit", "aria-label": "Send" }, "➤");
      this.fileList = el("ul", { class: "cbw-files", "aria-label": "Attachments" });
      const form = el("form", { class: "cbw-form", onsubmit: (e) => (e.preventDefault(), this.submit()) });
      if (o.enableFileUpload) {
        this.fileInput = el("input", { type: "file", multiple: true, class: "cbw-file-input", accept: o.allowedFileTypes.map((t) => "." + t).join(","), tabindex: "-1", "aria-hidden": "true", onchange: () => this.addFiles(this.fileInput.files) });
        form.append(this.fileInput, el("button", { class: "cbw-attach", type: "button", "aria-label": "Attach a file", onclick: () => this.fileInput.click() }, icon("attach")));
      }
      form.append(this.input, this.sendButton);
      const header = el(
        "div",
        { class: "cbw-header" },
        el("span", { class: "cbw-title", id: panelId + "-title" }, o.title),
        el("button", { class: "cbw-new", type: "button", "aria-label": "New conversation", title: "New conversation", onclick: () => this.reset() }, "↺"),
        o.mode === "inline" ? null : el("button", { class: "cbw-close", type: "button", "aria-label": "Close chat", onclick: () => this.setOpen(false) }, "×")
      );
      this.panel = el("section", { class: "cbw-panel", id: panelId, role: "dialog", "aria-labelledby": panelId + "-title" }, header, this.messages, this.fileList, form, this.live);
      this.panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && o.mode !== "inline") {
          this.setOpen(false);
          this.toggle.focus();
        }
      });
      const frame = el("div", { class: "cbw-root cbw-" + o.mode + " cbw-" + o.position });
      frame.append(this.panel);
      if (o.mode !== "inline") frame.append(this.toggle);
      root.append(frame);
      const container = typeof o.container === "string" ? document.querySelector(o.container) : o.container;
      (o.mode === "inline" && container ? container : document.body).append(this.host);
    }

    get isOpen() {
      return this.panel.classList.contains("cbw-open");
    }

    setOpen(open) {
      this.panel.classList.toggle("cbw-open", open);
      this.toggle.setAttribute("aria-expanded", String(open));
      if (open && this.options.mode !== "inline") this.input.focus();
    }

    reset() {
      this.conversationId = null;
      storage.set(this.storageKey, null);
      this.messages.replaceChildren();
      if (this.options.greeting) this.addBubble("assistant").innerHTML = renderMarkdown(this.options.greeting);
    }

    // attachments

    addFiles(fileList) {
      const o = this.options;
      Array.from(fileList).forEach((file) => {
        const ext = (file.name.split(".").pop() || "").toLowerCase();
        if (!o.allowedFileTypes.includes(ext)) return this.showError("File type not allowed: " + file.name);
        if (file.size > o.maxFileSize) return this.showError("File too large: " + file.name);
        this.files.push(file);
      });
      this.fileInput.value = "";
      this.renderFiles();
    }

    renderFiles() {
      this.fileList.replaceChildren(
        ...this.files.map((file, i) =>
          el("li", { class: "cbw-file" }, file.name, el("button", { type: "button", "aria-label": "Remove " + file.name, onclick: () => (this.files.splice(i, 1), this.renderFiles()) }, "×"))
        )
      );
    }

    // messages

    addBubble(role, text) {
      const bubble = el("div", { class: "cbw-msg cbw-" + role });
      if (text != null) bubble.textContent = text;
      this.messages.append(bubble);
      this.messages.scrollTop = this.messages.scrollHeight;
      return bubble;
    }

    showError(message, retry) {
      const bubble = this.addBubble("error");
      bubble.setAttribute("role", "alert");
      bubble.append(el("span", {}, message));
      if (retry) bubble.append(el("button", { class: "cbw-retry", type: "button", onclick: () => (bubble.remove(), retry()) }, "Retry"));
      this.live.textContent = message;
    }

    async submit() {
      const text = this.input.value.trim();
      if (!text || this.busy) return;
      this.input.value = "";
      let files = [];
      try {
        files = await Promise.all(this.files.map(readFile));
      } catch (e) {
        return this.showError("Could not read the attachment.");
      }
      this.addBubble("user", text);
      if (files.length) this.addBubble("user", "Attached: " + files.map((f) => f.name).join(", ")).classList.add("cbw-attachment-note");
      this.files = [];
      this.renderFiles();
      this.send(text, files);
    }

    /** One turn: streams when it can, falls back to a plain POST; errors land in the chat with a retry. */
    async send(text, files) {
      this.busy = true;
      this.sendButton.disabled = true;
      const turn = { text: "", bubble: null, tools: {}, finished: null, typing: this.addBubble("typing") };
      turn.typing.setAttribute("aria-label", "Assistant is typing");
      turn.typing.append(el("span"), el("span"), el("span"));
      // A new conversation is named by the server (the `start` frame or the reply carries its id), which then
      // knows it has no history to read.
      const body = { message: text };
      if (this.conversationId) body.conversation_id = this.conversationId;
      if (this.options.agentId) body.agent_id = this.options.agentId;
      if (this.options.apiType) body.api_type = this.options.apiType;
      if (files.length) body.file_data = files;
      let outcome;
      try {
        const mode = this.options.streaming;
        if (mode === "none") outcome = await this.viaPost(body, turn);
        else if (mode === "fetch" || files.length || typeof EventSource === "undefined") outcome = await this.viaFetchStream(body, turn);
        else outcome = await this.viaEventSource(body, turn);
        if (outcome === "unavailable") outcome = await this.viaPost(body, turn);
      } catch (e) {
        outcome = { error: GENERIC_ERROR };
      }
      turn.typing.remove();
      if (outcome && outcome.error) this.showError(outcome.error, () => this.send(text, files));
      else if (turn.bubble) this.live.textContent = turn.text;
      this.busy = false;
      this.sendButton.disabled = false;
    }

    /** Applies one protocol frame to the turn; `turn.finished` becomes "done" or {error} at the end. */
    onFrame(event, data, turn) {
      let frame;
      try {
        frame = data ? JSON.parse(data) : {};
      } catch (e) {
        return; // not JSON: ignored, as the original widget did
      }
      if (event === "start" && frame.conversation_id) this.keepConversation(frame.conversation_id);
      if (event !== "message") return;
      if (frame.type === "chunk") this.appendText(turn, typeof frame.content === "string" ? frame.content : "");
      else if (frame.type === "tool_call") this.showTool(turn, frame);
      else if (frame.type === "error") turn.finished = { error: frame.message || GENERIC_ERROR };
      else if (frame.type === "done") turn.finished = "done";
    }

    keepConversation(id) {
      this.conversationId = id;
      storage.set(this.storageKey, id);
    }

    appendText(turn, text) {
      if (!turn.bubble) {
        turn.typing.remove();
        turn.bubble = this.addBubble("assistant");
      }
      turn.text += text;
      turn.bubble.innerHTML = renderMarkdown(turn.text); // escaped first: see renderMarkdown
      this.messages.scrollTop = this.messages.scrollHeight;
    }

    showTool(turn, frame) {
      const key = frame.call_id || frame.tool_name;
      let note = turn.tools[key];
      if (!note) {
        note = turn.tools[key] = this.addBubble("tool");
        this.messages.insertBefore(note, turn.bubble || turn.typing);
      }
      note.textContent = (frame.status === "completed" ? "✓ Used " : "⚙ Using ") + (frame.tool_name || "a tool");
    }

    viaEventSource(body, turn) {
      const params = new URLSearchParams(body);
      return new Promise((resolve) => {
        const source = new EventSource(this.options.apiEndpoint + "?" + params.toString());
        let received = false;
        const finish = (result) => (source.close(), resolve(result));
        const outcome = () => (turn.finished === "done" ? null : turn.finished);
        // `close` carries no data, so EventSource never dispatches it: a turn ends at `done` or `error`.
        ["start", "message"].forEach((name) =>
          source.addEventListener(name, (e) => {
            received = true;
            this.onFrame(name, e.data, turn);
            if (turn.finished) finish(outcome());
          })
        );
        // Before any frame: a refusal (4xx JSON) or no SSE on the way; asking again without streaming also
        // brings back the server's error message. After frames: the stream broke.
        source.onerror = () => {
          if (turn.finished) finish(outcome());
          else finish(received ? { error: "The connection was interrupted." } : "unavailable");
        };
      });
    }

    async viaFetchStream(body, turn) {
      let response;
      try {
        response = await fetch(this.options.apiEndpoint, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
        });
      } catch (e) {
        return "unavailable";
      }
      if (!response.ok) return { error: errorMessage(await response.json().catch(() => null), response.status) };
      const type = response.headers.get("content-type") || "";
      if (!response.body || !type.includes("text/event-stream")) return this.handleJson(await response.json(), turn);
      try {
        await readEventStream(response, (event, data) => this.onFrame(event, data, turn));
      } catch (e) {
        // the connection dropped mid-stream: reported below unless the turn had already ended
      }
      if (turn.finished === "done") return null;
      return turn.finished || { error: "The connection was interrupted." };
    }

    async viaPost(body, turn) {
      const response = await fetch(this.options.apiEndpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({}, body, { stream: false })),
      });
      const payload = await response.json().catch(() => null);
      if (!response.ok) return { error: errorMessage(payload, response.status) };
      return this.handleJson(payload, turn);
    }

    handleJson(payload, turn) {
      const reply = payload && (payload.response || payload.content);
      if (!reply) return { error: GENERIC_ERROR };
      if (payload.conversation_id) this.keepConversation(payload.conversation_id);
      this.appendText(turn, reply);
      return null;
    }
  }

  const widgets = [];
  function init(options) {
    const widget = new ChatbotWidget(options);
    widgets.push(widget);
    return widget;
  }

  window.ChatbotWidget = { init, widgets, renderMarkdown, escapeHtml };
  const configured = window.ChatbotWidgetConfig;
  if (configured) {
    const start = () => [].concat(configured).forEach(init);
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})();
