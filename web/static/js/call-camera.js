// The local camera and microphone, opened once for a call: the camera is not asked for
// again when the call comes back after a loss (its tracks go on the new connection).
import { countCameras } from "./media.js";
import { t } from "./i18n.js";

/**
 * Open the camera (rear by default) and microphone, as far as the device allows.
 * @returns {Promise<{stream: MediaStream, problem: string | null, cameras: number}>} the
 *   stream, maybe without video or without anything, what went wrong in words, and how
 *   many cameras the device has
 */
export async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: new MediaStream(), cameras: 0,
      problem: t("This browser cannot share a camera here. Open the link in Chrome or Safari.") };
  }
  const video = { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    return { stream, problem: null, cameras: await countCameras() };
  } catch (error) {
    const name = /** @type {Error} */ (error).name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return { stream: new MediaStream(), cameras: 0, problem: t("Camera and microphone are blocked. Allow " +
        "them for this site in the browser's settings, then join again with a new link.") };
    }
    // No camera, or it is busy: try the microphone alone.
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      return { stream, cameras: 0, problem: name === "NotReadableError"
        ? t("The camera is busy in another app. Close it, then switch the camera on again.")
        : t("No camera was found. You can still talk and chat.") };
    } catch {
      return { stream: new MediaStream(), cameras: 0,
        problem: t("The camera and microphone could not be started. Is another app using them?") };
    }
  }
}
