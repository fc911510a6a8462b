// What this client says in the call, kept across reconnections: nothing typed is
// silently lost. Each chat message carries a client_id, and is kept until it comes
// back from the server; after a reconnection the ones that did not are sent again (the
// server stores a message once per client_id), one typed while the socket is down
// waits for it ("chat.pending"), and those still waiting when the call ends are said
// not sent ("chat.unsent"). Drawings made while the socket is not in the call (shown
// here at once) wait for it too, and go in order once it is, after the call's own
// shapes are shown again. Each chat message the server sends is shown once, however
// often it comes (joined's chat repeats some after a reconnection).

/** Drawings kept while the socket is down, at most: the server keeps 200 shapes on a
 * picture (the oldest go first), so more would be dropped there anyway. */
const MAX_DRAWINGS_WAITING = 200;

/** @typedef {{type: string, target: number} & Record<string, unknown>} Drawing */

/**
 * A fresh id for a message, by which a resend is known (docs/protocol.md, chat.message).
 * @returns {string}
 */
function clientId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  /**
   * @param {object} call
   * @param {() => boolean} call.ready whether the socket is in the call
   * @param {(message: object) => void} call.send a message on the socket
   * @param {(type: string, detail: unknown) => void} call.emit an event of the Call
   */
  constructor({ ready, send, emit }) {
    this.ready = ready;
    this.send = send;
    this.emit = emit;
    /** @type {Set<number>} the chat messages shown, by id */
    this.seen = new Set();
    /** The newest chat message's id: a socket opened again asks for those after it. */
    this.lastChatId = 0;
    /** @type {Map<string, string>} chat sent from here and not back yet: client_id, text */
    this.unconfirmed = new Map();
    /** @type {Drawing[]} annotation messages made while the socket was not in the
     * call, oldest first */
    this.drawings = [];
  }

  /**
   * A chat.message from the server (or one of joined's chat): shown once, and the
   * one typed here with its client_id is no longer waiting.
   * @param {import("./signalling.js").ChatMessage} message
   */
  heard(message) {
    const { id } = message.message;
    const mine = message.client_id !== undefined && this.unconfirmed.delete(message.client_id);
    if (this.seen.has(id) && !mine) return;
    this.seen.add(id);
    this.lastChatId = Math.max(this.lastChatId, id);
    this.emit("chat.message", message);
  }

  /**
   * Say something in the chat: sent now if the socket is in the call, else when it is
   * again; kept until it comes back from the server.
   * @param {string} text
   */
  say(text) {
    const id = clientId();
    this.unconfirmed.set(id, text);
    this.emit("chat.pending", { client_id: id, text });
    if (this.ready()) this.send({ type: "chat.message", text, client_id: id });
  }

  /**
   * Send an annotation message: now if the socket is in the call, else once it is
   * again (a pointer's position only now: it means nothing later).
   * @param {Drawing} message
   */
  draw(message) {
    if (this.ready()) return this.send(message);
    if (message.type === "annotation.pointer") return;
    if (this.drawings.length < MAX_DRAWINGS_WAITING) this.drawings.push(message);
  }

  /**
   * In the call again: the chat said while away, each message once; then what was
   * typed here that did not come back, again with its client_id (the server stores it
   * once); then what was drawn while away, sent now, and shown again over the call's
   * shapes (the "joined" listeners just replaced them with the server's).
   * @param {import("./signalling.js").ChatLine[]} chat joined's chat
   * @param {number} me this client's participant id
   */
  joined(chat, me) {
    // (`replayed`: said before this page joined; not news, CallView's notices.)
    for (const line of chat) this.heard({ type: "chat.message", message: line, replayed: true });
    for (const [id, text] of this.unconfirmed) {
      this.send({ type: "chat.message", text, client_id: id });
    }
    for (const drawing of this.drawings.splice(0)) {
      this.send(drawing);
      this.emit(drawing.type, { ...drawing, from: me });
    }
  }

  /**
   * The call ended: the chat not back yet is said not sent, unless it went all the
   * same. @param {boolean} delivered
   */
  ended(delivered) {
    if (!delivered) {
      for (const id of this.unconfirmed.keys()) this.emit("chat.unsent", { client_id: id });
    }
    this.unconfirmed.clear();
  }
}
