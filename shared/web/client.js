// What every screen's scripts share (served by each service at /app/common/): DOM helpers, and calls of the
// service's API with the bearer token, whose refusals become an ApiError with a message a person can act on.
// The token itself is each screen's (where it comes from differs): it is passed in.

export function $(id) {
  return document.getElementById(id);
}

export function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** FastAPI's ``detail``: a sentence, or the validation errors as "where: what" lines. */
export function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => [(item.loc || []).join("."), item.msg].filter(Boolean).join(": ")).join("\n");
  }
  return JSON.stringify(detail);
}

/** ``fetch`` with the token; an answer other than 2xx is an ApiError that explains it. */
export async function send(path, options, token) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${token}` };
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(0, `The service cannot be reached (${error.message}).`);
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    let message = body && body.detail !== undefined ? describe(body.detail) : `HTTP ${response.status}`;
    if (response.status === 401) message = `The token was refused (${message}): paste a valid one above.`;
    throw new ApiError(response.status, message);
  }
  return response;
}

/** Download a file of the API: fetched with the token (a link cannot carry it), saved from a blob. */
export async function download(path, fallbackName, token) {
  const response = await send(path, {}, token);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  const link = element("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name: link.download, bytes: blob.size };
}
