// When a lost socket is opened again (docs/protocol.md, Coming back): after 1, 2, 4, 8
// then 10 seconds between tries, for up to five minutes, then the call ends. A join
// the server refuses for now (refusal(), call-endings.js) is tried again every 10
// seconds at most. Offline by the browser's word, a try's time passes without it (the
// schedule goes on, so giving up still comes in time), and the next one goes the moment
// the browser says the network is back ("online").
import { t } from "./i18n.js";

const RETRY_DELAYS_S = [1, 2, 4, 8, 10];
const GIVE_UP_AFTER_MS = 5 * 60 * 1000;
const REFUSED_RETRY_S = 10;

export class Reconnection {
  /**
   * @param {{retry: () => void, offline: () => void}} on `retry`: try again now (a new
   *   socket); `offline`: a try's time came with no network (a try cannot reach anyone,
   *   and says so in the console): counted as a try that failed
   */
  constructor(on) {
    this.on = on;
    this.tries = 0;
    this.lostAt = 0;
    this.timer = 0;
    this.onOnline = () => { if (this.timer) this.now(); };
    addEventListener("online", this.onOnline);
  }

  /** Back in the call: the next loss starts the schedule anew. */
  succeeded() {
    this.tries = 0;
    this.lostAt = 0;
  }

  /**
   * The socket was lost, or the server refused the join for now: the next try is set,
   * or, five minutes after the loss, the call is over.
   * @param {string | null} refused why the server refused, in words (refusal()), or
   *   null for a lost connection
   * @returns {{over: boolean, text: string}} what to say: that the call comes back in
   *   so many seconds, or, `over`, why it ended
   */
  lost(refused) {
    if (!this.lostAt) this.lostAt = Date.now();
    if (Date.now() - this.lostAt > GIVE_UP_AFTER_MS) {
      return { over: true, text: refused ? `${refused} ${t("Try again later.")}`
        : t("The connection could not be restored. Check the network; the " +
          "person who invited you can send a new link.") };
    }
    let delay = RETRY_DELAYS_S[Math.min(this.tries, RETRY_DELAYS_S.length - 1)];
    if (refused) delay = Math.max(delay, REFUSED_RETRY_S);
    this.tries += 1;
    this.timer = setTimeout(() => {
      // Offline, the schedule goes on without the try, so giving up still comes in
      // time, and the "online" event tries at once.
      if (navigator.onLine === false) {
        this.timer = 0;
        this.on.offline();
      } else {
        this.now();
      }
    }, delay * 1000);
    return { over: false, text: refused
      ? `${refused} ${t("Trying again in {delay} s…", { delay })}`
      : navigator.onLine === false ? t("No network. Waiting for it to come back…")
        : t("Connection lost. Reconnecting in {delay} s…", { delay }) };
  }

  /** Try again now. */
  now() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.on.retry();
  }

  /** No more tries (the call ended, or the page goes). */
  stop() {
    clearTimeout(this.timer);
    removeEventListener("online", this.onOnline);
  }
}
