// The REST API (DESIGN.md, "HTTP contract") over the browser session, with Django's CSRF token.

export class ApiError extends Error {
  status: number;
  code: string;
  details: unknown[];
  constructor(status: number, message: string, code = "", details: unknown[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let csrfFallback = "";
export function setCsrfToken(token: string) {
  csrfFallback = token;
}

function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : csrfFallback;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(`/api/v1/${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  let data: any = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = data?.error ?? {};
    throw new ApiError(
      response.status,
      err.message || data?.detail || `${method} ${path} failed (${response.status})`,
      err.code || "",
      err.details || [],
    );
  }
  return data as T;
}
