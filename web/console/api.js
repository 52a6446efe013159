// The admin API client: credentials in sessionStorage (gone when the tab closes), JSON envelopes, SSE streams.

const KEY = "chatbot-console";

export const session = {
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY)) || null;
    } catch {
      return null;
    }
  },
  save(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

/** What the signed-in principal may do; the server checks again on every call. */
export function can(permission) {
  const me = session.load()?.me;
  return !!me && me.permissions.includes(permission);
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error || {};
    super(error.message || `Request failed (${status})`);
    this.status = status;
    this.code = error.code;
    this.body = body;
  }
}

function url(path, query) {
  const base = (session.load()?.apiBase || location.origin).replace(/\/$/, "");
  const params = new URLSearchParams();
  Object.entries(query || {}).forEach(([k, v]) => v !== "" && v != null && params.set(k, v));
  const qs = params.toString();
  return base + path + (qs ? "?" + qs : "");
}

function headers(token, extra) {
  return { Authorization: "Bearer " + (token ?? session.load()?.token), ...extra };
}

/** Calls the admin API; resolves to the parsed body ({data, next_cursor?}); throws ApiError. */
export async function api(method, path, { query, body, token } = {}) {
  const response = await fetch(url(path, query), {
    method,
    headers: headers(token, body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (response.status === 401 && token === undefined) window.dispatchEvent(new Event("console:unauthorized"));
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body, query) => api("POST", path, { body, query });
export const patch = (path, body) => api("PATCH", path, { body });
export const del = (path, query) => api("DELETE", path, { query });

/** POSTs and reads a text/event-stream reply; onFrame(event, data) for each frame (data parsed as JSON). */
export async function stream(path, body, onFrame) {
  const response = await fetch(url(path), {
    method: "POST",
    headers: headers(undefined, { "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let event = "message";
    let data = "";
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
    }
    let parsed = null;
    try {
      parsed = data ? JSON.parse(data) : null;
    } catch {
      return;
    }
    onFrame(event, parsed);
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

/** POSTs JSON with upload progress (fetch cannot report it); onProgress(fraction). */
export function postWithProgress(path, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path));
    Object.entries(headers(undefined, { "Content-Type": "application/json" })).forEach(([k, v]) => xhr.setRequestHeader(k, v));
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let payload = null;
      try {
        payload = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: reported by status below
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(payload);
      else reject(new ApiError(xhr.status, payload));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "Network error" } }));
    xhr.send(JSON.stringify(body));
  });
}

/** Every page of a cursor-paginated list, up to `max` items. */
export async function getAll(path, query = {}, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path, { ...query, cursor, limit: query.limit || 100 });
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
