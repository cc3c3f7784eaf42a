// Device Trust content script: relays a page's window.postMessage request to the service worker and
// posts the answer back to the same page. It decides nothing: the service worker judges the page by
// the origin Chrome reports for this frame. When the page's origin is not allowed it posts nothing.
(() => {
  const REQUEST_TYPE = "device-trust:get-credentials";
  const ANSWER_TYPES = new Set(["device-trust:credentials", "device-trust:error"]);

  function validRequestId(id) {
    return (typeof id === "string" && id.length <= 128) || (typeof id === "number" && Number.isFinite(id));
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window) return; // only this page's own window, not other frames or windows
    const data = event.data;
    if (!data || typeof data !== "object" || data.type !== REQUEST_TYPE || !validRequestId(data.id)) return;
    const id = data.id;
    chrome.runtime
      .sendMessage({ type: REQUEST_TYPE })
      .then((reply) => {
        if (!reply || !ANSWER_TYPES.has(reply.type)) return;
        const message = reply.type === "device-trust:credentials"
          ? { type: reply.type, id, credentials: reply.credentials }
          : { type: reply.type, id, error: reply.error };
        window.postMessage(message, window.location.origin);
      })
      .catch(() => {
        // The extension is reloading or was removed: the page hears nothing, as for other origins.
      });
  });
})();
