// The staff member's session: signing in, and every API call made as them. The token
// lives in this object's memory only: reloading the page signs out.
import { api, ApiError } from "./api.js";

// The answer of POST /api/session (docs/api.md).
/**
 * @typedef {{id: number, username: string, role: string, name?: string}} User
 * @typedef {{email: string | null, sms: string | null}} Sending how links are sent
 * @typedef {{token: string, expires_at: number, user: User, sending: Sending}} Session
 * @typedef {{method?: string, body?: object}} RequestOptions
 * @typedef {(path: string, options?: RequestOptions) => Promise<any>} Request an API call
 *   as the user signed in (the views of the console are given this, never the token)
 */

export class StaffSession {
  /**
   * @param {{expired: (message: string) => void}} options what to do when the server says
   *   the session is over (a 401 while signed in)
   */
  constructor({ expired }) {
    this.expired = expired;
    /** @type {Session | null} */
    this.current = null;
    /** @type {Request} */
    this.request = (path, options) => this.#send(path, options);
  }

  /** @param {string} username @param {string} password @returns {Promise<Session>} */
  async signIn(username, password) {
    /** @type {Session} */
    const session = await api("/api/session", { method: "POST", body: { username, password } });
    this.current = session;
    return session;
  }

  /** Forget the session (first, when signing out: nothing more is asked as this user). */
  end() {
    this.current = null;
  }

  /** The user signed in, or null. */
  get user() {
    return this.current ? this.current.user : null;
  }

  /**
   * Call the API as the user signed in; signs out when the server says the session is over.
   * @param {string} path @param {RequestOptions} [options]
   */
  async #send(path, options = {}) {
    try {
      return await api(path, { ...options, token: this.current ? this.current.token : undefined });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && this.current) {
        this.expired("You have been signed out.");
      }
      throw error;
    }
  }
}
