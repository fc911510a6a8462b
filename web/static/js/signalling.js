// Signalling protocol v1 over /ws (docs/protocol.md).

/**
 * A signalling connection to one job's call.
 * Events: "joined", "participant.joined", "participant.left", "chat.message",
 * "annotation.*", "error", "closed" (detail: {code, reason}).
 */
export class Signalling extends EventTarget {
  /**
   * @param {string} token  a participant or staff token
   * @param {number} [job]  the job id (staff only)
   */
  constructor(token, job) {
    super();
    this.token = token;
    this.job = job;
    /** @type {WebSocket | null} */
    this.ws = null;
  }

  /** Open the socket and authenticate. */
  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const auth = { type: "auth", token: this.token };
      if (this.job !== undefined) auth.job = this.job;
      ws.send(JSON.stringify(auth));
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      this.dispatchEvent(new CustomEvent("closed", {
        detail: { code: event.code, reason: event.reason },
      }));
    });
  }

  /**
   * Send one message.
   * @param {object} message
   */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Leave the call and close. */
  leave() {
    this.send({ type: "leave" });
    if (this.ws) this.ws.close(1000);
  }
}
