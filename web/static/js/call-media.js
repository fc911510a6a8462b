// The call's media connection, kept working: one MediaLink (media.js) after another.
// It starts once the socket is in the call; back in the call as the same participant
// it goes on if it still works; whenever it fails, stays disconnected or carries
// nothing for a while (call-watch.js), or the server refused its offer, a new one
// takes its place on the server (`restart`). The camera's tracks go on each new one,
// muted as they were.
import { MediaWatch } from "./call-watch.js";
import { t } from "./i18n.js";
import { MediaLink } from "./media.js";

/** After the server refused an offer, the next one waits this long (its offer rate). */
const OFFER_RETRY_MS = 2000;

/** @typedef {import("./signalling.js").Signalling} Signalling */
/** @typedef {import("./signalling.js").Joined} Joined */

export class MediaConnection {
  /**
   * @param {object} call
   * @param {MediaStream} call.stream this client's camera and microphone
   * @param {number} call.cameras how many cameras the device has
   * @param {import("./call-participants.js").Participants} call.others who gets
   *   the tracks that come
   * @param {() => Signalling | null} call.signalling the socket now
   * @param {() => Joined | null} call.joined the last joined message
   * @param {() => boolean} call.ready whether the socket is in the call
   * @param {() => boolean} call.over whether the call is over
   * @param {(type: string, detail: unknown) => void} call.emit an event of the Call:
   *   "media" (the connection's state), "localtrack", "camera.state"
   * @param {(text: string) => void} call.reconnecting the call is coming back, in words
   * @param {() => void} call.connected the connection works (again)
   */
  constructor({ stream, cameras, others, signalling, joined, ready, over, emit, reconnecting,
    connected }) {
    this.stream = stream;
    this.cameras = cameras;
    this.others = others;
    this.signalling = signalling;
    this.joined = joined;
    this.ready = ready;
    this.over = over;
    this.emit = emit;
    this.reconnecting = reconnecting;
    this.connected = connected;
    /** @type {MediaLink | null} */
    this.link = null;
    /** @type {MediaWatch | null} the watch of the link */
    this.watch = null;
  }

  /**
   * In the call on a new socket: the link goes on if this is the same participant and
   * it still works, else a new one starts.
   * @param {boolean} resumed as the same participant
   */
  inCall(resumed) {
    const { link } = this;
    if (resumed && link && link.pc.connectionState === "connected" && !link.restarting) {
      link.rebind(/** @type {Signalling} */ (this.signalling()));  // it goes on
    } else {
      this.stop(true);
      this.start(resumed);
    }
  }

  /**
   * Look at the link (every WATCH_MS, call-watch.js): one that does not work is
   * replaced by a new one on the open socket (docs/protocol.md, Coming back). While the
   * socket is down a failed one is let go; inCall() starts anew.
   */
  async check() {
    const { link, watch } = this;
    if (!link || !watch || this.over()) return;
    const verdict = await watch.check(this.ready(), this.stream);
    if (link !== this.link || this.over()) return;
    if (verdict === "replace") this.restart();
    else if (verdict === "drop") this.stop(true);
  }

  /** A new link in place of the one that does not work, on the open socket. */
  restart() {
    if (this.over() || !this.ready()) return;
    this.stop(true);
    this.reconnecting(t("The video connection was lost. Reconnecting…"));
    this.start(true);
  }

  /** @param {boolean} [restart] it takes the place of this participant's media session */
  start(restart = false) {
    const signalling = this.signalling();
    const joined = this.joined();
    if (!signalling || !joined || this.over()) return;
    const link = new MediaLink(signalling, joined, this.cameras);
    this.link = link;
    this.watch = new MediaWatch(link);
    /** @template T @param {string} type @param {(detail: T) => void} handler */
    const on = (type, handler) => link.addEventListener(type, (event) => {
      handler(/** @type {CustomEvent<T>} */ (event).detail);
    });
    on("track", (/** @type {{track: MediaStreamTrack, participantId: number | null}} */ {
      track, participantId }) => {
      if (participantId !== null) this.others.track(track, participantId);
    });
    on("localtrack", (/** @type {MediaStreamTrack} */ track) => {
      for (const old of this.stream.getVideoTracks()) this.stream.removeTrack(old);
      this.stream.addTrack(track);
      this.emit("localtrack", track);
    });
    on("camera", (detail) => this.emit("camera.state", detail));
    on("refused", () => {
      // Not taken (too many offers, no media port free...): a new connection, soon.
      setTimeout(() => { if (link === this.link) this.restart(); }, OFFER_RETRY_MS);
    });
    on("state", (/** @type {RTCPeerConnectionState} */ state) => {
      if (link !== this.link) return;
      this.emit("media", state);
      if (state === "failed") this.check();  // replaced at once, not at the next look
      else if (state === "connected") this.connected();
    });
    link.publish(this.stream, { restart }).then(() => {
      // A microphone or camera muted before a reconnection stays muted, and says so.
      for (const kind of /** @type {("audio" | "video")[]} */ (["audio", "video"])) {
        const tracks = kind === "audio" ? this.stream.getAudioTracks() : this.stream.getVideoTracks();
        if (tracks.length && tracks.every((track) => !track.enabled)) link.mute(kind, true);
      }
    }).catch((error) => {
      console.error("publishing failed", error);
      this.reconnecting(t("The video could not be started. Trying again…"));
    });
  }

  /** @param {boolean} keepTracks */
  stop(keepTracks) {
    if (this.link) this.link.close({ keepTracks });
    this.link = null;
    this.others.dropAll();
  }
}
