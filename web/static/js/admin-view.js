// What the admin views share: the request and status line they are given, their
// regions, running an action, and one count of what they were asked to show, so that
// an answer for a view left (or an older page of it) is dropped, never shown.
import { $ } from "./dom.js";

/** Counts what the admin views were asked to show, and the sign-outs. */
export class Generation {
  constructor() {
    this.count = 0;
  }

  /** Something new is shown: answers asked for before are dropped. */
  next() {
    return ++this.count;
  }
}

/**
 * @typedef {{request: import("./console-session.js").Request,
 *   setStatus: (text: string) => void, generation: Generation}} AdminContext what each
 *   admin view is given
 */

export class AdminView {
  /** @param {AdminContext} context */
  constructor({ request, setStatus, generation }) {
    this.request = request;
    this.setStatus = setStatus;
    this.generation = generation;
  }

  /** @param {string} name */
  region(name) {
    return $(`[data-region="${name}"]`);
  }

  /** Runs an action, saying what went wrong if it fails. @param {() => Promise<void>} work */
  async attempt(work) {
    try {
      await work();
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
  }

  /** Fetch for the current view; null if the view changed meanwhile. @param {string} path */
  async fetch(path) {
    const mine = this.generation.count;
    const answer = await this.request(path);
    return mine === this.generation.count ? answer : null;
  }
}
