// The HTTP API client. Tokens live only in page memory: callers pass them in.

/** An error the server answered with {"error": {"code", "message"}}. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Call the JSON API.
 * @param {string} path
 * @param {{method?: string, body?: object, token?: string}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = "GET", body, token } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "http_error",
      error.message || `The server answered ${response.status}.`);
  }
  return data;
}

/**
 * Fetch a binary resource (a snapshot image, an export) as a Blob.
 * @param {string} path
 * @param {string} token
 * @returns {Promise<Blob>}
 */
export async function apiBlob(path, token) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}` }, cache: "no-store", credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection.");
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "http_error",
      error.message || `The server answered ${response.status}.`);
  }
  return response.blob();
}

/**
 * Take the one-time token from the URL fragment and remove it from the address bar (the
 * rest of the address stays: the join page's ?lang=).
 * @returns {string}
 */
export function takeFragmentToken() {
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

/**
 * Show the call or page state in words.
 * @param {string} text
 */
export function setStatus(text) {
  const region = document.querySelector('[data-region="status"]');
  if (region) region.textContent = text;
}
