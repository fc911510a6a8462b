// After a call, the expert is asked whether the problem was fixed on this visit: the
// answer goes into the job's record and the first-time-fix rate (docs/ui.md).
import { $ } from "./dom.js";

export class Outcome {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void,
   *   record: import("./console-record.js").JobRecord}} options
   */
  constructor({ request, setStatus, record }) {
    /** @type {number | null} the call whose outcome the expert is asked for */
    this.call = null;
    for (const [action, answer] of [["outcome-yes", true], ["outcome-no", false]]) {
      $(`[data-action="${action}"]`).addEventListener("click", async () => {
        if (this.call === null) return;
        try {
          await request(`/api/calls/${this.call}/outcome`, {
            method: "POST", body: { first_time_fix: answer },
          });
          setStatus(answer ? "Recorded: fixed on this visit." : "Recorded: not fixed yet.");
          this.hide();
          if (record.current !== null) record.open(record.current);
        } catch (error) {
          setStatus(/** @type {Error} */ (error).message);
        }
      });
    }
    $('[data-action="outcome-skip"]').addEventListener("click", () => this.hide());
  }

  /** Ask for a call's outcome. @param {number} callId */
  ask(callId) {
    this.call = callId;
    $("#outcome").hidden = false;
    $("#outcome").scrollIntoView({ block: "start" });
  }

  /** Ask no more (answered, skipped, or signed out). */
  hide() {
    this.call = null;
    $("#outcome").hidden = true;
  }
}
