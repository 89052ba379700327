// The REST side: accounts and tokens (/auth/*) and tasks (/tasks), design section 5a.
//
// The session (access token, its expiry, the refresh token) is kept in localStorage so a
// reload stays signed in. Refresh tokens rotate on every use, so refreshing is single-flight
// within the page and, where the browser has Web Locks, across the tabs of the same origin:
// a tab that waited for the lock first looks whether another tab already refreshed.

export interface Session {
  userId: string;
  username: string;
  accessToken: string;
  /** When the access token expires, in this browser's clock (ms since the epoch). */
  accessExpiresAt: number;
  /** The access token's lifetime when issued (ms). */
  accessTtl: number;
  refreshToken: string;
}

export type TaskStatus = 'todo' | 'in_progress' | 'done';

export interface Task {
  id: string;
  title: string;
  description: string;
  status: TaskStatus;
  assignee: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface UserSummary {
  id: string;
  username: string;
}

/** A REST error: HTTP status plus the body's `{"error":{"code","message","details"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const STORAGE_KEY = 'herald.session';
/** Refresh this long before the access token expires (at most a quarter of its lifetime). */
const REFRESH_MARGIN_MS = 60_000;

function refreshMargin(session: Session): number {
  return Math.min(REFRESH_MARGIN_MS, (session.accessTtl || 0) / 4);
}

interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token: string;
}

async function request<T>(method: string, path: string, body?: unknown, token?: string, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = { method, headers: { Accept: 'application/json', ...headers } };
  if (token) (init.headers as Record<string, string>).Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: handled below
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? 'http_error',
      error?.message ?? `The server answered ${response.status}.`,
      error?.details ?? {},
    );
  }
  return json as T;
}

/** The claims the client reads from its own access token (for display only). */
function readClaims(token: string): { sub: string; name: string } {
  const payload = token.split('.')[1] ?? '';
  const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
  const bytes = Uint8Array.from(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '=')), (c) => c.charCodeAt(0));
  const claims = JSON.parse(new TextDecoder().decode(bytes)) as { sub?: string; name?: string };
  return { sub: claims.sub ?? '', name: claims.name ?? '' };
}

function sessionFrom(tokens: TokenResponse, previous?: Session): Session {
  const claims = readClaims(tokens.access_token);
  return {
    userId: claims.sub || previous?.userId || '',
    username: claims.name || previous?.username || '',
    accessToken: tokens.access_token,
    accessExpiresAt: Date.now() + tokens.expires_in * 1000,
    accessTtl: tokens.expires_in * 1000,
    refreshToken: tokens.refresh_token,
  };
}

function loadStored(): Session | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    return session.accessToken && session.refreshToken && session.userId ? session : null;
  } catch {
    return null;
  }
}

function store(session: Session | null) {
  try {
    if (session) localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage unavailable (private mode): the session lives in memory only
  }
}

/** Signed-in state, token refresh and the authenticated REST calls. */
export class Auth {
  private session: Session | null = loadStored();
  private refreshing: Promise<Session> | null = null;
  /** Called once when the session ends (sign-out, refresh refused). */
  onSignedOut: () => void = () => {};

  get current(): Session | null {
    return this.session;
  }

  async register(username: string, password: string): Promise<void> {
    await request('POST', '/auth/register', { username, password });
  }

  async signIn(username: string, password: string): Promise<Session> {
    const tokens = await request<TokenResponse>('POST', '/auth/token', { username, password });
    this.session = sessionFrom(tokens);
    store(this.session);
    return this.session;
  }

  async signOut(): Promise<void> {
    const session = this.session;
    this.end();
    if (session) {
      await request('POST', '/auth/logout', { refresh_token: session.refreshToken }, session.accessToken).catch(() => {});
    }
  }

  private end() {
    const had = this.session !== null;
    this.session = null;
    store(null);
    if (had) this.onSignedOut();
  }

  /**
   * A valid access token: the current one, or a refreshed one when it expires within a
   * minute (or `force`). Rejects when the session is over (and signs out).
   */
  async accessToken(force = false): Promise<string> {
    const session = this.session;
    if (!session) throw new ApiError(401, 'unauthorized', 'Signed out.');
    if (!force && session.accessExpiresAt - Date.now() > refreshMargin(session)) return session.accessToken;
    return (await this.refresh(session.accessToken)).accessToken;
  }

  private refresh(staleToken: string): Promise<Session> {
    if (!this.refreshing) {
      this.refreshing = this.withLock(() => this.doRefresh(staleToken)).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const locks = (navigator as Navigator & { locks?: LockManager }).locks;
    if (!locks) return fn();
    return locks.request('herald.refresh', fn) as Promise<T>;
  }

  private async doRefresh(staleToken: string): Promise<Session> {
    // Another tab may have refreshed while this one waited for the lock.
    const stored = loadStored();
    if (stored && stored.userId === this.session?.userId && stored.accessToken !== staleToken && stored.accessExpiresAt - Date.now() > refreshMargin(stored)) {
      this.session = stored;
      return stored;
    }
    const current = stored && stored.userId === this.session?.userId ? stored : this.session;
    if (!current) throw new ApiError(401, 'unauthorized', 'Signed out.');
    try {
      const tokens = await request<TokenResponse>('POST', '/auth/refresh', { refresh_token: current.refreshToken });
      this.session = sessionFrom(tokens, current);
      store(this.session);
      return this.session;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 400 || error.status === 401 || error.status === 403)) {
        this.end();
      }
      throw error;
    }
  }

  /** An authenticated JSON call; a 401 gets one retry with a refreshed token. */
  async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const token = await this.accessToken();
    try {
      return await request<T>(method, path, body, token, headers);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        return request<T>(method, path, body, await this.accessToken(true), headers);
      }
      throw error;
    }
  }

  // --- users and tasks ---------------------------------------------------------------

  async searchUsers(prefix: string, limit = 20): Promise<UserSummary[]> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (prefix) query.set('prefix', prefix);
    return (await this.call<{ items: UserSummary[] }>('GET', `/auth/users?${query}`)).items;
  }

  /** Every task, newest first (follows the cursor up to `max`). */
  async listTasks(max = 500): Promise<Task[]> {
    const tasks: Task[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ limit: '100' });
      if (cursor) query.set('cursor', cursor);
      const page: { items: Task[]; next_cursor: string | null } = await this.call('GET', `/tasks?${query}`);
      tasks.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && tasks.length < max);
    return tasks;
  }

  createTask(task: { title: string; description?: string; assignee?: string | null }): Promise<Task> {
    return this.call<Task>('POST', '/tasks', task);
  }

  updateTask(id: string, patch: Partial<Pick<Task, 'title' | 'description' | 'status' | 'assignee'>>): Promise<Task> {
    return this.call<Task>('PATCH', `/tasks/${encodeURIComponent(id)}`, patch);
  }

  deleteTask(id: string): Promise<void> {
    return this.call<void>('DELETE', `/tasks/${encodeURIComponent(id)}`);
  }
}
