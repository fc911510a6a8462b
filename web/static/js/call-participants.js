// Everyone in the call but this client, as the server last said, and what each one
// sends: the tracks of the media connection, gathered into one stream per participant.
import { shownName } from "./format.js";

/** @typedef {import("./signalling.js").Participant} Participant */

/**
 * A participant as this page names them (format.js shownName): "Kunde" for a customer
 * nobody named, on a German page.
 * @param {Participant} participant @returns {Participant}
 */
const named = (participant) => ({ ...participant, name: shownName(participant) });

export class Participants {
  /**
   * @param {(type: string, detail: unknown) => void} emit an event of the Call:
   *   "participants" (detail: the Map of everyone) and "stream" (detail:
   *   {participantId, stream}, null for nothing sent any more)
   */
  constructor(emit) {
    this.emit = emit;
    /** @type {Map<number, Participant>} everyone in the call but this client */
    this.all = new Map();
    /** @type {Map<number, MediaStream>} what each other participant sends */
    this.streams = new Map();
  }

  /** Tell the page who is in the call now. */
  changed() {
    this.emit("participants", this.all);
  }

  /**
   * Everyone in the call, as joined lists them: who is not there any more sends
   * nothing. @param {Participant[]} participants
   */
  joined(participants) {
    this.all = new Map(participants.map((p) => [p.id, named(p)]));
    for (const id of [...this.streams.keys()]) if (!this.all.has(id)) this.drop(id);
  }

  /**
   * Someone came (participant.joined), is back (participant.back) or is away: one who
   * is away carries since when, and until when they may come back.
   * @param {Participant} participant
   * @param {{away_since: number, away_until: number}} [away]
   */
  set(participant, away) {
    this.all.set(participant.id, { ...named(participant), ...away });
    this.changed();
  }

  /** Someone left. @param {number} id */
  left(id) {
    this.all.delete(id);
    this.drop(id);
    this.changed();
  }

  /**
   * A track of the media connection now carries a participant's camera or microphone.
   * @param {MediaStreamTrack} track @param {number} participantId
   */
  track(track, participantId) {
    // A reused m-section: its track now carries this participant, nobody else.
    for (const [id, other] of this.streams) {
      if (id === participantId || !other.getTracks().includes(track)) continue;
      other.removeTrack(track);
      this.emit("stream", { participantId: id, stream: other });
    }
    let stream = this.streams.get(participantId);
    if (!stream) {
      stream = new MediaStream();
      this.streams.set(participantId, stream);
    }
    for (const old of stream.getTracks()) if (old.kind === track.kind) stream.removeTrack(old);
    stream.addTrack(track);
    this.emit("stream", { participantId, stream });
  }

  /** Someone sends nothing any more. @param {number} participantId */
  drop(participantId) {
    const stream = this.streams.get(participantId);
    if (!stream) return;
    this.streams.delete(participantId);
    this.emit("stream", { participantId, stream: null });
  }

  /** Nobody sends anything any more (the media connection is gone). */
  dropAll() {
    for (const id of [...this.streams.keys()]) this.drop(id);
  }
}
